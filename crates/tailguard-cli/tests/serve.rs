//! `tailguard serve` end to end, over real HTTP on an ephemeral loopback port: every endpoint,
//! bad input, a backup + verify + restore round trip, and graceful shutdown during a backup.

mod support;

use support::{GUARD, Server, restore_refuses};

const KEYS: &str = "3000";

#[test]
fn key_value_requests_and_bad_input_get_clear_answers_and_the_service_stays_up() {
    let server = Server::start(&["--keys", KEYS, "--value-size", "64", "--max-value-bytes", "1024"]);

    let existing = server.request("GET", "/kv/7", b"");
    assert_eq!(existing.status, 200, "{}", existing.text());
    assert_eq!(existing.header("content-type"), Some("application/octet-stream"));
    assert!((32..=96).contains(&existing.body.len()), "a preloaded value of the mean size 64");

    let put = server.request("PUT", "/kv/123456789", b"hello, tailguard");
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(put.json()["bytes"], 16);
    assert_eq!(server.request("GET", "/kv/123456789", b"").body, b"hello, tailguard");
    assert_eq!(server.request("DELETE", "/kv/123456789", b"").status, 204);
    let gone = server.request("GET", "/kv/123456789", b"");
    assert_eq!((gone.status, gone.error()), (404, "key 123456789 not found".to_owned()));
    assert_eq!(server.request("DELETE", "/kv/123456789", b"").status, 404);

    // Malformed keys and ids: 400 with a message naming the problem.
    for path in ["/kv/abc", "/kv/-1", "/kv/1.5", "/kv/99999999999999999999", "/kv/%20"] {
        let reply = server.request("GET", path, b"");
        assert_eq!(reply.status, 400, "{path}: {}", reply.text());
        assert!(reply.error().contains("key"), "{path}: {}", reply.error());
    }
    let bad_id = server.request("GET", "/jobs/x1", b"");
    assert_eq!(bad_id.status, 400);
    assert!(bad_id.error().contains("job id"));
    assert_eq!(server.request("GET", "/jobs/99", b"").status, 404);
    // Oversized bodies: 413, whether or not the server read them.
    let big = server.request("PUT", "/kv/1", &[b'x'; 5000]);
    assert_eq!(big.status, 413, "{}", big.text());
    assert!(big.error().contains("--max-value-bytes"), "{}", big.error());
    // Unknown paths and methods.
    let unknown = server.request("GET", "/no/such/thing", b"");
    assert_eq!(unknown.status, 404);
    assert!(unknown.error().contains("/no/such/thing"));
    assert_eq!(server.request("POST", "/kv/1", b"").status, 405);
    assert_eq!(server.request("GET", "/debug/tasks?format=xml", b"").status, 400);
    assert_eq!(server.request("GET", "/debug/tasks?mode=fast", b"").status, 400);
    assert_eq!(server.request("POST", "/jobs/1/cancel", b"").status, 404);

    // None of it disturbed the service.
    assert_eq!(server.request("GET", "/kv/7", b"").body, existing.body);
    let empty = server.request("PUT", "/kv/8", b"");
    assert_eq!(empty.status, 200, "an empty value is a value");
    assert_eq!(server.request("GET", "/kv/8", b"").body, b"");
}

