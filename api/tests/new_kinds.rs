//! Refusals of the kinds issue 18 added: what each must refuse, in
//! Kubernetes' words.

use jotasu_api::{ParseOptions, load_manifest};

fn errors(text: &str) -> String {
    match load_manifest("x.yaml", text, ParseOptions::default()) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn priority_classes_keep_the_system_names_and_range() {
    let class = |name: &str, value: i64| {
        format!(
            "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {{name: {name}}}\nvalue: {value}\n"
        )
    };
    assert_eq!(errors(&class("batch", 1000)), "");
    assert!(
        errors(&class("system-mine", 10))
            .contains("priority class names with 'system-' prefix are reserved"),
        "{}",
        errors(&class("system-mine", 10))
    );
    assert!(
        errors(&class("huge", 2_000_000_000))
            .contains("maximum allowed value of a user defined priority is 1000000000")
    );
    assert!(
        errors(&class("system-node-critical", 5))
            .contains("the system class system-node-critical has the value 2000001000")
    );
}

#[test]
fn limit_ranges_and_quotas_are_consistent() {
    let range = "apiVersion: v1\nkind: LimitRange\nmetadata: {name: l}\nspec:\n  limits:\n  - type: Container\n    min: {cpu: '2'}\n    max: {cpu: '1'}\n    maxLimitRequestRatio: {cpu: '0.5'}\n  - type: Node\n";
    let e = errors(range);
    assert!(
        e.contains(
            "spec.limits[0].min.cpu: Invalid value: \"2\": min value 2 is greater than max value 1"
        ),
        "{e}"
    );
    assert!(
        e.contains("ratio must be greater than or equal to 1"),
        "{e}"
    );
    assert!(
        e.contains("spec.limits[1].type: Unsupported value: \"Node\""),
        "{e}"
    );
    let quota = "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec:\n  hard: {pods: '-1', requests.cpu: '1'}\n  scopes: [BestEffort, NotBestEffort, Forever]\n  scopeSelector:\n    matchExpressions:\n    - {scopeName: PriorityClass, operator: In}\n    - {scopeName: Terminating, operator: NotIn, values: [x]}\n";
    let e = errors(quota);
    assert!(
        e.contains("spec.hard.pods: Invalid value: \"-1\": must be greater than or equal to 0"),
        "{e}"
    );
    for want in [
        "spec.scopes[2]: Unsupported value: \"Forever\"",
        "spec.scopes: Invalid value: \"[BestEffort NotBestEffort]\": conflicting scopes",
        "spec.hard[requests.cpu]: Invalid value: \"requests.cpu\": unsupported scope applied to resource",
        "spec.scopeSelector.matchExpressions[0].values: Required value: must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
        "spec.scopeSelector.matchExpressions[1].operator: Invalid value: \"NotIn\": must be 'Exist' when scope is any of",
    ] {
        assert!(e.contains(want), "wanted {want:?} in\n{e}");
    }
    // A well-formed scoped quota is accepted.
    let scoped = "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec:\n  hard: {pods: '10', limits.cpu: '4'}\n  scopeSelector:\n    matchExpressions:\n    - {scopeName: PriorityClass, operator: In, values: [high]}\n";
    assert_eq!(errors(scoped), "");
}

#[test]
fn endpoint_slices_are_ipv4_with_one_address_each() {
    let slice = |address_type: &str, addresses: &str| {
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: s}}\naddressType: {address_type}\nendpoints:\n- addresses: {addresses}\n"
        )
    };
    assert_eq!(errors(&slice("IPv4", "[10.244.1.2]")), "");
    assert!(
        errors(&slice("IPv6", "['fd00::1']"))
            .contains("addressType: Forbidden: jotasu is single-stack")
    );
    assert!(
        errors(&slice("IPv4", "[10.244.1.2, 10.244.1.3]"))
            .contains("must contain exactly 1 address")
    );
    assert!(
        errors(&slice("IPv4", "[10.244.1.300]"))
            .contains("endpoints[0].addresses[0]: Invalid value")
    );
}
