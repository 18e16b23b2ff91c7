//! Counters the elastic jobs bump as they work, read by the demo's sampler once per interval.

use std::sync::atomic::{AtomicU64, Ordering};

use tailguard::clock::{Clock, SystemClock};

/// What the elastic work has done so far in one mode. Every counter is monotonically increasing
/// and never reset; the sampler takes differences.
#[derive(Debug, Default)]
pub struct ElasticMeter {
    cpu_nanos: AtomicU64,
    keys: AtomicU64,
    scan_keys: AtomicU64,
    bytes: AtomicU64,
    requests: AtomicU64,
    preemptions: AtomicU64,
}

/// A copy of an [`ElasticMeter`]'s counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MeterReading {
    /// CPU time used by elastic work, in nanoseconds.
    pub cpu_nanos: u64,
    /// Keys exported by backups.
    pub keys: u64,
    /// Keys walked by catch-up scans.
    pub scan_keys: u64,
    /// Compressed bytes written to backup files.
    pub bytes: u64,
    /// Export requests issued.
    pub requests: u64,
    /// Export requests that stopped before the end of their range.
    pub preemptions: u64,
}

impl MeterReading {
    /// The counts since `earlier`.
    pub fn since(&self, earlier: &MeterReading) -> MeterReading {
        MeterReading {
            cpu_nanos: self.cpu_nanos - earlier.cpu_nanos,
            keys: self.keys - earlier.keys,
            scan_keys: self.scan_keys - earlier.scan_keys,
            bytes: self.bytes - earlier.bytes,
            requests: self.requests - earlier.requests,
            preemptions: self.preemptions - earlier.preemptions,
        }
    }
}

impl ElasticMeter {
    /// Adds keys walked by a catch-up scan.
    pub fn add_scanned(&self, keys: u64) {
        self.scan_keys.fetch_add(keys, Ordering::Relaxed);
    }

    /// Adds backup work done.
    pub fn add_work(&self, keys: u64, bytes: u64) {
        self.keys.fetch_add(keys, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts export requests, and how many of them were preempted.
    pub fn add_requests(&self, requests: u64, preempted: u64) {
        self.requests.fetch_add(requests, Ordering::Relaxed);
        self.preemptions.fetch_add(preempted, Ordering::Relaxed);
    }

    /// Reads every counter.
    pub fn read(&self) -> MeterReading {
        MeterReading {
            cpu_nanos: self.cpu_nanos.load(Ordering::Relaxed),
            keys: self.keys.load(Ordering::Relaxed),
            scan_keys: self.scan_keys.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            preemptions: self.preemptions.load(Ordering::Relaxed),
        }
    }

    /// Charges CPU time measured by the caller (e.g. across one poll of an elastic task).
    pub fn add_cpu_nanos(&self, nanos: u64) {
        self.cpu_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// A per-thread CPU accountant that charges this meter.
    pub fn cpu_account(&self) -> CpuAccount<'_> {
        CpuAccount { meter: self, last_nanos: SystemClock.thread_cpu_nanos() }
    }
}

/// Charges the calling thread's CPU time to a meter, in increments, each time it is flushed.
/// Lives on one thread: the thread CPU clock is per thread.
#[derive(Debug)]
pub struct CpuAccount<'a> {
    meter: &'a ElasticMeter,
    last_nanos: u64,
}

impl CpuAccount<'_> {
    /// Charges the CPU used by this thread since the last flush (a system call: call it once per
    /// export request or every few milliseconds of work, not per key).
    pub fn flush(&mut self) {
        let now = SystemClock.thread_cpu_nanos();
        self.meter.add_cpu_nanos(now.saturating_sub(self.last_nanos));
        self.last_nanos = now;
    }
}

impl Drop for CpuAccount<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_counts_and_charges_cpu() {
        let meter = ElasticMeter::default();
        meter.add_work(10, 400);
        meter.add_requests(2, 1);
        {
            let mut account = meter.cpu_account();
            let mut x = 0u64;
            for i in 0..3_000_000u64 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
            }
            std::hint::black_box(x);
            account.flush();
        }
        let r = meter.read();
        assert_eq!((r.keys, r.bytes, r.requests, r.preemptions), (10, 400, 2, 1));
        assert!(r.cpu_nanos > 0);
    }
}
