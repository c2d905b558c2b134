//! The text of a describe page: lines indented two spaces per level, cells
//! separated by tabs and aligned at the end as kubectl aligns them.

use std::fmt::Display;

use jotasu_api::{Condition, Labels, ObjectMeta};

use crate::age::timestamp;
use crate::tabwriter::{DESCRIBE, align};

/// What kubectl shows for an empty value.
pub const NONE: &str = "<none>";

/// Builds one describe page.
#[derive(Debug, Default)]
pub struct Writer {
    text: String,
}

fn indent(level: usize) -> String {
    "  ".repeat(level)
}

impl Writer {
    /// A line at `level` (cells separated by `\t`).
    pub fn line(&mut self, level: usize, text: impl Display) {
        self.text.push_str(&format!("{}{text}\n", indent(level)));
    }

    /// `Key:\tvalue` at `level`.
    pub fn field(&mut self, level: usize, key: &str, value: impl Display) {
        self.line(level, format!("{key}:\t{value}"));
    }

    /// A blank line.
    pub fn blank(&mut self) {
        self.text.push('\n');
    }

    /// `Key:\tfirst` then one `\tnext` line per further item (`<none>` if empty).
    pub fn multiline(&mut self, level: usize, key: &str, items: &[String]) {
        match items.split_first() {
            None => self.field(level, key, NONE),
            Some((first, rest)) => {
                self.field(level, key, first);
                for item in rest {
                    self.line(level, format!("\t{item}"));
                }
            }
        }
    }

    /// `Labels:` with one `k=v` per line.
    pub fn labels(&mut self, level: usize, key: &str, labels: &Labels) {
        let items: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.multiline(level, key, &items);
    }

    /// `Annotations:` with one `k: v` per line.
    pub fn annotations(&mut self, level: usize, annotations: &Labels) {
        let items: Vec<String> = annotations
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        self.multiline(level, "Annotations", &items);
    }

    /// `Name:` and, for namespaced objects, `Namespace:`.
    pub fn name(&mut self, meta: &ObjectMeta) {
        self.field(0, "Name", meta.name());
        if let Some(ns) = &meta.namespace {
            self.field(0, "Namespace", ns);
        }
    }

    /// `Labels:` and `Annotations:`.
    pub fn labels_annotations(&mut self, meta: &ObjectMeta) {
        self.labels(0, "Labels", &meta.labels);
        self.annotations(0, &meta.annotations);
    }

    /// `CreationTimestamp:`.
    pub fn created(&mut self, meta: &ObjectMeta) {
        let t = meta
            .creation_timestamp
            .as_ref()
            .map_or_else(|| NONE.to_owned(), timestamp);
        self.field(0, "CreationTimestamp", t);
    }

    /// `Controlled By:  Deployment/web` when a controller owns the object.
    pub fn controlled_by(&mut self, meta: &ObjectMeta) {
        if let Some(owner) = meta.controller_ref() {
            self.field(0, "Controlled By", format!("{}/{}", owner.kind, owner.name));
        }
    }

    /// A table under a heading: header, dashes, rows.
    pub fn table(&mut self, level: usize, header: &[&str], rows: &[Vec<String>]) {
        self.line(level, header.join("\t"));
        let dashes: Vec<String> = header.iter().map(|h| "-".repeat(h.len())).collect();
        self.line(level, dashes.join("\t"));
        for row in rows {
            self.line(level, row.join("\t"));
        }
    }

    /// `Conditions:` as a table of the given columns (`Type`, `Status`,
    /// `Reason`, `Message`, times); nothing when there are none.
    pub fn conditions(&mut self, conditions: &[Condition], with_reason: bool) {
        if conditions.is_empty() {
            return;
        }
        self.line(0, "Conditions:");
        let header: &[&str] = if with_reason {
            &["Type", "Status", "Reason"]
        } else {
            &["Type", "Status"]
        };
        let rows: Vec<Vec<String>> = conditions
            .iter()
            .map(|c| {
                let mut row = vec![c.type_.clone(), format!("{:?}", c.status)];
                if with_reason {
                    row.push(c.reason.clone().unwrap_or_default());
                }
                row
            })
            .collect();
        self.table(1, header, &rows);
    }

    /// The page, aligned.
    pub fn finish(self) -> String {
        align(&self.text, DESCRIBE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_page() {
        let mut meta = ObjectMeta::named("web");
        meta.namespace = Some("default".into());
        meta.labels.insert("app".into(), "web".into());
        meta.labels.insert("tier".into(), "fe".into());
        let mut w = Writer::default();
        w.name(&meta);
        w.labels_annotations(&meta);
        w.line(0, "Pod Template:");
        w.labels(1, "Labels", &meta.labels);
        assert_eq!(
            w.finish(),
            "Name:         web\n\
             Namespace:    default\n\
             Labels:       app=web\n\
             \x20             tier=fe\n\
             Annotations:  <none>\n\
             Pod Template:\n\
             \x20 Labels:  app=web\n\
             \x20          tier=fe\n"
        );
    }
}
