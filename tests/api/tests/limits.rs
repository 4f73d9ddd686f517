//! Request limits: body size (413), JSON nesting and values, form fields, query parameters and
//! field lengths (400), each refused with a Qinling error body and never a 5xx.

use serde_json::json;
use spinling_api_tests::{multipart, package, Api, Reply};

/// A function and its version and alias, so that every JSON route has something to act on.
struct Fixture {
    api: Api,
    fid: String,
    runtime: String,
}

impl Fixture {
    fn start_with(variables: &[(&str, &str)]) -> Fixture {
        let api = Api::start_with(variables);
        let runtime = api.create_runtime();
        let fid = api.create_function_id(&runtime, &package("a"));
        api.publish(&fid).assert_status(201);
        api.post_json("/v1/aliases", &json!({"name": "prod", "function_id": fid}))
            .assert_status(201);
        Fixture { api, fid, runtime }
    }

    /// Every route that reads a JSON body.
    fn json_routes(&self) -> Vec<(&'static str, String)> {
        let (fid, runtime) = (&self.fid, &self.runtime);
        vec![
            ("POST", "/v1/runtimes".into()),
            ("PUT", format!("/v1/runtimes/{runtime}")),
            ("POST", "/v1/functions".into()),
            ("PUT", format!("/v1/functions/{fid}")),
            ("POST", format!("/v1/functions/{fid}/versions")),
            ("POST", "/v1/aliases".into()),
            ("PUT", "/v1/aliases/prod".into()),
            ("POST", "/v1/executions".into()),
        ]
    }

    /// Sends `body` as JSON to every JSON route and checks each gets this 400.
    #[track_caller]
    fn assert_every_json_route_refuses(&self, body: &str, faultstring: &str) {
        for (method, path) in self.json_routes() {
            let reply = self.api.request(
                method,
                &path,
                &[("content-type", "application/json")],
                body.as_bytes().to_vec(),
            );
            assert_eq!(reply.status, 400, "{method} {path}: {}", reply.text());
            reply.assert_error(400, faultstring);
        }
    }
}

fn nested(depth: usize) -> String {
    format!(
        r#"{{"description": {}1{}}}"#,
        "[".repeat(depth - 1),
        "]".repeat(depth - 1)
    )
}

fn execute(api: &Api, fid: &str, input: &str) -> Reply {
    api.post_json(
        "/v1/executions",
        &json!({"function_id": fid, "input": input}),
    )
}

#[test]
fn a_body_announced_over_max_request_body_is_refused_before_it_is_read() {
    let api = Api::start_with(&[("max_request_body", "1000")]);
    let reply = api.request(
        "POST",
        "/v1/runtimes",
        &[
            ("content-type", "application/json"),
            ("content-length", "999999999"),
        ],
        Vec::new(),
    );
    reply.assert_error(413, "Request body exceeds the maximum of 1000 bytes.");
}

