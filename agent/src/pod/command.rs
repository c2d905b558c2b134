//! The process of a container, as the kubelet and containerd's CRI derive
//! it from the pod and the image: its arguments (command/args against
//! Entrypoint/Cmd, with `$(VAR)` expansion), its environment (image env
//! under the container's) and its user.

use jotasu_api::Container;

use crate::containerd::ImageConfig;
use crate::pod::expand::expand_with;

/// containerd's default `PATH`, set when the image gives none.
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The container's argv. `command` and `args` are first expanded with
/// `env` (`$(VAR)`, `$$`); then, as the CRI does: a `command` replaces the
/// image's Entrypoint *and* drops its Cmd (only `args` follow it); without
/// a `command`, `args` replace the image's Cmd after its Entrypoint; with
/// neither, Entrypoint then Cmd. An Entrypoint of `[""]` counts as none.
/// `None` when that leaves nothing to run.
pub fn process_args(
    container: &Container,
    image: &ImageConfig,
    env: &[(String, String)],
) -> Option<Vec<String>> {
    let command: Vec<String> = container
        .command
        .iter()
        .map(|s| expand_with(s, env))
        .collect();
    let mut args: Vec<String> = container.args.iter().map(|s| expand_with(s, env)).collect();
    let mut argv = command;
    if argv.is_empty() {
        if args.is_empty() {
            args.clone_from(&image.cmd);
        }
        if !(image.entrypoint.len() == 1 && image.entrypoint[0].is_empty()) {
            argv.clone_from(&image.entrypoint);
        }
    }
    argv.extend(args);
    (!argv.is_empty()).then_some(argv)
}

fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

/// containerd's `replaceOrAppendEnvValues`: each override replaces the
/// entry of the same name where it stands, or is appended; an override
/// without `=` removes the variable.
fn merge_env(base: &mut Vec<String>, overrides: impl IntoIterator<Item = String>) {
    for o in overrides {
        let key = env_key(&o).to_owned();
        let pos = base.iter().position(|e| env_key(e) == key);
        match (pos, o.contains('=')) {
            (Some(i), true) => base[i] = o,
            (Some(i), false) => {
                base.remove(i);
            }
            (None, true) => base.push(o),
            (None, false) => {}
        }
    }
}

/// The process environment, as `NAME=value`: containerd's default `PATH`,
/// `HOSTNAME`, then the image's env, then the container's (resolved) env,
/// each later one replacing an earlier one of the same name in place.
pub fn process_env(image: &ImageConfig, hostname: &str, env: &[(String, String)]) -> Vec<String> {
    let mut out = vec![DEFAULT_PATH_ENV.to_owned()];
    merge_env(&mut out, [format!("HOSTNAME={hostname}")]);
    merge_env(&mut out, image.env.iter().cloned());
    merge_env(&mut out, env.iter().map(|(k, v)| format!("{k}={v}")));
    out
}

/// Who the process runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessUser {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// The image's `User` when numeric (`uid` or `uid:gid`; gid 0 when not
/// given); `None` for root (empty) and for names, which would need the
/// image's `/etc/passwd` (the container then runs as root).
pub fn image_user(user: &str) -> Option<ProcessUser> {
    let user = user.trim();
    if user.is_empty() {
        return None;
    }
    let (u, g) = user.split_once(':').unwrap_or((user, "0"));
    Some(ProcessUser {
        uid: u.parse().ok()?,
        gid: g.parse().ok()?,
    })
}

