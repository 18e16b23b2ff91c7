//! Jobs end to end on a real store and runtime.

use super::*;
use crate::workload::backup::verify;
use crate::workload::keyspace::KeyspaceConfig;

fn jobs(
    keys: u64,
    placement: Placement,
    runtime: &tokio::runtime::Runtime,
) -> (Jobs, Arc<Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::populate(&KeyspaceConfig { keys, mean_value_bytes: 40, seed: 9 }, 4));
    let settings = JobSettings {
        limiter: None,
        placement,
        os_priority: None,
        slice: Duration::from_millis(1),
        request: AcquireRequest::new().yield_every(Duration::from_micros(250)),
        backup_dir: dir.path().to_owned(),
        keep_backups: NonZeroUsize::new(backups::DEFAULT_KEEP).unwrap(),
    };
    (Jobs::new(Arc::clone(&store), settings, runtime.handle().clone(), &[]), store, dir)
}

#[test]
fn backups_in_both_placements_complete_verify_and_restore() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    for placement in [Placement::Threads, Placement::Runtime] {
        let (jobs, store, _dir) = jobs(3_000, placement, &runtime);
        let job = jobs.start(JobKind::Backup).unwrap();
        assert!(matches!(jobs.start(JobKind::Backup), Err(StartError::Busy { .. })) || job.is_finished());
        runtime.block_on(job.wait());
        let status = job.status();
        assert_eq!(
            (status.state, status.keys, status.fraction),
            (JobState::Completed, 3_000, 1.0),
            "{status:?}"
        );
        assert!(status.requests >= 1 && status.cpu_seconds > 0.0, "{status:?}");
        let path = job.completed_backup().unwrap();
        assert_eq!(verify(&path, &store).unwrap().keys, 3_000);

        // Change the store, restore, and it matches again.
        store.put(Key(5), b"changed".as_slice().into());
        store.remove(Key(6));
        store.put(Key(1_000_000), b"new".as_slice().into());
        assert!(verify(&path, &store).is_err());
        assert_eq!(restore_into(&path, &store).unwrap(), (3_000, 1));
        assert_eq!(verify(&path, &store).unwrap().keys, 3_000);
    }
}

#[test]
fn a_cancelled_backup_keeps_a_partial_file_restore_refuses_and_a_scan_stops() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let (jobs, _store, dir) = jobs(200_000, Placement::Runtime, &runtime);
    let job = jobs.start(JobKind::Backup).unwrap();
    let scan = jobs.start(JobKind::Scan).unwrap();
    job.cancel();
    scan.cancel();
    runtime.block_on(async {
        job.wait().await;
        scan.wait().await;
    });
    let status = job.status();
    if status.state == JobState::Cancelled {
        let partial = status.output.clone().unwrap();
        assert!(partial.to_string_lossy().ends_with(".partial"), "{status:?}");
        assert!(crate::workload::backup::restore(&partial).is_err());
        assert!(!dir.path().join("backup-1.tgbak").exists());
        assert!(job.completed_backup().is_none());
        assert!(status.resume_key.is_some());
    } else {
        assert_eq!(status.state, JobState::Completed, "{status:?}");
    }
    assert!(matches!(scan.status().state, JobState::Cancelled | JobState::Completed));
    // A new backup may start now; after shutdown none may.
    let again = jobs.start(JobKind::Backup).unwrap();
    assert_eq!(again.id(), 3);
    let running = jobs.shut_down();
    runtime.block_on(async {
        for job in running {
            job.wait().await;
        }
    });
    assert!(matches!(jobs.start(JobKind::Scan), Err(StartError::ShuttingDown)));
    assert_eq!(jobs.any_running(), None);
}
