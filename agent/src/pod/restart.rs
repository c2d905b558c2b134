//! The restart policy: whether a container that stopped runs again.

use jotasu_api::Pod;
use jotasu_api::kinds::pod::RestartPolicy;

/// The pod's restart policy (`Always` when unset).
pub fn restart_policy(pod: &Pod) -> RestartPolicy {
    pod.spec.restart_policy.unwrap_or_default()
}

/// The kubelet's `ShouldContainerBeRestarted` for a container that is not
/// running: `exit` is its exit code, `None` when it never ran (creation or
/// start failed, or its state is unknown) — such a container is always
/// (re)tried, whatever the policy. Otherwise `Always` restarts, `OnFailure`
/// restarts a non-zero exit, `Never` does not. A pod being deleted restarts
/// nothing (the caller checks that).
pub fn should_restart(policy: RestartPolicy, exit: Option<i32>) -> bool {
    match (policy, exit) {
        (_, None) => true,
        (RestartPolicy::Always, Some(_)) => true,
        (RestartPolicy::OnFailure, Some(code)) => code != 0,
        (RestartPolicy::Never, Some(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        use RestartPolicy::*;
        let table = [
            (Always, Some(0), true),
            (Always, Some(1), true),
            (Always, Some(137), true),
            (OnFailure, Some(0), false),
            (OnFailure, Some(1), true),
            (OnFailure, Some(-1), true),
            (Never, Some(0), false),
            (Never, Some(2), false),
            (Always, None, true),
            (OnFailure, None, true),
            (Never, None, true),
        ];
        for (policy, exit, want) in table {
            assert_eq!(should_restart(policy, exit), want, "{policy:?} {exit:?}");
        }
    }

    #[test]
    fn default_policy_is_always() {
        assert_eq!(restart_policy(&Pod::default()), RestartPolicy::Always);
        let mut p = Pod::default();
        p.spec.restart_policy = Some(RestartPolicy::Never);
        assert_eq!(restart_policy(&p), RestartPolicy::Never);
    }
}
