//! The `tailguard` binary end to end: a short demo run with every output, a kept backup restored,
//! Ctrl-C and a kill in the middle of a backup, the simulator, and bad input.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

fn tailguard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tailguard"))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("the report was written")).expect("valid JSON")
}

#[test]
fn short_demo_reports_every_mode_and_its_backups_restore() {
    let dir = tempfile::tempdir().unwrap();
    let (json_path, html_path, backups) =
        (dir.path().join("report.json"), dir.path().join("report.html"), dir.path().join("backups"));
    let output = tailguard()
        .args(["demo", "--quiet", "--duration", "1s", "--warmup", "0s", "--keys", "3000", "--rounds", "2"])
        .args(["--modes", "baseline,uncontrolled,static:0.3,elastic+os-priority", "--interval", "250ms"])
        .arg("--json")
        .arg(&json_path)
        .arg("--html")
        .arg(&html_path)
        .arg("--backup-dir")
        .arg(&backups)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for mode in ["baseline", "uncontrolled", "static:0.3", "elastic+os-priority"] {
        assert!(stdout.lines().any(|l| l.starts_with(mode)), "no row for {mode}:\n{stdout}");
    }
    let report = json(&json_path);
    // Two rounds of four modes, the baseline twice per round, each round in its own order.
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 10);
    let order = |round: u64| -> Vec<&str> {
        runs.iter().filter(|r| r["round"] == round).map(|r| r["name"].as_str().unwrap()).collect()
    };
    assert_eq!(order(1).iter().filter(|&&n| n == "baseline").count(), 2);
    assert_ne!(order(1), order(2), "the order rotates");
    for run in runs.iter().filter(|r| r["name"] != "baseline") {
        let elastic = &run["elastic"];
        // The backup in progress at the end of each window is finished and verified.
        assert!(elastic["backups"].as_u64().unwrap() >= 1, "{run}");
        assert_eq!(elastic["verified"], serde_json::Value::Bool(true), "{run}");
        assert!(run["foreground"]["requests"].as_u64().unwrap() > 0);
        assert!(!run["series"].as_array().unwrap().is_empty());
        // The limiter's ticks, timed from the measured window's start (1 s long, no warm-up);
        // none without a limiter.
        match run["ticks"].as_array() {
            Some(ticks) => {
                assert_ne!(run["name"], "uncontrolled");
                let last = ticks.last().unwrap()["t_secs"].as_f64().unwrap();
                assert!((0.5..1.5).contains(&last), "{last}");
                assert!(ticks.iter().all(|t| (0.05..=0.75).contains(&t["share"].as_f64().unwrap())), "{run}");
            }
            None => assert_eq!(run["name"], "uncontrolled"),
        }
        // Where the latency went: no part's p99 exceeds the whole latency's.
        let (foreground, parts) = (&run["foreground"], &run["foreground"]["parts_p99_ms"]);
        for part in ["lag", "queue", "served"] {
            let p99 = parts[part].as_f64().unwrap();
            assert!(p99 > 0.0 && p99 <= foreground["p99_ms"].as_f64().unwrap(), "{foreground}");
        }
    }
    let modes = report["modes"].as_array().unwrap();
    let names: Vec<&str> = modes.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["baseline", "uncontrolled", "static:0.3", "elastic+os-priority"]);
    assert!(modes[0]["elastic"].is_null(), "baseline runs no elastic work");
    assert_eq!(modes[0]["runs"], 4);
    assert!(
        modes[2]["elastic"]["mean_share"]["median"].as_f64().unwrap() > 0.29,
        "the static share is reported"
    );
    // Idle CPU measured in the baseline windows: on a machine busy with other work it may be 0,
    // and then no share of it is reported.
    let idle = report["settings"]["idle_cpu"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&idle), "idle CPU measured in the baseline windows: {idle}");
    for mode in &modes[1..] {
        assert_eq!(mode["runs"], 2);
        assert_eq!(mode["elastic"]["verified"], serde_json::Value::Bool(true), "{mode}");
        let ratio = &mode["p99_vs_baseline"]["pooled"];
        assert!(ratio["low"].as_f64().unwrap() <= ratio["median"].as_f64().unwrap(), "{ratio}");
        let of_idle = &mode["elastic"]["idle_share_used"];
        assert_eq!(of_idle.is_null(), idle == 0.0, "{mode}");
    }
    assert!(report["noise"]["window"]["median"].as_f64().unwrap() > 0.0, "the A/A ratio");
    // Windows the host stole from are measured again (by default up to twice): each one set
    // aside is on record, and was stolen from.
    assert_eq!(report["settings"]["rerun_stolen"], 2);
    // The load generator dispatches at SCHED_FIFO where the OS grants it, else at normal
    // priority with a note that says why.
    let refused = report["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .find(|n| n.starts_with("the load generator ran at normal priority (realtime refused"));
    match report["settings"]["generator_priority"].as_str().unwrap() {
        "realtime" => assert!(refused.is_none(), "{refused:?}"),
        "normal" => {
            eprintln!("NOT RUN on this host: a SCHED_FIFO load generator: {refused:?}");
            assert!(refused.is_some(), "a fallback to normal priority is noted");
        }
        other => panic!("generator priority {other}"),
    }
    let over = report["settings"]["stolen_over"].as_f64().unwrap();
    for aside in report["rerun"].as_array().map_or(&[][..], Vec::as_slice) {
        assert!(aside["machine_steal"].as_f64().unwrap() > over, "{aside}");
        assert!(names.contains(&aside["name"].as_str().unwrap()), "{aside}");
    }
    assert!(stdout.contains("noise floor: baseline against baseline"), "{stdout}");
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains("<svg") && html.contains("static:0.3"));

    // Each kept backup restores to exactly the source keyspace, and only to that one.
    let kept: Vec<_> = std::fs::read_dir(&backups).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!kept.is_empty());
    assert!(kept.iter().all(|p| !p.to_string_lossy().ends_with(".partial")));
    let restored = tailguard().arg("restore").arg(&kept[0]).args(["--keys", "3000"]).output().unwrap();
    assert!(restored.status.success(), "{}", String::from_utf8_lossy(&restored.stderr));
    assert!(String::from_utf8_lossy(&restored.stdout).contains("restored 3000 keys"));
    let other_seed =
        tailguard().arg("restore").arg(&kept[0]).args(["--keys", "3000", "--seed", "7"]).output().unwrap();
    assert!(!other_seed.status.success(), "a backup must not match another keyspace");
}