#[test]
fn a_backup_is_watched_verified_and_restored_and_a_scan_completes() {
    // Its runtime's workers pinned one per CPU: the whole job path runs the same.
    let server = Server::start(&["--keys", KEYS, "--value-size", "64", "--pin-workers"]);
    let original = server.request("GET", "/kv/5", b"").body;

    let started = server.request("POST", "/jobs/backup", b"");
    assert_eq!(started.status, 202, "{}", started.text());
    let id = started.json()["id"].as_u64().unwrap();
    let second = server.request("POST", "/jobs/backup", b"");
    if second.status != 202 {
        assert_eq!(second.status, 409, "{}", second.text());
        assert!(second.error().contains("already running"));
    }

    // Watch: server-sent progress events, ending with the final status.
    let watch = server.request("GET", &format!("/jobs/{id}/watch"), b"");
    assert_eq!(watch.status, 200);
    assert_eq!(watch.header("content-type"), Some("text/event-stream"));
    let text = watch.text();
    let end = text.split("event: end\ndata: ").nth(1).unwrap_or_else(|| panic!("no end event in {text}"));
    let last: serde_json::Value = serde_json::from_str(end.lines().next().unwrap()).unwrap();
    assert_eq!(last["state"], "completed", "{last}");
    assert_eq!(last["keys"], 3000);
    assert_eq!(last["fraction"], 1.0);

    let status = server.get_json(&format!("/jobs/{id}"));
    assert_eq!(status["state"], "completed");
    assert!(status["requests"].as_u64().unwrap() >= 1);
    let file = std::path::PathBuf::from(status["output"].as_str().unwrap());
    assert!(file.exists() && !file.to_string_lossy().ends_with(".partial"));
    let listed = server.get_json("/jobs");
    assert!(listed.as_array().unwrap().iter().any(|j| j["id"] == id));
    assert_eq!(server.request("POST", &format!("/jobs/{id}/cancel"), b"").status, 409);

    let verified = server.request("POST", &format!("/jobs/{id}/verify"), b"");
    assert_eq!(verified.status, 200, "{}", verified.text());
    assert_eq!(
        (verified.json()["verified"].clone(), verified.json()["keys"].clone()),
        (true.into(), 3000.into())
    );

    // Change the store: the backup no longer matches it; restoring it brings the data back.
    assert_eq!(server.request("PUT", "/kv/5", b"changed").status, 200);
    assert_eq!(server.request("DELETE", "/kv/6", b"").status, 204);
    let mismatch = server.request("POST", &format!("/jobs/{id}/verify"), b"");
    assert_eq!(mismatch.status, 422, "{}", mismatch.text());
    assert!(mismatch.error().contains("does not match"), "{}", mismatch.error());
    let restored = server.request("POST", &format!("/jobs/{id}/restore"), b"");
    assert_eq!(restored.status, 200, "{}", restored.text());
    assert_eq!(restored.json()["restored_keys"], 3000);
    assert_eq!(server.request("GET", "/kv/5", b"").body, original);
    assert_eq!(server.request("GET", "/kv/6", b"").status, 200);
    assert_eq!(server.request("POST", &format!("/jobs/{id}/verify"), b"").status, 200);

    // The file itself restores with the command line too (the preloaded keyspace, seed 42).
    let restore = std::process::Command::new(env!("CARGO_BIN_EXE_tailguard"))
        .arg("restore")
        .arg(&file)
        .args(["--keys", KEYS, "--value-size", "64"])
        .output()
        .unwrap();
    assert!(restore.status.success(), "{}", String::from_utf8_lossy(&restore.stderr));

    // A catch-up scan runs to completion; verify refuses a job that is not a backup.
    let scan = server.request("POST", "/jobs/scan", b"");
    assert_eq!(scan.status, 202, "{}", scan.text());
    let scan_id = scan.json()["id"].as_u64().unwrap();
    let done = server.poll_json(&format!("/jobs/{scan_id}"), |s| s["state"] != "running");
    assert_eq!((done["state"].as_str(), done["keys"].as_u64()), (Some("completed"), Some(3000)), "{done}");
    assert_eq!(server.request("POST", &format!("/jobs/{scan_id}/verify"), b"").status, 409);
}

