//! `GET /debug/captures/histogram` of `tailguard serve`: per minute since arming (the default)
//! and per minute of the hour, and a refused `by`.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::Server;

/// The minute of the hour (UTC) of a wall-clock time as the list serializes it.
fn minute_of_hour(wall: &serde_json::Value) -> usize {
    let secs = wall["secs_since_epoch"].as_u64().unwrap_or_else(|| panic!("not a time: {wall}"));
    (secs / 60 % 60) as usize
}

/// The counts of a `minute | freq` histogram, row by row, with the rows' labels.
fn rows(text: &str) -> Vec<(String, u64)> {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("minute | freq"), "{text}");
    lines
        .map(|line| {
            let (label, bar) = line.split_once('|').unwrap_or_else(|| panic!("no bar in {line:?}"));
            let count = bar.split_whitespace().last().unwrap().parse().unwrap();
            (label.trim().to_owned(), count)
        })
        .collect()
}

#[test]
fn kept_traces_are_counted_by_minute_of_the_hour_and_since_arming() {
    let server = Server::start(&["--keys", "500"]);
    let armed = server.request_with(
        "POST",
        "/debug/captures",
        &["Content-Type: application/json"],
        br#"{"probability": 1.0, "threshold": "0ms", "max_captures": 2}"#,
    );
    assert_eq!(armed.status, 201, "{}", armed.text());
    let before = SystemTime::now();
    for key in 1..=3 {
        assert_eq!(server.request("GET", &format!("/kv/{key}"), b"").status, 200);
    }
    let list = server.poll_json("/debug/captures", |l| l["traces"].as_array().unwrap().len() == 2);
    let after = SystemTime::now();

    // Each kept trace carries the wall-clock time its request started.
    let mut expected = [0u64; 60];
    for trace in list["traces"].as_array().unwrap() {
        let wall = &trace["started_at_wall"];
        let started = UNIX_EPOCH + Duration::from_secs(wall["secs_since_epoch"].as_u64().unwrap());
        assert!(started + Duration::from_secs(1) > before && started <= after, "{trace}");
        expected[minute_of_hour(wall)] += 1;
    }

    let reply = server.request("GET", "/debug/captures/histogram?by=minute-of-hour", b"");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.header("content-type").unwrap().starts_with("text/plain"));
    let by_minute = rows(&reply.text());
    let labels: Vec<String> = (0..60).map(|m| format!(":{m:02}")).collect();
    assert_eq!(by_minute.iter().map(|(label, _)| label.clone()).collect::<Vec<_>>(), labels);
    assert_eq!(by_minute.iter().map(|&(_, count)| count).collect::<Vec<_>>(), expected, "{}", reply.text());

    // The default is minutes since arming, also asked for by name.
    let default = server.request("GET", "/debug/captures/histogram", b"").text();
    assert!(default.starts_with("minute | freq\n00:00  | ** 2"), "{default}");
    let named = server.request("GET", "/debug/captures/histogram?by=since-arming", b"");
    assert_eq!((named.status, named.text()), (200, default));
}

#[test]
fn an_unknown_grouping_is_refused_with_a_json_error() {
    let server = Server::start(&["--keys", "500"]);
    let reply = server.request("GET", "/debug/captures/histogram?by=hour", b"");
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.header("content-type").unwrap().starts_with("application/json"));
    let error = reply.error();
    assert!(error.contains("\"hour\"") && error.contains("minute-of-hour"), "{error}");
}
