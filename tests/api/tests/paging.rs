//! Bounded lists and records (issue 10): every list pages by `limit` and `marker` in a stable
//! order, with a `next` link while more rows follow; stored results and logs are capped and
//! say where they were cut; a worker's reply is read only up to a cap.

use serde_json::{json, Value as Json};
use spinling_api_tests::{fake_worker, listed_version_numbers, package, Api};
use std::collections::HashSet;

/// The base of the URLs the test client uses (see `Api::request`).
const BASE: &str = "http://127.0.0.1:3000";

/// A function on a worker runtime that answers `reply` to every execution.
fn worker_function(api: &Api, reply: &Json) -> String {
    let worker = fake_worker(reply.to_string().into_bytes());
    let runtime = api.post_json("/v1/runtimes", &json!({"image": worker, "name": "fake"}));
    runtime.assert_status(201);
    assert_eq!(runtime.json()["status"], "available");
    let runtime = runtime.json()["id"].as_str().unwrap().to_string();
    api.create_function_id(&runtime, &package("v0"))
}

fn quick_reply() -> Json {
    json!({"output": "ok", "duration": 0.001, "logs": "", "success": true})
}

fn execute(api: &Api, body: Json) -> Json {
    let reply = api.post_json("/v1/executions", &body);
    reply.assert_status(201);
    reply.json()
}

