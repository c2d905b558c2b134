//! ClusterRole aggregation: a ClusterRole with an `aggregationRule` has the
//! rules of every other ClusterRole whose labels match one of its selectors
//! (Kubernetes' clusterrole-aggregation controller writes them into its
//! `rules`; here they are computed when a snapshot is built).

use std::collections::HashMap;
use std::sync::Arc;

use jotasu_api::{ClusterRole, PolicyRule};

/// The rules each ClusterRole grants, by name: its own `rules`, or for an
/// aggregated one the union of the selected ClusterRoles' rules (in name
/// order, without duplicates). Aggregation is transitive (`admin` selects
/// `edit`, which selects `view`), cycles included: the rules are a fixed
/// point, found without recursion.
pub fn effective_rules(roles: &[&ClusterRole]) -> HashMap<String, Arc<[PolicyRule]>> {
    let mut sorted: Vec<&ClusterRole> = roles.to_vec();
    sorted.sort_by(|a, b| a.metadata.name().cmp(b.metadata.name()));
    let mut rules: HashMap<&str, Vec<PolicyRule>> = sorted
        .iter()
        .map(|r| {
            let own = match r.aggregation_rule {
                Some(_) => Vec::new(),
                None => r.rules.clone(),
            };
            (r.metadata.name(), own)
        })
        .collect();
    // Each aggregated role and the roles it selects, by name.
    let selections: Vec<(&str, Vec<&str>)> = sorted
        .iter()
        .filter_map(|r| {
            let selectors = &r.aggregation_rule.as_ref()?.cluster_role_selectors;
            let name = r.metadata.name();
            let selected = sorted
                .iter()
                .filter(|other| other.metadata.name() != name)
                .filter(|other| selectors.iter().any(|s| s.matches(&other.metadata.labels)))
                .map(|other| other.metadata.name())
                .collect();
            Some((name, selected))
        })
        .collect();
    // Every round carries rules at least one aggregation step further.
    for _ in 0..=selections.len() {
        let mut changed = false;
        for (name, selected) in &selections {
            let mut union: Vec<PolicyRule> = Vec::new();
            for rule in selected.iter().filter_map(|s| rules.get(s)).flatten() {
                if !union.contains(rule) {
                    union.push(rule.clone());
                }
            }
            if rules.get(name) != Some(&union) {
                rules.insert(name, union);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    rules
        .into_iter()
        .map(|(name, rules)| (name.to_owned(), Arc::from(rules)))
        .collect()
}

#[cfg(test)]
mod tests {
    use jotasu_api::kinds::rbac::AggregationRule;
    use jotasu_api::{LabelSelector, ObjectMeta};

    use super::*;

    fn role(name: &str, labels: &[&str], verb: Option<&str>, selects: &[&str]) -> ClusterRole {
        let mut metadata = ObjectMeta::named(name);
        for l in labels {
            metadata.labels.insert((*l).to_owned(), "true".to_owned());
        }
        let rules = verb
            .map(|v| PolicyRule {
                verbs: vec![v.to_owned()],
                api_groups: vec![String::new()],
                resources: vec!["pods".to_owned()],
                ..PolicyRule::default()
            })
            .into_iter()
            .collect();
        let aggregation_rule = (!selects.is_empty()).then(|| AggregationRule {
            cluster_role_selectors: selects
                .iter()
                .map(|l| LabelSelector {
                    match_labels: [((*l).to_owned(), "true".to_owned())].into(),
                    ..LabelSelector::default()
                })
                .collect(),
        });
        ClusterRole {
            metadata,
            rules,
            aggregation_rule,
            ..ClusterRole::default()
        }
    }

    fn verbs(rules: &HashMap<String, Arc<[PolicyRule]>>, name: &str) -> Vec<String> {
        rules[name].iter().flat_map(|r| r.verbs.clone()).collect()
    }

    #[test]
    fn transitive_deduplicated_and_cyclic() {
        let roles = [
            role("top", &[], Some("ignored"), &["to-top"]),
            role("mid", &["to-top"], None, &["to-mid"]),
            role("a", &["to-mid"], Some("get"), &[]),
            role("b", &["to-mid", "to-top"], Some("list"), &[]),
            role("c", &["to-top"], Some("get"), &[]),
            role("loop1", &["l2"], Some("watch"), &["l1"]),
            role("loop2", &["l1"], None, &["l2"]),
            role("lonely", &[], None, &["nothing"]),
        ];
        let refs: Vec<&ClusterRole> = roles.iter().collect();
        let rules = effective_rules(&refs);
        // Its own rules are replaced; b's and a's/c's identical rules once.
        assert_eq!(verbs(&rules, "top"), ["list", "get"]);
        assert_eq!(verbs(&rules, "mid"), ["get", "list"]);
        assert_eq!(verbs(&rules, "a"), ["get"]);
        assert_eq!(verbs(&rules, "loop1"), Vec::<String>::new());
        assert_eq!(verbs(&rules, "lonely"), Vec::<String>::new());
        // loop2 selects loop1, which selects loop2 (an aggregated role's own
        // rules never count): nothing to grant, and no endless loop.
        assert_eq!(verbs(&rules, "loop2"), Vec::<String>::new());
    }
}