/// Whether the image names a user the agent cannot map without reading
/// the image's `/etc/passwd` (it runs such containers as root).
pub fn image_user_is_named(user: &str) -> bool {
    !user.trim().is_empty() && image_user(user).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageConfig {
        ImageConfig {
            entrypoint: strings(entrypoint),
            cmd: strings(cmd),
            ..ImageConfig::default()
        }
    }

    fn container(command: &[&str], args: &[&str]) -> Container {
        Container {
            name: "c".into(),
            command: strings(command),
            args: strings(args),
            ..Container::default()
        }
    }

    fn argv(c: &Container, i: &ImageConfig) -> Option<Vec<String>> {
        let env = vec![
            ("NAME".to_owned(), "world".to_owned()),
            ("PORT".to_owned(), "8080".to_owned()),
        ];
        process_args(c, i, &env)
    }

    fn some(v: &[&str]) -> Option<Vec<String>> {
        Some(strings(v))
    }

    #[test]
    fn image_defaults_when_pod_gives_nothing() {
        let i = image(&["/entry", "-x"], &["serve", "--port=80"]);
        assert_eq!(
            argv(&container(&[], &[]), &i),
            some(&["/entry", "-x", "serve", "--port=80"])
        );
        assert_eq!(
            argv(&container(&[], &[]), &image(&[], &["sh"])),
            some(&["sh"])
        );
        assert_eq!(
            argv(&container(&[], &[]), &image(&["/e"], &[])),
            some(&["/e"])
        );
    }

    #[test]
    fn command_replaces_entrypoint_and_drops_cmd() {
        let i = image(&["/entry"], &["serve"]);
        assert_eq!(argv(&container(&["/bin/sh"], &[]), &i), some(&["/bin/sh"]));
        assert_eq!(
            argv(&container(&["/bin/sh", "-c"], &["echo hi"]), &i),
            some(&["/bin/sh", "-c", "echo hi"])
        );
    }

    #[test]
    fn args_replace_cmd_after_entrypoint() {
        let i = image(&["/entry", "-x"], &["serve"]);
        assert_eq!(
            argv(&container(&[], &["run", "fast"]), &i),
            some(&["/entry", "-x", "run", "fast"])
        );
        assert_eq!(
            argv(&container(&[], &["run"]), &image(&[], &["serve"])),
            some(&["run"])
        );
    }

    #[test]
    fn empty_string_entrypoint_counts_as_none() {
        let i = image(&[""], &["sh", "-c", "true"]);
        assert_eq!(argv(&container(&[], &[]), &i), some(&["sh", "-c", "true"]));
        assert_eq!(argv(&container(&[], &["x"]), &i), some(&["x"]));
        // Two entries, one empty: kept as given.
        let i = image(&["", "a"], &[]);
        assert_eq!(argv(&container(&[], &[]), &i), some(&["", "a"]));
    }

    #[test]
    fn nothing_to_run_is_none() {
        assert_eq!(argv(&container(&[], &[]), &image(&[], &[])), None);
        assert_eq!(argv(&container(&[], &[]), &image(&[""], &[])), None);
    }

    #[test]
    fn command_and_args_expand_container_env() {
        let i = image(&["/entry"], &["$(NAME)"]);
        assert_eq!(
            argv(
                &container(
                    &["echo", "hello $(NAME)"],
                    &["$(PORT)", "$$(PORT)", "$(NOPE)"]
                ),
                &i
            ),
            some(&["echo", "hello world", "8080", "$(PORT)", "$(NOPE)"])
        );
        // The image's own Entrypoint/Cmd are not expanded.
        assert_eq!(argv(&container(&[], &[]), &i), some(&["/entry", "$(NAME)"]));
        // Empty strings survive.
        assert_eq!(
            argv(&container(&["a", ""], &[""]), &i),
            some(&["a", "", ""])
        );
    }

    #[test]
    fn env_layers_image_under_container() {
        let i = ImageConfig {
            env: strings(&["PATH=/bin:/custom", "LANG=C", "KEEP=1", "HOSTNAME=img"]),
            ..ImageConfig::default()
        };
        let env = vec![
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
            ("NEW".to_owned(), "a=b".to_owned()),
        ];
        assert_eq!(
            process_env(&i, "web-1", &env),
            strings(&[
                "PATH=/bin:/custom",
                "HOSTNAME=img",
                "LANG=C.UTF-8",
                "KEEP=1",
                "NEW=a=b"
            ])
        );
        assert_eq!(
            process_env(&ImageConfig::default(), "web-1", &[]),
            strings(&[DEFAULT_PATH_ENV, "HOSTNAME=web-1"])
        );
    }

    #[test]
    fn env_override_without_equals_removes() {
        let mut base = strings(&["A=1", "B=2"]);
        merge_env(&mut base, strings(&["A", "C"]));
        assert_eq!(base, strings(&["B=2"]));
    }

    #[test]
    fn users() {
        assert_eq!(image_user(""), None);
        assert_eq!(image_user("1000"), Some(ProcessUser { uid: 1000, gid: 0 }));
        assert_eq!(
            image_user("1000:1001"),
            Some(ProcessUser {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(image_user("nobody"), None);
        assert_eq!(image_user("1000:staff"), None);
        assert!(image_user_is_named("nobody"));
        assert!(!image_user_is_named("65534"));
        assert!(!image_user_is_named(""));
    }
}
