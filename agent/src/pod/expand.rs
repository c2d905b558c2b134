//! Kubernetes' `$(VAR)` expansion, used for env values, command and args:
//! `$(NAME)` becomes the variable's value when it is defined and stays as
//! written when it is not, `$$` is an escaped `$`, and any other `$` is kept.

/// Expands `$(NAME)` references in `input` with `lookup`, as the kubelet does
/// (`third_party/forked/golang/expansion`): an undefined name, an unclosed
/// `$(` and a lone `$` are left as written, `$$` becomes `$`.
pub fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if after.is_empty() {
            // A `$` at the very end stays.
            out.push('$');
            rest = after;
            break;
        }
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(close) => {
                    let name = &body[..close];
                    match lookup(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[close + 1..];
                }
                None => {
                    // Incomplete reference: copy `$(` and go on after it.
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Expands with a list of `(name, value)` pairs; a name given twice takes
/// its last value.
pub fn expand_with(input: &str, vars: &[(String, String)]) -> String {
    expand(input, |name| {
        vars.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<(String, String)> {
        vec![
            ("A".into(), "alpha".into()),
            ("B".into(), "beta".into()),
            ("EMPTY".into(), String::new()),
            ("A".into(), "again".into()),
        ]
    }

    fn x(s: &str) -> String {
        expand_with(s, &vars())
    }

    #[test]
    fn defined_names_are_replaced() {
        assert_eq!(x("$(B)"), "beta");
        assert_eq!(x("pre-$(B)-post"), "pre-beta-post");
        assert_eq!(x("$(B)$(B)"), "betabeta");
        assert_eq!(x("$(EMPTY)x"), "x");
    }

    #[test]
    fn last_definition_wins() {
        assert_eq!(x("$(A)"), "again");
    }

    #[test]
    fn undefined_names_stay_as_written() {
        assert_eq!(x("$(NOPE)"), "$(NOPE)");
        assert_eq!(x("a $(NOPE) b $(B)"), "a $(NOPE) b beta");
        assert_eq!(x("$()"), "$()");
    }

    #[test]
    fn double_dollar_escapes() {
        assert_eq!(x("$$(B)"), "$(B)");
        assert_eq!(x("$$$(B)"), "$beta");
        assert_eq!(x("$$$$"), "$$");
        assert_eq!(x("cost: $$5"), "cost: $5");
    }

    #[test]
    fn lone_dollars_are_kept() {
        assert_eq!(x("$"), "$");
        assert_eq!(x("a$"), "a$");
        assert_eq!(x("$B"), "$B");
        assert_eq!(x("${B}"), "${B}");
        assert_eq!(x("$é"), "$é");
        assert_eq!(x("echo $HOME"), "echo $HOME");
    }

    #[test]
    fn unclosed_references_are_kept() {
        assert_eq!(x("$(B"), "$(B");
        assert_eq!(x("$(($(B)"), "$(($(B)");
        assert_eq!(x("$($(B))"), "$($(B))");
    }

    #[test]
    fn no_recursion_into_values() {
        let v = vec![("A".into(), "$(B)".into()), ("B".into(), "beta".into())];
        assert_eq!(expand_with("$(A)", &v), "$(B)");
    }
}
