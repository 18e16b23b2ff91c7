//! Backup files of `tailguard serve` across restarts: never overwritten (not even after a
//! `kill -9` mid-backup), earlier partial files left alone and listed, and retention keeping
//! the newest N.

mod support;

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use support::Server;

/// Starts a backup and waits for it to end; returns its final status.
fn backup(server: &Server) -> serde_json::Value {
    let started = server.request("POST", "/jobs/backup", b"");
    assert_eq!(started.status, 202, "{}", started.text());
    let id = started.json()["id"].as_u64().unwrap();
    server.poll_json(&format!("/jobs/{id}"), |s| s["state"] != "running")
}

/// The file's bytes and inode.
fn snapshot(path: &Path) -> (Vec<u8>, u64) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (bytes, std::fs::metadata(path).unwrap().ino())
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[test]
fn a_restart_never_overwrites_earlier_backups_even_after_kill_9_mid_backup() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");

    // Run 1: one complete backup.
    let mut first = Server::start_in(&backups, &["--keys", "3000"]);
    let done = backup(&first);
    assert_eq!((done["id"].as_u64(), done["state"].as_str()), (Some(1), Some("completed")), "{done}");
    let complete = backups.join("backup-1.tgbak");
    let before = snapshot(&complete);
    let (status, stderr) = first.terminate();
    assert!(status.success(), "{stderr}");

    // Run 2: numbering goes on after the directory's files; killed with SIGKILL mid-backup.
    let second = Server::start_in(&backups, &["--keys", "60000", "--floor", "0.05", "--ceiling", "0.05"]);
    let started = second.request("POST", "/jobs/backup", b"");
    assert_eq!(started.status, 202, "{}", started.text());
    assert_eq!(started.json()["id"], 2, "{}", started.text());
    second.poll_json("/jobs/2", |s| s["keys"].as_u64().unwrap() > 0 || s["state"] != "running");
    second.signal("KILL");
    drop(second);
    let killed: Vec<(PathBuf, (Vec<u8>, u64))> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != &complete)
        .map(|p| (p.clone(), snapshot(&p)))
        .collect();
    assert_eq!(killed.len(), 1, "one file of job 2: {killed:?}");
    let partial = killed[0].0.to_string_lossy().ends_with(".partial");

    // Run 3: the earlier files are reported and left alone; the new backup is number 3.
    let mut third = Server::start_in(&backups, &["--keys", "3000"]);
    let mut stderr = third.stderr();
    let jobs = third.get_json("/jobs");
    if partial {
        assert!(stderr.wait_for("backup-2.tgbak.partial", support::GUARD), "{:?}", stderr.seen);
        let interrupted = &jobs[0];
        assert_eq!(
            (interrupted["id"].as_u64(), interrupted["state"].as_str()),
            (Some(2), Some("interrupted")),
            "{jobs}"
        );
        assert!(interrupted["output"].as_str().unwrap().ends_with("backup-2.tgbak.partial"), "{jobs}");
        // How far it got: the keys of its complete chunks, and the key to resume from.
        assert!(interrupted["error"].is_null(), "{jobs}");
        let (keys, resume) =
            (interrupted["keys"].as_u64().unwrap(), interrupted["resume_key"].as_u64().unwrap());
        assert!(keys < 60_000 && (keys == 0) == (resume == 0), "{jobs}");
        assert!(
            stderr.wait_for(&format!("resumable from key {resume}"), support::GUARD),
            "{:?}",
            stderr.seen
        );
        assert_eq!(third.get_json("/jobs/2")["state"], "interrupted");
        assert_eq!(third.request("POST", "/jobs/2/restore", b"").status, 409);
    }
    let done = backup(&third);
    assert_eq!((done["id"].as_u64(), done["state"].as_str()), (Some(3), Some("completed")), "{done}");
    assert_eq!(done["pruned"], serde_json::json!([]), "{done}");
    assert_eq!(snapshot(&complete), before, "backup-1.tgbak is byte for byte the same file");
    for (path, earlier) in &killed {
        assert_eq!(&snapshot(path), earlier, "{} is left as it was", path.display());
    }
    let verified = third.request("POST", "/jobs/3/verify", b"");
    assert_eq!(verified.status, 200, "{}", verified.text());
    // The earlier complete backup still restores.
    let (refused, why) = support::restore_refuses(&complete, 3000);
    assert!(!refused, "{why}");
    drop(third);

    // A complete backup with its end marker flipped is refused, and the message says so.
    let mut bytes = std::fs::read(&complete).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let flipped = dir.path().join("flipped.tgbak");
    std::fs::write(&flipped, &bytes).unwrap();
    let (refused, why) = support::restore_refuses(&flipped, 3000);
    assert!(refused && why.contains("end marker at byte"), "{why}");
}

