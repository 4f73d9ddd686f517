//! What an operator's mistake in the variables shows: a 500 that names the variable, on the
//! requests that use it.

use serde_json::json;
use spinling_api_tests::Api;

const NO_SUCH_DATABASE: &str =
    "Configuration error: variable database must be sqlite or postgres, not \"mysql\"";

#[test]
fn a_database_spinling_cannot_use_is_named_by_every_request_that_opens_it() {
    let api = Api::start_with(&[("database", "mysql")]);
    api.get("/v1/functions").assert_error(500, NO_SUCH_DATABASE);
    api.post_json("/v1/runtimes", &json!({"image": "spinling/wasm"}))
        .assert_error(500, NO_SUCH_DATABASE);
    // A request without storage is served.
    api.get("/v1/").assert_status(200);
}

#[test]
fn postgres_without_its_url_is_named_too() {
    let api = Api::start_with(&[("database", "postgres"), ("postgres_url", "")]);
    api.get("/v1/runtimes").assert_error(
        500,
        "Configuration error: variable postgres_url must be set when database is postgres",
    );
}
