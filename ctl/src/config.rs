//! `jotactl config view|get-contexts|current-context|use-context`: the
//! context file (`--config`, `JOTASU_CONFIG`, or `~/.jotasu/config`).

use jotasu_api::client::Config;

use crate::cli::{ConfigCommand, GlobalArgs};
use crate::report::{CtlError, out};
use crate::tabwriter::{TABLE, align};

/// The contexts as kubectl's `config get-contexts` shows them.
pub fn contexts_table(config: &Config) -> String {
    let mut text = String::from("CURRENT\tNAME\tSERVER\n");
    for c in &config.contexts {
        let current = if config.current_context.as_deref() == Some(c.name.as_str()) {
            "*"
        } else {
            ""
        };
        text.push_str(&format!("{current}\t{}\t{}\n", c.name, c.server_list()));
    }
    align(&text, TABLE)
}

/// Runs a `config` subcommand.
pub fn run(global: &GlobalArgs, command: &ConfigCommand) -> Result<(), CtlError> {
    let path = global.config.clone().unwrap_or_else(Config::default_path);
    let mut config = Config::load(&path)?;
    match command {
        ConfigCommand::View => {
            let text = serde_yaml_ng::to_string(&config)
                .map_err(|e| CtlError::Usage(format!("cannot encode the context file: {e}")))?;
            out(&text)
        }
        ConfigCommand::GetContexts => out(&contexts_table(&config)),
        ConfigCommand::CurrentContext => match &config.current_context {
            Some(name) => out(&format!("{name}\n")),
            None => Err(CtlError::Usage("current-context is not set".into())),
        },
        ConfigCommand::UseContext { name } => {
            if config.context(name).is_none() {
                return Err(CtlError::Usage(format!(
                    "no context exists with the name: \"{name}\""
                )));
            }
            config.current_context = Some(name.clone());
            config.save(&path)?;
            out(&format!("Switched to context \"{name}\".\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jotasu_api::client::Context;

    #[test]
    fn contexts() {
        let mut config = Config::default();
        for (name, server) in [
            ("local", "unix:///d/api.sock"),
            ("tls", "https://127.0.0.1:6443"),
        ] {
            config.upsert(Context {
                name: name.into(),
                server: server.into(),
                servers: Vec::new(),
                certificate_authority: None,
                client_certificate: None,
                client_key: None,
            });
        }
        config.current_context = Some("local".into());
        assert_eq!(
            contexts_table(&config),
            "CURRENT   NAME    SERVER\n*         local   unix:///d/api.sock\n          tls     https://127.0.0.1:6443\n"
        );
    }
}