/// A one-round demo of 1 s windows on 3000 keys with 250 ms intervals and 10 ms grants (at the
/// floor's share a 100 ms grant may not end within the second), and `extra` flags; asserts it
/// succeeded and returns its stdout and JSON report.
fn short_demo(extra: &[&str]) -> (String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("report.json");
    let output = tailguard()
        .args(["demo", "--quiet", "--duration", "1s", "--warmup", "0s", "--keys", "3000", "--rounds", "1"])
        .args(["--interval", "250ms", "--grant", "10ms", "--rerun-stolen", "0"])
        .args(extra)
        .arg("--json")
        .arg(&json_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    (stdout, json(&json_path))
}

#[test]
fn the_adapt_scenario_steps_the_load_for_every_controller_and_for_the_foreground_alone() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("report.json");
    let output = tailguard()
        .args(["demo", "--quiet", "--scenario", "adapt", "--duration", "3s", "--warmup", "0s"])
        .args(["--keys", "3000", "--rounds", "1", "--interval", "250ms", "--grant", "10ms", "--json"])
        .arg(&json_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report = json(&json_path);
    let names: Vec<&str> =
        report["runs"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    // The baseline twice (its A/A pair), every controller once.
    assert_eq!(names.iter().filter(|&&n| n == "baseline").count(), 2, "{names:?}");
    for name in ["adapt/reference", "adapt/adaptive", "adapt/utilization"] {
        assert!(names.contains(&name), "{names:?}");
    }
    // Every window, the baseline's included, saw the step up and says how it answered it.
    for run in report["runs"].as_array().unwrap() {
        assert!(run["step"]["pairs"].is_number(), "{}: {}", run["name"], run["step"]);
    }
    let notes: Vec<&str> = report["notes"].as_array().unwrap().iter().filter_map(|n| n.as_str()).collect();
    assert!(notes.iter().any(|n| n.starts_with("baseline (no elastic work)")), "{notes:?}");
}

#[test]
fn elastic_backups_can_run_as_tasks_in_a_runtime_pinned_one_worker_per_cpu_beside_a_normal_generator() {
    // In a runtime whose workers are pinned one per CPU, which the report says.
    let (stdout, report) = short_demo(&[
        "--elastic-on",
        "runtime",
        "--modes",
        "uncontrolled,elastic",
        "--pin-workers",
        "--generator-priority",
        "normal",
    ]);
    assert_eq!(report["settings"]["elastic_on"], "runtime");
    assert_eq!(report["settings"]["pin_workers"], true);
    assert!(stdout.contains("runtime workers pinned one per CPU"), "{stdout}");
    // A generator asked to compete with the service for the CPU is named in the run line.
    assert_eq!(report["settings"]["generator_priority"], "normal");
    assert!(stdout.contains("the load generator at normal priority"), "{stdout}");
    for run in report["runs"].as_array().unwrap() {
        assert_eq!(run["elastic"]["verified"], serde_json::Value::Bool(true), "{run}");
        assert!(run["elastic"]["requests"].as_u64().unwrap() >= 1);
    }
}

#[test]
fn the_utilization_peer_runs_in_the_same_round_and_is_set_beside_elastic() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("report.json");
    // A 1 s period: the peer's window warms up for 1.5 s, then is measured for 1 s.
    let output = tailguard()
        .args(["demo", "--quiet", "--duration", "1s", "--warmup", "0s", "--keys", "3000", "--rounds", "1"])
        .args(["--modes", "elastic,utilization", "--utilization-period", "1s", "--interval", "250ms"])
        .args(["--rerun-stolen", "0"])
        .arg("--json")
        .arg(&json_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.lines().any(|l| l.starts_with("utilization")), "no row for the peer:\n{stdout}");
    assert!(stdout.contains("elastic: beside utilization (the utilisation peer"), "{stdout}");
    let report = json(&json_path);
    let peer =
        report["runs"].as_array().unwrap().iter().find(|r| r["name"] == "utilization").expect("a peer run");
    assert_eq!(peer["elastic"]["verified"], serde_json::Value::Bool(true), "{peer}");
    // Reported like the other limiter modes: its share over time (at least the 10 % floor).
    let shares: Vec<f64> =
        peer["series"].as_array().unwrap().iter().filter_map(|p| p["share"].as_f64()).collect();
    assert!(
        !shares.is_empty() && shares.iter().all(|&s| (0.1 - 1e-9..=0.75 + 1e-9).contains(&s)),
        "{shares:?}"
    );
}

#[test]
fn overload_scenario_reports_both_modes_with_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let (json_path, html_path) = (dir.path().join("report.json"), dir.path().join("report.html"));
    let output = tailguard()
        .args(["demo", "--scenario", "overload", "--quiet", "--duration", "1s", "--warmup", "0s"])
        .args(["--keys", "3000", "--interval", "250ms", "--json"])
        .arg(&json_path)
        .arg("--html")
        .arg(&html_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for mode in ["no-queue", "queue"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(mode) && l.contains("heartbeat")),
            "no rows for {mode}:\n{stdout}"
        );
    }
    let report = json(&json_path);
    assert!(report["modes"].as_array().unwrap().is_empty(), "the overload scenario runs no elastic modes");
    let overload = &report["overload"];
    assert!(overload["capacity_rps"].as_f64().unwrap() > 0.0);
    let modes = overload["modes"].as_array().unwrap();
    let names: Vec<&str> = modes.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["no-queue", "queue"]);
    for mode in modes {
        // Every figure is present: a missing latency or share would be null.
        for field in [
            "window_secs",
            "throughput_rps",
            "cpu_share",
            "process_cpu_share",
            "requests_per_cpu_second",
            "max_start_lag_ms",
        ] {
            assert!(mode[field].as_f64().is_some(), "{field} of {mode}");
        }
        let classes = mode["classes"].as_array().unwrap();
        let names: Vec<&str> = classes.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["heartbeat", "tenant-a", "tenant-b"], "{mode}");
        for class in classes {
            for field in ["offered_rps", "throughput_rps", "p50_ms", "p99_ms", "max_ms", "cpu_share"] {
                assert!(class[field].as_f64().is_some(), "{field} of {class}");
            }
            assert!(class["offered"].as_u64().unwrap() > 0, "{class}");
        }
        assert!(classes[0]["completed"].as_u64().unwrap() > 0, "heartbeats completed: {mode}");
        let tenants = mode["tenants"].as_array().unwrap();
        let weights: Vec<u64> = tenants.iter().map(|t| t["weight"].as_u64().unwrap()).collect();
        assert_eq!(weights, [2, 1], "{mode}");
        for tenant in tenants {
            for field in ["weight_share", "cpu_share", "tenants_cpu_fraction"] {
                assert!(tenant[field].as_f64().is_some(), "{field} of {tenant}");
            }
        }
    }
    assert!(modes[0]["queue"].is_null(), "no queue figures without the queue");
    let queue = &modes[1]["queue"];
    for field in ["final_slots", "admitted", "admitted_after_queueing", "rejected_deadline"] {
        assert!(queue[field].as_u64().is_some(), "{field} of {queue}");
    }
    assert!(queue["mean_slots"].as_f64().is_some());
    let notes: Vec<&str> = report["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert!(notes.iter().any(|n| n.contains("heartbeat p99")), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("A:B CPU")), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("total throughput")), "{notes:?}");
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains("<h2>Overload</h2>") && html.contains("<svg"));
}

