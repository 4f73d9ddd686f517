//! The test host's integration tests, as one binary: one module per area, sharing `common`.

mod backends;
mod cli;
mod common;
mod grants;
mod outbound;
mod routing;
mod serving;
mod storage;
mod variables;

#[test]
fn every_test_file_is_a_module_of_this_binary() {
    spinling_test_support::assert_every_test_file_is_a_module(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests"
    )));
}
