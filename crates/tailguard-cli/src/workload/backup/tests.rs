//! Backups end to end: export, write, restore, verify, preemption, partial files.

use super::driver::{BackupDriver, BackupStats};
use super::export::{ExportEnd, export};
use super::format::{
    BackupError, BackupWriter, PartialPrefix, RestoreError, partial_path, read_partial, restore,
};
use super::verify::{VerifyError, verify};
use super::*;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::workload::keyspace::{Key, KeyspaceConfig, Value};
use crate::workload::store::Store;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tailguard::clock::ManualClock;

fn store(keys: u64) -> Arc<Store> {
    Arc::new(Store::populate(&KeyspaceConfig { keys, mean_value_bytes: 48, seed: 11 }, 4))
}

fn backup_with(store: &Arc<Store>, path: &Path, mut stop_after: impl FnMut() -> u64) -> BackupStats {
    let driver = BackupDriver::new(Arc::clone(store), path);
    driver
        .run(
            || {
                let budget = stop_after();
                let mut seen = 0;
                move || {
                    seen += 1;
                    seen >= budget
                }
            },
            &|| false,
        )
        .expect("backup")
}

#[test]
fn preempted_after_every_key_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.tgb");
    let store = store(300);
    let stats = backup_with(&store, &path, || 1);
    assert_eq!(stats.manifest.keys, 300);
    assert_eq!(stats.requests, 300);
    assert_eq!(stats.preemptions, 299, "the last request ends at the end of the keyspace");
    assert!(!partial_path(&path).exists());
    let report = verify(&path, &store).expect("verifies");
    assert_eq!(report.keys, 300);
    assert_eq!(report.chunks, 300);
}

#[test]
fn preempted_at_random_points_verifies_and_is_never_preempted_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(2_000);
    for seed in 0..4 {
        let path = dir.path().join(format!("r{seed}.tgb"));
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let stats = backup_with(&store, &path, || rng.random_range(1..200));
        assert!(stats.preemptions > 5, "{stats:?}");
        assert_eq!(verify(&path, &store).expect("verifies").keys, 2_000);
    }
    let path = dir.path().join("whole.tgb");
    let stats = backup_with(&store, &path, || u64::MAX);
    assert_eq!((stats.requests, stats.preemptions), (1, 0));
    assert_eq!(restore(&path).unwrap().entries.len(), 2_000);
}

#[test]
fn an_abandoned_backup_keeps_its_partial_file_which_restore_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.tgb");
    let store = store(100);
    let mut writer = BackupWriter::create(&path).unwrap();
    let mut seen = 0;
    let outcome = export(&store, None, &mut || {
        seen += 1;
        seen >= 40
    });
    writer.append(&outcome.chunk).unwrap();
    assert_eq!((outcome.chunk.keys(), outcome.resume), (40, Some(Key(40))));
    let partial = writer.abandon().unwrap();
    assert_eq!(partial, partial_path(&path));
    assert!(partial.exists() && !path.exists());
    assert!(matches!(restore(&partial), Err(RestoreError::Partial { .. })));
    // Even renamed, the missing footer gives it away.
    std::fs::rename(&partial, &path).unwrap();
    assert!(matches!(restore(&path), Err(RestoreError::Truncated { .. })), "{:?}", restore(&path).err());
}

#[test]
fn export_resumes_exactly_where_it_stopped() {
    let store = store(10);
    let mut calls = 0;
    let first = export(&store, None, &mut || {
        calls += 1;
        calls == 3
    });
    assert_eq!((first.chunk.keys(), first.resume, first.end), (3, Some(Key(3)), ExportEnd::Preempted));
    let rest = export(&store, first.resume, &mut || false);
    assert_eq!((rest.chunk.keys(), rest.resume, rest.end), (7, None, ExportEnd::Done));
    let empty = export(&Store::new(2, 10), None, &mut || true);
    assert_eq!((empty.chunk.keys(), empty.resume, empty.end), (0, None, ExportEnd::Done));
}

#[test]
fn verify_names_the_first_difference() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.tgb");
    let store = store(100);
    backup_with(&store, &path, || 7);
    store.put(Key(42), vec![1, 2, 3].into());
    assert!(matches!(verify(&path, &store), Err(VerifyError::ValueMismatch { key: Key(42), .. })));
    store.put(Key(42), KeyspaceConfig { keys: 100, mean_value_bytes: 48, seed: 11 }.value_of(Key(42)));
    store.put(Key(100), vec![0].into());
    assert!(matches!(verify(&path, &store), Err(VerifyError::Missing(Key(100)))));
    let smaller = Store::new(1, 100);
    for (k, v) in restore(&path).unwrap().entries.into_iter().filter(|(k, _)| k.0 != 5) {
        smaller.put(k, v);
    }
    assert!(matches!(verify(&path, &smaller), Err(VerifyError::Extra(Key(5)))));
}

