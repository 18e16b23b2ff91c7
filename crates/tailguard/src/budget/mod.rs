//! The CPU budget that the elastic limiter and the admission queue's tenant caps both spend:
//! a [`TokenBucket`] of CPU nanoseconds, and the [cores](detected_cores) a share is a fraction of
//! ([`CpuLimit`]: the affinity mask, a cgroup CPU quota or a cpuset, whichever is smallest).
//!
//! A share of the machine becomes a fill rate of `share × cores` CPU-nanoseconds per
//! wall-nanosecond; the capacity is one second of fill (DESIGN §8: no burst beyond it). A grant
//! is handed out whenever the balance is above zero, so the balance may dip by at most one
//! grant below zero; over-use reported when a grant is settled becomes debt, kept exact, that
//! later grants wait out. The bucket is a plain value: its owner keeps it under a lock and
//! passes the time in, so it is deterministic and tested without a clock.
//!
//! ```
//! use tailguard::budget::TokenBucket;
//!
//! const MS: u64 = 1_000_000;
//! // 25 % of 2 cores: 0.5 CPU-nanoseconds per nanosecond, 500 ms of CPU when full.
//! let mut bucket = TokenBucket::new(0.25 * 2.0, 0);
//! assert!(bucket.try_take(100 * MS, 0));
//! bucket.settle(100 * MS, 130 * MS, 0); // 30 ms over the grant: charged in full
//! assert_eq!(bucket.balance_nanos(), 370 * MS as i64);
//! ```
//!
//! # Costs
//!
//! Every operation is a few floating-point and integer operations on the caller's value, no
//! atomics and no clock read. Why debt is exact and a cut forfeits the balance is in
//! `docs/design-notes.md` ("The CPU budget").

pub mod cgroup;
pub mod idle_cgroup;

pub use cgroup::{CpuLimit, CpuLimitSource};
pub use idle_cgroup::IdleCgroup;

/// CPU-time token bucket. All amounts are CPU nanoseconds; `now_nanos` is wall time.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    /// CPU nanoseconds added per wall nanosecond (share × cores).
    rate: f64,
    /// Wall nanoseconds of fill the bucket holds (one second unless made with
    /// [`with_capacity`](Self::with_capacity)).
    capacity_span_nanos: f64,
    capacity_nanos: i64,
    balance_nanos: i64,
    last_refill_nanos: u64,
    /// Sub-nanosecond remainder of the last refill, so slow rates do not lose tokens.
    carry: f64,
}

impl TokenBucket {
    /// A full bucket filling at `rate` CPU-nanoseconds per wall-nanosecond.
    pub fn new(rate: f64, now_nanos: u64) -> Self {
        Self::with_capacity(rate, std::time::Duration::from_secs(1), now_nanos)
    }

    /// A full bucket filling at `rate` that holds `span` of fill (at least 1 ns of CPU): the
    /// most work may run above the rate after it paused. [`new`](Self::new) holds one second.
    pub fn with_capacity(rate: f64, span: std::time::Duration, now_nanos: u64) -> Self {
        let capacity_span_nanos = span.as_nanos() as f64;
        let capacity_nanos = capacity_for(rate, capacity_span_nanos);
        TokenBucket {
            rate,
            capacity_span_nanos,
            capacity_nanos,
            balance_nanos: capacity_nanos,
            last_refill_nanos: now_nanos,
            carry: 0.0,
        }
    }

    /// Adds what accrued since the last refill, up to the capacity.
    pub fn refill(&mut self, now_nanos: u64) {
        let elapsed = now_nanos.saturating_sub(self.last_refill_nanos);
        self.last_refill_nanos = self.last_refill_nanos.max(now_nanos);
        if elapsed == 0 {
            return;
        }
        let accrued = elapsed as f64 * self.rate + self.carry;
        let whole = accrued.floor();
        self.carry = accrued - whole;
        // Saturating float-to-int conversion; `whole` is non-negative.
        let add = whole as i64;
        self.balance_nanos = self.balance_nanos.saturating_add(add).min(self.capacity_nanos);
        if self.balance_nanos == self.capacity_nanos {
            self.carry = 0.0;
        }
    }

    /// Changes the fill rate from now on (refilling at the old rate first); the capacity
    /// follows, and a balance above the new capacity is trimmed to it (debt stays whole).
    pub fn set_rate(&mut self, rate: f64, now_nanos: u64) {
        self.refill(now_nanos);
        self.rate = rate;
        self.capacity_nanos = capacity_for(rate, self.capacity_span_nanos);
        self.balance_nanos = self.balance_nanos.min(self.capacity_nanos);
    }

    /// Takes `grant_nanos` if the balance is above zero (it may then go negative by at most
    /// that grant). Returns whether the grant was taken.
    pub fn try_take(&mut self, grant_nanos: u64, now_nanos: u64) -> bool {
        self.refill(now_nanos);
        if self.balance_nanos <= 0 {
            return false;
        }
        self.balance_nanos -= i64::try_from(grant_nanos).unwrap_or(i64::MAX);
        true
    }

