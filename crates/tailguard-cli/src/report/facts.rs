//! The facts the terminal table and the HTML page both show, computed once: rows of cells under
//! a header, and the sentences that say how a run was taken.

use super::{DemoReport, Overload, fmt_ms, fmt_pct};

/// A table: its header and one row of cells per line.
pub type Rows = (Vec<&'static str>, Vec<Vec<String>>);

/// The comparison of every mode as one header and one row of cells per mode, shared by the
/// terminal table and the HTML page: medians over rounds, with intervals on the figures the
/// verdicts rest on.
pub fn mode_rows(report: &DemoReport) -> Rows {
    let header = vec![
        "mode",
        "fg req/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "p99 x base",
        "sched p99",
        "backup keys/s",
        "elastic CPU",
        "of idle",
        "mean share",
        "steal",
        "backups",
    ];
    let dash = || "-".to_owned();
    let times = |x: f64| format!("{x:.2}x");
    let rows = report
        .modes
        .iter()
        .map(|mode| {
            let elastic = mode.elastic.as_ref();
            vec![
                mode.name.clone(),
                format!("{:.0}", mode.throughput_rps.median),
                fmt_ms(mode.p50_ms.median),
                mode.p99_ms.render(fmt_ms),
                fmt_ms(mode.p999_ms.median),
                report.p99_vs_baseline(mode).map_or_else(dash, |r| r.render(times)),
                mode.sched_p99_ms.map_or_else(dash, |e| fmt_ms(e.median)),
                elastic.map_or_else(dash, |e| format!("{:.0}", e.keys_per_sec.median)),
                elastic.map_or_else(dash, |e| fmt_pct(e.cpu_share.median)),
                elastic.and_then(|e| e.idle_share_used).map_or_else(dash, |e| e.render(fmt_pct)),
                elastic.and_then(|e| e.mean_share).map_or_else(dash, |e| fmt_pct(e.median)),
                mode.machine_steal.map_or_else(dash, |e| fmt_pct(e.median)),
                match elastic.map(|e| (e.verified, e.backups)) {
                    Some((Some(true), n)) => format!("{n} ok"),
                    Some((Some(false), _)) => "NOT VERIFIED".to_owned(),
                    _ => dash(),
                },
            ]
        })
        .collect();
    (header, rows)
}

/// One sentence on how the run was taken: machine, rounds, windows, load and what the figures
/// are.
pub fn run_settings(report: &DemoReport) -> String {
    let s = &report.settings;
    let idle = s.idle_cpu.map_or_else(String::new, |idle| {
        format!("; the machine was {} idle during the baseline windows ({})", fmt_pct(idle), s.idle_source)
    });
    // SCHED_IDLE is the default and goes unsaid; a cgroup is named.
    let idle_by =
        if s.idle_by == "cgroup" { " (idle priority by a cgroup of the lowest weight)" } else { "" };
    // The probe is the default and goes unsaid; the service's own signals are named.
    let signal = match s.signal.as_str() {
        "tasks" => "; steering by the request tasks' wake→poll delays",
        "requests" => "; steering by the service's request latency",
        "threads" => "; steering by the runtime probe and a thread probe",
        _ => "",
    };
    let pinned = if s.pin_workers { "; runtime workers pinned one per CPU" } else { "" };
    // Realtime is the default and goes unsaid; a generator competing with the service is named.
    let generator = if s.generator_priority == "realtime" {
        ""
    } else {
        "; the load generator at normal priority (a request's lag includes waits behind the service's threads)"
    };
    format!(
        "{} cores ({}); {} round(s), each mode measured for {:.0} s per round after a {:.0} s warm-up \
         (the baseline twice per round, after at most 1 s); foreground load {} ({:.0} req/s offered); \
         {} keys; seed {}; target sched p99 {} ms; elastic work on {}{idle_by}{signal}{pinned}{generator}{idle}. Figures are medians over \
         rounds, [95 % bootstrap intervals] where shown; p99 x base by the {} statistic",
        report.machine.cores,
        report.machine.os,
        s.rounds,
        s.duration_secs,
        s.warmup_secs,
        fmt_pct(s.load),
        s.rate_rps,
        s.keys,
        s.seed,
        fmt_ms(s.target_p99_ms),
        s.elastic_on,
        s.statistic,
    )
}

/// The overload scenario per mode and class: offered and completed rates, refusals, backlog,
/// latency and CPU.
pub fn overload_class_rows(overload: &Overload) -> Rows {
    let opt_ms = |ms: Option<f64>| ms.map_or_else(|| "-".to_owned(), fmt_ms);
    let header = vec![
        "mode",
        "class",
        "tenant",
        "prio",
        "offered/s",
        "done/s",
        "rejected",
        "backlog",
        "p50 ms",
        "p99 ms",
        "max ms",
        "CPU",
    ];
    let mut rows = Vec::new();
    for mode in &overload.modes {
        for class in &mode.classes {
            rows.push(vec![
                mode.name.clone(),
                class.name.clone(),
                class.tenant.to_string(),
                class.priority.to_string(),
                format!("{:.0}", class.offered_rps),
                format!("{:.0}", class.throughput_rps),
                class.rejected.to_string(),
                class.backlog.to_string(),
                opt_ms(class.p50_ms),
                opt_ms(class.p99_ms),
                opt_ms(class.max_ms),
                fmt_pct(class.cpu_share),
            ]);
        }
    }
    (header, rows)
}

/// The overload scenario per mode: throughput against no queue, heartbeat p99, CPU per tenant
/// against the weights, process CPU, the queue's slots and refusals.
pub fn overload_mode_rows(overload: &Overload) -> Rows {
    let opt_ms = |ms: Option<f64>| ms.map_or_else(|| "-".to_owned(), fmt_ms);
    let header = vec![
        "mode",
        "total req/s",
        "vs no-queue",
        "heartbeat p99",
        "A CPU",
        "B CPU",
        "A:B CPU",
        "A share (weight)",
        "process CPU",
        "req/CPU-s",
        "slots end/mean/max",
        "queued",
        "refused",
    ];
    let plain = overload.mode("no-queue").map(|m| m.throughput_rps).filter(|&t| t > 0.0);
    let rows: Vec<Vec<String>> = overload
        .modes
        .iter()
        .map(|mode| {
            let tenant = |i: usize| mode.tenants.get(i);
            let queue = mode.queue.as_ref();
            vec![
                mode.name.clone(),
                format!("{:.0}", mode.throughput_rps),
                plain.map_or_else(
                    || "-".to_owned(),
                    |p| format!("{:+.1}%", (mode.throughput_rps / p - 1.0) * 100.0),
                ),
                opt_ms(mode.class("heartbeat").and_then(|c| c.p99_ms)),
                tenant(0).map_or_else(|| "-".to_owned(), |t| fmt_pct(t.cpu_share)),
                tenant(1).map_or_else(|| "-".to_owned(), |t| fmt_pct(t.cpu_share)),
                mode.tenant_cpu_ratio().map_or_else(|| "-".to_owned(), |r| format!("{r:.2}:1")),
                tenant(0).map_or_else(
                    || "-".to_owned(),
                    |t| format!("{} ({})", fmt_pct(t.tenants_cpu_fraction), fmt_pct(t.weight_share)),
                ),
                fmt_pct(mode.process_cpu_share),
                format!("{:.0}", mode.requests_per_cpu_second),
                queue.map_or_else(
                    || "-".to_owned(),
                    |q| format!("{}/{:.1}/{}", q.final_slots, q.mean_slots, q.max_slots),
                ),
                queue.map_or_else(|| "-".to_owned(), |q| q.admitted_after_queueing.to_string()),
                queue.map_or_else(|| "-".to_owned(), |q| q.rejected_deadline.to_string()),
            ]
        })
        .collect();
    (header, rows)
}

/// One sentence on how the overload scenario was run.
pub fn overload_settings(report: &DemoReport, overload: &Overload) -> String {
    format!(
        "{} cores ({}); {:.0} s measured per mode after the warm-up; tenants A (weight 2) and B (weight 1) \
         offered {} of capacity together, heartbeats (high priority) {} ({:.0} req/s in all, capacity \
         {:.0} req/s); {} B hashed per hop (~{:.0} µs of CPU per request); with the queue a request \
         waits at most {} ms for a slot, and slots follow the runnable tasks per worker, admitted \
         requests included (threshold {}); {} keys; seed {}",
        report.machine.cores,
        report.machine.os,
        report.settings.duration_secs,
        fmt_pct(overload.tenant_load),
        fmt_pct(overload.heartbeat_load),
        (overload.tenant_load + overload.heartbeat_load) * overload.capacity_rps,
        overload.capacity_rps,
        overload.hop_bytes,
        overload.request_cpu_us,
        fmt_ms(overload.max_wait_ms),
        overload.admission_threshold,
        report.settings.keys,
        report.settings.seed,
    )
}
