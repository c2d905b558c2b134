//! Which OCI runtime containerd's runc shim runs the node's containers with:
//! runc, or crun when it is installed and accepts the host's cgroups.
//!
//! crun is a small C program where runc is a Go binary that re-executes a
//! sealed copy of itself for every container; on a 2-core node a container
//! start costs crun about a third of runc's CPU. crun refuses a hybrid
//! cgroup host (v1 controllers plus a v2 mount) on which any controller is
//! still bound to v2, so `auto` checks that before choosing it.
//!
//! The choice is a plain function of what was asked for and what the host
//! offers ([`choose`]); [`HostRuntimes::detect`] reads the host.

use std::path::{Path, PathBuf};

use crate::cgroup::Hierarchies;

/// What `--oci-runtime` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// crun if it can run here, else runc.
    Auto,
    /// This binary (a name looked up on PATH, or a path).
    Binary(String),
}

impl std::str::FromStr for Requested {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" => Self::Auto,
            other => Self::Binary(other.to_owned()),
        })
    }
}

/// What the host offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRuntimes {
    /// crun's path, if installed.
    pub crun: Option<PathBuf>,
    /// Controllers bound to the v2 hierarchy of a hybrid host (crun refuses
    /// to run while any is); empty on a pure v2 host.
    pub hybrid_v2_controllers: Vec<String>,
}

/// Why the asked-for runtime cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuntimeError {
    /// The binary is not on PATH (or the path does not exist).
    #[error("OCI runtime {0:?} not found; install it (apt install {0}) or pass --oci-runtime auto")]
    NotFound(String),
    /// crun on a hybrid host with controllers on v2.
    #[error(
        "crun refuses this hybrid cgroup host: controllers {controllers:?} are bound to the v2 \
         hierarchy; mount each as a v1 hierarchy (scripts/bootstrap.sh does) or pass \
         --oci-runtime runc"
    )]
    CrunRefusesCgroups {
        /// The controllers bound to v2.
        controllers: Vec<String>,
    },
}

/// The chosen runtime and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The binary the shim runs (`runc` keeps the shim's default).
    pub binary: String,
    /// Why, for the log.
    pub reason: String,
}

impl Choice {
    /// Whether this is runc, containerd's default (no runtime options sent).
    pub fn is_default(&self) -> bool {
        Path::new(&self.binary)
            .file_name()
            .is_some_and(|n| n == "runc")
    }
}

/// Chooses the runtime. `exists` says whether a binary name or path can be run.
pub fn choose(
    requested: &Requested,
    host: &HostRuntimes,
    exists: impl Fn(&str) -> bool,
) -> Result<Choice, RuntimeError> {
    let crun_ok = || {
        if host.hybrid_v2_controllers.is_empty() {
            Ok(())
        } else {
            Err(RuntimeError::CrunRefusesCgroups {
                controllers: host.hybrid_v2_controllers.clone(),
            })
        }
    };
    match requested {
        Requested::Auto => match (&host.crun, crun_ok()) {
            (Some(path), Ok(())) => Ok(Choice {
                binary: path.display().to_string(),
                reason: "auto: crun is installed and accepts this host's cgroups".into(),
            }),
            (Some(_), Err(e)) => Ok(Choice {
                binary: "runc".into(),
                reason: format!("auto: runc, because {e}"),
            }),
            (None, _) => Ok(Choice {
                binary: "runc".into(),
                reason: "auto: crun is not installed".into(),
            }),
        },
        Requested::Binary(b) => {
            if !exists(b) {
                return Err(RuntimeError::NotFound(b.clone()));
            }
            if Path::new(b).file_name().is_some_and(|n| n == "crun") {
                crun_ok()?;
            }
            Ok(Choice {
                binary: b.clone(),
                reason: "--oci-runtime".into(),
            })
        }
    }
}

impl HostRuntimes {
    /// Reads the host: crun on PATH, and the v2 controllers of a hybrid host.
    pub fn detect(hierarchies: &Hierarchies) -> Self {
        let hybrid_v2_controllers = match hierarchies.unified() {
            Some(unified) if hierarchies.is_hybrid() => {
                std::fs::read_to_string(unified.join("cgroup.controllers"))
                    .map(|s| s.split_whitespace().map(str::to_owned).collect())
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        };
        Self {
            crun: which("crun"),
            hybrid_v2_controllers,
        }
    }
}

/// The path of `name` on PATH (or `name` itself when it holds a `/`).
pub fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Path::new(name).is_file().then(|| PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(crun: bool, v2: &[&str]) -> HostRuntimes {
        HostRuntimes {
            crun: crun.then(|| PathBuf::from("/usr/bin/crun")),
            hybrid_v2_controllers: v2.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn auto_takes_crun_when_it_can_run() {
        let c = choose(&Requested::Auto, &host(true, &[]), |_| true).unwrap();
        assert_eq!(c.binary, "/usr/bin/crun");
        assert!(!c.is_default());
    }

    #[test]
    fn auto_falls_back_to_runc_and_says_why() {
        let c = choose(&Requested::Auto, &host(true, &["hugetlb"]), |_| true).unwrap();
        assert_eq!(c.binary, "runc");
        assert!(c.is_default());
        assert!(c.reason.contains("hugetlb"), "{}", c.reason);
        let c = choose(&Requested::Auto, &host(false, &[]), |_| true).unwrap();
        assert_eq!(c.binary, "runc");
        assert!(c.reason.contains("not installed"));
    }

    #[test]
    fn an_explicit_runtime_must_exist_and_be_able_to_run() {
        assert_eq!(
            choose(&Requested::Binary("youki".into()), &host(true, &[]), |_| {
                false
            }),
            Err(RuntimeError::NotFound("youki".into()))
        );
        assert!(matches!(
            choose(
                &Requested::Binary("/usr/bin/crun".into()),
                &host(true, &["hugetlb"]),
                |_| true
            ),
            Err(RuntimeError::CrunRefusesCgroups { .. })
        ));
        let c = choose(
            &Requested::Binary("runc".into()),
            &host(true, &["hugetlb"]),
            |_| true,
        )
        .unwrap();
        assert!(c.is_default());
    }

    #[test]
    fn flag_parses() {
        assert_eq!("auto".parse::<Requested>().unwrap(), Requested::Auto);
        assert_eq!(
            "crun".parse::<Requested>().unwrap(),
            Requested::Binary("crun".into())
        );
    }
}
