//! `jotactl image import FILE [--node NODE]…`: streams an OCI image archive
//! to the control plane in 1 MiB chunks (a progress line on a terminal),
//! which imports it onto every Ready node (or those named) and answers
//! with what each node imported: `imported NAME (DIGEST) on NODE`.

use std::io::{IsTerminal as _, Write as _};

use jotasu_api::client::ImageImported;

use crate::cli::{GlobalArgs, ImageCommand, ImportArgs};
use crate::connect;
use crate::report::{CtlError, out};
use crate::stream::{read_chunks, take_error};

/// Bytes per message.
const CHUNK: usize = 1 << 20;

/// Runs `image …`.
pub async fn run(global: &GlobalArgs, command: &ImageCommand) -> Result<(), CtlError> {
    match command {
        ImageCommand::Import(args) => import(global, args).await,
    }
}

async fn import(global: &GlobalArgs, args: &ImportArgs) -> Result<(), CtlError> {
    let unreadable =
        |e: std::io::Error| CtlError::Usage(format!("cannot read {}: {e}", args.file.display()));
    let file = std::fs::File::open(&args.file).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    let client = connect::connect(global).await?;
    let live = std::io::stderr().is_terminal();
    let label = args.file.file_name().map_or_else(
        || args.file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let progress_label = label.clone();
    let (chunks, read_error) = read_chunks(file, CHUNK, move |sent| {
        if live {
            progress(&progress_label, sent, size);
        }
    });
    let result = client.import_image(args.nodes.clone(), chunks).await;
    if live {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
    if let Some(e) = take_error(&read_error) {
        return Err(unreadable(e));
    }
    out(&lines(&result?))
}

/// The progress line, rewritten in place.
fn progress(label: &str, sent: u64, size: u64) {
    let text = if sent >= size {
        format!(
            "uploaded {label} ({}); importing onto the nodes...",
            human(size)
        )
    } else {
        format!("uploading {label}: {} / {}", human(sent), human(size))
    };
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[K{text}");
    let _ = err.flush();
}

/// `12.5 MiB`.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// One line per image name and node.
pub fn lines(images: &[ImageImported]) -> String {
    let mut text = String::new();
    for i in images {
        if i.names.is_empty() {
            text.push_str(&format!("imported {} on {}\n", i.digest, i.node));
        }
        for name in &i.names {
            text.push_str(&format!("imported {name} ({}) on {}\n", i.digest, i.node));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines() {
        let images = [
            ImageImported {
                node: "n1".into(),
                names: vec![
                    "docker.io/library/busybox:1".into(),
                    "busybox:latest".into(),
                ],
                digest: "sha256:ab".into(),
            },
            ImageImported {
                node: "n2".into(),
                names: Vec::new(),
                digest: "sha256:ab".into(),
            },
        ];
        assert_eq!(
            lines(&images),
            "imported docker.io/library/busybox:1 (sha256:ab) on n1\n\
             imported busybox:latest (sha256:ab) on n1\n\
             imported sha256:ab on n2\n"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(40 << 20), "40.0 MiB");
    }
}
