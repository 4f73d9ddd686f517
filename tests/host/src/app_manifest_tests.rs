//! Spinling's own `spin.toml`, read by this host's manifest parser, held against what each of
//! its components reads in code (`spinling_core::config::groups`): a component is given every
//! variable it reads (one it is not given would silently read as its default), and no other.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use spinling_core::config::{groups, Reads};

use crate::manifest::Manifest;

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
    // The built-in runtime serves the worker protocol, not a group: it reads no variable.
    ("wasm-runtime", &[]),
    // The console serves embedded static files: it reads no variable.
    ("console", &[]),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn app_manifest() -> Manifest {
    Manifest::load(&workspace().join("spin.toml"), &HashMap::new())
        .expect("spin.toml loads (build the components first: scripts/components)")
}

#[test]
fn each_component_maps_exactly_the_variables_its_group_reads() {
    let manifest = app_manifest();
    let mut differences = Vec::new();
    for component in &manifest.components {
        let Some((_, reads)) = COMPONENTS.iter().find(|(id, _)| *id == component.id) else {
            differences.push(format!(
                "{}: a component this test does not know",
                component.id
            ));
            continue;
        };
        let read: BTreeSet<&str> = reads.iter().flat_map(|set| set.iter().copied()).collect();
        let mapped: BTreeSet<&str> = component.variables.keys().map(String::as_str).collect();
        for name in read.difference(&mapped) {
            differences.push(format!(
                "{}: reads {name} but does not map it",
                component.id
            ));
        }
        for name in mapped.difference(&read) {
            differences.push(format!("{}: maps {name} but never reads it", component.id));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn every_component_of_the_table_is_in_the_manifest_and_serves_its_group() {
    let manifest = app_manifest();
    for (id, _) in COMPONENTS {
        assert!(
            manifest.components.iter().any(|c| c.id == *id),
            "spin.toml has no component {id}"
        );
        let source = workspace().join("components").join(id).join("src/lib.rs");
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
