//! The slot count following the run-queue signal: scripted samples, the sampler thread, the signals.

use super::*;

#[test]
fn slots_follow_a_scripted_run_queue() {
    let clock = ManualClock::new();
    let queue = queue_with(&clock, 2, 1, 4, QueueOrder::Fifo);
    let mut held = Vec::new();
    // (runnable per CPU, permits to hold during the sample, slots expected after it)
    let script: &[(f64, usize, u32)] = &[
        (1.0, 0, 2),  // short run queue, slots to spare: unchanged
        (1.0, 2, 3),  // short run queue, all slots used: one more
        (16.0, 3, 4), // at half the threshold: still underloaded
        (16.0, 4, 4), // at the maximum
        (20.0, 4, 4), // between half and the threshold: unchanged
        (32.0, 4, 3), // overloaded with slots in use: one fewer per sample
        (50.0, 4, 3), // more in use than slots: an earlier decrease is pending, hold off
        (50.0, 3, 2), //
        (50.0, 0, 2), // nothing admitted: the overload is not ours
        (50.0, 1, 1), //
        (50.0, 1, 1), // at the minimum
        (0.0, 1, 2),  // back up by one per sample
    ];
    for (i, &(runnable, hold, expected)) in script.iter().enumerate() {
        held.truncate(hold);
        while held.len() < hold {
            held.push(queue.try_admit(&Request::new()).expect("the script holds at most `slots` permits"));
        }
        assert_eq!(queue.record_sample(runnable), expected, "row {i}");
        assert_eq!(queue.slots(), expected, "row {i}");
    }
    let snapshot = queue.snapshot();
    assert_eq!(snapshot.total_samples, script.len() as u64);
    assert_eq!((snapshot.total_slot_increases, snapshot.total_slot_decreases), (3, 3));
    assert_eq!(snapshot.runnable_per_cpu, Some(0.0));
}

#[test]
fn a_slot_decrease_stops_admission_until_use_drops_below_it() {
    let clock = ManualClock::new();
    let queue = queue_with(&clock, 2, 1, 2, QueueOrder::Fifo);
    let a = queue.try_admit(&Request::new()).unwrap();
    let b = queue.try_admit(&Request::new()).unwrap();
    assert_eq!(queue.record_sample(100.0), 1);
    drop(a);
    // One in use, one slot: full.
    assert_eq!(queue.try_admit(&Request::new()).unwrap_err(), AdmitError::WouldBlock);
    drop(b);
    let c = queue.try_admit(&Request::new()).unwrap();
    assert_eq!(queue.used(), 1);
    drop(c);
}

#[test]
fn the_sampler_thread_moves_slots_from_its_signal() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    // The signal reads a scripted value (f64 bits); the test changes it.
    let value = Arc::new(AtomicU64::new(100f64.to_bits()));
    let signal = {
        let value = value.clone();
        move || Some(f64::from_bits(value.load(Ordering::Relaxed)))
    };
    let config =
        WorkQueueConfig { initial_slots: 3, min_slots: 1, max_slots: 3, cores: 1.0, ..Default::default() };
    let queue = WorkQueue::start(config, signal).unwrap();
    let held = queue.admit(&Request::new()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while queue.slots() > 1 {
        assert!(std::time::Instant::now() < deadline, "overload never lowered the slots");
        std::thread::sleep(MS);
    }
    // Saturated and a short run queue: back up.
    value.store(0f64.to_bits(), Ordering::Relaxed);
    let more = queue.admit(&Request::new()).unwrap(); // waits until the sampler adds a slot
    assert!(queue.slots() >= 2);
    drop((held, more));
    let snapshot = queue.snapshot();
    assert!(snapshot.total_samples >= 3 && snapshot.total_slot_decreases >= 2);
    drop(queue); // joins the sampler thread
}

#[test]
fn os_signal_reads_the_run_queue_where_proc_exists() {
    let mut signal = OsRunQueue::new(2.0);
    let reading = signal.runnable_per_cpu();
    assert_eq!(reading.is_some(), std::fs::metadata(crate::observe::run_queue::LOADAVG_PATH).is_ok());
    assert!(reading.is_none_or(|r| r >= 0.0));
}

#[test]
fn sampled_signal_averages_an_observe_sampler_between_reads() {
    use crate::observe::{RunQueueConfig, RunQueueSampler};
    let config = RunQueueConfig { rate_hz: 2_000, tick: Duration::from_millis(5) };
    let sampler = std::sync::Arc::new(RunQueueSampler::start(config).unwrap());
    let mut signal = SampledRunQueue::new(sampler.clone(), 2.0);
    if std::fs::metadata(crate::observe::run_queue::LOADAVG_PATH).is_err() {
        return; // no OS run queue to read here
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let reading = loop {
        if let Some(reading) = signal.runnable_per_cpu() {
            break reading;
        }
        assert!(std::time::Instant::now() < deadline, "the sampler took no sample");
        std::thread::sleep(MS);
    };
    assert!(reading >= 0.0);
    // Nothing new between two immediate reads is `None` (most of the time) or a fresh average.
    assert!(signal.runnable_per_cpu().is_none_or(|r| r >= 0.0));
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_signal_reads_the_runtime_queue() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let mut signal = TokioRunQueue::new(runtime.handle(), 2.0);
    assert!(signal.runnable_per_cpu().is_some_and(|r| r >= 0.0));
    let config = WorkQueueConfig { cores: 2.0, initial_slots: 2, ..Default::default() };
    let queue = WorkQueue::start_with_runtime(config, runtime.handle()).unwrap();
    let permit = runtime.block_on(queue.admit_async(&Request::new())).unwrap();
    drop(permit);
    queue.stop();
}

#[test]
fn count_admitted_adds_slots_in_use_per_core_to_the_signal() {
    let clock = ManualClock::new();
    let config = |count_admitted| WorkQueueConfig {
        initial_slots: 4,
        min_slots: 1,
        max_slots: 100,
        overload_threshold: 4.0,
        cores: 2.0,
        count_admitted,
        ..WorkQueueConfig::default()
    };
    let counting = WorkQueue::new(config(true), clock.shared()).unwrap();
    let plain = WorkQueue::new(config(false), clock.shared()).unwrap();
    let mut held = Vec::new();
    for queue in [&counting, &plain] {
        for _ in 0..4 {
            held.push(queue.try_admit(&Request::new()).unwrap());
        }
    }
    // 4 admitted over 2 cores count as 2 runnable: at half the threshold, all slots used: +1.
    assert_eq!(counting.record_sample(0.0), 5);
    held.push(counting.try_admit(&Request::new()).unwrap());
    // 1.5 + 5 / 2 = 4.0 reaches the threshold: -1. Without counting, 1.5 is underloaded: +1.
    assert_eq!(counting.record_sample(1.5), 4);
    assert_eq!(plain.record_sample(1.5), 5);
    assert_eq!(counting.snapshot().runnable_per_cpu, Some(4.0));
}