    /// Settles a finished grant: unused CPU is returned (up to the capacity), over-use is
    /// charged as debt, in full.
    pub fn settle(&mut self, granted_nanos: u64, used_nanos: u64, now_nanos: u64) {
        self.refill(now_nanos);
        let diff = i128::from(used_nanos) - i128::from(granted_nanos);
        let balance = (i128::from(self.balance_nanos) - diff).min(i128::from(self.capacity_nanos));
        // Saturates only past ~292 years of debt.
        self.balance_nanos = balance.max(i128::from(i64::MIN)) as i64;
    }

    /// Forfeits the unspent part of the balance (a balance below zero, debt, stays): after a
    /// cut, elastic work must not go on spending the allotment of the share it had before.
    pub fn forfeit(&mut self, now_nanos: u64) {
        self.refill(now_nanos);
        self.balance_nanos = self.balance_nanos.min(0);
    }

    /// Returns `refund_nanos` of an untouched grant (a waiter that gave up after being granted).
    pub fn refund(&mut self, refund_nanos: u64, now_nanos: u64) {
        self.settle(refund_nanos, 0, now_nanos);
    }

    /// Wall nanoseconds from the last refill until the balance is above zero (0 if it is).
    pub fn nanos_until_positive(&self) -> u64 {
        if self.balance_nanos > 0 {
            return 0;
        }
        let deficit = (-self.balance_nanos) as f64 + 1.0 - self.carry;
        (deficit / self.rate).ceil().min(u64::MAX as f64) as u64
    }

    /// Current balance (negative: debt), as of the last refill.
    pub fn balance_nanos(&self) -> i64 {
        self.balance_nanos
    }

    /// Capacity: one second of fill.
    pub fn capacity_nanos(&self) -> i64 {
        self.capacity_nanos
    }

    /// Fill rate in CPU nanoseconds per wall nanosecond.
    pub fn rate(&self) -> f64 {
        self.rate
    }
}

/// Cores available to this process, possibly fractional: the smallest of its affinity mask,
/// its cgroup's CPU quota (v2 or v1) and its cpuset ([`CpuLimit::detect`], which also says
/// which one binds). Costs a few file reads: read it once, at configuration.
pub fn detected_cores() -> f64 {
    CpuLimit::detect().cores
}