#[test]
fn the_limiter_can_steer_by_the_services_own_latency() {
    for (signal, said) in [
        ("tasks", "request tasks' wake→poll delays"),
        ("threads", "runtime probe and a thread probe"),
        ("requests", "service's request latency"),
    ] {
        let (stdout, report) =
            short_demo(&["--modes", "baseline,elastic", "--signal", signal, "--quiet-headroom", "1.5"]);
        assert!(stdout.contains(said), "the run names its signal ({signal}):\n{stdout}");
        assert_eq!(report["settings"]["signal"], signal);
        // Every window, baseline included, shows the signal's p99 per interval.
        for run in report["runs"].as_array().unwrap() {
            let series = run["series"].as_array().unwrap();
            assert!(series.iter().any(|p| p["signal_p99_ms"].as_f64().is_some_and(|v| v > 0.0)), "{run}");
        }
        let elastic = report["runs"].as_array().unwrap().iter().find(|r| r["name"] == "elastic").unwrap();
        assert_eq!(elastic["elastic"]["verified"], serde_json::Value::Bool(true), "{elastic}");
    }
    let bad = tailguard().args(["demo", "--signal", "bogus"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("probe"), "the choices are listed");
}

#[test]
fn bad_demo_arguments_are_refused_with_a_reason() {
    let bad_mode = tailguard().args(["demo", "--modes", "baseline,static:2"]).output().unwrap();
    assert!(!bad_mode.status.success());
    assert!(String::from_utf8_lossy(&bad_mode.stderr).contains("within (0, 1]"));
    let bad_load = tailguard().args(["demo", "--load", "1.5"]).output().unwrap();
    assert!(!bad_load.status.success());
    assert!(String::from_utf8_lossy(&bad_load.stderr).contains("--load"));
    let bad_overload =
        tailguard().args(["demo", "--scenario", "overload", "--overload", "0"]).output().unwrap();
    assert!(!bad_overload.status.success());
    assert!(String::from_utf8_lossy(&bad_overload.stderr).contains("--overload"));
    let bad_period = tailguard().args(["demo", "--utilization-period", "100ms"]).output().unwrap();
    assert!(!bad_period.status.success());
    assert!(String::from_utf8_lossy(&bad_period.stderr).contains("--utilization-period"));
}

#[test]
fn demo_help_documents_the_utilization_peer() {
    let help = tailguard().args(["demo", "--help"]).output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--utilization-period") && text.contains("TiKV"), "{text}");
    assert!(text.contains("utilization"), "{text}");
}

#[test]
fn sim_prints_where_hop_tails_land() {
    let output = tailguard()
        .args(["sim", "--vars", "10", "--p99", "1s", "--p99.9", "1m", "--requests", "200000"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("hop p99 shows at the request's p90.44"), "{stdout}");
    assert!(stdout.contains("serial-p91.4=1.009s"), "{stdout}");
}

/// How long a demo may take to reach a line or to exit before the test gives up on it (a guard
/// against a hang, not a measurement: both normally take a few seconds).
const HANG_GUARD: Duration = Duration::from_secs(180);

/// Keys of the demos below (the `restore` commands must be given the same).
const KEYS: &str = "3000";

/// A running `tailguard demo` whose stderr lines arrive on a channel as they are printed.
struct RunningDemo {
    child: Child,
    lines: Receiver<String>,
    stderr: Vec<String>,
    stdout: JoinHandle<String>,
}

impl RunningDemo {
    /// A demo whose first mode backs up at a share of 0.1 % of the machine in 1 ms grants: its
    /// first backup takes minutes, so it is still in progress whenever the test interrupts it.
    /// The second mode never runs.
    fn slow_backup(backups: &Path, json: &Path, elastic_on: &str) -> RunningDemo {
        let mut child = tailguard()
            .args(["demo", "--duration", "120s", "--warmup", "0s", "--keys", KEYS, "--interval", "250ms"])
            .args(["--rounds", "1"])
            .args(["--modes", "static:0.001,uncontrolled", "--grant", "1ms", "--elastic-on", elastic_on])
            .arg("--backup-dir")
            .arg(backups)
            .arg("--json")
            .arg(json)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                if sender.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        let mut stdout = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            stdout.read_to_string(&mut text).unwrap();
            text
        });
        RunningDemo { child, lines, stderr: Vec::new(), stdout }
    }

    /// Reads stderr until the first mode reports its backups in progress; returns their names.
    fn backups_in_progress(&mut self) -> Vec<String> {
        const STARTED: &str = "started: backups in progress: ";
        loop {
            let line = match self.lines.recv_timeout(HANG_GUARD) {
                Ok(line) => line,
                Err(error) => {
                    let _ = self.child.kill();
                    panic!("no backup started ({error}):\n{}", self.stderr.join("\n"));
                }
            };
            self.stderr.push(line.clone());
            if let Some((mode, names)) = line.split_once(STARTED) {
                assert!(mode.starts_with("[1/2] static:0.001"), "{line}");
                return names.split(", ").map(str::to_owned).collect();
            }
        }
    }

    /// Waits for the exit (stderr closes with it); returns the status, stdout and stderr.
    fn exit(mut self) -> (ExitStatus, String, String) {
        loop {
            match self.lines.recv_timeout(HANG_GUARD) {
                Ok(line) => self.stderr.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("the demo did not stop:\n{}", self.stderr.join("\n"));
                }
            }
        }
        let status = self.child.wait().unwrap();
        (status, self.stdout.join().unwrap(), self.stderr.join("\n"))
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path()).collect()
}

