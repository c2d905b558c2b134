//! Tests of downwardAPI and projected volume files, the memory emptyDir
//! size and the hostPath checks.

use jotasu_api::kinds::pod::{
    ConfigMapProjection, DownwardApiProjection, DownwardApiVolumeSource, EmptyDirVolumeSource,
    HostPathVolumeSource, KeyToPath, ObjectFieldSelector, ResourceFieldSelector,
    ResourceRequirements, SecretProjection, VolumeProjection,
};
use jotasu_api::{Container, Quantity};

use super::*;
use crate::pod::env::tests::Objects;
use crate::pod::volumes::{VolumeKind, plan_volumes};

fn pod(volumes: Vec<Volume>) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some("web-1".into());
    p.metadata.namespace = Some("shop".into());
    p.metadata.labels.insert("app".into(), "web".into());
    p.spec.containers = vec![Container {
        name: "app".into(),
        resources: Some(ResourceRequirements {
            limits: [("memory".to_owned(), Quantity::parse("32Mi").expect("q"))].into(),
            ..ResourceRequirements::default()
        }),
        ..Container::default()
    }];
    p.spec.volumes = volumes;
    p
}

fn field_file(path: &str, field: &str) -> DownwardApiVolumeFile {
    DownwardApiVolumeFile {
        path: path.into(),
        field_ref: Some(ObjectFieldSelector {
            api_version: Some("v1".into()),
            field_path: field.into(),
        }),
        ..DownwardApiVolumeFile::default()
    }
}

fn text(files: &[FileContent], path: &str) -> String {
    let f = files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no {path}"));
    String::from_utf8_lossy(&f.data).into_owned()
}

#[test]
fn downward_api_volume_files() {
    let v = Volume {
        name: "info".into(),
        downward_api: Some(DownwardApiVolumeSource {
            items: vec![
                field_file("name", "metadata.name"),
                field_file("labels", "metadata.labels"),
                DownwardApiVolumeFile {
                    path: "mem".into(),
                    resource_field_ref: Some(ResourceFieldSelector {
                        container_name: Some("app".into()),
                        resource: "limits.memory".into(),
                        divisor: Some(Quantity::parse("1Mi").expect("q")),
                    }),
                    mode: Some(0o600),
                    ..DownwardApiVolumeFile::default()
                },
            ],
            default_mode: Some(0o644),
        }),
        ..Volume::default()
    };
    let plan =
        plan_volumes(&pod(vec![v]), &Objects::default(), &NodeFacts::default()).expect("plans");
    assert_eq!(plan[0].kind, VolumeKind::DownwardApi);
    let files = &plan[0].files;
    assert_eq!(text(files, "name"), "web-1");
    assert_eq!(text(files, "labels"), "app=\"web\"");
    assert_eq!(text(files, "mem"), "32");
    assert_eq!(
        files.iter().find(|f| f.path == "mem").map(|f| f.mode),
        Some(0o600)
    );
}

#[test]
fn projected_sources_in_order() {
    let objs = Objects::default()
        .with_config_map("shop", "cfg", &[("color", "blue"), ("name", "from-cm")])
        .with_secret("shop", "creds", &[("password", b"s3cret")]);
    let v = Volume {
        name: "all".into(),
        projected: Some(ProjectedVolumeSource {
            sources: vec![
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "cfg".into(),
                        ..ConfigMapProjection::default()
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    secret: Some(SecretProjection {
                        name: "creds".into(),
                        items: vec![KeyToPath {
                            key: "password".into(),
                            path: "secret/pw".into(),
                            mode: Some(0o400),
                        }],
                        optional: None,
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardApiProjection {
                        items: vec![field_file("name", "metadata.name")],
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    secret: Some(SecretProjection {
                        name: "absent".into(),
                        optional: Some(true),
                        ..SecretProjection::default()
                    }),
                    ..VolumeProjection::default()
                },
            ],
            default_mode: Some(0o644),
        }),
        ..Volume::default()
    };
    let plan = plan_volumes(&pod(vec![v.clone()]), &objs, &NodeFacts::default()).expect("plans");
    assert_eq!(plan[0].kind, VolumeKind::Projected);
    let files = &plan[0].files;
    assert_eq!(text(files, "color"), "blue");
    assert_eq!(text(files, "name"), "web-1", "the later source wins");
    assert_eq!(text(files, "secret/pw"), "s3cret");
    assert_eq!(files.len(), 3);
    let err = plan_volumes(&pod(vec![v]), &Objects::default(), &NodeFacts::default())
        .expect_err("the ConfigMap is required");
    assert_eq!(
        err.to_string(),
        "MountVolume.SetUp failed for volume \"all\" : configmap \"cfg\" not found"
    );
}

#[test]
fn memory_empty_dirs_are_sized_by_the_pod_limit() {
    let ed = |size: Option<&str>| Volume {
        name: "scratch".into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: size.map(|s| Quantity::parse(s).expect("q")),
        }),
        ..Volume::default()
    };
    let node = NodeFacts {
        memory_bytes: 1 << 30,
        ..NodeFacts::default()
    };
    let kind = |v: Volume, p: Option<Pod>| {
        let p = p.unwrap_or_else(|| pod(vec![v.clone()]));
        plan_volumes(&p, &Objects::default(), &node).expect("plans")[0].kind
    };
    let sized = |s| VolumeKind::EmptyDir {
        memory: true,
        size_limit: Some(s),
    };
    assert_eq!(kind(ed(None), None), sized(32 << 20));
    assert_eq!(kind(ed(Some("8Mi")), None), sized(8 << 20));
    assert_eq!(kind(ed(Some("64Mi")), None), sized(32 << 20));
    let mut unlimited = pod(vec![ed(None)]);
    unlimited.spec.containers[0].resources = None;
    assert_eq!(kind(ed(None), Some(unlimited)), sized(1 << 30));
}

#[test]
fn host_path_types() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("made/deep");
    check_host_path(&d, HostPathType::DirectoryOrCreate).expect("made");
    assert!(d.is_dir());
    check_host_path(&d, HostPathType::Directory).expect("a directory");
    let f = tmp.path().join("file");
    check_host_path(&f, HostPathType::FileOrCreate).expect("made");
    check_host_path(&f, HostPathType::File).expect("a file");
    let err = check_host_path(&f, HostPathType::Directory).expect_err("not a directory");
    assert_eq!(
        err.to_string(),
        format!(
            "hostPath type check failed: {} is not a directory",
            f.display()
        )
    );
    let missing = tmp.path().join("missing");
    assert!(check_host_path(&missing, HostPathType::File).is_err());
    assert!(check_host_path(&missing, HostPathType::Socket).is_err());
    check_host_path(&missing, HostPathType::Unset).expect("no check");
    // A hostPath volume keeps the node's path.
    let v = Volume {
        name: "host".into(),
        host_path: Some(HostPathVolumeSource {
            path: d.display().to_string(),
            type_: Some("Directory".into()),
        }),
        ..Volume::default()
    };
    let plan =
        plan_volumes(&pod(vec![v]), &Objects::default(), &NodeFacts::default()).expect("plans");
    assert_eq!(plan[0].host_path.as_deref(), Some(d.as_path()));
}
