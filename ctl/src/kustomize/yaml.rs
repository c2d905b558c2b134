//! The rendered objects as YAML, written as kubectl writes them: block
//! style, list items at their key's indentation, multi-line strings as
//! literal blocks, and every string quoted that a YAML 1.1 or 1.2 reader
//! could take for something else (`on`, `yes`, `1.0`, `0x1f`, `~`, …),
//! so other tools read back exactly these values.

use serde_json::Value;

/// One object as a YAML document (without `---`).
pub fn document(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(map, 0, &mut out),
        Value::Array(items) if !items.is_empty() => write_list(items, 0, &mut out),
        scalar => {
            write_scalar(scalar, 0, &mut out);
            out.push('\n');
        }
    }
    out
}

fn indent(n: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_map(map: &serde_json::Map<String, Value>, at: usize, out: &mut String) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            indent(at, out);
        }
        write_string_inline(key, out);
        out.push(':');
        write_value_after_key(value, at, out);
    }
}

/// A value after `key:` (or `- `) at indentation `at`.
fn write_value_after_key(value: &Value, at: usize, out: &mut String) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            indent(at + 2, out);
            write_map(m, at + 2, out);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            indent(at, out);
            write_list(items, at, out);
        }
        scalar => {
            out.push(' ');
            write_scalar(scalar, at + 2, out);
            out.push('\n');
        }
    }
}

fn write_list(items: &[Value], at: usize, out: &mut String) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            indent(at, out);
        }
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => write_map(m, at + 2, out),
            Value::Array(inner) if !inner.is_empty() => write_list(inner, at + 2, out),
            scalar => {
                write_scalar(scalar, at + 2, out);
                out.push('\n');
            }
        }
    }
}

/// A scalar (or empty collection); block strings indent to `at`.
fn write_scalar(value: &Value, at: usize, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        Value::String(s) if literal_block_fits(s) => {
            let trailing = s.len() - s.trim_end_matches('\n').len();
            out.push_str(match trailing {
                0 => "|-",
                1 => "|",
                _ => "|+",
            });
            for line in s.trim_end_matches('\n').split('\n') {
                out.push('\n');
                if !line.is_empty() {
                    indent(at, out);
                    out.push_str(line);
                }
            }
            for _ in 1..trailing {
                out.push('\n');
            }
        }
        Value::String(s) => write_string_inline(s, out),
    }
}

/// Whether a multi-line string can be a literal block (`|`).
fn literal_block_fits(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\t', '\n'])
        && !s
            .chars()
            .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{feff}')
        && !s.split('\n').any(|l| l.ends_with([' ', '\t']))
}

fn write_string_inline(s: &str, out: &mut String) {
    if plain_is_safe(s) {
        out.push_str(s);
    } else {
        // A JSON string is a valid YAML double-quoted scalar.
        out.push_str(&Value::String(s.to_owned()).to_string());
    }
}

/// Whether `s` reads back as this string when written plain.
fn plain_is_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if s.starts_with([' ', '\t'])
        || s.ends_with([' ', '\t', ':'])
        || "-?:,[]{}#&*!|>'\"%@`".contains(first)
        || first.is_ascii_digit()
        || matches!(first, '+' | '.' | '=' | '<')
        || s.contains(": ")
        || s.contains(" #")
        || s.chars().any(|c| c.is_control() || c == '\u{feff}')
    {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    !matches!(
        lower.as_str(),
        "~" | "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubectl_layout() {
        let v = json!({"apiVersion": "v1", "data": {"a": "on", "b": "1.0", "c": "x\ny\n", "d": "", "e": "plain"},
            "spec": {"ports": [{"port": 80}], "empty": {}, "list": [], "args": ["a", "- b"]}});
        assert_eq!(
            document(&v),
            "apiVersion: v1\ndata:\n  a: \"on\"\n  b: \"1.0\"\n  c: |\n    x\n    y\n  d: \"\"\n  e: plain\nspec:\n  args:\n  - a\n  - \"- b\"\n  empty: {}\n  list: []\n  ports:\n  - port: 80\n"
        );
    }

    #[test]
    fn round_trips() {
        let v = json!({"k": ["yes", "No", "~", "0x1f", "a: b", "#x", "x #y", " lead", "tab\tin", "t\n\nz\n\n", "no-nl\nend",
            "  indented\nblock", "trail \nx", "é ü", {"nested": [[1, 2], {"a": null}]}, true, 1.5, -3]});
        let text = document(&v);
        let back: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back, v, "{text}");
    }
}
