//! `jotactl logs POD [-c CONTAINER] [-f] [-p] [--tail N]`: a container's
//! output as its node captured it, proxied by the control plane from the
//! node's agent, written to stdout as it arrives.

use std::io::Write as _;

use jotasu_api::client::LogsRequest;

use crate::cli::{GlobalArgs, LogsArgs};
use crate::report::CtlError;
use crate::stream::next;
use crate::{connect, podref};

/// The request the arguments make for `pod` in `namespace`.
pub fn request(args: &LogsArgs, namespace: &str, pod: String) -> Result<LogsRequest, CtlError> {
    let container = match (&args.container, &args.container_arg) {
        (Some(a), Some(b)) if a != b => {
            return Err(CtlError::Usage(
                "only one of -c or an inline [CONTAINER] argument is allowed".into(),
            ));
        }
        (Some(c), _) | (None, Some(c)) => c.clone(),
        (None, None) => String::new(),
    };
    Ok(LogsRequest {
        namespace: namespace.to_owned(),
        name: pod,
        container,
        follow: args.follow,
        previous: args.previous,
        tail_lines: (args.tail >= 0).then_some(args.tail),
    })
}

/// Runs `logs`.
pub async fn run(global: &GlobalArgs, args: &LogsArgs) -> Result<(), CtlError> {
    let namespace = connect::namespace(global);
    let client = connect::connect(global).await?;
    let pod = podref::resolve(&client, namespace, &args.pod).await?;
    let mut chunks = client.logs(request(args, namespace, pod)?).await?;
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = next(&mut chunks).await {
        stdout.write_all(&chunk?)?;
        stdout.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(container: Option<&str>, positional: Option<&str>, tail: i64) -> LogsArgs {
        LogsArgs {
            pod: "web".into(),
            container_arg: positional.map(str::to_owned),
            container: container.map(str::to_owned),
            follow: true,
            previous: false,
            tail,
        }
    }

    #[test]
    fn requests() {
        let r = request(&args(None, None, -1), "ns", "web".into()).unwrap();
        assert_eq!((r.namespace.as_str(), r.name.as_str()), ("ns", "web"));
        assert_eq!(
            (r.container.as_str(), r.follow, r.tail_lines),
            ("", true, None)
        );
        let r = request(&args(Some("app"), None, 10), "ns", "web".into()).unwrap();
        assert_eq!((r.container.as_str(), r.tail_lines), ("app", Some(10)));
        let r = request(&args(None, Some("app"), 0), "ns", "web".into()).unwrap();
        assert_eq!((r.container.as_str(), r.tail_lines), ("app", Some(0)));
        assert!(request(&args(Some("a"), Some("b"), -1), "ns", "web".into()).is_err());
    }
}