#[test]
fn truncated_corrupted_and_partial_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.tgb");
    let store = store(500);
    backup_with(&store, &path, || 50);
    let good = fs::read(&path).unwrap();
    let bad = dir.path().join("bad.tgb");
    // Every truncation point is refused, never mistaken for a shorter complete backup.
    for len in (0..good.len()).step_by(97).chain([good.len() - 1, good.len() - FOOTER_BYTES]) {
        fs::write(&bad, &good[..len]).unwrap();
        let err = restore(&bad).expect_err("truncated file refused");
        assert!(matches!(err, RestoreError::Truncated { .. }), "len {len}: {err}");
    }
    // A flipped byte anywhere after the header is caught.
    for at in (12..good.len()).step_by(131) {
        let mut flipped = good.clone();
        flipped[at] ^= 0x40;
        fs::write(&bad, &flipped).unwrap();
        assert!(restore(&bad).is_err(), "flip at {at} accepted");
    }
    let mut trailing = good.clone();
    trailing.push(0);
    fs::write(&bad, &trailing).unwrap();
    assert!(matches!(restore(&bad), Err(RestoreError::TrailingBytes { extra: 1 })));
    // A complete file renamed to .partial is still refused by name.
    let partial = partial_path(&path);
    fs::write(&partial, &good).unwrap();
    let err = restore(&partial).unwrap_err();
    assert!(matches!(err, RestoreError::Partial { .. }));
    assert!(err.to_string().contains("rerun the backup"), "{err}");
    assert!(matches!(verify(&partial, &store), Err(VerifyError::Restore(RestoreError::Partial { .. }))));
    // Asked for the finished name of a backup that only got as far as its .partial file.
    let unfinished = dir.path().join("never.tgb");
    fs::write(partial_path(&unfinished), &good[..good.len() / 2]).unwrap();
    let err = restore(&unfinished).unwrap_err();
    assert!(matches!(err, RestoreError::Unfinished { .. }), "{err}");
    assert!(err.to_string().contains("never finished"), "{err}");
    assert!(matches!(restore(&dir.path().join("absent.tgb")), Err(RestoreError::Io { .. })));
}

#[test]
fn cancelled_backup_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.tgb");
    let store = store(100);
    let driver = BackupDriver::with_clock(Arc::clone(&store), &path, ManualClock::new().shared());
    let progress = driver.progress();
    let requests = &progress.requests;
    let err = driver.run(|| || true, &|| requests.load(Relaxed) == 10).unwrap_err();
    assert!(matches!(err, BackupError::Cancelled { keys: 10 }), "{err}");
    assert!(!path.exists());
    assert!(!partial_path(&path).exists());
    assert_eq!(progress.preemptions.load(Relaxed), 10);
}

#[test]
fn throughput_is_measured_on_the_injected_clock() {
    let clock = ManualClock::new();
    let dir = tempfile::tempdir().unwrap();
    let store = store(100);
    let driver = BackupDriver::with_clock(Arc::clone(&store), dir.path().join("b"), clock.shared());
    let stats = driver
        .run(
            || {
                clock.advance(Duration::from_millis(10));
                || false
            },
            &|| false,
        )
        .unwrap();
    assert_eq!(stats.elapsed, Duration::from_millis(10));
    assert!((stats.keys_per_sec() - 10_000.0).abs() < 1e-6);
    assert!(stats.raw_bytes_per_sec() > 0.0);
}

