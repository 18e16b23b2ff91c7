//! `tailguard sim`: how per-hop scheduling tails show up in requests that cross many tasks.
//!
//! The simulator keeps every request latency exactly (see [`tailguard::sim::SimResult`]), so
//! every latency printed is one some simulated request had.
//!
//! # Text output
//!
//! ```text
//! hops: 1ms below the first percentile, p99=1s, p99.9=1m0s; 10000000 requests of 10 hops (in series) in 0.75s
//! request latency: p50=10ms p90=10ms p99=1m0.009s p99.9=1m0.009s max=3m1.006s
//! hop p99 shows at the request's p90.44 (9.562% of requests see it; closed form 1-0.99^10); printed at p91.4, 103 standard deviations of sampling noise past it
//! hop p99.9 shows at the request's p99.004 (0.996% of requests see it; closed form 1-0.999^10); printed at p99.11, 34 standard deviations of sampling noise past it
//! serial-p91.4=1.009s serial-p99.11=1m0.009s (vars=10; exact nearest-rank quantiles of the simulated requests)
//! ```
//!
//! A hop percentile `q` first shows at the request quantile `at = q^N`: below it, requests met
//! no hop that slow. The summary line prints the request latency a little inside the tail past
//! `at`: at `at + (1 − at) / 10`, rounded up to a step of at most a tenth of the tail, so the
//! quantile printed lies 10–20 % of the way into the tail, and the label names exactly that
//! rounded quantile (`serial-p91.4` is the request p91.4). The point must lie several standard
//! deviations of sampling noise (`sqrt(at (1 − at) / requests)`) past `at`, or the latency
//! printed could be one from before the tail: below [`MIN_SIGMAS`], a warning on stderr names
//! the `--requests` that would make it so. The request p99 above shows why: it lies only 1.4
//! standard deviations before p99.004, where the 1-minute hops start, and with this seed it
//! landed past it.
//!
//! # `--json`
//!
//! One JSON object instead of the text (the warning still goes to stderr):
//!
//! | field | meaning |
//! |---|---|
//! | `settings.hops` | hops per request (`--vars`) |
//! | `settings.composition` | `"serial"` (latencies add up) or `"parallel"` (the slowest hop wins) |
//! | `settings.base_nanos`, `settings.base` | hop latency below the first hop percentile, in ns and as text |
//! | `settings.hop_latencies[]` | `{quantile, latency_nanos, latency}` per hop percentile given |
//! | `settings.requests`, `settings.seed` | requests simulated, seed of the draws |
//! | `elapsed_secs` | time the simulation took |
//! | `request_quantiles[]` | `{quantile, name, latency_nanos, latency}` for p50, p90, p99, p99.9 and the maximum (`quantile` 1, `name` `"max"`), exact |
//! | `hop_percentiles[]` | per hop percentile given, in order: |
//! | `.hop_quantile`, `.hop_percentile` | the hop quantile (`0.99`) and its name (`"p99"`) |
//! | `.shows_at` | the request quantile where it first shows, `hop_quantile^hops` (closed form) |
//! | `.printed_quantile`, `.label` | the request quantile printed (`0.914`) and its label (`"serial-p91.4"`) |
//! | `.latency_nanos`, `.latency` | the request latency at `printed_quantile`, in ns and as text (`"1.009s"`) |
//! | `.noise_sigmas` | how many standard deviations of sampling noise `printed_quantile` lies past `shows_at` (`null` when `shows_at` is 0: no noise) |
//!
//! Quantiles are fractions (0.99 for p99); every latency is exact, that of some simulated request.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use tailguard::sim::{Composition, HopDistribution, SimConfig, SimResult, request_quantile, simulate};

use crate::duration::parse_duration;
use crate::error::CliError;

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
    /// Print one JSON object (settings, request quantiles, and where each hop percentile shows)
    /// instead of text.
    #[arg(long)]
    json: bool,
}

/// How far into the tail past `at` the summary line looks: a tenth of the tail.
const TAIL_OFFSET: f64 = 0.1;

/// Standard deviations of sampling noise the printed point must lie past `at` before the
/// latency there is taken as the tail's (one-sided normal tail at 5σ: ~3·10⁻⁷).
pub const MIN_SIGMAS: f64 = 5.0;

