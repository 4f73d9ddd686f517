use spinling_api_tests::Api;

#[test]
fn discovery_names_v1_at_the_base_url_the_client_used() {
    let api = Api::start();
    let reply = api.get("/");
    reply.assert_status(200);
    assert_eq!(
        reply.json(),
        serde_json::json!({"versions": [{"id": "v1.0", "status": "CURRENT",
            "links": [{"href": "http://127.0.0.1:3000/v1", "target": "v1", "rel": "self"}]}]})
    );
}

#[test]
fn the_v1_root_gives_its_uri_with_or_without_a_trailing_slash() {
    let api = Api::start();
    for path in ["/v1", "/v1/"] {
        let reply = api.get(path);
        reply.assert_status(200);
        assert_eq!(
            reply.json(),
            serde_json::json!({"uri": "http://127.0.0.1:3000/v1"})
        );
    }
}

#[test]
fn unknown_paths_are_404_with_a_qinling_error_body() {
    let api = Api::start();
    for path in [
        "/nope",
        "/v1/nope",
        "/v2/",
        "/v1/functions/x/y/z",
        "/v1/runtimes/a/b",
    ] {
        api.get(path)
            .assert_error(404, "The resource could not be found.");
    }
}

#[test]
fn wrong_methods_are_405_with_a_qinling_error_body() {
    let api = Api::start();
    api.delete("/").assert_error(405, "Method not allowed.");
    api.delete("/v1/functions")
        .assert_error(405, "Method not allowed.");
    api.request("PATCH", "/v1/runtimes", &[], vec![])
        .assert_error(405, "Method not allowed.");
    api.request("PUT", "/v1/functions/abc/versions", &[], vec![])
        .assert_error(405, "Method not allowed.");
}
