//! Arrival streams of the overload scenario: three seeded Poisson streams, one per request
//! class (heartbeats, tenant A, tenant B), merged by time.

use std::iter::Peekable;
use std::num::NonZeroU32;
use std::time::Duration;

use tailguard::admission::{Priority, TenantId};

use super::generator::{Arrival, Arrivals, GeneratorConfig, RateSchedule, ScheduleError};

/// Offered load of the heartbeats, as a fraction of capacity.
pub const HEARTBEAT_LOAD: f64 = 0.01;

/// A class of requests: who sends it and how the queue treats it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// Liveness traffic: tenant 0, high priority, a small constant rate.
    Heartbeat,
    /// Tenant 1, weight 2.
    TenantA,
    /// Tenant 2, weight 1.
    TenantB,
}

impl Class {
    /// Every class, in the order reports list them.
    pub const ALL: [Class; 3] = [Class::Heartbeat, Class::TenantA, Class::TenantB];

    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            Class::Heartbeat => "heartbeat",
            Class::TenantA => "tenant-a",
            Class::TenantB => "tenant-b",
        }
    }

    /// The class's tenant in the queue.
    pub fn tenant(self) -> TenantId {
        TenantId(self.index() as u64)
    }

    /// The class's priority within its tenant.
    pub fn priority(self) -> Priority {
        match self {
            Class::Heartbeat => Priority::HIGH,
            Class::TenantA | Class::TenantB => Priority::NORMAL,
        }
    }

    /// The tenant's weight in the queue's order.
    pub fn weight(self) -> NonZeroU32 {
        match self {
            Class::TenantA => NonZeroU32::MIN.saturating_add(1),
            Class::Heartbeat | Class::TenantB => NonZeroU32::MIN,
        }
    }

    /// Offered load as a fraction of capacity, when the two tenants together offer
    /// `tenant_load` times capacity.
    pub fn load(self, tenant_load: f64) -> f64 {
        match self {
            Class::Heartbeat => HEARTBEAT_LOAD,
            Class::TenantA | Class::TenantB => tenant_load / 2.0,
        }
    }

    /// The class's position in [`Class::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The seed of this class's stream: distinct per class, fixed by the run's seed.
    fn seed(self, seed: u64) -> u64 {
        seed ^ (0x6f76_6572_6c6f_6164_u64.wrapping_mul(self.index() as u64 + 1))
    }
}

/// The merged request schedule of the three classes. The same schedule gives the same
/// arrivals.
#[derive(Clone, Debug, PartialEq)]
pub struct OverloadSchedule {
    streams: Vec<(Class, GeneratorConfig)>,
    rates: [f64; 3],
}

impl OverloadSchedule {
    /// Poisson streams over `length` at `rates[class]` per second (in [`Class::ALL`] order),
    /// keys drawn from `0..keys`, each class seeded from `seed`.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::BadRate`] for a negative or non-finite rate.
    pub fn new(rates: [f64; 3], length: Duration, seed: u64, keys: u64) -> Result<Self, ScheduleError> {
        let streams = Class::ALL
            .into_iter()
            .map(|class| {
                let schedule = RateSchedule::constant(rates[class.index()])?;
                Ok((class, GeneratorConfig::new(schedule, length, class.seed(seed), keys)))
            })
            .collect::<Result<_, ScheduleError>>()?;
        Ok(OverloadSchedule { streams, rates })
    }

    /// The schedule of the overload scenario: capacity `capacity_rps` at full load, the two
    /// tenants offering `tenant_load` times it together, heartbeats [`HEARTBEAT_LOAD`].
    ///
    /// # Errors
    ///
    /// [`ScheduleError::BadRate`] for a negative or non-finite rate.
    pub fn for_load(
        capacity_rps: f64,
        tenant_load: f64,
        length: Duration,
        seed: u64,
        keys: u64,
    ) -> Result<Self, ScheduleError> {
        let rates = Class::ALL.map(|class| class.load(tenant_load) * capacity_rps);
        Self::new(rates, length, seed, keys)
    }

    /// The arrival rate of `class`, per second.
    pub fn rate(&self, class: Class) -> f64 {
        self.rates[class.index()]
    }

