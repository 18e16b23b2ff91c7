//! `tailguard sim`: how per-hop scheduling tails show up in requests that cross many tasks.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use clap::Args;
use tailguard::sim::{Composition, HopDistribution, SimConfig, request_quantile, simulate};

use crate::CliError;
use crate::duration::parse_duration;

/// Arguments of `tailguard sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Hops (tasks) each request crosses.
    #[arg(long = "vars", default_value_t = NonZeroU32::new(10).unwrap())]
    hops: NonZeroU32,
    /// Hop latency below the first given percentile.
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    base: Duration,
    /// Hop p90 latency.
    #[arg(long, value_parser = parse_duration)]
    p90: Option<Duration>,
    /// Hop p99 latency.
    #[arg(long, value_parser = parse_duration)]
    p99: Option<Duration>,
    /// Hop p99.9 latency.
    #[arg(long = "p99.9", value_parser = parse_duration)]
    p999: Option<Duration>,
    /// Hop p99.99 latency.
    #[arg(long = "p99.99", value_parser = parse_duration)]
    p9999: Option<Duration>,
    /// Requests to simulate.
    #[arg(long, default_value_t = 10_000_000)]
    requests: u64,
    /// The request fans out to every hop at once and waits for the slowest, instead of visiting
    /// them in series.
    #[arg(long)]
    parallel: bool,
    /// Seed of the draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Runs `tailguard sim`.
pub fn run(args: &SimArgs) -> Result<(), CliError> {
    let points: Vec<(f64, Duration)> =
        [(0.9, args.p90), (0.99, args.p99), (0.999, args.p999), (0.9999, args.p9999)]
            .into_iter()
            .filter_map(|(q, d)| d.map(|d| (q, d)))
            .collect();
    if points.is_empty() {
        return Err("give at least one hop percentile, e.g. --p99 1s --p99.9 1m".into());
    }
    if args.requests == 0 {
        return Err("--requests must be at least 1".into());
    }
    let hops = HopDistribution::from_percentiles(args.base, &points)?;
    let composition = if args.parallel { Composition::Parallel } else { Composition::Serial };
    let config = SimConfig { hops: args.hops, requests: args.requests, seed: args.seed, composition };
    let started = Instant::now();
    let result = simulate(&hops, &config);
    let elapsed = started.elapsed();
    let n = args.hops.get();
    let prefix = if args.parallel { "parallel" } else { "serial" };
    let hop_text: Vec<String> =
        points.iter().map(|&(q, d)| format!("{}={}", percentile_name(q), go_duration(d))).collect();
    println!(
        "hops: {} below the first percentile, {}; {} requests of {n} hops ({}) in {:.2}s",
        go_duration(args.base),
        hop_text.join(", "),
        args.requests,
        if args.parallel { "fan-out, slowest wins" } else { "in series" },
        elapsed.as_secs_f64()
    );
    let h = &result.histogram;
    let q = |q: f64| h.quantile(q).ok().flatten().map_or_else(|| "-".to_owned(), go_duration);
    println!(
        "request latency: p50={} p90={} p99={} p99.9={} max={}",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        h.max().map_or_else(|| "-".to_owned(), go_duration)
    );
    let mut line = Vec::new();
    for &(hop_q, _) in &points {
        // The request quantile where the hop's tail first shows, and the latency just above it.
        let at = request_quantile(hop_q, n);
        let shown = (at + (1.0 - at) * 0.01).min(1.0);
        line.push(format!("{prefix}-{}={}", percentile_name(at), q(shown)));
        println!(
            "hop {} shows at the request's {} ({:.3}% of requests see it; closed form 1-{hop_q}^{n})",
            percentile_name(hop_q),
            percentile_name(at),
            (1.0 - at) * 100.0
        );
    }
    println!("{} (vars={n}; latencies within the histogram's 3% bucket resolution)", line.join(" "));
    Ok(())
}

/// `p99`, `p99.9`, `p90.44`: a quantile as a percentile name with up to two decimals.
fn percentile_name(q: f64) -> String {
    let text = format!("{:.2}", q * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("p{text}")
}

/// Formats a duration as Go does: `1m0.009s`, `1.009s`, `10ms`, `250µs`.
fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim_fraction(nanos as f64 / 1e3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim_fraction(nanos as f64 / 1e6));
    }
    let total_secs = d.as_secs();
    let (hours, minutes, secs) = (total_secs / 3600, total_secs / 60 % 60, total_secs % 60);
    let seconds = trim_fraction(secs as f64 + f64::from(d.subsec_nanos()) / 1e9);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

/// A number with at most three decimals and no trailing zeros.
fn trim_fraction(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_millis(60_009)), "1m0.009s");
        assert_eq!(go_duration(Duration::from_millis(1_009)), "1.009s");
        assert_eq!(go_duration(Duration::from_millis(10)), "10ms");
        assert_eq!(go_duration(Duration::from_micros(250)), "250µs");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn percentile_names() {
        assert_eq!(percentile_name(0.99), "p99");
        assert_eq!(percentile_name(0.999), "p99.9");
        assert_eq!(percentile_name(0.9043820750088045), "p90.44");
    }
}
