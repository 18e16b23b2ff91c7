//! The `tailguard` binary end to end: a short demo run with every output, a kept backup restored,
//! the simulator, and bad input.

use std::path::Path;
use std::process::Command;

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
        .args(["demo", "--quiet", "--duration", "1s", "--warmup", "0s", "--keys", "3000"])
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
    let modes = report["modes"].as_array().unwrap();
    assert_eq!(modes.len(), 4);
    assert!(modes[0]["elastic"].is_null(), "baseline runs no elastic work");
    for mode in &modes[1..] {
        let elastic = &mode["elastic"];
        // The backup in progress at the end of each mode is finished and verified.
        assert!(elastic["backups"].as_u64().unwrap() >= 1, "{mode}");
        assert_eq!(elastic["verified"], serde_json::Value::Bool(true), "{mode}");
        assert!(mode["foreground"]["requests"].as_u64().unwrap() > 0);
        assert!(!mode["series"].as_array().unwrap().is_empty());
    }
    assert!(modes[2]["elastic"]["mean_share"].as_f64().unwrap() > 0.29, "the static share is reported");
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

#[test]
fn elastic_backups_can_run_as_tasks_in_the_foreground_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("report.json");
    let output = tailguard()
        .args([
            "demo",
            "--quiet",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--keys",
            "3000",
            "--elastic-on",
            "runtime",
        ])
        .args(["--modes", "uncontrolled,elastic", "--interval", "250ms", "--json"])
        .arg(&json_path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = json(&json_path);
    assert_eq!(report["settings"]["elastic_on"], "runtime");
    for mode in report["modes"].as_array().unwrap() {
        assert_eq!(mode["elastic"]["verified"], serde_json::Value::Bool(true), "{mode}");
        assert!(mode["elastic"]["requests"].as_u64().unwrap() >= 1);
    }
}

#[test]
fn bad_demo_arguments_are_refused_with_a_reason() {
    let bad_mode = tailguard().args(["demo", "--modes", "baseline,static:2"]).output().unwrap();
    assert!(!bad_mode.status.success());
    assert!(String::from_utf8_lossy(&bad_mode.stderr).contains("within (0, 1]"));
    let bad_load = tailguard().args(["demo", "--load", "1.5"]).output().unwrap();
    assert!(!bad_load.status.success());
    assert!(String::from_utf8_lossy(&bad_load.stderr).contains("--load"));
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
    assert!(stdout.contains("serial-p90.44="), "{stdout}");
}
