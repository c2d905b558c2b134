//! `seccompProfile: RuntimeDefault`: the seccomp filter jotasu's
//! containers run under when their security context asks for the
//! runtime's default profile.
//!
//! Docker's and containerd's default profiles list the system calls a
//! container may make and refuse the rest; what they refuse is documented
//! ("significant syscalls blocked by the default profile"): kernel
//! modules, kexec and reboot, the clock, mounts and new namespaces, swap,
//! kernel keyrings, BPF, perf events, io_uring, NUMA policy, handles to
//! files by inode, and obsolete calls. jotasu's profile refuses that same
//! set by name, with `EPERM`, and lets the others through — so a call the
//! allowlists would miss does not break a program. As in those profiles,
//! a capability the container holds re-allows the calls it governs
//! (`CAP_SYS_ADMIN`: mounts and namespaces; `CAP_SYS_TIME`: the clock; …),
//! creating namespaces through `clone` is refused by its flags, and
//! `clone3`, whose flags a filter cannot read, answers `ENOSYS` so libc
//! falls back to `clone`. Every ABI of the machine (x86_64, i386 and x32;
//! arm64 and arm) gets the same rules, so no 32-bit entry bypasses them.

use oci_spec::OciSpecError;
use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

/// The errno a refused call returns.
const EPERM: u32 = 1;
/// `clone3`'s answer: libc then uses `clone`, whose flags the filter reads.
const ENOSYS: u32 = 38;

/// `clone` flags that create namespaces (CLONE_NEWNS, NEWCGROUP, NEWUTS,
/// NEWIPC, NEWUSER, NEWPID, NEWNET).
const CLONE_NAMESPACE_FLAGS: [u64; 7] = [
    0x0002_0000,
    0x0200_0000,
    0x0400_0000,
    0x0800_0000,
    0x1000_0000,
    0x2000_0000,
    0x4000_0000,
];

/// Calls refused unless the container holds one of the capabilities
/// (empty: refused always).
const REFUSED: &[(&[&str], &[Capability])] = &[
    (
        &[
            "mount",
            "umount",
            "umount2",
            "pivot_root",
            "setns",
            "unshare",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "swapon",
            "swapoff",
            "quotactl",
            "quotactl_fd",
            "lookup_dcookie",
            "fanotify_init",
            "sethostname",
            "setdomainname",
            "name_to_handle_at",
        ],
        &[Capability::SysAdmin],
    ),
    (&["bpf"], &[Capability::SysAdmin, Capability::Bpf]),
    (
        &["perf_event_open"],
        &[Capability::SysAdmin, Capability::Perfmon],
    ),
    (
        &[
            "init_module",
            "finit_module",
            "delete_module",
            "create_module",
            "query_module",
            "get_kernel_syms",
        ],
        &[Capability::SysModule],
    ),
    (
        &["kexec_load", "kexec_file_load", "reboot"],
        &[Capability::SysBoot],
    ),
    (
        &[
            "settimeofday",
            "stime",
            "clock_settime",
            "clock_settime64",
            "clock_adjtime",
            "clock_adjtime64",
        ],
        &[Capability::SysTime],
    ),
    (&["acct"], &[Capability::SysPacct]),
    (&["iopl", "ioperm"], &[Capability::SysRawio]),
    (
        &["mbind", "set_mempolicy", "get_mempolicy", "move_pages"],
        &[Capability::SysNice],
    ),
    (&["kcmp", "userfaultfd"], &[Capability::SysPtrace]),
    (&["open_by_handle_at"], &[Capability::DacReadSearch]),
    (&["syslog"], &[Capability::Syslog]),
    (&["vhangup"], &[Capability::SysTtyConfig]),
    (
        &[
            "add_key",
            "keyctl",
            "request_key",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "nfsservctl",
            "sysfs",
            "_sysctl",
            "uselib",
            "ustat",
            "vm86",
            "vm86old",
        ],
        &[],
    ),
];

