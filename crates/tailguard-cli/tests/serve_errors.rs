//! Errors of `tailguard serve`: one JSON shape for every one of them (the framework's own
//! rejections included), echoed input cut short, job endpoints that refuse input they do not
//! take, and the caps on debug state.

mod support;

use support::{Reply, Server};

/// One bad request: method, path, extra header lines, body, the status it gets, and a part of
/// the message.
type Case = (&'static str, String, Vec<String>, Vec<u8>, u16, &'static str);

/// Asserts `reply` is an error of the one shape with `status`; returns its message.
fn assert_error(what: &str, reply: &Reply, status: u16) -> String {
    assert_eq!(reply.status, status, "{what}: {}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"), "{what}: {:?}", reply.headers);
    let body = reply.json();
    assert_eq!(body["status"], status, "{what}: {body}");
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["error", "status"], "{what}: {body}");
    let message = reply.error();
    assert!(!message.is_empty() && message.len() <= 1024, "{what}: {message}");
    message
}

#[test]
fn every_error_response_is_json_of_one_shape() {
    let server = Server::start(&["--keys", "100", "--max-value-bytes", "64"]);
    let long = "9".repeat(50_000);
    let cases: Vec<Case> = vec![
        ("GET", "/kv/%FF".into(), vec![], vec![], 400, "UTF-8"),
        ("GET", "/kv/abc".into(), vec![], vec![], 400, "key"),
        ("GET", "/kv/007".into(), vec![], vec![], 400, "leading zero"),
        ("GET", format!("/kv/{long}"), vec![], vec![], 400, "(50000 bytes)"),
        ("GET", "/kv/100000".into(), vec![], vec![], 404, "not found"),
        ("PUT", "/kv/1".into(), vec![], vec![b'x'; 100], 413, "--max-value-bytes"),
        ("POST", "/kv/1".into(), vec![], vec![], 405, "Allow"),
        ("GET", "/no/such/thing".into(), vec![], vec![], 404, "/no/such/thing"),
        ("GET", format!("/{long}"), vec![], vec![], 404, "(50001 bytes)"),
        ("GET", "/debug/tasks?format=json&format=text".into(), vec![], vec![], 400, "duplicate field"),
        ("GET", "/debug/tasks?colour=red".into(), vec![], vec![], 400, "colour"),
        ("GET", "/api/series?since=soon".into(), vec![], vec![], 400, "since"),
        ("GET", "/jobs/+1".into(), vec![], vec![], 400, "job id"),
        ("GET", "/jobs/01".into(), vec![], vec![], 400, "job id"),
        ("GET", "/jobs/1?verbose=1".into(), vec![], vec![], 400, "takes no parameters"),
        ("GET", "/jobs?all".into(), vec![], vec![], 400, "takes no parameters"),
        ("POST", "/jobs/backup".into(), vec![], b"{\"keys\": 5}".to_vec(), 400, "unknown field `keys`"),
        ("POST", "/jobs/backup".into(), vec![], b"keys=5".to_vec(), 400, "not valid options"),
        ("POST", "/jobs/backup".into(), vec![], b"{\"from\": 9, \"to\": 9}".to_vec(), 400, "range is empty"),
        (
            "POST",
            "/jobs/backup".into(),
            vec![],
            b"{\"to\": 9, \"resume_from\": 9}".to_vec(),
            400,
            "outside the range",
        ),
        ("POST", "/jobs/backup?from=1".into(), vec![], vec![], 400, "takes no parameters"),
        ("POST", "/jobs/scan?fast=1".into(), vec![], vec![], 400, "takes no parameters"),
        ("POST", "/jobs/1/cancel".into(), vec![], b"x".to_vec(), 400, "takes no body"),
        ("GET", "/debug/captures/01".into(), vec![], vec![], 400, "trace id"),
        ("GET", "/kv/1".into(), vec![format!("x-tailguard-tenant: {long}")], vec![], 400, "(50000 bytes)"),
        ("GET", "/kv/1".into(), vec![format!("x-tailguard-deadline: {long}")], vec![], 400, "(50000 bytes)"),
    ];
    for (method, path, headers, body, status, needle) in &cases {
        let what = format!("{method} {}", &path[..path.len().min(60)]);
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let reply = server.request_with(method, path, &headers, body);
        let message = assert_error(&what, &reply, *status);
        assert!(message.contains(needle), "{what}: {needle:?} not in {message:?}");
        if *status == 405 {
            let allow = reply.header("allow").unwrap_or_else(|| panic!("{what}: no Allow header"));
            assert!(allow.contains("GET") && allow.contains("PUT") && allow.contains("DELETE"), "{allow}");
        }
    }
    // None of it started a job or disturbed the service.
    assert_eq!(server.get_json("/jobs"), serde_json::json!([]));
    assert_eq!(server.request("GET", "/kv/1", b"").status, 200);
}

#[test]
fn capture_caps_answer_400_naming_the_limit() {
    let server = Server::start(&["--keys", "100"]);
    let arm = |body: &str| {
        server.request_with("POST", "/debug/captures", &["Content-Type: application/json"], body.as_bytes())
    };
    for (body, needle) in [
        (
            r#"{"max_captures": 1000000000000000000}"#,
            "max_captures 1000000000000000000 is over the limit of 1000",
        ),
        (r#"{"max_captures": 20000}"#, "limit of 1000"),
        (r#"{"max_spans": 1000000}"#, "max_spans 1000000 is over the limit of 1024"),
        (r#"{"window": "5000000h"}"#, "limit of 24h"),
        (r#"{"window": "18446744073s"}"#, "limit of 24h"),
    ] {
        let message = assert_error(body, &arm(body), 400);
        assert!(message.contains(needle), "{body}: {message}");
    }
    let fingerprint = format!(r#"{{"fingerprint": "{}"}}"#, "f".repeat(5000));
    let message = assert_error("long fingerprint", &arm(&fingerprint), 400);
    assert!(message.contains("limit of 256 bytes") && message.contains("(5000 bytes)"), "{message}");
    // Nothing was armed by the refusals; at the caps it arms.
    let armed = arm(r#"{"max_captures": 1000, "max_spans": 1024, "window": "24h"}"#);
    assert_eq!(armed.status, 201, "{}", armed.text());
}

#[test]
fn tenants_beyond_the_limit_answer_400_naming_it() {
    let server =
        Server::start(&["--keys", "100", "--admission", "--max-tenants", "3", "--tenant-weight", "7=2"]);
    let get =
        |tenant: u64| server.request_with("GET", "/kv/1", &[&format!("x-tailguard-tenant: {tenant}")], b"");
    for tenant in [1, 2, 7] {
        assert_eq!(get(tenant).status, 200, "tenant {tenant}");
    }
    let message = assert_error("tenant 3", &get(3), 400);
    assert!(message.contains("--max-tenants") && message.contains("limit of 3"), "{message}");
    // Tenants already tracked are still served.
    for tenant in [1, 2, 7] {
        assert_eq!(get(tenant).status, 200, "tenant {tenant}");
    }
}