fn capacity_for(rate: f64, span_nanos: f64) -> i64 {
    // At most 4096 cores over minutes: fits in i64 with room to spare.
    (rate * span_nanos).max(1.0) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn fills_at_share_times_cores_up_to_one_second() {
        // 25 % of 2 cores: 0.5 CPU-ns per ns, capacity 0.5 s of CPU.
        let mut bucket = TokenBucket::new(0.5, 0);
        assert_eq!(bucket.capacity_nanos(), 500 * MS as i64);
        assert!(bucket.try_take(500 * MS, 0));
        assert_eq!(bucket.balance_nanos(), 0);
        assert!(!bucket.try_take(MS, 0));
        bucket.refill(100 * MS);
        assert_eq!(bucket.balance_nanos(), 50 * MS as i64);
        bucket.refill(10_000 * MS);
        assert_eq!(bucket.balance_nanos(), 500 * MS as i64);
    }

    #[test]
    fn grants_while_positive_then_waits_for_deficit() {
        let mut bucket = TokenBucket::new(0.5, 0);
        assert!(bucket.try_take(400 * MS, 0));
        assert!(bucket.try_take(400 * MS, 0)); // 100 ms left: granted, 300 ms of debt
        assert_eq!(bucket.balance_nanos(), -300 * MS as i64);
        assert!(!bucket.try_take(MS, 0));
        // 300 ms of CPU debt at 0.5 CPU-ns/ns: positive after 600 ms (+1 ns) of wall time.
        assert_eq!(bucket.nanos_until_positive(), 600 * MS + 2);
        assert!(!bucket.try_take(MS, 600 * MS));
        assert!(bucket.try_take(MS, 600 * MS + 2));
    }

    #[test]
    fn settle_refunds_up_to_capacity_and_charges_debt_exactly() {
        let mut bucket = TokenBucket::new(1.0, 0);
        assert!(bucket.try_take(100 * MS, 0));
        bucket.settle(100 * MS, 30 * MS, 0);
        assert_eq!(bucket.balance_nanos(), 970 * MS as i64);
        bucket.settle(100 * MS, 5_000 * MS, 0); // runaway over-use: all of it is debt
        assert_eq!(bucket.balance_nanos(), -3_930 * MS as i64);
        bucket.refund(5_000 * MS, 0);
        assert_eq!(bucket.balance_nanos(), 1_000 * MS as i64);
    }

    #[test]
    fn a_grant_larger_than_the_bucket_is_paid_back_in_full() {
        // One core at a 5 % share holds 50 ms; a 100 ms grant used to 120 ms leaves 70 ms of
        // debt, whatever the capacity, and a cut of the rate keeps it.
        let mut bucket = TokenBucket::new(0.05, 0);
        assert!(bucket.try_take(100 * MS, 0));
        bucket.settle(100 * MS, 120 * MS, 0);
        assert_eq!(bucket.balance_nanos(), -70 * MS as i64);
        bucket.set_rate(0.01, 0);
        assert_eq!(bucket.balance_nanos(), -70 * MS as i64);
        // 70 ms of debt at 0.01 CPU-ns per ns: 7 s (+1 ns) of wall time.
        assert_eq!(bucket.nanos_until_positive(), 7_000 * MS + 100);
    }

    #[test]
    fn forfeit_drops_the_unspent_balance_and_keeps_debt() {
        let mut bucket = TokenBucket::new(0.5, 0);
        bucket.forfeit(0);
        assert_eq!(bucket.balance_nanos(), 0);
        assert!(bucket.try_take(100, 10));
        bucket.settle(100, 400, 10);
        let debt = bucket.balance_nanos();
        assert!(debt < 0, "{debt}");
        bucket.forfeit(10);
        assert_eq!(bucket.balance_nanos(), debt);
    }

    #[test]
    fn a_shorter_capacity_holds_less_fill_and_keeps_it_across_rate_changes() {
        // 0.5 CPU-ns per ns holding 100 ms of fill: 50 ms of CPU when full.
        let mut bucket = TokenBucket::with_capacity(0.5, std::time::Duration::from_millis(100), 0);
        assert_eq!(bucket.capacity_nanos(), 50 * MS as i64);
        bucket.refill(10_000 * MS);
        assert_eq!(bucket.balance_nanos(), 50 * MS as i64);
        bucket.set_rate(1.0, 10_000 * MS);
        assert_eq!(bucket.capacity_nanos(), 100 * MS as i64);
        // A grant larger than the capacity is still handed out, and its debt waited out at the
        // rate: 50 ms held, 200 ms taken, 150 ms at 1 CPU-ns per ns.
        assert!(bucket.try_take(200 * MS, 10_000 * MS));
        assert_eq!(bucket.nanos_until_positive(), 150 * MS + 1);
    }

    #[test]
    fn rate_change_trims_the_balance_to_the_new_capacity() {
        let mut bucket = TokenBucket::new(1.0, 0);
        bucket.set_rate(0.1, 0);
        assert_eq!(bucket.balance_nanos(), 100 * MS as i64);
        bucket.refill(MS);
        assert_eq!(bucket.balance_nanos(), 100 * MS as i64);
    }

    proptest! {
        /// Over any run of takes, granted CPU never exceeds the initial balance plus the fill
        /// over the interval plus one grant of debt.
        #[test]
        fn granted_never_exceeds_fill_plus_one_grant(
            rate in 0.01f64..4.0,
            steps in proptest::collection::vec((0u64..50 * MS, 1u64..200 * MS), 1..300),
        ) {
            let mut bucket = TokenBucket::new(rate, 0);
            let initial = bucket.capacity_nanos() as f64;
            let mut now = 0u64;
            let mut granted = 0f64;
            let mut max_grant = 0u64;
            for (advance, grant) in steps {
                now += advance;
                if bucket.try_take(grant, now) {
                    granted += grant as f64;
                    max_grant = max_grant.max(grant);
                }
                let fill = now as f64 * rate;
                prop_assert!(granted <= initial + fill + max_grant as f64 + 1.0);
                prop_assert!(bucket.balance_nanos() >= -(max_grant as i64));
                prop_assert!(bucket.balance_nanos() <= bucket.capacity_nanos());
            }
        }

        /// Grants settled with any use: the CPU used never exceeds the initial balance plus the
        /// fill plus the largest single use (a grant is handed out only while the balance is
        /// positive, and every over-use is debt in full).
        #[test]
        fn used_never_exceeds_fill_plus_one_use(
            rate in 0.01f64..4.0,
            steps in proptest::collection::vec((0u64..50 * MS, 1u64..200 * MS, 0u64..2_000 * MS), 1..300),
        ) {
            let mut bucket = TokenBucket::new(rate, 0);
            let initial = bucket.capacity_nanos() as f64;
            let (mut now, mut used_total, mut max_used) = (0u64, 0f64, 0u64);
            for (advance, grant, used) in steps {
                now += advance;
                if bucket.try_take(grant, now) {
                    bucket.settle(grant, used, now);
                    used_total += used as f64;
                    max_used = max_used.max(used);
                }
                let fill = now as f64 * rate;
                prop_assert!(used_total <= initial + fill + max_used as f64 + 1.0);
            }
        }
    }
}
