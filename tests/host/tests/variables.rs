//! Variables: app defaults, overrides, required variables, and what a component may read.

use crate::common;

use common::{get, text};
use spin_test_host::{BlockingApp, HostOptions};

#[test]
fn a_component_reads_its_variables_rendered_from_app_defaults() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());

    assert_eq!(text(&get(&app, "/variables/greeting")), "hello");
    assert_eq!(text(&get(&app, "/variables/message")), "hello, dev-token!");
    assert_eq!(text(&get(&app, "/variables/literal")), "plain text");
}

#[test]
fn an_override_replaces_the_default_everywhere_it_is_used() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load_with(
        HostOptions::new(common::manifest(), state.path()).variable("token", "s3cret"),
    );

    assert_eq!(text(&get(&app, "/variables/message")), "hello, s3cret!");
}

#[test]
fn a_component_sees_only_the_variables_it_declares() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());

    // `token` is an app variable, but the component maps it only into `message`.
    let undefined = get(&app, "/variables/token");
    let invalid = get(&app, "/variables/Not-Valid");

    assert_eq!(undefined.status(), 404);
    assert!(
        text(&undefined).starts_with("Error::Undefined("),
        "{}",
        text(&undefined)
    );
    assert_eq!(invalid.status(), 400);
    assert!(
        text(&invalid).starts_with("Error::InvalidName("),
        "{}",
        text(&invalid)
    );
}

/// A one-component manifest around the variables fixture with a required variable.
fn required_manifest(dir: &std::path::Path) -> std::path::PathBuf {
    let manifest = dir.join("spin.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"spin_manifest_version = 2
[application]
name = "required"
[variables]
spin_test_host_needed = {{ required = true }}
[[trigger.http]]
route = "/..."
component = "variables"
[component.variables]
source = "{}"
[component.variables.variables]
needed = "{{{{ spin_test_host_needed }}}}"
"#,
            common::fixture_wasm("variables").display()
        ),
    )
    .unwrap();
    manifest
}

#[test]
fn a_required_variable_without_a_value_fails_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = required_manifest(dir.path());

    let err = BlockingApp::load(HostOptions::new(&manifest, dir.path().join(".spin")))
        .err()
        .expect("the load must fail");

    assert!(
        format!("{err:#}").contains("SPIN_VARIABLE_SPIN_TEST_HOST_NEEDED"),
        "{err:#}"
    );
}

#[test]
fn a_required_variable_given_as_an_override_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = required_manifest(dir.path());

    let app = common::load_with(
        HostOptions::new(&manifest, dir.path().join(".spin"))
            .variable("spin_test_host_needed", "given"),
    );

    assert_eq!(text(&get(&app, "/needed")), "given");
}