#[test]
fn metrics_debug_endpoints_and_the_live_series() {
    let server = Server::start(&["--keys", KEYS, "--value-size", "64"]);
    for key in 0..20 {
        assert_eq!(server.request("GET", &format!("/kv/{key}"), b"").status, 200);
    }
    // The sampler publishes every 250 ms: poll until the gauges exist.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let wanted = [
        "tailguard_scheduling_latency_p99_seconds{source=\"runtime\"}",
        "tailguard_run_queue_tokio_alive_tasks",
        "tailguard_elastic_share",
        "tailguard_elastic_balance_seconds",
        "tailguard_elastic_granted_cpu_seconds_total",
        "tailguard_elastic_used_cpu_seconds_total",
        "tailguard_scheduling_latency_seconds_bucket{source=\"runtime\",le=\"0.001\"}",
        "tailguard_request_latency_seconds_bucket{op=\"get\",le=\"0.001\"}",
        "tailguard_request_latency_seconds_count{op=\"get\"} 20",
        "tailguard_job_running{kind=\"backup\"} 0",
    ];
    loop {
        let reply = server.request("GET", "/metrics", b"");
        assert_eq!(reply.status, 200);
        assert!(reply.header("content-type").unwrap().starts_with("text/plain"));
        let text = reply.text();
        let missing: Vec<_> = wanted.iter().filter(|w| !text.contains(*w)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "missing {missing:?} in\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let elastic = server.poll_json("/debug/elastic", |e| !e["history"].as_array().unwrap().is_empty());
    // The capacity says where it came from (here: affinity, or a cgroup limit of the CI box).
    let source = elastic["config"]["cores_source"].as_str().expect("cores_source");
    assert!(!source.is_empty() && elastic["config"]["cores"].as_f64().unwrap() > 0.0, "{elastic}");
    assert_eq!(elastic["control"], true);
    assert_eq!(elastic["config"]["target_seconds"], 0.001);
    assert!(elastic["state"]["share"].as_f64().unwrap() >= 0.05);
    assert!(elastic["history"][0]["share"].is_number());
    // 1.5, or 0 under a cgroup CPU quota; the working target is never under the configured one.
    assert!(elastic["config"]["quiet_factor"].is_number(), "{elastic}");
    assert!(elastic["state"]["working_target_seconds"].as_f64().unwrap() >= 0.001, "{elastic}");
    assert_eq!(elastic["config"]["steal_hold"], 0.05, "{elastic}");
    assert_eq!(elastic["config"]["burst_seconds"], 0.1, "{elastic}");
    // The process's CPU so far: the cluster coordinator reads a node's load from it.
    assert!(elastic["state"]["process_cpu_seconds"].as_f64().unwrap() > 0.0, "{elastic}");
    assert_eq!(elastic["config"]["quiet_headroom"], 0.0, "{elastic}");
    // The knee is a share or null (none remembered), never absent.
    let knee = &elastic["state"]["knee"];
    assert!(knee.is_null() || knee.as_f64().is_some_and(|k| (0.05..=0.75).contains(&k)), "{elastic}");

    let tasks = server.request("GET", "/debug/tasks", b"");
    assert_eq!(tasks.status, 200);
    assert!(tasks.text().starts_with("task profile (low-pause)"), "{}", tasks.text());
    let stw = server.request("GET", "/debug/tasks?mode=stop-the-world&format=json", b"");
    assert_eq!(stw.status, 200);
    assert!(stw.json()["tasks"].is_array(), "{}", stw.text());

    let series = server.poll_json("/api/series", |s| s["points"].as_array().unwrap().len() >= 2);
    assert_eq!(series["control"], true);
    let point = &series["points"][0];
    for field in ["t", "share", "scheduling_p99_ms", "requests_per_sec", "elastic_cpu"] {
        assert!(point.get(field).is_some(), "{field} missing from {point}");
    }
    let page = server.request("GET", "/", b"");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("chart-scheduling"));

    let uncontrolled = Server::start(&["--keys", "100", "--no-control"]);
    assert_eq!(uncontrolled.get_json("/debug/elastic")["control"], false);
}

#[test]
fn sigterm_during_a_backup_stops_it_at_a_resumption_point_and_marks_its_output_incomplete() {
    // A slow backup: 60k keys at a fixed 5 % share of the machine.
    let mut server = Server::start(&["--keys", "60000", "--floor", "0.05", "--ceiling", "0.05"]);
    let started = server.request("POST", "/jobs/backup", b"");
    assert_eq!(started.status, 202, "{}", started.text());
    server.poll_json("/jobs/1", |s| s["keys"].as_u64().unwrap() > 0 || s["state"] != "running");
    let files = server.backup_files();
    let (status, stderr) = server.terminate();
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    if stderr.contains("incomplete output") {
        assert!(files.iter().all(|f| f.to_string_lossy().ends_with(".partial")), "{files:?}");
        let partial = files.first().expect("the partial file");
        assert!(partial.exists(), "the partial output is kept");
        assert!(!partial.with_extension("").exists(), "no file at the destination");
        let (refused, why) = restore_refuses(partial, 60_000);
        assert!(refused && why.contains("unfinished"), "{why}");
    } else {
        // The backup beat the signal; it must then be complete.
        assert!(stderr.contains("stopped"), "{stderr}");
    }
}

