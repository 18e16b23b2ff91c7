//! `tailguard cluster` end to end: two local serve nodes, one distributed backup, node 0 killed
//! with SIGKILL mid-backup, restarted, and its range resumed; the parts verify byte-exact. And
//! a coordinator killed with SIGKILL takes its nodes down with it, while one sent SIGTERM stops
//! in order and reports the rounds it had done.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn nodes_stop_when_their_coordinator_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut coordinator = Command::new(env!("CARGO_BIN_EXE_tailguard"))
        .args(["cluster", "--node-cpus", "1,1", "--keys", "2000", "--value-size", "64"])
        .arg("--dir")
        .arg(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut addresses: Vec<SocketAddr> = Vec::new();
    for line in BufReader::new(coordinator.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.split(" listens on http://").nth(1) {
            addresses.push(rest.split_whitespace().next().unwrap().parse().unwrap());
        }
        if addresses.len() == 2 {
            break;
        }
    }
    assert_eq!(addresses.len(), 2, "both nodes listen");
    assert!(TcpStream::connect(addresses[0]).is_ok(), "node 0 serves");
    let pid = coordinator.id();
    coordinator.kill().unwrap();
    coordinator.wait().unwrap();
    // Each node stops at the end of its standard input, the coordinator's pipe: it closes
    // to new connections at once, and exits once its requests in flight are done.
    let deadline = Instant::now() + Duration::from_secs(30);
    for addr in addresses {
        while TcpStream::connect(addr).is_ok() {
            assert!(Instant::now() < deadline, "the node on {addr} still serves after its coordinator died");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Where the nodes ran in cgroups of their own (root), each empties as its node exits; the
    // test removes them as the next run would.
    let cgroups = std::fs::read_dir("/sys/fs/cgroup/cpu").into_iter().flatten().flatten();
    for cgroup in
        cgroups.filter(|e| e.file_name().to_string_lossy().starts_with(&format!("tailguard-cluster-{pid}-")))
    {
        while let Err(e) = std::fs::remove_dir(cgroup.path()) {
            assert!(Instant::now() < deadline, "{} still holds a node: {e}", cgroup.path().display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn sigterm_stops_the_run_in_order_and_reports_the_rounds_done() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let mut coordinator = Command::new(env!("CARGO_BIN_EXE_tailguard"))
        .args(["cluster", "--node-cpus", "1,1", "--keys", "2000", "--value-size", "64", "--rounds", "50"])
        .args(["--rate", "50", "--connections", "2", "--baseline", "200ms", "--poll", "100ms"])
        .arg("--dir")
        .arg(dir.path().join("nodes"))
        .arg("--json")
        .arg(&report_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(coordinator.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("round 1: backup done") {
            break;
        }
    }
    assert!(seen.contains("round 1: backup done"), "{seen}");
    // To the coordinator alone (its nodes run on until it stops them).
    let sent = Command::new("kill").args(["-TERM", &coordinator.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
    let output = coordinator.wait_with_output().unwrap();
    let stderr = format!("{seen}{}", rest.join().unwrap());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stderr.contains("SIGTERM: stopping"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let rounds = report["rounds"].as_array().unwrap();
    assert!((1..50).contains(&rounds.len()), "{report}");
    assert!(
        rounds
            .iter()
            .all(|r| r["verification"].as_str().unwrap().starts_with("verified byte-exact: 2000 keys"))
    );
    let interrupted = report["interrupted"].as_str().unwrap();
    assert!(
        interrupted.contains(&format!("the report covers {} of 50 rounds", rounds.len())),
        "{interrupted}"
    );
    assert!(stdout.contains(interrupted), "{stdout}");
}

#[test]
fn a_node_killed_mid_backup_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let page_path = dir.path().join("report.html");
    // Each node's share is held at 1 % with 10 ms grants, so its part takes seconds and is
    // killed midway (the run fails, saying so, if a part completes before the kill).
    let output = Command::new(env!("CARGO_BIN_EXE_tailguard"))
        .args(["cluster", "--node-cpus", "1,1", "--keys", "8000", "--value-size", "64", "--seed", "7"])
        .args(["--rate", "50", "--connections", "2", "--baseline", "500ms", "--poll", "100ms"])
        .args(["--kill-node", "0", "--kill-after", "0s", "--rounds", "2"])
        .args(["--serve-arg=--floor=0.01", "--serve-arg=--ceiling=0.01", "--serve-arg=--grant=10ms"])
        .arg("--dir")
        .arg(dir.path().join("nodes"))
        .arg("--json")
        .arg(&report_path)
        .arg("--html")
        .arg(&page_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "exit {}\n{stdout}\n{stderr}", output.status);
    assert!(stderr.contains("killed (SIGKILL) mid-backup"), "{stderr}");
    assert!(stdout.contains("verified byte-exact: 8000 keys"), "{stdout}");

    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["verified"]["keys"], 8000, "{report}");
    // The clients ran at SCHED_FIFO (the default), or the run said why they could not.
    let priority = report["generator_priority"].as_str().unwrap();
    assert!(
        priority == "realtime" || stderr.contains("the foreground clients run at normal priority"),
        "{priority}: {stderr}"
    );
    assert!(stdout.contains(&format!("foreground clients at {priority} priority")), "{stdout}");
    let nodes = report["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    for node in nodes {
        // The isolation ratio by the intervals statistic, beside the pooled one and the A/A.
        for key in ["p99_ratio", "pooled_p99_ratio", "baseline_aa_ratio"] {
            assert!(node.get(key).is_some() && node["rounds"][0].get(key).is_some(), "{key}: {node}");
        }
        assert!(node["rounds"][1]["baseline"].get("interval_p99_seconds").is_some(), "{node}");
    }
    // The kill is in the first round only; both rounds backed up and verified every key.
    let killed = |node: usize, round: usize| nodes[node]["rounds"][round]["killed_and_resumed"].as_bool();
    assert_eq!(
        (killed(0, 0), killed(1, 0), killed(0, 1), killed(1, 1)),
        (Some(true), Some(false), Some(false), Some(false))
    );
    let rounds = report["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{report}");
    assert!(
        rounds
            .iter()
            .all(|r| r["verification"].as_str().unwrap().starts_with("verified byte-exact: 8000 keys"))
    );
    assert_eq!(nodes[0]["backup_keys_per_second"]["rounds"], 2, "{report}");
    // Node 0's part is its partial file up to the resumption key, then the resumed file; the
    // segments of both nodes tile the keyspace.
    let mut segments: Vec<(u64, u64, bool, String)> = nodes
        .iter()
        .flat_map(|n| n["rounds"][0]["segments"].as_array().unwrap().iter())
        .map(|s| {
            let path = s["path"].as_str().unwrap().to_owned();
            assert!(std::path::Path::new(&path).exists(), "{path}");
            (s["from"].as_u64().unwrap(), s["to"].as_u64().unwrap(), s["complete"].as_bool().unwrap(), path)
        })
        .collect();
    segments.sort();
    assert_eq!(segments.len(), 3, "{segments:?}");
    assert!(!segments[0].2 && segments[0].3.ends_with(".partial"), "{segments:?}");
    assert!(segments[1].2 && segments[2].2, "{segments:?}");
    assert_eq!(segments[0].0, 0);
    assert!(segments.windows(2).all(|w| w[0].1 == w[1].0), "{segments:?}");
    assert_eq!(segments[2].1, 8000);

    let page = std::fs::read_to_string(&page_path).unwrap();
    assert!(page.contains("Elastic share allowed") && page.matches("<svg").count() == 3, "{page}");
    assert!(page.contains("verified byte-exact"), "{page}");
}
