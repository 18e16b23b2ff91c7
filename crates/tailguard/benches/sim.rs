//! The tail-at-microscale simulator: 10 million requests of 10 hops.
//!
//! Measured on the project's 2-core VM: see `tailguard::sim` docs for the figure.

use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tailguard::sim::{Composition, HopDistribution, SimConfig, simulate};

fn bench_sim(c: &mut Criterion) {
    let hops = HopDistribution::from_percentiles(
        Duration::from_millis(1),
        &[(0.99, Duration::from_secs(1)), (0.999, Duration::from_secs(60))],
    )
    .expect("valid distribution");
    let mut group = c.benchmark_group("sim");
    group.sample_size(10);
    for composition in [Composition::Serial, Composition::Parallel] {
        let config =
            SimConfig { hops: NonZeroU32::new(10).unwrap(), requests: 10_000_000, seed: 1, composition };
        group.bench_function(format!("{composition:?}/10M requests x 10 hops"), |b| {
            b.iter(|| simulate(&hops, &config))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_sim);
criterion_main!(benches);
