//! Outlier capture costs.
//!
//! A "request" is a root span `request` and four child spans `hop` entered one after another
//! (five spans), each hop doing a fixed amount of CPU work (`work/*`, ~5 µs per hop, ~20 µs per
//! request, calibrated at start) or none (`spans/*`, the span machinery alone). Each is run under
//! four subscribers, all a `tracing_subscriber::Registry`:
//!
//! - `registry`: the registry alone (the baseline; on the project's VMs its `spans` figure is
//!   bimodal, a few samples many times slower than the rest, so `registry_noop_layer`, the
//!   registry under `tracing_subscriber`'s no-op `Identity` layer, is the steadier baseline),
//! - `layer_unarmed`: with a `CaptureLayer` that was never armed,
//! - `layer_p0`: with the layer armed for `request` at probability 0 (every root pays the
//!   sampling decision, none is sampled),
//! - `layer_p1`: armed at probability 1 with an unreachable threshold (every request's tree is
//!   recorded, then discarded: the full cost of a sampled request without filling the store),
//! - `layer_recording`: not armed, but one sampled request stays open throughout, so that every
//!   span event of the unsampled requests looks up its span's extensions (the cost of an
//!   unsampled request while some other request is being recorded).
//!
//! `overhead` (after the criterion groups, only under `cargo bench`): the ~20 µs request under
//! `registry` and `layer_p0`, interleaved in 40 rounds of 2000 requests each so that both see the
//! same machine; prints the median of the per-round ratios.
//!
//! Every figure is the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`, through criterion's
//! `iter_custom`), not wall time: the project's 2-core machines are shared with builds, and time
//! the thread spends descheduled would otherwise swamp differences of a few percent.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use tailguard::capture::{CaptureLayer, CaptureSpec};
use tailguard::clock::thread_cpu_time;
use tracing::dispatcher::{self, Dispatch};
use tracing::info_span;
use tracing_subscriber::layer::SubscriberExt;

/// CPU work that the compiler cannot remove: `iters` rounds of xorshift.
#[inline(never)]
fn work(iters: u64) -> u64 {
    let mut x = black_box(0x9E37_79B9_7F4A_7C15u64);
    for _ in 0..iters {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    black_box(x)
}

/// Iterations of `work` that take about `target`.
fn calibrate(target: Duration) -> u64 {
    let probe = 1_000_000;
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let start = thread_cpu_time();
        work(probe);
        best = best.min(thread_cpu_time() - start);
    }
    (probe as f64 * target.as_secs_f64() / best.as_secs_f64()).max(1.0) as u64
}

/// One request: a root and four hops, each doing `iters` of work.
#[inline(never)]
fn request(id: u64, iters: u64) -> u64 {
    let root = info_span!("request", id);
    let _root = root.enter();
    let mut acc = 0;
    for hop in 0..4u64 {
        let span = info_span!("hop", hop);
        let _hop = span.enter();
        acc ^= work(iters);
    }
    acc
}

/// The subscribers compared, with whatever each must keep open.
fn subscribers() -> Vec<(&'static str, Dispatch, Option<tracing::Span>)> {
    let layered = |spec: Option<CaptureSpec>| {
        let layer = CaptureLayer::new();
        if let Some(spec) = spec {
            layer.handle().arm(spec).expect("valid spec");
        }
        Dispatch::new(tracing_subscriber::registry().with(layer))
    };
    let long = Duration::from_secs(24 * 3600);
    let recording = {
        let layer = CaptureLayer::new();
        let handle = layer.handle();
        handle.arm(CaptureSpec::new("request").probability(1.0).window(long)).expect("valid spec");
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
        let open = dispatcher::with_default(&dispatch, || info_span!("request", id = 0u64));
        handle.disarm();
        assert_eq!(handle.in_flight(), 1);
        (dispatch, open)
    };
    vec![
        ("registry", Dispatch::new(tracing_subscriber::registry()), None),
        ("layer_unarmed", layered(None), None),
        ("layer_p0", layered(Some(CaptureSpec::new("request").probability(0.0).window(long))), None),
        (
            "layer_p1",
            layered(Some(CaptureSpec::new("request").probability(1.0).threshold(long).window(long))),
            None,
        ),
        ("layer_recording", recording.0, Some(recording.1)),
        (
            "registry_noop_layer",
            Dispatch::new(tracing_subscriber::registry().with(tracing_subscriber::layer::Identity::new())),
            None,
        ),
    ]
}

fn requests(c: &mut Criterion) {
    let hop_iters = calibrate(Duration::from_micros(5));
    for (group, iters) in [("spans", 0), ("work", hop_iters)] {
        let mut g = c.benchmark_group(format!("capture_request/{group}"));
        for (name, dispatch, _open) in subscribers() {
            dispatcher::with_default(&dispatch, || {
                let mut id = 0;
                g.bench_function(name, |b| {
                    b.iter_custom(|n| {
                        let start = thread_cpu_time();
                        for _ in 0..n {
                            id += 1;
                            black_box(request(id, iters));
                        }
                        thread_cpu_time() - start
                    })
                });
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = requests
}

/// The ~20 µs request under the bare registry and under the layer armed at p = 0, interleaved.
fn overhead() {
    let iters = calibrate(Duration::from_micros(5));
    let all = subscribers();
    let base = &all[0].1;
    let p0 = &all[2].1;
    let round = |dispatch: &Dispatch| {
        dispatcher::with_default(dispatch, || {
            let start = thread_cpu_time();
            for id in 0..2000 {
                black_box(request(id, iters));
            }
            thread_cpu_time() - start
        })
    };
    round(base);
    round(p0);
    let mut ratios = Vec::new();
    let (mut base_total, mut p0_total) = (Duration::ZERO, Duration::ZERO);
    for i in 0..40 {
        // Alternate which goes first, so that neither always follows the other.
        let (b, p) = if i % 2 == 0 {
            let b = round(base);
            (b, round(p0))
        } else {
            let p = round(p0);
            (round(base), p)
        };
        base_total += b;
        p0_total += p;
        ratios.push(p.as_secs_f64() / b.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    let per = |total: Duration| total.as_secs_f64() * 1e6 / (40.0 * 2000.0);
    println!(
        "capture overhead (layer armed at p = 0 vs registry alone, 5-span request): \
         registry {:.2} µs/request, layer_p0 {:.2} µs/request, median ratio {:.4} (p10 {:.4}, p90 {:.4})",
        per(base_total),
        per(p0_total),
        ratios[20],
        ratios[4],
        ratios[36],
    );
}

fn main() {
    benches();
    if std::env::args().any(|a| a == "--bench") {
        overhead();
    }
    Criterion::default().configure_from_args().final_summary();
}