fn ids(page: &Json, key: &str) -> Vec<String> {
    page[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {page}"))
        .iter()
        .map(|row| row["id"].as_str().unwrap().to_string())
        .collect()
}

/// Follows `next` links from `first`, returning every page's body.
fn walk(api: &Api, first: &str) -> Vec<Json> {
    let mut pages = Vec::new();
    let mut path = first.to_string();
    loop {
        let reply = api.get(&path);
        reply.assert_status(200);
        let page = reply.json();
        let next = page.get("next").map(|n| n.as_str().unwrap().to_string());
        pages.push(page);
        match next {
            Some(link) => {
                path = link
                    .strip_prefix(BASE)
                    .unwrap_or_else(|| panic!("next is not absolute: {link}"))
                    .to_string();
            }
            None => return pages,
        }
        assert!(pages.len() < 100, "too many pages");
    }
}

/// Walks a list of `expected` rows in pages of `limit`: every row once, in the list's order.
fn assert_walk(api: &Api, path: &str, key: &str, limit: usize, expected: &[String]) {
    let pages = walk(api, &format!("{path}?limit={limit}"));
    assert_eq!(pages.len(), expected.len().div_ceil(limit));
    for page in &pages[..pages.len() - 1] {
        assert_eq!(page[key].as_array().unwrap().len(), limit);
    }
    let seen: Vec<String> = pages.iter().flat_map(|p| ids(p, key)).collect();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a row was repeated");
    let mut sorted_seen = seen.clone();
    sorted_seen.sort();
    let mut sorted_expected = expected.to_vec();
    sorted_expected.sort();
    assert_eq!(sorted_seen, sorted_expected, "a row was missed");
    // The whole unpaged list (within the maximum page size) is in the same order.
    let whole = api.get(path).json();
    assert_eq!(ids(&whole, key), seen[..expected.len().min(1000)]);
}

#[test]
fn paging_walks_2500_functions_without_missing_or_repeating_one() {
    let api = Api::start();
    let created: Vec<String> = (0..2500).map(|_| api.create_image_function()).collect();
    assert_walk(&api, "/v1/functions", "functions", 700, &created);
    // Without a limit, a page is the maximum page size (1,000 by default).
    let first = api.get("/v1/functions").json();
    assert_eq!(first["functions"].as_array().unwrap().len(), 1000);
    assert!(first["next"].is_string());
}

#[test]
fn paging_walks_2500_executions_without_missing_or_repeating_one() {
    let api = Api::start();
    let fid = worker_function(&api, &quick_reply());
    let created: Vec<String> = (0..2500)
        .map(|_| {
            execute(&api, json!({"function_id": fid}))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_walk(&api, "/v1/executions", "executions", 900, &created);
}

#[test]
fn a_limit_larger_than_the_maximum_page_size_is_clamped() {
    let api = Api::start_with(&[("max_page_size", "3")]);
    for _ in 0..5 {
        api.create_image_function();
    }
    let page = api.get("/v1/functions?limit=100").json();
    assert_eq!(page["functions"].as_array().unwrap().len(), 3);
    assert!(page["next"].is_string(), "{page}");
    let unlimited = api.get("/v1/functions").json();
    assert_eq!(unlimited["functions"].as_array().unwrap().len(), 3);
}

#[test]
fn a_next_link_appears_exactly_when_more_rows_exist() {
    let api = Api::start();
    let created: Vec<String> = (0..4).map(|_| api.create_image_function()).collect();
    let page = |query: &str| api.get(&format!("/v1/functions?{query}")).json();
    assert!(page("limit=4").get("next").is_none());
    assert!(page("limit=5").get("next").is_none());
    let first = page("limit=3&all_projects=false");
    let first_ids = ids(&first, "functions");
    // The link is absolute, keeps the other parameters and sets the marker to the last row.
    assert_eq!(
        first["next"],
        format!(
            "{BASE}/v1/functions?limit=3&all_projects=false&marker={}",
            first_ids[2]
        )
    );
    let last = page(&format!("limit=3&marker={}", first_ids[2]));
    assert_eq!(ids(&last, "functions").len(), 1);
    assert!(last.get("next").is_none(), "{last}");
    // A page that ends exactly at the last row has no link either.
    let second = page(&format!("limit=2&marker={}", first_ids[1]));
    assert_eq!(ids(&second, "functions").len(), 2);
    assert!(second.get("next").is_none(), "{second}");
    let mut all = first_ids;
    all.extend(ids(&last, "functions"));
    let mut sorted = all.clone();
    sorted.sort();
    let mut expected = created;
    expected.sort();
    assert_eq!(sorted, expected);
}

#[test]
fn every_list_takes_limit_and_marker() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let fid = api.create_function_id(&runtime, &package("a"));
    let other = api.create_function_id(&runtime, &package("b"));
    for (name, function) in [("one", &fid), ("two", &other)] {
        api.post_json(
            "/v1/aliases",
            &json!({"name": name, "function_id": function}),
        )
        .assert_status(201);
    }
    api.create_runtime();
    for (path, key) in [
        ("/v1/runtimes", "runtimes"),
        ("/v1/functions", "functions"),
        ("/v1/aliases", "function_aliases"),
    ] {
        let first = api.get(&format!("{path}?limit=1")).json();
        assert_eq!(first[key].as_array().unwrap().len(), 1, "{path}");
        let marker = &ids(&first, key)[0];
        assert_eq!(
            first["next"],
            format!("{BASE}{path}?limit=1&marker={marker}")
        );
        let second = api.get(&format!("{path}?limit=1&marker={marker}")).json();
        assert_eq!(second[key].as_array().unwrap().len(), 1, "{path}");
        assert_ne!(&ids(&second, key)[0], marker);
        assert!(second.get("next").is_none(), "{path}: {second}");
    }
}

#[test]
fn versions_page_by_version_number() {
    let api = Api::start();
    let runtime = api.create_runtime();
    let fid = api.create_function_id(&runtime, &package("v1"));
    let versions = format!("/v1/functions/{fid}/versions");
    for n in 1..=3 {
        if n > 1 {
            api.update_package(&fid, &package(&format!("v{n}")))
                .assert_status(200);
        }
        api.publish(&fid).assert_status(201);
    }
    let first = api.get(&format!("{versions}?limit=2")).json();
    assert_eq!(listed_version_numbers(&first), [1, 2]);
    assert_eq!(first["next"], format!("{BASE}{versions}?limit=2&marker=2"));
    let second = api.get(&format!("{versions}?limit=2&marker=2")).json();
    assert_eq!(listed_version_numbers(&second), [3]);
    assert!(second.get("next").is_none());
    // The cached list stays right: a new version shows on the pages that reach it.
    api.update_package(&fid, &package("v4")).assert_status(200);
    api.publish(&fid).assert_status(201);
    let second = api.get(&format!("{versions}?limit=2&marker=2")).json();
    assert_eq!(listed_version_numbers(&second), [3, 4]);
    api.get(&format!("{versions}?marker=9"))
        .assert_error(400, "Marker not found [marker=9]");
}

#[test]
fn a_limit_that_is_not_a_positive_integer_is_a_bad_request() {
    let api = Api::start();
    for bad in ["0", "-1", "ten", "1.5", ""] {
        api.get(&format!("/v1/functions?limit={bad}")).assert_error(
            400,
            &format!(
                "Invalid input for field/attribute limit. Value: '{bad}'. Wrong type. Expected a positive integer."
            ),
        );
    }
    api.get("/v1/executions?limit=0").assert_status(400);
    api.get("/v1/runtimes?limit=x").assert_status(400);
}

#[test]
fn an_unknown_marker_is_a_bad_request() {
    let api = Api::start();
    api.create_image_function();
    let unknown = "00000000-0000-4000-8000-000000000000";
    for path in [
        "/v1/functions",
        "/v1/executions",
        "/v1/runtimes",
        "/v1/aliases",
    ] {
        api.get(&format!("{path}?marker={unknown}"))
            .assert_error(400, &format!("Marker not found [marker={unknown}]"));
    }
}

#[test]
fn executions_filter_by_function_version_with_every_operator() {
    let api = Api::start();
    let fid = worker_function(&api, &quick_reply());
    api.publish(&fid).assert_status(201);
    api.update_package(&fid, &package("v2")).assert_status(200);
    api.publish(&fid).assert_status(201);
    let by_version: Vec<String> = (0..=2)
        .map(|v| {
            execute(&api, json!({"function_id": fid, "function_version": v}))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let listed = |filter: &str| -> Vec<String> {
        let reply = api.get(&format!("/v1/executions?function_version={filter}"));
        reply.assert_status(200);
        let mut found = ids(&reply.json(), "executions");
        found.sort();
        found
    };
    let of = |versions: &[usize]| -> Vec<String> {
        let mut wanted: Vec<String> = versions.iter().map(|v| by_version[*v].clone()).collect();
        wanted.sort();
        wanted
    };
    assert_eq!(listed("1"), of(&[1]));
    assert_eq!(listed("eq:2"), of(&[2]));
    assert_eq!(listed("neq:0"), of(&[1, 2]));
    assert_eq!(listed("gt:0"), of(&[1, 2]));
    assert_eq!(listed("gte:1"), of(&[1, 2]));
    assert_eq!(listed("lt:2"), of(&[0, 1]));
    assert_eq!(listed("lte:0"), of(&[0]));
    assert_eq!(listed("in:0,2"), of(&[0, 2]));
    assert_eq!(listed("nin:0,2"), of(&[1]));
    api.get("/v1/executions?function_version=one").assert_error(
        400,
        "Invalid input for field/attribute function_version. Value: 'one'. Wrong type. Expected an integer.",
    );
}

/// The execution's result, parsed from the string Qinling renders it as.
fn result_of(execution: &Json) -> Json {
    serde_json::from_str(execution["result"].as_str().expect("a result")).unwrap()
}

#[test]
fn a_log_past_the_cap_is_cut_and_says_so() {
    let api = Api::start();
    let logs = "x".repeat(3 * 1024 * 1024);
    let fid = worker_function(
        &api,
        &json!({"output": "ok", "duration": 0.1, "logs": logs, "success": true}),
    );
    let execution = execute(&api, json!({"function_id": fid}));
    assert_eq!(execution["status"], "success");
    let id = execution["id"].as_str().unwrap();
    let log = api.get(&format!("/v1/executions/{id}/log")).text();
    assert!(log.len() <= 1024 * 1024 + 4096, "{} bytes", log.len());
    assert!(log.starts_with("xxxx"));
    let note = log
        .rsplit_once("\n[spinling] log was cut at ")
        .map(|(_, n)| n);
    assert_eq!(
        note,
        Some(format!("{} bytes.\n", log.find('\n').unwrap()).as_str())
    );
}

#[test]
fn an_output_past_the_cap_is_cut_and_says_so() {
    let api = Api::start();
    let output = "y".repeat(3 * 1024 * 1024);
    let fid = worker_function(
        &api,
        &json!({"output": output, "duration": 0.1, "logs": "", "success": true}),
    );
    let execution = execute(&api, json!({"function_id": fid}));
    let output = result_of(&execution)["output"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(output.len() <= 2 * 1024 * 1024, "{} bytes", output.len());
    assert!(output.starts_with("yyyy"));
    assert!(
        output
            .ends_with("\n[spinling] output was cut: a stored result holds at most 2097152 bytes."),
        "{}",
        &output[output.len() - 100..]
    );
}

#[test]
fn control_bytes_in_an_output_do_not_blow_up_the_stored_result() {
    let api = Api::start();
    // 1 MiB of control bytes, which JSON escapes to six bytes each (`\u0001`).
    let output = "\u{1}".repeat(1024 * 1024);
    let fid = worker_function(
        &api,
        &json!({"output": output, "duration": 0.1, "logs": "", "success": true}),
    );
    let reply = api.post_json("/v1/executions", &json!({"function_id": fid}));
    reply.assert_status(201);
    // Stored as the text it is: 1 MiB, not the 6 MiB of its JSON escapes.
    let id = reply.json()["id"].as_str().unwrap().to_string();
    let stored = api.query_database(&format!(
        "SELECT octet_length(output) + octet_length(result) FROM executions WHERE id = '{id}'"
    ));
    let stored: usize = stored[0].parse().unwrap();
    assert!(stored < 1024 * 1024 + 100, "{stored} bytes stored");
    // And given back whole.
    assert_eq!(result_of(&reply.json())["output"], output.as_str());
}

#[test]
fn a_worker_reply_past_the_cap_fails_the_execution_unread() {
    let api = Api::start();
    let logs = "z".repeat(17 * 1024 * 1024);
    let fid = worker_function(
        &api,
        &json!({"output": "ok", "duration": 0.1, "logs": logs, "success": true}),
    );
    let execution = execute(&api, json!({"function_id": fid}));
    assert_eq!(execution["status"], "failed");
    assert_eq!(
        result_of(&execution)["output"],
        "The runtime's reply was larger than 16777216 bytes; it was not read past that."
    );
}

#[test]
fn a_page_of_large_executions_is_cut_by_its_size_and_links_on() {
    let api = Api::start();
    let output = "o".repeat(2 * 1024 * 1024 - 200);
    let fid = worker_function(
        &api,
        &json!({"output": output, "duration": 0.1, "logs": "", "success": true}),
    );
    let input = format!("{{\"pad\": \"{}\"}}", "i".repeat(1024 * 1024 - 100));
    let created: Vec<String> = (0..6)
        .map(|_| {
            execute(&api, json!({"function_id": fid, "input": input}))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // About 3 MiB an execution: a page holds what fits in 8 MiB, and `next` goes on.
    let mut seen = Vec::new();
    let mut url = "/v1/executions".to_string();
    loop {
        let page = api.get(&url);
        page.assert_status(200);
        let page = page.json();
        let ids = ids(&page, "executions");
        assert!(!ids.is_empty() && ids.len() < 6, "{} rows", ids.len());
        seen.extend(ids);
        match page["next"].as_str() {
            Some(next) => url = next.trim_start_matches("http://127.0.0.1:3000").to_string(),
            None => break,
        }
    }
    assert_eq!(seen, created);
}
