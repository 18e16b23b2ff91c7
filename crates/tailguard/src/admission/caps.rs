//! Tenant CPU caps: a capped tenant's share of the machine as a CPU budget
//! ([`crate::budget::TokenBucket`]), charged with a moving estimate per request at admission and
//! settled against the CPU measured at release.

use super::request::TenantId;
use super::retired::Kept;
use crate::budget::TokenBucket;

/// Weight of a new CPU measurement in a capped tenant's per-request estimate (1/8, an EWMA).
const ESTIMATE_SHIFT: u32 = 3;

/// The bit of a tenant in the capped-tenants filter (a one-word Bloom filter).
#[inline]
pub(super) fn tenant_bit(tenant: TenantId) -> u64 {
    1 << (tenant.0 % 64)
}

/// What the work queue keeps per tenant besides its place in line.
#[derive(Default)]
pub(super) struct TenantLedger {
    pub(super) cap: Option<Cap>,
    /// CPU and permits charged to the tenant. Monotonically increasing, never reset: they move
    /// to the queue's [`Retired`](super::retired::Retired) table while the tenant is not
    /// tracked.
    pub(super) totals: Kept,
}

/// A tenant's CPU cap: a token bucket filled at `share × cores`.
pub(super) struct Cap {
    pub(super) share: f64,
    pub(super) bucket: TokenBucket,
    /// Moving estimate of the CPU one request uses, taken from the bucket at admission and
    /// settled against the measurement at release (as a grant is).
    estimate_nanos: u64,
    /// Which cap this is: a charge taken from a replaced cap is not settled into its successor.
    generation: u64,
}

/// What a capped tenant's admission took from its CPU bucket (the tenant's estimate of one
/// request's CPU), settled against the measured CPU at release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CapCharge {
    /// Which cap it was taken from (a replaced cap is not settled).
    generation: u64,
    estimate_nanos: u64,
}

impl Cap {
    /// A full bucket at `share` of `cores`, keeping the estimate of the cap it replaces.
    pub(super) fn new(share: f64, cores: f64, estimate_nanos: u64, generation: u64, now: u64) -> Self {
        Cap { share, bucket: TokenBucket::new(share * cores, now), estimate_nanos, generation }
    }

    /// The per-request estimate, carried over when the cap is replaced.
    pub(super) fn estimate_nanos(&self) -> u64 {
        self.estimate_nanos
    }

    /// Whether a request of the tenant may be admitted now: the balance is above zero.
    #[inline]
    pub(super) fn eligible(&mut self, now: u64) -> bool {
        self.bucket.refill(now);
        self.bucket.balance_nanos() > 0
    }

    /// Takes the estimate of one request from the bucket, for a request admitted now.
    pub(super) fn charge(&mut self, now: u64) -> CapCharge {
        self.bucket.try_take(self.estimate_nanos, now);
        CapCharge { generation: self.generation, estimate_nanos: self.estimate_nanos }
    }

    /// Settles a released request's charge against the CPU it used, and moves the estimate
    /// toward that measurement. A charge of an earlier cap is ignored.
    pub(super) fn settle(&mut self, charge: CapCharge, used_nanos: u64, now: u64) {
        if charge.generation != self.generation {
            return;
        }
        self.bucket.settle(charge.estimate_nanos, used_nanos, now);
        let estimate = self.estimate_nanos as i128;
        let step = (i128::from(used_nanos) - estimate) >> ESTIMATE_SHIFT;
        // Between 0 and max(estimate, used): fits in u64.
        self.estimate_nanos = if estimate == 0 { used_nanos } else { (estimate + step) as u64 };
    }

    /// Gives back a charge whose request never ran (admitted, then cancelled).
    pub(super) fn refund(&mut self, charge: CapCharge, now: u64) {
        if charge.generation == self.generation {
            self.bucket.refund(charge.estimate_nanos, now);
        }
    }
}
