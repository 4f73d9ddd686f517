//! Grants: a component opens only the stores and databases its manifest entry lists.

use crate::common;

use common::{get, json};

#[test]
fn a_component_without_a_grant_cannot_open_a_store() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());

    let report = json(&get(&app, "/denied/open?kv=default&db=default"));

    assert_eq!(report["kv"], "Err(Error::AccessDenied)");
    assert_eq!(report["sqlite"], "Err(Error::AccessDenied)");
}

#[test]
fn a_granted_component_opens_its_stores_but_no_others() {
    let state = tempfile::tempdir().unwrap();
    let app = common::load(state.path());

    let granted = json(&get(&app, "/storage/open?kv=default&db=default"));
    let other = json(&get(&app, "/storage/open?kv=other&db=other"));

    assert_eq!(granted["kv"], "Ok(())");
    assert_eq!(granted["sqlite"], "Ok(())");
    assert_eq!(other["kv"], "Err(Error::AccessDenied)");
    assert_eq!(other["sqlite"], "Err(Error::AccessDenied)");
}