#[test]
fn create_new_never_truncates_or_replaces_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(50);
    let write = |writer: &mut BackupWriter| {
        writer.append(&export(&store, None, &mut || false).chunk).unwrap();
    };
    let path = dir.path().join("b.tgb");
    // An earlier run's partial file is refused, and left byte for byte.
    fs::write(partial_path(&path), b"earlier").unwrap();
    assert!(matches!(BackupWriter::create_new(&path), Err(BackupError::Exists { .. })));
    assert_eq!(fs::read(partial_path(&path)).unwrap(), b"earlier");
    // A complete file is refused too.
    let done = dir.path().join("done.tgb");
    fs::write(&done, b"complete").unwrap();
    assert!(matches!(BackupWriter::create_new(&done), Err(BackupError::Exists { .. })));
    assert_eq!(fs::read(&done).unwrap(), b"complete");
    // A file that appears at the destination while the backup runs is not replaced.
    let raced = dir.path().join("raced.tgb");
    let mut writer = BackupWriter::create_new(&raced).unwrap();
    write(&mut writer);
    fs::write(&raced, b"someone else's").unwrap();
    assert!(matches!(writer.finish(), Err(BackupError::Exists { .. })));
    assert_eq!(fs::read(&raced).unwrap(), b"someone else's");
    // Without a collision it completes like `create`.
    let fresh = dir.path().join("fresh.tgb");
    let mut writer = BackupWriter::create_new(&fresh).unwrap();
    write(&mut writer);
    writer.finish().unwrap();
    assert_eq!(restore(&fresh).unwrap().entries.len(), 50);
    assert!(!partial_path(&fresh).exists());
}

#[test]
fn a_flipped_end_marker_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.tgb");
    backup_with(&store(20), &path, || u64::MAX);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let error = restore(&path).unwrap_err();
    assert!(matches!(error, RestoreError::BadEndMarker { offset } if offset == bytes.len() - 8), "{error}");
    assert!(error.to_string().contains("end marker at byte"), "{error}");
}

#[test]
fn an_unfinished_backup_reads_as_its_complete_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.tgb");
    let store = store(100);
    let mut writer = BackupWriter::create(&path).unwrap();
    let mut seen = 0;
    let outcome = export(&store, None, &mut || {
        seen += 1;
        seen >= 40
    });
    writer.append(&outcome.chunk).unwrap();
    let partial = writer.abandon().unwrap();
    let whole = PartialPrefix { keys: 40, chunks: 1, last_key: Some(Key(39)) };
    assert_eq!(read_partial(&partial).unwrap(), whole);
    // A second chunk cut short (a kill mid-write) is where it stopped.
    let mut bytes = fs::read(&partial).unwrap();
    bytes.extend_from_slice(&[CHUNK_TAG, 7, 0, 0]);
    fs::write(&partial, &bytes).unwrap();
    assert_eq!(read_partial(&partial).unwrap(), whole);
    // Cut inside the header: nothing written yet.
    fs::write(&partial, &MAGIC[..3]).unwrap();
    assert_eq!(read_partial(&partial).unwrap(), PartialPrefix::default());
    fs::write(&partial, b"not a backup").unwrap();
    assert!(matches!(read_partial(&partial), Err(RestoreError::BadMagic)));
}

#[test]
fn export_until_stops_before_its_end_key() {
    let store = store(10);
    let mut calls = 0;
    let first = export_until(&store, Some(Key(2)), Some(Key(7)), &mut || {
        calls += 1;
        calls == 3
    });
    assert_eq!((first.chunk.keys(), first.resume, first.end), (3, Some(Key(5)), ExportEnd::Preempted));
    let rest = export_until(&store, first.resume, Some(Key(7)), &mut || false);
    assert_eq!((rest.chunk.keys(), rest.resume, rest.end), (2, None, ExportEnd::Done));
    // Preempted on the range's last key: nothing is left, so the request is done.
    let last = export_until(&store, Some(Key(6)), Some(Key(7)), &mut || true);
    assert_eq!((last.chunk.keys(), last.resume, last.end), (1, None, ExportEnd::Done));
}

#[test]
fn restore_partial_gives_the_complete_chunks_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.tgb");
    let store = store(100);
    let mut writer = BackupWriter::create(&path).unwrap();
    let mut resume = Some(Key(0));
    for _ in 0..3 {
        let mut seen = 0;
        let outcome = export(&store, resume, &mut || {
            seen += 1;
            seen >= 20
        });
        writer.append(&outcome.chunk).unwrap();
        resume = outcome.resume;
    }
    let partial = writer.abandon().unwrap();
    // A fourth chunk cut short by a kill is not part of it.
    let mut bytes = std::fs::read(&partial).unwrap();
    bytes.extend_from_slice(&[CHUNK_TAG, 5, 0]);
    std::fs::write(&partial, &bytes).unwrap();
    let entries = restore_partial(&partial).unwrap();
    let expected: Vec<(Key, Value)> = (0..60).map(|k| (Key(k), store.get(Key(k)).unwrap())).collect();
    assert_eq!(entries.into_iter().collect::<Vec<_>>(), expected);
    assert_eq!(read_partial(&partial).unwrap().last_key, Some(Key(59)));
}
