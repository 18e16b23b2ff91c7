//! Sampling on demand: a probe fires at its full rate while something needs the signal, and at
//! a low idle rate while nothing does.
//!
//! On the project's VMs every wake of a sleeping thread costs 10–20 µs of CPU, so a 1 kHz probe
//! costs an idle service ~3–6 % of a core around the clock, to protect a latency that nothing
//! threatens. The elastic limiter knows when its signal matters: while elastic work asks for
//! grants or waits for them. A [`SamplingDemand`] carries that knowledge to the probe. A
//! limiter steering by a [`ProbeSignal`] raises the demand the moment work asks for CPU (the
//! probe fires at once and resumes its full rate) and lowers it once no work has asked for
//! [`SAMPLING_LINGER`]. Nothing else lowers it, so a probe nobody steers by keeps its full rate.
//!
//! When the demand rises, the window holds only the idle rate's few samples. The signal counts
//! as *primed* once [`PRIME_SAMPLES`] samples arrived at the full rate (100 ms at 1 kHz); until
//! then the limiter holds its share instead of steering by a thin window.
//!
//! # Cost
//!
//! [`SamplingDemand::is_wanted`] is one relaxed load; raising the demand is a swap and, when it
//! was lowered, one unpark of the probe thread. `scripts/idle-cost.sh` measures an idle
//! `tailguard serve`: README, "What the signal costs".

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use crate::histogram::WindowedHistogram;

/// Samples at the full rate after which a signal whose demand rose counts as primed.
pub const PRIME_SAMPLES: u64 = 100;
/// How long after elastic work last asked for CPU a limiter lowers its signal's demand.
pub const SAMPLING_LINGER: Duration = Duration::from_secs(2);

/// Whether a probe should sample at its full rate; shared by the probe and whoever steers by it.
///
/// Cheap to clone; clones share one demand. A new demand is raised: the probe starts at its
/// full rate.
#[derive(Clone, Debug)]
pub struct SamplingDemand {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    wanted: AtomicBool,
    /// Samples recorded so far (by the probe).
    samples: AtomicU64,
    /// `samples` from which the signal is primed: [`PRIME_SAMPLES`] after the demand last rose.
    primed_at_samples: AtomicU64,
    /// The probe's thread, unparked when the demand rises.
    thread: OnceLock<Thread>,
}

impl SamplingDemand {
    /// A raised demand, with no probe attached yet.
    pub fn new() -> Self {
        SamplingDemand {
            inner: Arc::new(Inner {
                wanted: AtomicBool::new(true),
                samples: AtomicU64::new(0),
                primed_at_samples: AtomicU64::new(0),
                thread: OnceLock::new(),
            }),
        }
    }

    /// Raises (`true`) or lowers the demand. Raising it wakes the probe, which fires at once.
    pub fn set_wanted(&self, wanted: bool) {
        let was = self.inner.wanted.swap(wanted, Ordering::AcqRel);
        if wanted && !was {
            let samples = self.inner.samples.load(Ordering::Relaxed);
            self.inner.primed_at_samples.store(samples + PRIME_SAMPLES, Ordering::Relaxed);
            if let Some(thread) = self.inner.thread.get() {
                thread.unpark();
            }
        }
    }

    /// Whether the probe should sample at its full rate.
    #[inline]
    pub fn is_wanted(&self) -> bool {
        self.inner.wanted.load(Ordering::Acquire)
    }

    /// Whether the signal is fit to steer by: the demand is raised and [`PRIME_SAMPLES`] samples
    /// arrived since it rose (a demand raised from the start is primed at once).
    pub fn is_primed(&self) -> bool {
        self.is_wanted()
            && self.inner.samples.load(Ordering::Relaxed)
                >= self.inner.primed_at_samples.load(Ordering::Relaxed)
    }

    /// Counts one sample recorded by the probe.
    #[inline]
    #[cfg_attr(
        not(any(feature = "tokio", test)),
        expect(dead_code, reason = "only the runtime probe samples")
    )]
    pub(crate) fn sampled(&self) {
        self.inner.samples.fetch_add(1, Ordering::Relaxed);
    }

    /// Names the thread to unpark when the demand rises.
    #[cfg_attr(
        not(any(feature = "tokio", test)),
        expect(dead_code, reason = "only the runtime probe samples")
    )]
    pub(crate) fn attach(&self, thread: Thread) {
        let _ = self.inner.thread.set(thread);
    }
}

impl Default for SamplingDemand {
    fn default() -> Self {
        Self::new()
    }
}

/// A probe's window together with its demand: what a limiter steers by to sample on demand
/// ([`LimiterBuilder::latency_signal`](crate::elastic::LimiterBuilder::latency_signal)). Made
/// by [`RuntimeProbe::signal`](super::RuntimeProbe::signal).
#[derive(Clone, Debug)]
pub struct ProbeSignal {
    /// The probe's samples.
    pub window: Arc<WindowedHistogram>,
    /// The probe's demand.
    pub demand: SamplingDemand,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primed_from_the_start_and_again_after_enough_samples_at_full_rate() {
        let demand = SamplingDemand::new();
        assert!(demand.is_wanted() && demand.is_primed(), "a new demand is raised and primed");
        demand.sampled();
        demand.set_wanted(false);
        assert!(!demand.is_wanted() && !demand.is_primed());
        for _ in 0..10 {
            demand.sampled(); // the idle rate's samples count for nothing
        }
        demand.set_wanted(true);
        assert!(!demand.is_primed());
        for _ in 0..PRIME_SAMPLES - 1 {
            demand.sampled();
        }
        assert!(!demand.is_primed());
        demand.sampled();
        assert!(demand.is_primed());
        // Raising a raised demand does not restart priming.
        demand.set_wanted(true);
        assert!(demand.is_primed());
    }

    #[test]
    fn raising_unparks_the_attached_thread() {
        let demand = SamplingDemand::new();
        demand.set_wanted(false);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let demand = demand.clone();
            std::thread::spawn(move || {
                tx.send(()).unwrap();
                // Parks until unparked by the raise (a spurious wake-up just loops).
                while !demand.is_wanted() {
                    std::thread::park();
                }
            })
        };
        demand.attach(waiter.thread().clone());
        rx.recv().unwrap();
        demand.set_wanted(true);
        waiter.join().unwrap();
    }
}
