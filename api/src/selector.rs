//! Label selectors: the `matchLabels`/`matchExpressions` object form and the
//! kubectl string form (`app=web,tier!=db,env in (prod,staging),!legacy,release`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::meta::Labels;

/// Selects objects by their labels. All terms must hold (AND).
///
/// An empty selector matches every object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Each key must have exactly this value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Each requirement must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based requirement on a label.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// How the label is compared.
    pub operator: SelectorOperator,
    /// The values for `In` and `NotIn` (must be empty for `Exists`/`DoesNotExist`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// The operator of a [`LabelSelectorRequirement`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SelectorOperator {
    /// The label is present with one of the values.
    #[default]
    In,
    /// The label is absent, or present with none of the values.
    NotIn,
    /// The label is present (any value).
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl LabelSelectorRequirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.contains(v)),
            SelectorOperator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
        }
    }
}

impl LabelSelector {
    /// A selector requiring each of `labels` (like a Service selector).
    pub fn from_labels(labels: &Labels) -> Self {
        Self {
            match_labels: labels.clone(),
            match_expressions: Vec::new(),
        }
    }

    /// True when the selector has no terms (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether an object with `labels` is selected.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }

    /// Parses the kubectl string form: comma-separated terms `k=v`, `k==v`, `k!=v`,
    /// `k in (a,b)`, `k notin (a,b)`, `k` (exists) and `!k` (does not exist).
    /// An empty string is the empty selector.
    pub fn parse(text: &str) -> Result<Self, SelectorParseError> {
        Parser { text, pos: 0 }.selector()
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A selector string that cannot be parsed; `position` is a byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {text:?} at position {position}: {message}")]
pub struct SelectorParseError {
    /// The whole selector string.
    pub text: String,
    /// Byte offset of the problem.
    pub position: usize,
    /// What was expected.
    pub message: String,
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, SelectorParseError> {
        Err(SelectorParseError {
            text: self.text.into(),
            position: self.pos,
            message: message.into(),
        })
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    /// A key or value: letters, digits and `-_./`.
    fn word(&mut self) -> &str {
        self.skip_ws();
        let len = self
            .rest()
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
            .count();
        let start = self.pos;
        self.pos += len;
        &self.text[start..self.pos]
    }

    fn selector(mut self) -> Result<LabelSelector, SelectorParseError> {
        let mut sel = LabelSelector::default();
        self.skip_ws();
        if self.rest().is_empty() {
            return Ok(sel);
        }
        loop {
            self.term(&mut sel)?;
            self.skip_ws();
            if self.rest().is_empty() {
                return Ok(sel);
            }
            if !self.eat(",") {
                return self.err("expected ',' between requirements");
            }
        }
    }

    fn term(&mut self, sel: &mut LabelSelector) -> Result<(), SelectorParseError> {
        if self.eat("!") {
            let key = self.word().to_owned();
            if key.is_empty() {
                return self.err("expected a label key after '!'");
            }
            sel.match_expressions.push(requirement(
                key,
                SelectorOperator::DoesNotExist,
                Vec::new(),
            ));
            return Ok(());
        }
        let key = self.word().to_owned();
        if key.is_empty() {
            return self.err("expected a label key");
        }
        if self.eat("!=") {
            let value = self.word().to_owned();
            sel.match_expressions
                .push(requirement(key, SelectorOperator::NotIn, vec![value]));
        } else if self.eat("==") || self.eat("=") {
            let value = self.word().to_owned();
            self.equals(sel, key, value);
        } else {
            self.skip_ws();
            let save = self.pos;
            let op = match self.word() {
                "in" => SelectorOperator::In,
                "notin" => SelectorOperator::NotIn,
                "" => {
                    sel.match_expressions.push(requirement(
                        key,
                        SelectorOperator::Exists,
                        Vec::new(),
                    ));
                    return Ok(());
                }
                _ => {
                    self.pos = save;
                    return self
                        .err("expected '=', '==', '!=', 'in', 'notin', ',' or end of input");
                }
            };
            let values = self.value_set()?;
            sel.match_expressions.push(requirement(key, op, values));
        }
        Ok(())
    }

    /// `k=v` goes to matchLabels unless `k` is already there with another value.
    fn equals(&self, sel: &mut LabelSelector, key: String, value: String) {
        match sel.match_labels.get(&key) {
            Some(existing) if *existing != value => {
                sel.match_expressions
                    .push(requirement(key, SelectorOperator::In, vec![value]));
            }
            _ => {
                sel.match_labels.insert(key, value);
            }
        }
    }

    fn value_set(&mut self) -> Result<Vec<String>, SelectorParseError> {
        if !self.eat("(") {
            return self.err("expected '(' to open a value set");
        }
        let mut values = Vec::new();
        loop {
            values.push(self.word().to_owned());
            if self.eat(")") {
                return Ok(values);
            }
            if !self.eat(",") {
                return self.err("expected ',' or ')' in a value set");
            }
        }
    }
}

fn requirement(
    key: String,
    operator: SelectorOperator,
    values: Vec<String>,
) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key,
        operator,
        values,
    }
}

impl fmt::Display for LabelSelector {
    /// Writes the kubectl string form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut terms: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for r in &self.match_expressions {
            terms.push(match (r.operator, r.values.as_slice()) {
                (SelectorOperator::Exists, _) => r.key.clone(),
                (SelectorOperator::DoesNotExist, _) => format!("!{}", r.key),
                (SelectorOperator::NotIn, [one]) => format!("{}!={one}", r.key),
                (SelectorOperator::In, vals) => format!("{} in ({})", r.key, vals.join(",")),
                (SelectorOperator::NotIn, vals) => format!("{} notin ({})", r.key, vals.join(",")),
            });
        }
        f.write_str(&terms.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn parses_every_form() {
        let sel =
            LabelSelector::parse("app=web,tier!=db,env in (prod,staging),!legacy,release").unwrap();
        assert_eq!(sel.match_labels, labels(&[("app", "web")]));
        assert_eq!(
            sel.match_expressions,
            vec![
                requirement("tier".into(), SelectorOperator::NotIn, vec!["db".into()]),
                requirement(
                    "env".into(),
                    SelectorOperator::In,
                    vec!["prod".into(), "staging".into()]
                ),
                requirement("legacy".into(), SelectorOperator::DoesNotExist, vec![]),
                requirement("release".into(), SelectorOperator::Exists, vec![]),
            ]
        );
        assert_eq!(
            sel.to_string(),
            "app=web,tier!=db,env in (prod,staging),!legacy,release"
        );
        assert_eq!(LabelSelector::parse(&sel.to_string()).unwrap(), sel);

        assert!(sel.matches(&labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("release", "1")
        ])));
        assert!(sel.matches(&labels(&[
            ("app", "web"),
            ("env", "staging"),
            ("release", ""),
            ("tier", "fe")
        ])));
        assert!(!sel.matches(&labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("release", "1"),
            ("tier", "db")
        ])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("env", "dev"), ("release", "1")])));
        assert!(!sel.matches(&labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("release", "1"),
            ("legacy", "y")
        ])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("env", "prod")])));
    }

    #[test]
    fn spacing_doubles_and_prefixes() {
        let sel =
            LabelSelector::parse(" app.kubernetes.io/name == web , env notin ( dev , test ) ")
                .unwrap();
        assert_eq!(
            sel.match_labels,
            labels(&[("app.kubernetes.io/name", "web")])
        );
        assert_eq!(sel.match_expressions[0].operator, SelectorOperator::NotIn);
        assert_eq!(sel.match_expressions[0].values, vec!["dev", "test"]);
        assert!(sel.matches(&labels(&[("app.kubernetes.io/name", "web")])));
        // Conflicting equalities select nothing rather than overwriting.
        let sel = LabelSelector::parse("a=1,a=2").unwrap();
        assert!(!sel.matches(&labels(&[("a", "1")])));
        assert!(!sel.matches(&labels(&[("a", "2")])));
        // Empty value and empty string.
        assert!(
            LabelSelector::parse("a=")
                .unwrap()
                .matches(&labels(&[("a", "")]))
        );
        assert!(LabelSelector::parse("").unwrap().is_empty());
        assert!(LabelSelector::parse("  ").unwrap().matches(&labels(&[])));
    }

    #[test]
    fn reports_errors_with_position() {
        let e = LabelSelector::parse("app=web,,x").unwrap_err();
        assert_eq!(e.position, 8);
        assert!(e.to_string().contains("expected a label key"), "{e}");
        let e = LabelSelector::parse("env in prod").unwrap_err();
        assert!(e.message.contains("'('"), "{e}");
        let e = LabelSelector::parse("env in (a b)").unwrap_err();
        assert!(e.message.contains("',' or ')'"), "{e}");
        let e = LabelSelector::parse("app web").unwrap_err();
        assert_eq!(e.position, 4, "{e}");
        assert!(LabelSelector::parse("!").is_err());
        assert!(LabelSelector::parse("a=b c").is_err());
        assert!(LabelSelector::parse("a<3").is_err());
    }

    #[test]
    fn object_form() {
        let sel: LabelSelector = serde_json::from_str(
            r#"{"matchLabels":{"app":"web"},"matchExpressions":[{"key":"tier","operator":"Exists"}]}"#,
        )
        .unwrap();
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "x")])));
        assert!(!sel.matches(&labels(&[("app", "web")])));
        assert!(LabelSelector::default().matches(&labels(&[("any", "thing")])));
    }
}
