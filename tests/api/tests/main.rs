//! The black-box tests, as one binary: one module per area of the API. Run one area with a
//! filter on its module: `cargo test -p spinling-api-tests executions::`.

mod aliases;
mod backup;
mod bad_input;
mod conditional;
mod configuration;
mod cors;
mod executions;
mod functions;
mod identity;
mod jobs;
mod laptop;
mod limits;
mod manifest;
mod openapi;
mod openstack_cli;
mod paging;
mod release;
mod replica_caches;
mod replicas;
mod rollouts;
mod root;
mod runtimes;
mod sandbox;
mod tokens;
mod versions;
mod webhooks;
mod workers;

#[test]
fn every_test_file_is_a_module_of_this_binary() {
    spinling_test_support::assert_every_test_file_is_a_module(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests"
    )));
}
