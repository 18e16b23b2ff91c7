//! Counters the elastic jobs bump as they work, read by the demo's sampler once per interval.
//!
//! The CPU of an elastic thread is read from the thread's own CPU clock at the moment the sampler
//! asks ([`ThreadCpuClock`]), not from a counter the thread bumps once per export request: a
//! request runs for a whole grant (100 ms of CPU), so a counter bumped at its end moves in steps
//! of a grant, and a 500 ms interval at a share of 0.6 of 2 cores (six grants) showed 0.1 of the
//! machine more or less than it used — the size of the adapt scenario's overrun goal.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tailguard::clock::{Clock, SystemClock, ThreadCpuClock, duration_nanos};

/// What the elastic work has done so far in one mode. Every counter is monotonically increasing
/// and never reset; the sampler takes differences.
#[derive(Debug, Default)]
pub struct ElasticMeter {
    /// CPU charged so far: by threads that have stopped accounting, by flushes where no thread
    /// clock can be read, and by [`add_cpu_nanos`](Self::add_cpu_nanos).
    cpu_nanos: AtomicU64,
    /// The accounting threads' clocks and each one's reading when it began.
    threads: Mutex<Vec<(ThreadCpuClock, u64)>>,
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

    /// Reads every counter, the CPU of accounting threads up to now.
    pub fn read(&self) -> MeterReading {
        // Under the lock, so that a thread that stops accounting is counted once: in the sum of
        // the live clocks or in `cpu_nanos`, never both and never neither.
        let threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        let live: u64 = threads
            .iter()
            .map(|(clock, base)| clock.elapsed().map_or(0, |now| duration_nanos(now).saturating_sub(*base)))
            .sum();
        MeterReading {
            cpu_nanos: self.cpu_nanos.load(Ordering::Relaxed) + live,
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

    /// A per-thread CPU accountant that charges this meter with the calling thread's CPU from
    /// now until it is dropped.
    pub fn cpu_account(&self) -> CpuAccount<'_> {
        let base = SystemClock.thread_cpu_nanos();
        let clock = ThreadCpuClock::current();
        if let Some(clock) = clock {
            self.threads.lock().unwrap_or_else(|e| e.into_inner()).push((clock, base));
        }
        CpuAccount { meter: self, clock, last_nanos: base }
    }
}

/// Charges the calling thread's CPU time to a meter. Where the thread's clock can be read from
/// another thread (Linux), the meter reads it whenever it is read; elsewhere the thread charges
/// its CPU in increments, at each [`flush`](Self::flush). Lives on one thread: the thread CPU
/// clock is per thread.
#[derive(Debug)]
pub struct CpuAccount<'a> {
    meter: &'a ElasticMeter,
    /// This thread's clock, registered with the meter.
    clock: Option<ThreadCpuClock>,
    last_nanos: u64,
}

impl CpuAccount<'_> {
    /// Charges the CPU used by this thread since the last flush where the meter cannot read the
    /// thread's clock itself (then a system call: call it once per export request or every few
    /// milliseconds of work, not per key); does nothing where it can.
    pub fn flush(&mut self) {
        if self.clock.is_none() {
            self.charge_since_last();
        }
    }

    fn charge_since_last(&mut self) {
        let now = SystemClock.thread_cpu_nanos();
        self.meter.add_cpu_nanos(now.saturating_sub(self.last_nanos));
        self.last_nanos = now;
    }
}

impl Drop for CpuAccount<'_> {
    fn drop(&mut self) {
        let Some(clock) = self.clock else { return self.charge_since_last() };
        let mut threads = self.meter.threads.lock().unwrap_or_else(|e| e.into_inner());
        // Charged and deregistered under the lock the meter's reads take.
        let entry = (clock, self.last_nanos);
        self.charge_since_last();
        if let Some(at) = threads.iter().position(|registered| *registered == entry) {
            threads.swap_remove(at);
        }
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
            assert!(meter.read().cpu_nanos > 0, "read while the thread accounts");
        }
        let r = meter.read();
        assert_eq!((r.keys, r.bytes, r.requests, r.preemptions), (10, 400, 2, 1));
        assert!(r.cpu_nanos > 0);
    }

    /// The meter reads a working thread's CPU while it works, between two of the thread's own
    /// readings, and keeps it, once, after the thread stops accounting.
    #[test]
    fn meter_reads_an_accounting_thread_while_it_works() {
        use std::sync::mpsc::channel;
        let meter = std::sync::Arc::new(ElasticMeter::default());
        let (to_main, from_worker) = channel();
        let (to_worker, from_main) = channel::<()>();
        let worker = {
            let meter = std::sync::Arc::clone(&meter);
            std::thread::spawn(move || {
                let account = meter.cpu_account();
                let mut x = 0u64;
                for i in 0..500_000u64 {
                    x = x.wrapping_mul(31).wrapping_add(i);
                }
                std::hint::black_box(x);
                to_main.send(SystemClock.thread_cpu_nanos() - account.last_nanos).unwrap();
                from_main.recv().unwrap();
                let used = SystemClock.thread_cpu_nanos() - account.last_nanos;
                drop(account);
                used
            })
        };
        let before = from_worker.recv().unwrap();
        let read = meter.read().cpu_nanos;
        to_worker.send(()).unwrap();
        let after = worker.join().unwrap();
        if cfg!(target_os = "linux") {
            assert!(before <= read && read <= after, "{before} <= {read} <= {after}");
        } else {
            assert_eq!(read, 0, "charged only at flushes");
        }
        let done = meter.read().cpu_nanos;
        assert!(after <= done, "the stopped thread's CPU is kept: {after} <= {done}");
        assert!(meter.threads.lock().unwrap().is_empty());
    }
}
