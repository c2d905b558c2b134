//! Column alignment as Go's `text/tabwriter` does it, which is what gives
//! kubectl's tables and describe output their shape: cells end with a tab,
//! a column block is a run of adjacent lines that have a cell in that
//! column, each block is as wide as its widest cell plus padding, and the
//! last cell of a line is not part of any column.

/// Minimum column width and padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Narrowest column, padding included.
    pub min_width: usize,
    /// Spaces after the widest cell.
    pub padding: usize,
}

/// `kubectl get` tables (minwidth 6, padding 3).
pub const TABLE: Style = Style {
    min_width: 6,
    padding: 3,
};

/// `kubectl describe` (minwidth 0, padding 2).
pub const DESCRIBE: Style = Style {
    min_width: 0,
    padding: 2,
};

/// Aligns `text` (cells separated by `\t`, lines by `\n`).
pub fn align(text: &str, style: Style) -> String {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let lines: Vec<Vec<&str>> = body.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format(&mut out, &lines, &mut widths, 0, lines.len(), style);
    if !text.ends_with('\n') {
        out.pop();
    }
    out
}

fn width(cell: &str) -> usize {
    cell.chars().count()
}

/// Formats lines `line0..line1`, whose cells left of `widths.len()` are
/// already sized.
fn format(
    out: &mut String,
    lines: &[Vec<&str>],
    widths: &mut Vec<usize>,
    mut line0: usize,
    line1: usize,
    style: Style,
) {
    let column = widths.len();
    let has_cell = |line: &Vec<&str>| column + 1 < line.len();
    let mut this = line0;
    while this < line1 {
        if !has_cell(&lines[this]) {
            this += 1;
            continue;
        }
        write_lines(out, &lines[line0..this], widths);
        line0 = this;
        let mut w = style.min_width;
        while this < line1 && has_cell(&lines[this]) {
            w = w.max(width(lines[this][column]) + style.padding);
            this += 1;
        }
        widths.push(w);
        format(out, lines, widths, line0, this, style);
        widths.pop();
        line0 = this;
    }
    write_lines(out, &lines[line0..line1], widths);
}

fn write_lines(out: &mut String, lines: &[Vec<&str>], widths: &[usize]) {
    for line in lines {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if let Some(w) = widths.get(j).filter(|_| j + 1 < line.len()) {
                out.extend(std::iter::repeat_n(' ', w.saturating_sub(width(cell))));
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_table_shape() {
        let text = "NAME\tREADY\tUP-TO-DATE\tAVAILABLE\tAGE\nnginx-deployment\t3/3\t3\t3\t18s\n";
        assert_eq!(
            align(text, TABLE),
            "NAME               READY   UP-TO-DATE   AVAILABLE   AGE\n\
             nginx-deployment   3/3     3            3           18s\n"
        );
    }

    #[test]
    fn min_width_and_unicode() {
        assert_eq!(align("A\tB\nü\tc\n", TABLE), "A     B\nü     c\n");
    }

    #[test]
    fn blocks_end_at_lines_without_the_column() {
        let text = "Name:\tweb\nLabels:\tapp=web\n\ttier=fe\nPod Template:\n  Labels:\tapp=web\n  Containers:\n";
        assert_eq!(
            align(text, DESCRIBE),
            "Name:    web\nLabels:  app=web\n         tier=fe\nPod Template:\n  Labels:  app=web\n  Containers:\n"
        );
    }

    #[test]
    fn nested_columns() {
        let text = "a\tbb\tc\naaa\tb\tc\nx\n";
        assert_eq!(align(text, DESCRIBE), "a    bb  c\naaa  b   c\nx\n");
        assert_eq!(align("no newline\tx", DESCRIBE), "no newline  x");
        assert_eq!(align("", DESCRIBE), "");
    }
}
