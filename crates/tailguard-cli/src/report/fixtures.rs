//! Reports with every field filled, shared by the report's and the demo's tests.

use super::*;

/// A small report with every field filled, shared by the renderers' tests: two rounds of
/// baseline (twice), uncontrolled, elastic and static:0.25. Elastic is 1.38x [1.20x–1.60x]
/// baseline at 75 % [65 %–80 %] of the idle CPU; static:0.25 has a lower p99 but does less
/// elastic work.
pub(crate) fn sample_report() -> DemoReport {
    let run = |name: &str, round: u32, position: u32, p99: f64, elastic: Option<f64>| ModeResult {
        name: name.to_owned(),
        round,
        position,
        foreground: Foreground {
            requests: 10_000,
            throughput_rps: 1000.0,
            p50_ms: 0.2,
            p99_ms: p99,
            p999_ms: p99 * 2.0,
            max_ms: p99 * 5.0,
            cpu_share: 0.4,
            late_starts: 0,
            max_start_lag_ms: 0.1,
            offered: 10_000,
            failed: 0,
            parts_p99_ms: None,
        },
        sched_p99_ms: Some(p99 / 2.0),
        process_cpu_share: 0.4 + elastic.unwrap_or(0.0),
        machine_idle: Some(0.6),
        machine_steal: Some(0.02),
        elastic: elastic.map(|share| Elastic {
            keys_per_sec: 50_000.0 * share,
            scan_keys_per_sec: 500_000.0 * share,
            bytes_per_sec: 1e7 * share,
            cpu_share: share,
            accounted_cpu_share: Some(share),
            idle_share_used: Some(share / 0.6),
            requests: 40,
            preemptions: 30,
            backups: 3,
            verified: Some(true),
            mean_share: Some(share),
        }),
        step: None,
        series: (0..10)
            .map(|i| SeriesPoint {
                t_secs: f64::from(i),
                fg_rps: 1000.0,
                fg_p50_ms: Some(0.2),
                fg_p99_ms: Some(p99 + f64::from(i) * 0.01),
                sched_p99_ms: Some(p99 / 2.0),
                share: elastic,
                elastic_cpu_share: elastic,
                offered_load: Some(0.4),
                steal: Some(0.02),
                target_ms: elastic.map(|_| 1.0),
                knee: elastic.map(|share| share * 1.1),
                signal_p99_ms: None,
                fg_parts_p99_ms: None,
            })
            .collect(),
        latency_cdf: vec![(0.1, 0.2), (0.2, 0.5), (p99, 0.99), (p99 * 5.0, 1.0)],
        ticks: elastic
            .map(|share| {
                (0..5)
                    .map(|i| TickPoint {
                        t_secs: f64::from(i) * 0.1 - 0.2,
                        share,
                        p99_ms: Some(p99 / 2.0),
                        recent_p99_ms: Some(p99 / 3.0),
                        waiting_fraction: 0.5,
                        used_fraction: 0.9,
                        knee: Some(share * 1.1),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    let estimate = |median: f64, low: f64, high: f64| Estimate { median, low, high, rounds: 2 };
    let ratios = |e: Estimate| Some(Ratios { pooled: Some(e), window: Some(e), intervals: Some(e) });
    let summary = |name: &str, p99: f64, elastic: Option<(f64, Estimate)>, vs_base: Estimate| ModeSummary {
        name: name.to_owned(),
        runs: if name == "baseline" { 4 } else { 2 },
        throughput_rps: estimate(1000.0, 990.0, 1010.0),
        p50_ms: estimate(0.2, 0.2, 0.2),
        p99_ms: estimate(p99, p99 * 0.9, p99 * 1.1),
        p999_ms: estimate(p99 * 2.0, p99 * 1.8, p99 * 2.2),
        max_ms: estimate(p99 * 5.0, p99 * 4.0, p99 * 6.0),
        sched_p99_ms: Some(estimate(p99 / 2.0, p99 / 2.0, p99 / 2.0)),
        machine_steal: Some(estimate(0.02, 0.01, 0.03)),
        p99_vs_baseline: ratios(vs_base),
        lower_than_uncontrolled: (name != "uncontrolled").then(|| {
            let x = 12.0 / p99;
            Ratios { pooled: Some(estimate(x, x * 0.8, x * 1.2)), ..Ratios::default() }
        }),
        elastic: elastic.map(|(share, idle)| ElasticSummary {
            keys_per_sec: estimate(50_000.0 * share, 45_000.0 * share, 55_000.0 * share),
            scan_keys_per_sec: estimate(500_000.0 * share, 450_000.0 * share, 550_000.0 * share),
            cpu_share: estimate(share, share * 0.9, share * 1.1),
            accounted_over_measured: Some(estimate(1.0, 0.97, 1.03)),
            idle_share_used: Some(idle),
            mean_share: Some(estimate(share, share, share)),
            backups: 6,
            verified: Some(true),
        }),
        step: None,
    };
    let mut runs = Vec::new();
    for round in 1..=2 {
        runs.push(run("baseline", round, 1, 0.8, None));
        runs.push(run("uncontrolled", round, 2, 12.0, Some(0.6)));
        runs.push(run("elastic", round, 3, 1.1, Some(0.45)));
        runs.push(run("static:0.25", round, 4, 1.0, Some(0.25)));
        runs.push(run("baseline", round, 5, 0.8, None));
    }
    DemoReport {
        machine: Machine { cores: 2.0, os: "linux x86_64".into() },
        settings: Settings {
            duration_secs: 10.0,
            warmup_secs: 3.0,
            rounds: 2,
            statistic: "pooled".into(),
            load: 0.4,
            rate_rps: 1000.0,
            keys: 100_000,
            seed: 7,
            target_p99_ms: 1.0,
            elastic_on: "threads".into(),
            idle_by: "sched-idle".into(),
            signal: "probe".into(),
            idle_cpu: Some(0.6),
            idle_source: "/proc/stat".into(),
            pin_workers: false,
            generator_priority: "realtime".to_owned(),
            rerun_stolen: 2,
            stolen_over: Some(0.005),
        },
        runs,
        modes: vec![
            summary("baseline", 0.8, None, estimate(1.0, 0.95, 1.05)),
            summary("uncontrolled", 12.0, Some((0.6, estimate(1.0, 0.95, 1.05))), estimate(15.0, 14.0, 16.0)),
            summary("elastic", 1.1, Some((0.45, estimate(0.75, 0.65, 0.8))), estimate(1.38, 1.2, 1.6)),
            summary("static:0.25", 1.0, Some((0.25, estimate(0.42, 0.4, 0.44))), estimate(1.25, 1.2, 1.3)),
        ],
        noise: ratios(estimate(1.02, 0.9, 1.1)),
        notes: vec!["a note <with> markup & such".into()],
        rerun: Vec::new(),
        overload: None,
    }
}

/// An overload report with every field filled: heartbeat p99 800 ms without the queue and
/// 0.4 ms with it, tenants 1:1 without and 2:1 with, throughput 2 % lower with the queue.
pub(crate) fn sample_overload() -> Overload {
    let class = |name: &str, tenant: u64, priority: i8, rps: f64, p99: f64, cpu: f64| OverloadClass {
        name: name.to_owned(),
        tenant,
        priority,
        offered: (rps * 12.0) as u64,
        offered_rps: rps * 1.2,
        completed: (rps * 10.0) as u64,
        throughput_rps: rps,
        rejected: 10,
        backlog: 3,
        p50_ms: Some(p99 / 4.0),
        p99_ms: Some(p99),
        max_ms: Some(p99 * 2.0),
        cpu_share: cpu,
    };
    let tenant = |name: &str, tenant: u64, weight: u32, cpu: f64, of_tenants: f64| TenantShare {
        name: name.to_owned(),
        tenant,
        weight,
        weight_share: f64::from(weight) / 3.0,
        cpu_share: cpu,
        tenants_cpu_fraction: of_tenants,
    };
    let mode = |name: &str, rps: [f64; 3], p99: [f64; 3], cpu: [f64; 3], queue: Option<QueueStats>| {
        let total = cpu[1] + cpu[2];
        OverloadMode {
            name: name.to_owned(),
            window_secs: 10.0,
            cut_short: false,
            throughput_rps: rps.iter().sum(),
            cpu_share: cpu.iter().sum(),
            process_cpu_share: 0.97,
            requests_per_cpu_second: rps.iter().sum::<f64>() / 1.94,
            late_starts: 2,
            max_start_lag_ms: 1.5,
            left_in_flight: 0,
            classes: vec![
                class("heartbeat", 0, 50, rps[0], p99[0], cpu[0]),
                class("tenant-a", 1, 0, rps[1], p99[1], cpu[1]),
                class("tenant-b", 2, 0, rps[2], p99[2], cpu[2]),
            ],
            tenants: vec![
                tenant("a", 1, 2, cpu[1], cpu[1] / total),
                tenant("b", 2, 1, cpu[2], cpu[2] / total),
            ],
            queue,
        }
    };
    Overload {
        tenant_load: 1.3,
        heartbeat_load: 0.01,
        capacity_rps: 10_000.0,
        calibrated_rps: 8_000.0,
        hop_bytes: 16_384,
        request_cpu_us: 200.0,
        max_wait_ms: 250.0,
        admission_threshold: 32.0,
        modes: vec![
            mode("no-queue", [100.0, 4_950.0, 4_950.0], [800.0, 820.0, 830.0], [0.01, 0.4, 0.4], None),
            mode(
                "queue",
                [100.0, 6_500.0, 3_200.0],
                [0.4, 120.0, 240.0],
                [0.01, 0.52, 0.26],
                Some(QueueStats {
                    final_slots: 8,
                    mean_slots: 7.5,
                    max_slots: 12,
                    mean_runnable_per_cpu: Some(1.2),
                    admitted: 98_000,
                    admitted_after_queueing: 90_000,
                    rejected_deadline: 30_000,
                    slot_increases: 400,
                    slot_decreases: 396,
                    wait_p99_ms: Some(200.0),
                }),
            ),
        ],
    }
}