    /// Every arrival of every class, in order of time (ties in [`Class::ALL`] order).
    pub fn arrivals(&self) -> MergedArrivals {
        MergedArrivals {
            streams: self
                .streams
                .iter()
                .map(|(class, config)| (*class, config.arrivals().peekable()))
                .collect(),
        }
    }
}

/// Iterator over the merged arrivals of an [`OverloadSchedule`].
#[derive(Debug)]
pub struct MergedArrivals {
    streams: Vec<(Class, Peekable<Arrivals>)>,
}

impl Iterator for MergedArrivals {
    type Item = (Class, Arrival);

    fn next(&mut self) -> Option<(Class, Arrival)> {
        let mut earliest: Option<(usize, u64)> = None;
        for (i, (_, stream)) in self.streams.iter_mut().enumerate() {
            if let Some(arrival) = stream.peek() {
                if earliest.is_none_or(|(_, at)| arrival.offset_nanos < at) {
                    earliest = Some((i, arrival.offset_nanos));
                }
            }
        }
        let (i, _) = earliest?;
        let (class, stream) = &mut self.streams[i];
        stream.next().map(|arrival| (*class, arrival))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(seed: u64) -> OverloadSchedule {
        OverloadSchedule::new([500.0, 20_000.0, 10_000.0], Duration::from_secs(2), seed, 1_000).unwrap()
    }

    #[test]
    fn merged_schedule_is_ordered_and_deterministic() {
        let a: Vec<(Class, Arrival)> = schedule(7).arrivals().collect();
        let b: Vec<(Class, Arrival)> = schedule(7).arrivals().collect();
        assert_eq!(a, b, "the same seed gives the same schedule");
        let c: Vec<(Class, Arrival)> = schedule(8).arrivals().collect();
        assert_ne!(a, c, "another seed gives another schedule");
        assert!(a.windows(2).all(|w| w[0].1.offset_nanos <= w[1].1.offset_nanos), "merged by time");
        assert!(a.iter().all(|(_, arrival)| arrival.offset_nanos < 2_000_000_000));
        // The merge keeps each stream whole: every class's arrivals are its own stream's.
        for class in Class::ALL {
            let mine: Vec<&Arrival> =
                a.iter().filter(|(c, _)| *c == class).map(|(_, arrival)| arrival).collect();
            let alone: Vec<Arrival> = schedule(7).streams[class.index()].1.arrivals().collect();
            assert_eq!(mine, alone.iter().collect::<Vec<_>>(), "{class:?}");
        }
    }

    #[test]
    fn class_rates_are_within_statistical_bounds() {
        let length = 2.0_f64;
        let rates = [500.0_f64, 20_000.0, 10_000.0];
        let mut counts = [0u64; 3];
        for (class, _) in schedule(42).arrivals() {
            counts[class.index()] += 1;
        }
        for class in Class::ALL {
            // Poisson: mean and variance rate × length; five standard deviations either way.
            let mean = rates[class.index()] * length;
            let bound = 5.0 * mean.sqrt();
            let count = counts[class.index()] as f64;
            assert!((count - mean).abs() < bound, "{class:?}: {count} arrivals, expected {mean} ± {bound}");
        }
    }

    #[test]
    fn scenario_rates_follow_the_load() {
        let schedule = OverloadSchedule::for_load(10_000.0, 1.3, Duration::from_secs(1), 1, 10).unwrap();
        assert!((schedule.rate(Class::Heartbeat) - 100.0).abs() < 1e-9);
        assert!((schedule.rate(Class::TenantA) - 6_500.0).abs() < 1e-9);
        assert!((schedule.rate(Class::TenantB) - 6_500.0).abs() < 1e-9);
        assert!(OverloadSchedule::for_load(f64::NAN, 1.3, Duration::from_secs(1), 1, 10).is_err());
    }

    #[test]
    fn classes_map_to_tenants_priorities_and_weights() {
        let tenants: Vec<u64> = Class::ALL.iter().map(|c| c.tenant().0).collect();
        assert_eq!(tenants, [0, 1, 2]);
        assert!(Class::Heartbeat.priority() > Class::TenantA.priority());
        assert_eq!(Class::TenantA.priority(), Class::TenantB.priority());
        assert_eq!((Class::TenantA.weight().get(), Class::TenantB.weight().get()), (2, 1));
    }
}