/// `tailguard restore PATH`: whether it succeeded, and its stderr.
fn restore(path: &Path) -> (bool, String) {
    let output = tailguard().arg("restore").arg(path).args(["--keys", KEYS]).output().unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn ctrl_c_during_a_backup_exits_130_with_the_report_so_far_and_no_backup_that_restores() {
    for elastic_on in ["threads", "runtime"] {
        let dir = tempfile::tempdir().unwrap();
        let (backups, json_path) = (dir.path().join("backups"), dir.path().join("report.json"));
        let mut demo = RunningDemo::slow_backup(&backups, &json_path, elastic_on);
        let in_progress = demo.backups_in_progress();
        assert!(!in_progress.is_empty());
        assert!(in_progress.iter().all(|name| backups.join(format!("{name}.partial")).exists()));
        let sent = Command::new("kill").args(["-INT", &demo.child.id().to_string()]).status().unwrap();
        assert!(sent.success());
        let (status, stdout, stderr) = demo.exit();

        assert_eq!(status.code(), Some(130), "{elastic_on}: {status}\n{stderr}");
        assert!(stderr.contains("tailguard: interrupted by Ctrl-C"), "{stderr}");
        // What it has: the interrupted mode's row and a note; the mode after it never ran.
        assert!(stdout.lines().any(|l| l.starts_with("static:0.001")), "{stdout}");
        assert!(!stdout.lines().any(|l| l.starts_with("uncontrolled")), "{stdout}");
        assert!(stdout.contains("1 of 2 windows did not run"), "{stdout}");
        let report = json(&json_path);
        let notes = report["notes"].as_array().unwrap();
        assert!(notes.iter().any(|n| n.as_str().unwrap().contains("interrupted by Ctrl-C")), "{notes:?}");

        // No file is left that restores: the unfinished backups (never renamed from .partial)
        // were removed, and asking for one by its name says it does not exist.
        for file in files_in(&backups) {
            let (restored, why) = restore(&file);
            assert!(!restored, "{} restores after Ctrl-C", file.display());
            assert!(!why.is_empty());
        }
        assert!(files_in(&backups).is_empty(), "{:?}", files_in(&backups));
        for name in &in_progress {
            let (restored, why) = restore(&backups.join(name));
            assert!(!restored);
            assert!(why.contains("cannot read backup") && why.contains(name.as_str()), "{why}");
        }
    }
}

#[test]
fn a_backup_killed_midway_leaves_only_a_partial_file_that_restore_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (backups, json_path) = (dir.path().join("backups"), dir.path().join("report.json"));
    let mut demo = RunningDemo::slow_backup(&backups, &json_path, "threads");
    let in_progress = demo.backups_in_progress();
    demo.child.kill().unwrap(); // SIGKILL: no chance to clean up
    let (status, _, _) = demo.exit();
    assert!(!status.success());

    let mut left: Vec<String> =
        files_in(&backups).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    left.sort();
    let mut expected: Vec<String> = in_progress.iter().map(|name| format!("{name}.partial")).collect();
    expected.sort();
    assert_eq!(left, expected, "only the unfinished .partial files are left");
    for name in &in_progress {
        let (restored, why) = restore(&backups.join(name));
        assert!(!restored);
        assert!(why.contains("never finished") && why.contains("rerun the backup"), "{why}");
        let partial = backups.join(format!("{name}.partial"));
        let (restored, why) = restore(&partial);
        assert!(!restored);
        assert!(why.contains("unfinished backup"), "{why}");
        // Renamed to look finished, its content is still refused: it has no footer.
        let renamed = dir.path().join(format!("renamed-{name}"));
        std::fs::copy(&partial, &renamed).unwrap();
        let (restored, why) = restore(&renamed);
        assert!(!restored);
        assert!(why.contains("the backup did not complete"), "{why}");
    }
}

#[test]
fn warnings_are_logged_through_rust_log() {
    // Too few requests for the printed points to lie safely inside the tail: a warning.
    let run = |filter: Option<&str>| {
        let mut command = tailguard();
        command.args(["sim", "--vars", "10", "--p99", "1s", "--p99.9", "1m", "--requests", "2000"]);
        match filter {
            Some(filter) => command.env("RUST_LOG", filter),
            None => command.env_remove("RUST_LOG"),
        };
        let output = command.output().unwrap();
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let default = run(None);
    assert!(default.contains("WARN") && default.contains("standard deviations"), "{default}");
    let quiet = run(Some("error"));
    assert!(!quiet.contains("standard deviations"), "RUST_LOG=error hides warnings: {quiet}");
}