#[test]
fn a_body_streaming_over_max_request_body_is_refused() {
    let api = Api::start_with(&[("max_request_body", "1000")]);
    let body = format!(r#"{{"description": "{}"}}"#, "x".repeat(2000));
    api.post_raw("/v1/aliases", "application/json", body.as_bytes())
        .assert_error(413, "Request body exceeds the maximum of 1000 bytes.");
}

#[test]
fn only_package_uploads_may_exceed_max_request_body() {
    let api = Api::start_with(&[("max_request_body", "1000")]);
    let runtime = api.create_runtime();
    let big_package = spinling_api_tests::zip_of(&[("main.py", "#".repeat(5000).as_bytes())]);
    api.create_function_with(&runtime, &big_package, &[])
        .assert_status(201);
    let json_body =
        json!({"code": {"source": "image", "image": "alpine"}, "description": "x".repeat(2000)});
    api.post_json("/v1/functions", &json_body)
        .assert_error(413, "Request body exceeds the maximum of 1000 bytes.");
}

#[test]
fn json_nested_deeper_than_32_levels_is_refused_on_every_route() {
    let fixture = Fixture::start_with(&[]);
    fixture
        .assert_every_json_route_refuses(&nested(33), "Request body nests deeper than 32 levels.");
}

#[test]
fn a_hundred_thousand_open_brackets_are_a_bad_request_not_a_crash() {
    let fixture = Fixture::start_with(&[]);
    fixture.assert_every_json_route_refuses(
        &"[".repeat(100_000),
        "Request body nests deeper than 32 levels.",
    );
}

#[test]
fn a_configured_json_depth_is_enforced() {
    let api = Api::start_with(&[("max_json_depth", "4")]);
    let at_the_limit = api.post_raw("/v1/runtimes", "application/json", nested(4).as_bytes());
    assert!(
        at_the_limit.text().contains("Wrong type"),
        "{}",
        at_the_limit.text()
    );
    api.post_raw("/v1/runtimes", "application/json", nested(5).as_bytes())
        .assert_error(400, "Request body nests deeper than 4 levels.");
}

#[test]
fn the_deepest_configurable_nesting_is_parsed_without_overflowing() {
    let api = Api::start_with(&[("max_json_depth", "127")]);
    let deepest = api.post_raw("/v1/runtimes", "application/json", nested(127).as_bytes());
    assert!(deepest.text().contains("Wrong type"), "{}", deepest.text());
    api.post_raw("/v1/runtimes", "application/json", nested(128).as_bytes())
        .assert_error(400, "Request body nests deeper than 127 levels.");
}

#[test]
fn a_body_of_more_values_than_max_json_items_is_refused() {
    let api = Api::start_with(&[("max_json_items", "10")]);
    // The object and its array, with 9 numbers: 11 values.
    let body = json!({"description": [1, 2, 3, 4, 5, 6, 7, 8, 9]});
    api.post_json("/v1/aliases", &body)
        .assert_error(400, "Request body has more than 10 values.");
}

#[test]
fn execution_input_is_held_to_the_json_limits() {
    let fixture = Fixture::start_with(&[]);
    let deep = format!(r#"{{"a": {}}}"#, "[".repeat(100_000));
    execute(&fixture.api, &fixture.fid, &deep)
        .assert_error(400, "Execution input nests deeper than 32 levels.");
    let many = format!(r#"{{"a": [{}]}}"#, vec!["0"; 10_000].join(","));
    execute(&fixture.api, &fixture.fid, &many)
        .assert_error(400, "Execution input has more than 10000 values.");
}

#[test]
fn execution_input_that_is_no_object_is_passed_raw_unparsed() {
    let fixture = Fixture::start_with(&[]);
    let brackets = "[".repeat(100_000);
    let reply = execute(&fixture.api, &fixture.fid, &brackets);
    reply.assert_status(201);
    assert_eq!(reply.json()["input"], brackets);
}

#[test]
fn function_code_given_as_a_string_is_held_to_the_json_limits() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let code = format!(r#"{{"source": {}}}"#, "[".repeat(100_000));
    let (content_type, body) = multipart(
        &[("code", &code), ("runtime_id", &runtime)],
        Some(&package("a")),
    );
    api.post_raw("/v1/functions", &content_type, &body)
        .assert_error(400, "Function code nests deeper than 32 levels.");
}

#[test]
fn a_form_of_more_than_a_hundred_fields_is_refused() {
    let api = Api::start();
    let urlencoded = vec!["name=x"; 101].join("&");
    api.post_raw(
        "/v1/functions",
        "application/x-www-form-urlencoded",
        urlencoded.as_bytes(),
    )
    .assert_error(400, "Request body has more than 100 form fields.");
    let fields = vec![("name", "x"); 101];
    let (content_type, body) = multipart(&fields, None);
    api.post_raw("/v1/functions", &content_type, &body)
        .assert_error(400, "Request body has more than 100 form fields.");
}

#[test]
fn a_query_of_more_than_a_hundred_parameters_is_refused() {
    let api = Api::start();
    let query = vec!["status=success"; 101].join("&");
    api.get(&format!("/v1/executions?{query}"))
        .assert_error(400, "Request has more than 100 query parameters.");
}

#[test]
fn an_over_long_query_value_is_refused() {
    let fixture = Fixture::start_with(&[]);
    let long = "a".repeat(256);
    for path in [
        format!("/v1/executions?function_id={long}"),
        format!("/v1/functions?project_id={long}"),
        format!("/v1/functions/{}?download={long}", fixture.fid),
    ] {
        let name = path.split(['?', '=']).nth(1).unwrap();
        fixture.api.get(&path).assert_error(
            400,
            &format!("Query parameter {name} is longer than 255 characters."),
        );
    }
}

#[test]
fn over_long_path_segments_are_not_found_or_bad_requests() {
    let fixture = Fixture::start_with(&[]);
    let long = "a".repeat(5000);
    let fid = &fixture.fid;
    let paths = [
        format!("/v1/runtimes/{long}"),
        format!("/v1/functions/{long}"),
        format!("/v1/functions/{long}/versions"),
        format!("/v1/functions/{fid}/versions/{long}"),
        format!("/v1/aliases/{long}"),
        format!("/v1/executions/{long}"),
        format!("/v1/executions/{long}/log"),
        format!("/{long}"),
    ];
    for path in &paths {
        for method in ["GET", "PUT", "DELETE"] {
            let reply = fixture.api.request(
                method,
                path,
                &[("content-type", "application/json")],
                b"{}".to_vec(),
            );
            assert!(
                [400, 404, 405].contains(&reply.status),
                "{method} {path}: {} {}",
                reply.status,
                reply.text()
            );
            assert_eq!(reply.json()["faultcode"], "Client");
        }
    }
}

#[test]
fn every_text_field_is_held_to_its_column_width() {
    let fixture = Fixture::start_with(&[]);
    let (api, fid, runtime) = (&fixture.api, &fixture.fid, &fixture.runtime);
    let long = "x".repeat(256);
    let image = json!({"source": "image", "image": "alpine"});
    let cases = [
        (
            "POST",
            "/v1/runtimes".to_string(),
            json!({"image": "spinling/wasm", "name": long}),
            255,
        ),
        (
            "POST",
            "/v1/runtimes".into(),
            json!({"image": "spinling/wasm", "description": long}),
            255,
        ),
        (
            "POST",
            "/v1/runtimes".into(),
            json!({"image": format!("http://localhost/{long}")}),
            255,
        ),
        (
            "PUT",
            format!("/v1/runtimes/{runtime}"),
            json!({"name": long}),
            255,
        ),
        (
            "POST",
            "/v1/functions".into(),
            json!({"code": image, "name": long}),
            255,
        ),
        (
            "POST",
            "/v1/functions".into(),
            json!({"code": image, "description": long}),
            255,
        ),
        (
            "POST",
            "/v1/functions".into(),
            json!({"code": image, "entry": "x".repeat(81)}),
            80,
        ),
        (
            "PUT",
            format!("/v1/functions/{fid}"),
            json!({"name": long}),
            255,
        ),
        (
            "PUT",
            format!("/v1/functions/{fid}"),
            json!({"entry": "x".repeat(81)}),
            80,
        ),
        (
            "POST",
            format!("/v1/functions/{fid}/versions"),
            json!({"description": long}),
            255,
        ),
        (
            "POST",
            "/v1/aliases".into(),
            json!({"name": long, "function_id": fid}),
            255,
        ),
        (
            "POST",
            "/v1/aliases".into(),
            json!({"name": "a", "function_id": fid, "description": long}),
            255,
        ),
        (
            "PUT",
            "/v1/aliases/prod".into(),
            json!({"description": long}),
            255,
        ),
        (
            "POST",
            "/v1/executions".into(),
            json!({"function_id": fid, "description": long}),
            255,
        ),
        (
            "POST",
            "/v1/executions".into(),
            json!({"function_alias": long}),
            255,
        ),
    ];
    for (method, path, body, width) in cases {
        let reply = api.request(
            method,
            &path,
            &[("content-type", "application/json")],
            body.to_string().into_bytes(),
        );
        reply.assert_status(400);
        let faultstring = reply.json()["faultstring"].to_string();
        assert!(
            faultstring.contains(&format!("maximum character requirement of {width}")),
            "{method} {path} {body}: {faultstring}"
        );
    }
    let widest = "x".repeat(255);
    api.post_json(
        "/v1/runtimes",
        &json!({"image": "spinling/wasm", "name": widest, "description": widest}),
    )
    .assert_status(201);
}