#[test]
fn with_stop_on_stdin_eof_the_server_stops_when_the_other_end_of_its_stdin_closes() {
    let mut server = Server::start(&["--keys", "500", "--stop-on-stdin-eof"]);
    let mut stderr = server.stderr();
    assert_eq!(server.request("GET", "/kv/1", b"").status, 200, "it serves while the pipe is open");
    assert_eq!(server.wait_exit(std::time::Duration::ZERO), None, "and keeps running");
    // The parent's end closes, as it does when the parent dies, SIGKILL included.
    drop(server.child.stdin.take());
    let status = server.wait_exit(GUARD).expect("the server stops at the end of its standard input");
    assert!(status.success(), "exit {status:?}");
    let log = stderr.all(GUARD);
    assert!(log.contains("the end of standard input: finishing requests"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn the_end_of_stdin_while_stopping_on_a_signal_does_not_cut_the_drain_short() {
    let mut server = Server::start(&["--keys", "500", "--stop-on-stdin-eof", "--shutdown-timeout", "1s"]);
    let mut stderr = server.stderr();
    // A request in flight for the drain to wait on: its body never comes.
    let mut stalled = std::net::TcpStream::connect(server.addr).unwrap();
    std::io::Write::write_all(
        &mut stalled,
        b"PUT /kv/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",
    )
    .unwrap();
    server.signal("TERM");
    assert!(stderr.wait_for("SIGTERM: finishing requests", GUARD), "{:?}", stderr.seen);
    // As when a Ctrl-C ends the supervisor too: its end of the pipe closes while the server drains.
    drop(server.child.stdin.take());
    let status = server.wait_exit(GUARD).expect("the server exits at the drain's deadline");
    let log = stderr.all(GUARD);
    assert!(status.success(), "exit {status:?}: {log}");
    assert!(log.contains("closed 1 connections still open"), "{log}");
    assert!(!log.contains("a second signal ("), "{log}");
}

#[test]
fn with_admission_requests_carry_tenant_priority_and_deadline_and_the_queue_is_visible() {
    let server =
        Server::start(&["--keys", "500", "--admission", "--tenant-weight", "1=3", "--tenant-cap", "2=0.5"]);
    let ok =
        server.request_with("GET", "/kv/1", &["x-tailguard-tenant: 1", "x-tailguard-priority: high"], b"");
    assert_eq!(ok.status, 200, "{}", ok.text());
    let put =
        server.request_with("PUT", "/kv/1", &["x-tailguard-tenant: 2", "x-tailguard-priority: -5"], b"v");
    assert_eq!(put.status, 200, "{}", put.text());
    // A deadline bounds the wait only: on an idle server even one already past on arrival
    // finds a free slot and runs (under overload it would get 503 with Retry-After).
    for deadline in ["0ms", "1us"] {
        let quick = server.request_with("GET", "/kv/1", &[&format!("x-tailguard-deadline: {deadline}")], b"");
        assert_eq!(quick.status, 200, "{deadline}: {}", quick.text());
    }
    // Malformed headers: 400 naming the header.
    for header in ["x-tailguard-tenant: -1", "x-tailguard-priority: urgent", "x-tailguard-deadline: soon"] {
        let reply = server.request_with("GET", "/kv/1", &[header], b"");
        assert_eq!(reply.status, 400, "{header}: {}", reply.text());
        assert!(reply.error().contains(header.split(':').next().unwrap()), "{}", reply.error());
    }
    let queue = server.get_json("/debug/admission");
    assert_eq!(queue["admission"], true);
    assert_eq!(queue["admitted"], 4, "{queue}");
    assert_eq!(queue["rejected"]["deadline_exceeded"], 0, "{queue}");
    let tenants = queue["tenants"].as_array().unwrap();
    let tenant = |id: u64| {
        tenants.iter().find(|t| t["tenant"] == id).unwrap_or_else(|| panic!("tenant {id}: {queue}"))
    };
    assert_eq!(tenant(1)["weight"], 3);
    assert_eq!(tenant(2)["cap"], 0.5);
    assert!(tenant(2)["cpu_seconds"].as_f64().unwrap() > 0.0, "the put was charged: {queue}");

    // Without --admission the headers are still checked, and the queue says it is off.
    let plain = Server::start(&["--keys", "100"]);
    assert_eq!(plain.request_with("GET", "/kv/1", &["x-tailguard-priority: urgent"], b"").status, 400);
    assert_eq!(plain.get_json("/debug/admission")["admission"], false);
    // Tenant flags without --admission are refused with a clear error.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_tailguard"))
        .args(["serve", "--listen", "127.0.0.1:0", "--tenant-cap", "1=0.5"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("need --admission"));
}

#[test]
fn outlier_captures_are_armed_listed_fetched_counted_and_cleared() {
    let server = Server::start(&["--keys", "500"]);
    let arm = |body: &str| {
        server.request_with("POST", "/debug/captures", &["Content-Type: application/json"], body.as_bytes())
    };
    let armed = arm(r#"{"probability": 1.0, "threshold": "0ms", "window": "10m", "max_captures": 2}"#);
    assert_eq!(armed.status, 201, "{}", armed.text());
    assert_eq!(armed.json()["status"]["state"], "Armed");
    // A second arming while the first samples: 409. Bad specs: 400 naming the field.
    assert_eq!(arm("{}").status, 409);
    for (body, field) in [
        (r#"{"probability": 2}"#, "probability"),
        (r#"{"threshold": "soon"}"#, "threshold"),
        (r#"{"colour": 1}"#, "colour"),
    ] {
        server.request("DELETE", "/debug/captures", b"");
        let reply = arm(body);
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        assert!(reply.error().contains(field), "{}", reply.error());
    }
    assert_eq!(arm(r#"{"probability": 1.0, "threshold": "0ms", "max_captures": 2}"#).status, 201);

    for key in 1..=3 {
        assert_eq!(server.request("GET", &format!("/kv/{key}"), b"").status, 200);
    }
    let list = server.poll_json("/debug/captures", |l| l["traces"].as_array().unwrap().len() == 2);
    assert_eq!(list["status"]["kept"], 2, "bounded by max_captures: {list}");
    let id = list["traces"][0]["id"].as_u64().unwrap();
    let tree = server.request("GET", &format!("/debug/captures/{id}"), b"");
    assert_eq!(tree.status, 200);
    let text = tree.text();
    // Which two of the three requests were kept depends on when their last spans closed.
    for span in ["kv.request {op=get key=", " tenant=0}", "  kv.server", "    kv.storage"] {
        assert!(text.contains(span), "{span} missing from\n{text}");
    }
    let json = server.get_json(&format!("/debug/captures/{id}?format=json"));
    assert_eq!(json["spans"].as_array().unwrap().len(), 3, "{json}");
    let histogram = server.request("GET", "/debug/captures/histogram", b"").text();
    assert!(histogram.starts_with("minute | freq\n00:00  | ** 2"), "{histogram}");
    assert!(server.request("GET", "/debug/captures?format=text", b"").text().contains("kept 2/2"));
    assert_eq!(server.request("GET", "/debug/captures/99", b"").status, 404);
    assert_eq!(server.request("GET", "/debug/captures/x", b"").status, 400);

    let cleared = server.request("DELETE", "/debug/captures", b"");
    assert_eq!(cleared.json()["cleared"], 2);
    assert!(server.get_json("/debug/captures")["traces"].as_array().unwrap().is_empty());
}

/// One metric family of an exposition: its type, whether it has `# HELP`, and its samples.
#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: bool,
    samples: Vec<Sample>,
}

/// One line of a family: `name{labels,le} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    /// Labels other than `le`.
    labels: Vec<(String, String)>,
    le: Option<f64>,
    value: f64,
}

/// `name{k="v",…} value` → name, labels (unescaped), value.
fn parse_sample(line: &str) -> (String, Vec<(String, String)>, f64) {
    let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("no value: {line}"));
    let name = line[..name_end].to_owned();
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        loop {
            let (i, c) = chars.next().unwrap_or_else(|| panic!("unclosed labels: {line}"));
            match c {
                '}' => {
                    rest = &body[i + 1..];
                    break;
                }
                ',' => {}
                '=' => {
                    assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                    let mut value = String::new();
                    loop {
                        match chars.next().unwrap_or_else(|| panic!("unclosed value: {line}")).1 {
                            '"' => break,
                            '\\' => value.push(match chars.next().unwrap().1 {
                                'n' => '\n',
                                c => c,
                            }),
                            c => value.push(c),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                c => key.push(c),
            }
        }
    }
    let value = rest.trim().split(' ').next().unwrap();
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
    };
    (name, labels, value)
}

/// Parses Prometheus text (0.0.4) into families, checking what every scrape must satisfy:
/// each family typed once, each sample in a typed family.
fn parse_exposition(text: &str) -> std::collections::BTreeMap<String, Family> {
    let mut families: std::collections::BTreeMap<String, Family> = Default::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(help) = line.strip_prefix("# HELP ") {
            let name = help.split(' ').next().unwrap();
            let family = families.entry(name.to_owned()).or_default();
            assert!(!family.help, "two HELP lines for {name}");
            family.help = true;
        } else if let Some(kind) = line.strip_prefix("# TYPE ") {
            let (name, kind) = kind.split_once(' ').unwrap();
            let family = families.entry(name.to_owned()).or_default();
            assert!(family.kind.is_empty(), "{name} is typed twice: the scrape holds the family twice");
            family.kind = kind.to_owned();
        } else if line.starts_with('#') {
            continue;
        } else {
            let (name, mut labels, value) = parse_sample(line);
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|suffix| name.strip_suffix(suffix))
                .find(|base| {
                    families.get(*base).is_some_and(|f| f.kind == "histogram" || f.kind == "summary")
                })
                .unwrap_or(&name)
                .to_owned();
            let le = labels.iter().position(|(k, _)| k == "le").map(|at| labels.remove(at).1);
            let le = le.map(|le| if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() });
            let entry = families.get_mut(&family).unwrap_or_else(|| panic!("{name} has no # TYPE line"));
            entry.samples.push(Sample { name, labels, le, value });
        }
    }
    families
}

#[test]
fn metrics_are_histograms_counters_and_gauges_in_base_units_each_with_help() {
    let server = Server::start(&["--keys", KEYS, "--admission", "--tenant-cap", "1=0.05"]);
    let mut sent = [0u64; 3];
    let mut send = |tenant: usize| {
        let header = format!("x-tailguard-tenant: {tenant}");
        let reply = server.request_with("GET", "/kv/7", &[&header], b"");
        assert_eq!(reply.status, 200, "{}", reply.text());
        sent[tenant] += 1;
    };
    for _ in 0..10 {
        send(1);
        send(2);
    }
    // Tenant 2 has no cap and no weight: once it is idle over a usage reset (1 s) the queue
    // forgets it and keeps its totals aside. Wait for that, then send more: its totals carry on.
    let retired = |queue: &serde_json::Value| {
        queue["retired_tenants"].as_array().unwrap().iter().any(|t| t["tenant"] == 2)
    };
    server.poll_json("/debug/admission", retired);
    for _ in 0..5 {
        send(2);
    }
    let queue = server.poll_json("/debug/admission", |q| {
        q["tenants"].as_array().unwrap().iter().any(|t| t["tenant"] == 2 && t["requests"] == 15)
            || q["retired_tenants"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["tenant"] == 2 && t["requests"] == 15)
    });
    assert_eq!(queue["evicted_tenants"]["tenants"], 0, "{queue}");

    // Every family the server exports, once its sources have samples (the sampler publishes
    // every 250 ms, the queue every second).
    let wanted = [
        "tailguard_scheduling_latency_seconds",
        "tailguard_request_latency_seconds",
        "tailguard_admission_wait_seconds",
        "tailguard_admission_tenant_cpu_seconds_total",
        "tailguard_admission_tenant_requests_total",
        "tailguard_elastic_granted_cpu_seconds_total",
        "tailguard_elastic_job_cpu_seconds_total",
        "process_cpu_seconds_total",
        "tailguard_elastic_share",
        "tailguard_admission_slots",
        "tailguard_run_queue_tokio_alive_tasks",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (text, families) = loop {
        let reply = server.request("GET", "/metrics", b"");
        assert_eq!(reply.status, 200);
        let text = reply.text();
        let families = parse_exposition(&text);
        let requests = |tenant: &str| {
            families.get("tailguard_admission_tenant_requests_total").and_then(|f| {
                f.samples
                    .iter()
                    .find(|s| s.labels == [("tenant".to_owned(), tenant.to_owned())])
                    .map(|s| s.value)
            })
        };
        let complete = wanted.iter().all(|w| families.get(*w).is_some_and(|f| !f.samples.is_empty()))
            && requests("2") == Some(sent[2] as f64);
        if complete {
            break (text, families);
        }
        assert!(std::time::Instant::now() < deadline, "incomplete after 60 s:\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };

    for (name, family) in &families {
        assert!(family.help, "{name} has no # HELP line");
        assert!(!family.kind.is_empty(), "{name} has no # TYPE line");
        assert!(!name.contains("_nanos"), "{name} is not in base units");
        if family.kind == "counter" {
            assert!(name.ends_with("_total"), "counter {name} should end in _total");
        }
        assert_ne!(family.kind, "summary", "{name}: a summary cannot be aggregated; export a histogram");
        if family.kind != "histogram" {
            continue;
        }
        let mut series: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
        let mut counts = std::collections::BTreeMap::new();
        for sample in &family.samples {
            let key = format!("{:?}", sample.labels);
            if sample.name.ends_with("_bucket") {
                series.entry(key).or_default().push((sample.le.expect("a bucket has le"), sample.value));
            } else if sample.name.ends_with("_count") {
                counts.insert(key, sample.value);
            }
        }
        assert!(!series.is_empty(), "{name} has no buckets");
        for (labels, buckets) in &mut series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{name}{labels} is not cumulative: {buckets:?}"
            );
            let (last_le, inf) = *buckets.last().unwrap();
            assert_eq!(last_le, f64::INFINITY, "{name}{labels} has no +Inf bucket");
            assert_eq!(counts.get(labels), Some(&inf), "{name}{labels}: _count is not the +Inf bucket");
            let finite: Vec<f64> = buckets.iter().map(|b| b.0).filter(|le| le.is_finite()).collect();
            assert!(
                finite[0] <= 1e-5 && *finite.last().unwrap() >= 10.0,
                "{name}{labels}: bounds {finite:?}"
            );
        }
    }
    let sample = |name: &str, labels: &[(&str, &str)]| {
        families
            .values()
            .flat_map(|f| &f.samples)
            .find(|s| {
                s.name == name
                    && s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).eq(labels.iter().copied())
            })
            .map(|s| s.value)
            .unwrap_or_else(|| panic!("{name}{labels:?} missing:\n{text}"))
    };
    assert!(sample("tailguard_scheduling_latency_seconds_count", &[("source", "runtime")]) > 0.0);
    assert_eq!(sample("tailguard_request_latency_seconds_count", &[("op", "get")]), 25.0);
    assert_eq!(sample("tailguard_admission_wait_seconds_count", &[]), 25.0);
    assert_eq!(sample("tailguard_admission_tenant_requests_total", &[("tenant", "1")]), sent[1] as f64);
    assert!(sample("tailguard_admission_tenant_cpu_seconds_total", &[("tenant", "2")]) > 0.0);
    assert_eq!(families["tailguard_admission_tenant_cpu_seconds_total"].kind, "counter");
}