/// The ABIs of this machine a filter must cover.
fn architectures() -> Vec<Arch> {
    match std::env::consts::ARCH {
        "x86_64" => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        "aarch64" => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
        "x86" => vec![Arch::ScmpArchX86],
        _ => Vec::new(),
    }
}

fn refuse(names: Vec<String>, errno: u32) -> Result<LinuxSyscall, OciSpecError> {
    LinuxSyscallBuilder::default()
        .names(names)
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(errno)
        .build()
}

/// The RuntimeDefault filter for a container holding `capabilities`.
pub fn runtime_default(capabilities: &[Capability]) -> Result<LinuxSeccomp, OciSpecError> {
    let holds = |caps: &[Capability]| caps.iter().any(|c| capabilities.contains(c));
    let names: Vec<String> = REFUSED
        .iter()
        .filter(|(_, caps)| !holds(caps))
        .flat_map(|(names, _)| names.iter().map(|n| (*n).to_owned()))
        .collect();
    let mut syscalls = vec![refuse(names, EPERM)?];
    if !holds(&[Capability::SysAdmin]) {
        // One rule per flag: a rule's arguments must all match, rules
        // are alternatives.
        for flag in CLONE_NAMESPACE_FLAGS {
            let arg = LinuxSeccompArgBuilder::default()
                .index(0usize)
                .value(flag)
                .value_two(flag)
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .build()?;
            let mut rule = refuse(vec!["clone".to_owned()], EPERM)?;
            rule.set_args(Some(vec![arg]));
            syscalls.push(rule);
        }
        syscalls.push(refuse(vec!["clone3".to_owned()], ENOSYS)?);
    }
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(architectures())
        .syscalls(syscalls)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &LinuxSeccomp) -> Vec<String> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.args().is_none())
            .flat_map(|r| r.names().clone())
            .collect()
    }

    #[test]
    fn default_capabilities_leave_the_documented_calls_refused() {
        let caps = crate::pod::spec::DEFAULT_CAPABILITIES;
        let s = runtime_default(&caps).unwrap();
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActAllow);
        let names = refused(&s);
        for n in [
            "mount",
            "unshare",
            "setns",
            "bpf",
            "keyctl",
            "reboot",
            "init_module",
            "io_uring_setup",
            "clone3",
        ] {
            assert!(names.iter().any(|m| m == n), "{n} is not refused");
        }
        for n in ["read", "clone", "ptrace", "chown", "socket"] {
            assert!(!names.iter().any(|m| m == n), "{n} is refused");
        }
        let clone_rules = s
            .syscalls()
            .iter()
            .flatten()
            .filter(|r| r.names() == &["clone".to_owned()])
            .count();
        assert_eq!(clone_rules, CLONE_NAMESPACE_FLAGS.len());
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(s.architectures().as_ref().map(Vec::len), Some(3));
        }
    }

    #[test]
    fn a_capability_re_allows_the_calls_it_governs() {
        let s = runtime_default(&[Capability::SysAdmin, Capability::SysTime]).unwrap();
        let names = refused(&s);
        for n in [
            "mount",
            "unshare",
            "settimeofday",
            "bpf",
            "perf_event_open",
            "clone3",
        ] {
            assert!(!names.iter().any(|m| m == n), "{n} is refused");
        }
        assert!(names.iter().any(|m| m == "keyctl"));
        assert!(names.iter().any(|m| m == "reboot"));
        assert!(
            !s.syscalls()
                .iter()
                .flatten()
                .any(|r| r.names() == &["clone".to_owned()])
        );
    }

    #[test]
    fn the_json_is_what_runc_reads() {
        let s = runtime_default(&[]).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ALLOW");
        let clone = v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["names"] == serde_json::json!(["clone"]))
            .unwrap();
        assert_eq!(clone["action"], "SCMP_ACT_ERRNO");
        assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone["args"][0]["index"], 0);
    }
}