#[test]
fn retention_keeps_the_newest_n_and_says_what_it_removed() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    // Partial files of earlier runs, and a file that is not ours.
    for name in ["backup-1.tgbak.partial", "backup-2.tgbak.partial", "backup-3.tgbak.partial", "notes.txt"] {
        std::fs::write(backups.join(name), name).unwrap();
    }
    let mut server = Server::start_in(&backups, &["--keys", "500", "--keep-backups", "2"]);
    let mut stderr = server.stderr();
    let ids: Vec<u64> = (0..4)
        .map(|_| {
            let done = backup(&server);
            assert_eq!(done["state"], "completed", "{done}");
            done["id"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(ids, [4, 5, 6, 7]);
    assert_eq!(
        names(&backups),
        ["backup-2.tgbak.partial", "backup-3.tgbak.partial", "backup-6.tgbak", "backup-7.tgbak", "notes.txt"]
    );
    // What each completed backup removed is in its status, and in the log.
    let pruned = |id: u64| -> Vec<String> {
        let status = server.get_json(&format!("/jobs/{id}"));
        status["pruned"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| Path::new(p.as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(pruned(4), ["backup-1.tgbak.partial"]);
    assert!(pruned(5).is_empty());
    assert_eq!(pruned(6), ["backup-4.tgbak"]);
    assert_eq!(pruned(7), ["backup-5.tgbak"]);
    assert!(stderr.wait_for("removed unfinished backup", support::GUARD), "{:?}", stderr.seen);
    assert!(stderr.wait_for("backup-5.tgbak", support::GUARD), "{:?}", stderr.seen);
}

#[test]
fn a_backup_of_a_key_range_holds_that_range_and_a_resumed_one_the_rest() {
    let server = Server::start(&["--keys", "3000"]);
    let start = |body: &str| {
        let started = server.request("POST", "/jobs/backup", body.as_bytes());
        assert_eq!(started.status, 202, "{}", started.text());
        let id = started.json()["id"].as_u64().unwrap();
        server.poll_json(&format!("/jobs/{id}"), |s| s["state"] != "running")
    };
    let first = start(r#"{"from": 1000, "to": 2000}"#);
    assert_eq!(first["state"], "completed", "{first}");
    assert_eq!((first["keys"].as_u64(), first["total_keys"].as_u64()), (Some(1000), Some(1000)), "{first}");
    assert_eq!(first["range"], serde_json::json!({"from": 1000, "to": 2000, "resume_from": null}), "{first}");
    // The range resumed at 2500 holds 2500..3000 only; each verifies against its keys of the store.
    let rest = start(r#"{"from": 2000, "resume_from": 2500}"#);
    assert_eq!((rest["state"].as_str(), rest["keys"].as_u64()), (Some("completed"), Some(500)), "{rest}");
    for done in [&first, &rest] {
        let verified = server.request("POST", &format!("/jobs/{}/verify", done["id"]), b"");
        assert_eq!(verified.status, 200, "{}", verified.text());
        assert_eq!(verified.json()["keys"], done["keys"], "{}", verified.text());
    }
    // A range is not the store: restoring it would remove every other key, and is refused.
    let restore = server.request("POST", &format!("/jobs/{}/restore", first["id"]), b"");
    assert_eq!(restore.status, 409, "{}", restore.text());
    // An empty body is the whole keyspace, as before options existed.
    let all = start("");
    assert_eq!((all["keys"].as_u64(), all["range"]["to"].as_u64()), (Some(3000), None), "{all}");
}
