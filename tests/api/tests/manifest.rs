//! Spinling's own `spin.toml` held against what each of its components reads in code
//! (`spinling_core::web::config::groups`): a component is given every variable it reads (one it
//! is not given would silently read as its default), and no other.

use std::collections::BTreeSet;

use spinling_api_tests::repo_root;
use spinling_core::web::config::{groups, Reads};

/// Each component of the app, with the variables its endpoint group reads.
const COMPONENTS: &[(&str, Reads)] = &[
    ("root", groups::ROOT),
    ("runtimes", groups::RUNTIMES),
    ("functions", groups::FUNCTIONS),
    ("versions", groups::VERSIONS),
    ("aliases", groups::ALIASES),
    ("executions", groups::EXECUTIONS),
    ("jobs", groups::JOBS),
    ("webhooks", groups::WEBHOOKS),
    ("admin", groups::ADMIN),
    // The built-in runtime serves the worker protocol, not a group: it reads no variable.
    ("wasm-runtime", &[]),
    // The console serves embedded static files: it reads no variable.
    ("console", &[]),
];

/// `[component.<id>]` tables of spin.toml.
fn manifest_components() -> toml::Table {
    let text = std::fs::read_to_string(repo_root().join("spin.toml")).unwrap();
    let manifest: toml::Table = text.parse().expect("spin.toml is TOML");
    manifest["component"].as_table().unwrap().clone()
}

#[test]
fn each_component_maps_exactly_the_variables_its_group_reads() {
    let mut differences = Vec::new();
    for (id, component) in manifest_components() {
        let Some((_, reads)) = COMPONENTS.iter().find(|(known, _)| *known == id) else {
            differences.push(format!("{id}: a component this test does not know"));
            continue;
        };
        let read: BTreeSet<&str> = reads.iter().flat_map(|set| set.iter().copied()).collect();
        let mapped: BTreeSet<String> = component
            .get("variables")
            .and_then(toml::Value::as_table)
            .map(|variables| variables.keys().cloned().collect())
            .unwrap_or_default();
        let mapped: BTreeSet<&str> = mapped.iter().map(String::as_str).collect();
        for name in read.difference(&mapped) {
            differences.push(format!("{id}: reads {name} but does not map it"));
        }
        for name in mapped.difference(&read) {
            differences.push(format!("{id}: maps {name} but never reads it"));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn every_component_of_the_table_is_in_the_manifest_and_serves_its_group() {
    let components = manifest_components();
    for (id, _) in COMPONENTS {
        assert!(
            components.contains_key(*id),
            "spin.toml has no component {id}"
        );
        let source = repo_root().join("components").join(id).join("src/lib.rs");
        let code = std::fs::read_to_string(&source).unwrap();
        match *id {
            "wasm-runtime" | "console" => {
                assert!(!code.contains("Group::"), "{}", source.display())
            }
            _ => {
                let group = format!("Group::{}", id.to_ascii_uppercase());
                assert!(code.contains(&group), "{} serves {group}", source.display());
            }
        }
    }
}
