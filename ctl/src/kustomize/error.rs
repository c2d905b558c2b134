//! What can go wrong rendering a kustomization: every error names the
//! kustomization file (or the file it read) and, where one is to blame,
//! the field, and says what to do.

use std::path::PathBuf;

/// Why a kustomization cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum KustomizeError {
    /// A kustomization directory that does not exist (or is no directory).
    #[error("\"{}\" is not a directory: name the directory holding kustomization.yaml", .0.display())]
    NoDirectory(PathBuf),
    /// The directory holds no kustomization file.
    #[error(
        "no kustomization file in {}: write kustomization.yaml (or kustomization.yml, Kustomization) there",
        .0.display()
    )]
    NoKustomization(PathBuf),
    /// The directory holds more than one kustomization file.
    #[error("{} holds more than one kustomization file ({names}): keep one", dir.display())]
    SeveralKustomizations {
        /// The directory.
        dir: PathBuf,
        /// The files found.
        names: String,
    },
    /// A file or directory named by a field does not exist.
    #[error("{}: {field}: \"{}\" does not exist", file.display(), path.display())]
    Missing {
        /// The kustomization file naming it.
        file: PathBuf,
        /// The field.
        field: String,
        /// The path as resolved.
        path: PathBuf,
    },
    /// Reading a file failed.
    #[error("cannot read {}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A file is larger than jotactl reads.
    #[error("{} is {size} bytes; jotactl reads files of at most {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A remote resource (git repository, URL): never fetched.
    #[error(
        "{}: {field}: \"{url}\" is remote; jotactl renders local kustomizations only: clone or download it and name the local directory",
        file.display()
    )]
    Remote {
        /// The kustomization file.
        file: PathBuf,
        /// The field.
        field: String,
        /// What it names.
        url: String,
    },
    /// A file outside the kustomization's directory (kustomize's load restriction).
    #[error(
        "{}: {field}: \"{}\" is not in or below {}; move it there or make its directory a kustomization and list that under resources",
        file.display(), path.display(), root.display()
    )]
    OutsideRoot {
        /// The kustomization file.
        file: PathBuf,
        /// The field.
        field: String,
        /// The file named.
        path: PathBuf,
        /// The kustomization's directory.
        root: PathBuf,
    },
    /// Kustomizations that include each other.
    #[error("kustomizations include each other: {chain}; remove one of these resources entries")]
    Cycle {
        /// The directories, the first repeated at the end.
        chain: String,
    },
    /// A field's value (or a file it names) is wrong.
    #[error("{}: {field}: {message}", file.display())]
    Invalid {
        /// The kustomization file (or the file read).
        file: PathBuf,
        /// The field (`resources`, `patches[1].target`, …).
        field: String,
        /// What is wrong and what to do.
        message: String,
    },
}

impl KustomizeError {
    /// An [`KustomizeError::Invalid`].
    pub fn invalid(
        file: &std::path::Path,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            file: file.to_owned(),
            field: field.into(),
            message: message.into(),
        }
    }
}