/// Decimals of a percent beyond which `f64` quantiles near 1 stop meaning anything.
const MAX_DECIMALS: u32 = 12;

/// The request quantiles the latency line prints, then the maximum.
const REQUEST_QUANTILES: [(f64, &str); 5] =
    [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99.9"), (1.0, "max")];

/// Everything `tailguard sim` reports; `--json` prints it as is (fields: see the module docs).
#[derive(Debug, Serialize)]
struct Report {
    settings: Settings,
    elapsed_secs: f64,
    request_quantiles: Vec<RequestQuantile>,
    hop_percentiles: Vec<HopPoint>,
}

/// What was simulated.
#[derive(Debug, Serialize)]
struct Settings {
    hops: u32,
    composition: &'static str,
    base_nanos: u64,
    base: String,
    hop_latencies: Vec<HopLatency>,
    requests: u64,
    seed: u64,
}

/// One given hop percentile.
#[derive(Debug, Serialize)]
struct HopLatency {
    quantile: f64,
    latency_nanos: u64,
    latency: String,
}

/// One exact request quantile.
#[derive(Debug, Serialize)]
struct RequestQuantile {
    quantile: f64,
    name: &'static str,
    latency_nanos: u64,
    latency: String,
}

/// Where a hop percentile shows in the requests, and the latency printed there.
#[derive(Debug, Serialize)]
struct HopPoint {
    hop_quantile: f64,
    hop_percentile: String,
    shows_at: f64,
    printed_quantile: f64,
    label: String,
    latency_nanos: u64,
    latency: String,
    noise_sigmas: Option<f64>,
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
    let report = Report::new(args, &points, &result, elapsed)?;
    for point in &report.hop_percentiles {
        warn_if_noisy(point, args.requests);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(())
}

impl Report {
    fn new(
        args: &SimArgs,
        points: &[(f64, Duration)],
        result: &SimResult,
        elapsed: Duration,
    ) -> Result<Self, CliError> {
        let n = args.hops.get();
        let prefix = if args.parallel { "parallel" } else { "serial" };
        let latency_at = |q: f64| -> Result<Duration, CliError> {
            result.quantile(q)?.ok_or_else(|| "no request was simulated".into())
        };
        let request_quantiles = REQUEST_QUANTILES
            .iter()
            .map(|&(quantile, name)| {
                let latency = latency_at(quantile)?;
                Ok(RequestQuantile {
                    quantile,
                    name,
                    latency_nanos: nanos(latency),
                    latency: go_duration(latency),
                })
            })
            .collect::<Result<_, CliError>>()?;
        let hop_percentiles = points
            .iter()
            .map(|&(hop_quantile, _)| {
                let at = request_quantile(hop_quantile, n);
                let shown = ShowPoint::past(at);
                let latency = latency_at(shown.quantile)?;
                Ok(HopPoint {
                    hop_quantile,
                    hop_percentile: percentile_name(hop_quantile, 2),
                    shows_at: at,
                    printed_quantile: shown.quantile,
                    label: format!("{prefix}-{}", shown.name),
                    latency_nanos: nanos(latency),
                    latency: go_duration(latency),
                    noise_sigmas: noise_sigmas(at, shown.quantile, args.requests),
                })
            })
            .collect::<Result<_, CliError>>()?;
        Ok(Report {
            settings: Settings {
                hops: n,
                composition: prefix,
                base_nanos: nanos(args.base),
                base: go_duration(args.base),
                hop_latencies: points
                    .iter()
                    .map(|&(quantile, latency)| HopLatency {
                        quantile,
                        latency_nanos: nanos(latency),
                        latency: go_duration(latency),
                    })
                    .collect(),
                requests: args.requests,
                seed: args.seed,
            },
            elapsed_secs: elapsed.as_secs_f64(),
            request_quantiles,
            hop_percentiles,
        })
    }
}

fn print_text(report: &Report) {
    let settings = &report.settings;
    let hop_text: Vec<String> = settings
        .hop_latencies
        .iter()
        .map(|h| format!("{}={}", percentile_name(h.quantile, 2), h.latency))
        .collect();
    println!(
        "hops: {} below the first percentile, {}; {} requests of {} hops ({}) in {:.2}s",
        settings.base,
        hop_text.join(", "),
        settings.requests,
        settings.hops,
        if settings.composition == "parallel" { "fan-out, slowest wins" } else { "in series" },
        report.elapsed_secs
    );
    let quantiles: Vec<String> =
        report.request_quantiles.iter().map(|q| format!("{}={}", q.name, q.latency)).collect();
    println!("request latency: {}", quantiles.join(" "));
    let mut line = Vec::new();
    for point in &report.hop_percentiles {
        let shown = ShowPoint::past(point.shows_at);
        let sigmas = match point.noise_sigmas {
            None => "no".to_owned(),
            Some(s) if s < 10.0 => format!("{s:.1}"),
            Some(s) => format!("{s:.0}"),
        };
        println!(
            "hop {} shows at the request's {} ({:.3}% of requests see it; closed form 1-{}^{}); printed at {}, \
             {sigmas} standard deviations of sampling noise past it",
            point.hop_percentile,
            percentile_name(point.shows_at, shows_at_decimals(point.shows_at, shown.decimals)),
            (1.0 - point.shows_at) * 100.0,
            point.hop_quantile,
            settings.hops,
            shown.name,
        );
        line.push(format!("{}={}", point.label, point.latency));
    }
    println!(
        "{} (vars={}; exact nearest-rank quantiles of the simulated requests)",
        line.join(" "),
        settings.hops
    );
}

/// Warns on stderr when `point` lies too few standard deviations of sampling noise past where
/// its tail starts for the latency printed to be surely the tail's.
fn warn_if_noisy(point: &HopPoint, requests: u64) {
    let Some(sigmas) = point.noise_sigmas.filter(|&s| s < MIN_SIGMAS) else { return };
    let at = point.shows_at;
    let margin = point.printed_quantile - at;
    // sigmas = margin / sqrt(at (1 - at) / n) >= MIN_SIGMAS  <=>  n >= MIN_SIGMAS² at (1 - at) / margin².
    let needed = (MIN_SIGMAS * MIN_SIGMAS * at * (1.0 - at) / (margin * margin)).ceil();
    tracing::warn!(
        "{} lies only {sigmas:.1} standard deviations of sampling noise past where the hop {} \
         shows, with {requests} requests: its latency may come from before the tail; give --requests {needed} \
         or more",
        point.label,
        point.hop_percentile
    );
}

/// The request quantile the summary line prints for a hop percentile that shows at `at`.
#[derive(Debug, Clone, PartialEq)]
struct ShowPoint {
    /// The quantile printed: a decimal with `decimals + 2` digits after the point.
    quantile: f64,
    /// Its name, `p91.4`: names `quantile` exactly.
    name: String,
    /// Decimals of the percent in `name`.
    decimals: u32,
}

impl ShowPoint {
    /// `at + (1 − at) / 10`, rounded up to the coarsest step of a power of ten that is at most a
    /// tenth of the tail `1 − at`: the point lies 10–20 % of the way into the tail.
    fn past(at: f64) -> Self {
        let tail = 1.0 - at;
        let mut decimals = 0;
        while decimals < MAX_DECIMALS && 10f64.powi(-(decimals as i32)) / 100.0 > tail / 10.0 {
            decimals += 1;
        }
        let per_unit = 10u64.pow(decimals + 2);
        // In units of 10^-(decimals + 2): a whole number, so the name is exact. Saturating cast;
        // the target is within [0, 1].
        let units = (((at + TAIL_OFFSET * tail) * per_unit as f64).ceil() as u64).min(per_unit);
        let quantile = units as f64 / per_unit as f64;
        let percent_unit = 10u64.pow(decimals);
        let (whole, fraction) = (units / percent_unit, units % percent_unit);
        let name = if decimals == 0 {
            format!("p{whole}")
        } else {
            let digits = format!("{fraction:0width$}", width = decimals as usize);
            let digits = digits.trim_end_matches('0');
            if digits.is_empty() { format!("p{whole}") } else { format!("p{whole}.{digits}") }
        };
        Self { quantile, name, decimals }
    }
}

/// How many standard deviations of the sampling noise of an empirical quantile near `at`
/// (`sqrt(at (1 − at) / n)`) separate `quantile` from `at`; `None` when there is no noise.
fn noise_sigmas(at: f64, quantile: f64, requests: u64) -> Option<f64> {
    let sigma = (at * (1.0 - at) / requests as f64).sqrt();
    (sigma > 0.0).then(|| (quantile - at) / sigma)
}

/// Decimals that show where a tail starts, `at`: one more than the printed point's name has,
/// and at least two significant digits of a small `at` (`p0.0027`, not `p0`).
fn shows_at_decimals(at: f64, point_decimals: u32) -> u32 {
    let percent = at * 100.0;
    let significant = if percent > 0.0 && percent < 10.0 {
        // Zeros after the point (-1 from 1 up), plus two. Saturating casts: a small number.
        ((-percent.log10()).floor() as i32 + 2).max(0) as u32
    } else {
        0
    };
    (point_decimals + 1).max(significant).min(MAX_DECIMALS)
}

/// A duration in whole nanoseconds, saturating.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `p99`, `p99.9`, `p90.44`: a quantile as a percentile name with up to `decimals` decimals
/// (rounded to the nearest).
fn percentile_name(q: f64, decimals: u32) -> String {
    let text = format!("{:.*}", decimals as usize, q * 100.0);
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
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
        assert_eq!(percentile_name(0.99, 2), "p99");
        assert_eq!(percentile_name(0.999, 2), "p99.9");
        assert_eq!(percentile_name(0.9043820750088045, 2), "p90.44");
        assert_eq!(percentile_name(0.990044880209, 3), "p99.004");
        assert_eq!(percentile_name(0.5, 0), "p50");
    }

    #[test]
    fn the_point_printed_lies_a_tenth_to_a_fifth_into_the_tail_and_its_name_is_exact() {
        // Hop p99 and p99.9 over ten hops.
        let p99 = ShowPoint::past(0.99f64.powi(10));
        assert_eq!((p99.name.as_str(), p99.quantile, p99.decimals), ("p91.4", 0.914, 1));
        let p999 = ShowPoint::past(0.999f64.powi(10));
        assert_eq!((p999.name.as_str(), p999.quantile, p999.decimals), ("p99.11", 0.9911, 2));
        // Round numbers keep no trailing zeros; a tail of everything starts at p10.
        assert_eq!(ShowPoint::past(0.0).name, "p10");
        assert_eq!(ShowPoint::past(0.9).name, "p91");
        for at in [0.0, 1e-9, 0.3487, 0.5, 0.9, 0.904382, 0.99, 0.990045, 0.9999, 0.99999999, 1.0 - 1e-12] {
            let shown = ShowPoint::past(at);
            let into_tail = (shown.quantile - at) / (1.0 - at);
            assert!(
                (0.1 - 1e-9..=0.2 + 1e-9).contains(&into_tail),
                "at={at}: {shown:?} is {into_tail} into the tail"
            );
            // The name's decimal, as the nearest f64 (a whole number over a power of ten).
            let (whole, fraction) = shown.name[1..].split_once('.').unwrap_or((&shown.name[1..], ""));
            let digits: u64 = format!("{whole}{fraction}").parse().unwrap();
            let named = digits as f64 / 10f64.powi(fraction.len() as i32 + 2);
            assert_eq!(named, shown.quantile, "at={at}: {shown:?}");
        }
    }

    #[test]
    fn where_a_tail_starts_shows_enough_digits() {
        let name = |at: f64, decimals| percentile_name(at, shows_at_decimals(at, decimals));
        assert_eq!(name(0.99f64.powi(10), 1), "p90.44");
        assert_eq!(name(0.999f64.powi(10), 2), "p99.004");
        assert_eq!(name(0.9f64.powi(100), 0), "p0.0027");
        assert_eq!(name(0.0366, 0), "p3.7");
        assert_eq!(name(0.0, 0), "p0");
    }

    #[test]
    fn noise_is_measured_in_standard_deviations_of_the_empirical_quantile() {
        let at = 0.999f64.powi(10);
        let sigmas = noise_sigmas(at, 0.9911, 10_000_000).unwrap();
        assert!((33.0..34.0).contains(&sigmas), "{sigmas}");
        assert!(noise_sigmas(at, 0.9911, 200_000).unwrap() < MIN_SIGMAS);
        assert_eq!(noise_sigmas(0.0, 0.1, 100), None);
    }
}
