//! The overload scenario's figures: each mode's window assembled into the report, and the
//! verdicts read from both modes.

use super::DRAIN;
use crate::report::{self, OverloadClass, OverloadMode, fmt_ms, fmt_pct};
use crate::workload::arrivals::Class;

/// One line on how a mode went, for progress.
pub fn summary_line(mode: &OverloadMode) -> String {
    let heartbeat = mode.class(Class::Heartbeat.name()).and_then(|c| c.p99_ms);
    format!(
        "{:.0} req/s, heartbeat p99 {} ms, A:B CPU {}",
        mode.throughput_rps,
        heartbeat.map_or_else(|| "-".to_owned(), fmt_ms),
        mode.tenant_cpu_ratio().map_or_else(|| "-".to_owned(), |r| format!("{r:.2}:1"))
    )
}

/// The first tenant's over the second's completions that weighted max-min fairness gives when
/// the two together complete `capacity` requests per second, offering `offered` with `weights`:
/// a tenant offering less than its weighted share gets what it offers, and the other the rest.
pub fn weighted_fair_ratio(capacity: f64, offered: [f64; 2], weights: [f64; 2]) -> Option<f64> {
    let share_a = capacity * weights[0] / (weights[0] + weights[1]);
    let share_b = capacity - share_a;
    let (a, b) = if offered[0] <= share_a {
        (offered[0], (capacity - offered[0]).min(offered[1]))
    } else if offered[1] <= share_b {
        ((capacity - offered[1]).min(offered[0]), offered[1])
    } else {
        (share_a, share_b)
    };
    (b > 0.0).then(|| a / b)
}

/// Reads the overload run against the goals: heartbeat p99 with and without the queue,
/// the A:B CPU ratio against the weights, and the change in total throughput.
pub fn assess(overload: &report::Overload) -> Vec<String> {
    let mut notes = Vec::new();
    for mode in &overload.modes {
        let offered: u64 = mode.classes.iter().map(|c| c.offered).sum();
        if offered > 0 && mode.late_starts * 100 > offered {
            notes.push(format!(
                "{}: the dispatcher started {} of {} requests late (up to {:.1} ms); their latency still counts from the schedule",
                mode.name, mode.late_starts, offered, mode.max_start_lag_ms
            ));
        }
        if mode.left_in_flight > 0 {
            notes.push(format!(
                "{}: {} requests were still in flight {} s after the window (they overlapped the next mode)",
                mode.name,
                mode.left_in_flight,
                DRAIN.as_secs()
            ));
        }
    }
    let (Some(plain), Some(queued)) = (overload.mode("no-queue"), overload.mode("queue")) else {
        return notes;
    };
    let heartbeat = |mode: &OverloadMode| mode.class(Class::Heartbeat.name()).and_then(|c| c.p99_ms);
    if let (Some(without), Some(with)) = (heartbeat(plain), heartbeat(queued)) {
        notes.push(format!(
            "overload: heartbeat p99 {} ms with the queue vs {} ms without ({})",
            fmt_ms(with),
            fmt_ms(without),
            if with < without {
                format!("{:.1}x lower", without / with)
            } else {
                format!("NOT lower: {:.2}x", with / without)
            }
        ));
    }
    let ratio =
        |mode: &OverloadMode| mode.tenant_cpu_ratio().map_or_else(|| "-".to_owned(), |r| format!("{r:.2}:1"));
    let weights = [Class::TenantA.weight().get(), Class::TenantB.weight().get()];
    let rate = |mode: &OverloadMode, class: Class, pick: fn(&OverloadClass) -> f64| {
        mode.class(class.name()).map_or(0.0, pick)
    };
    let capacity = rate(queued, Class::TenantA, |c| c.throughput_rps)
        + rate(queued, Class::TenantB, |c| c.throughput_rps);
    let offered =
        [rate(queued, Class::TenantA, |c| c.offered_rps), rate(queued, Class::TenantB, |c| c.offered_rps)];
    let fair = weighted_fair_ratio(capacity, offered, weights.map(f64::from))
        .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}:1"));
    notes.push(format!(
        "overload: tenant A:B CPU {} with the queue (weights {}:{}; weighted max-min fair for these offered rates: {fair}), {} without",
        ratio(queued),
        weights[0],
        weights[1],
        ratio(plain)
    ));
    let signed = |change: f64| format!("{}{}", if change >= 0.0 { "+" } else { "" }, fmt_pct(change));
    if plain.throughput_rps > 0.0 && plain.requests_per_cpu_second > 0.0 {
        notes.push(format!(
            "overload: total throughput {:.0} req/s with the queue vs {:.0} without ({}; goal: no more than a few percent lower); \
             per CPU-second of the process {:.0} vs {:.0} requests ({})",
            queued.throughput_rps,
            plain.throughput_rps,
            signed(queued.throughput_rps / plain.throughput_rps - 1.0),
            queued.requests_per_cpu_second,
            plain.requests_per_cpu_second,
            signed(queued.requests_per_cpu_second / plain.requests_per_cpu_second - 1.0),
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_max_min_fairness() {
        // Both offer more than their share: the weights decide.
        assert_eq!(weighted_fair_ratio(90.0, [100.0, 100.0], [2.0, 1.0]), Some(2.0));
        // A offers less than its share: it gets what it offers, B the rest.
        assert_eq!(weighted_fair_ratio(100.0, [60.0, 100.0], [2.0, 1.0]), Some(1.5));
        // B offers less than its share: A gets the rest.
        assert_eq!(weighted_fair_ratio(100.0, [100.0, 20.0], [2.0, 1.0]), Some(4.0));
        assert_eq!(weighted_fair_ratio(100.0, [100.0, 0.0], [2.0, 1.0]), None);
    }

    #[test]
    fn assessment_compares_heartbeats_tenants_and_throughput() {
        let overload = crate::report::fixtures::sample_overload();
        let notes = assess(&overload);
        assert!(
            notes.iter().any(
                |n| n.contains("heartbeat p99 0.400 ms with the queue vs 800 ms without (2000.0x lower)")
            ),
            "{notes:?}"
        );
        assert!(
            notes.iter().any(|n| n.contains("A:B CPU 2.00:1 with the queue") && n.contains("1.00:1 without")),
            "{notes:?}"
        );
        assert!(notes.iter().any(|n| n.contains("(-2.0%;")), "{notes:?}");
        assert!(
            notes.iter().any(|n| n.contains("per CPU-second of the process 5052 vs 5155 requests")),
            "{notes:?}"
        );
    }
}
