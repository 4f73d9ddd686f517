//! The runner's integration tests, as one binary: one module per area.

mod runner;
mod sandbox;

#[test]
fn every_test_file_is_a_module_of_this_binary() {
    spinling_test_support::assert_every_test_file_is_a_module(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests"
    )));
}
