//! An admitted request's slot: dropping the permit returns it.

use std::sync::Arc;
use std::thread::{self, ThreadId};
use std::time::Duration;

use super::caps::CapCharge;
use super::queue::Shared;
use super::request::TenantId;
use crate::clock::duration_nanos;

/// The right to run one request; dropping it frees the slot (and hands it to the next waiter).
///
/// A permit of a capped tenant charges the CPU the request used to the tenant's cap when it is
/// dropped: the thread CPU time between admission and drop for `admit`/`try_admit` permits
/// dropped on the admitting thread, or what [`charge_cpu`](Self::charge_cpu) reported. Permits
/// of uncapped tenants cost nothing extra unless `charge_cpu` is called (then the CPU shows in
/// the tenant's `total_cpu`).
///
/// A panic unwinding through the request drops the permit too, so its slot is never lost.
///
/// # Cost
///
/// When nobody waits, admission + release is a compare-and-swap and a `fetch_sub` on one
/// word, plus a relaxed counter and the `Arc` clone the permit holds: ~20 ns on the project's
/// 2-core VM (`benches/admission.rs`, `admission/admit_release/free_slot`).
#[must_use = "dropping the permit at once frees its slot"]
pub struct Permit {
    shared: Arc<Shared>,
    tenant: TenantId,
    cap: Option<CapCharge>,
    /// Thread and its CPU clock at admission, when the permit measures CPU itself.
    cpu_start: Option<(ThreadId, u64)>,
    /// CPU reported with `charge_cpu`; replaces the measurement.
    charged_nanos: Option<u64>,
}

impl Permit {
    /// A permit of the lock-free path: nothing to settle.
    #[inline]
    pub(crate) fn fast(shared: Arc<Shared>, tenant: TenantId) -> Self {
        Permit { shared, tenant, cap: None, cpu_start: None, charged_nanos: None }
    }

    /// A permit admitted under the lock; capped ones measure thread CPU if `measure`.
    pub(crate) fn locked(
        shared: Arc<Shared>,
        tenant: TenantId,
        cap: Option<CapCharge>,
        measure: bool,
    ) -> Self {
        let cpu_start =
            (cap.is_some() && measure).then(|| (thread::current().id(), shared.clock.thread_cpu_nanos()));
        Permit { shared, tenant, cap, cpu_start, charged_nanos: None }
    }

    /// The tenant the slot is charged to.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// Reports CPU the request used (adding to earlier reports). Once called, the permit
    /// charges the reported total instead of measuring the thread: use it for async requests
    /// (e.g. with [`TaskStats::estimated_cpu`](crate::observe::TaskStats::estimated_cpu)) and
    /// for requests whose work ran on other threads.
    pub fn charge_cpu(&mut self, cpu: Duration) {
        let total = self.charged_nanos.unwrap_or(0).saturating_add(duration_nanos(cpu));
        self.charged_nanos = Some(total);
    }

    /// CPU used so far as the permit would charge it now: the reported total, else the
    /// thread's CPU since admission (zero when not measured, or on another thread).
    pub fn cpu_used(&self) -> Duration {
        Duration::from_nanos(self.used_nanos())
    }

    fn used_nanos(&self) -> u64 {
        if let Some(charged) = self.charged_nanos {
            return charged;
        }
        match self.cpu_start {
            Some((thread, start)) if thread == thread::current().id() => {
                self.shared.clock.thread_cpu_nanos().saturating_sub(start)
            }
            _ => 0,
        }
    }
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        if self.cap.is_none() && self.charged_nanos.is_none() {
            self.shared.release_fast();
        } else {
            let used = self.used_nanos();
            self.shared.release_charged(self.tenant, self.cap, used);
        }
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("tenant", &self.tenant)
            .field("capped", &self.cap.is_some())
            .field("charged_nanos", &self.charged_nanos)
            .finish()
    }
}
