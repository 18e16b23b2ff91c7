//! `tailguard sim` end to end: the exact latencies printed where the hop p99 and p99.9 show, in
//! text and in JSON.
//!
//! Hops take 1 ms, 1 % of them 1 s and 0.1 % 1 min; a request crosses ten. The hop p99.9 shows
//! at the request's `0.999^10 = p99.004`: past it a request met a 1-minute hop, and the first
//! such requests took one 1-minute hop and nine 1 ms hops, `1m0.009s`, up to the request's
//! p99.918 (`0.999^10 + 10 · 0.001 · 0.99^9`). The hop p99 shows at `0.99^10 = p90.44`; past it
//! the first requests took one 1 s hop and nine 1 ms hops, `1.009s`, up to p98.66.

use std::process::{Command, Output};

fn sim(extra: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_tailguard"))
        .args(["sim", "--vars", "10", "--p99", "1s", "--p99.9", "1m"])
        .args(extra)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// 1 M requests instead of the default 10 M keep the test quick on an unoptimized build, and
/// both points stay far from the edges of the latency they print. The p99.9 point, p99.11, is
/// 0.00106 past p99.004, where requests start to meet a 1-minute hop: 11 standard deviations of
/// the sampling noise of that boundary, `sqrt(0.990 · 0.010 / 1e6)` = 0.0001 (33 at 10 M), and
/// 80 below p99.918, where the `1m0.009s` requests end. The p99 point, p91.4, is 33 standard
/// deviations past p90.44 (0.0096 / 0.00029) and far below p98.66.
const REQUESTS: &str = "1000000";

#[test]
fn the_points_where_hop_tails_show_print_their_exact_latencies() {
    let output = sim(&["--requests", REQUESTS]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout.lines().last().unwrap();
    assert!(summary.starts_with("serial-p91.4=1.009s serial-p99.11=1m0.009s (vars=10;"), "{stdout}");
    assert!(stdout.contains("hop p99 shows at the request's p90.44 "), "{stdout}");
    assert!(stdout.contains("hop p99.9 shows at the request's p99.004 "), "{stdout}");
    // Both points are robust at this count: no warning.
    assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn json_holds_the_same_figures_as_the_text() {
    let text = String::from_utf8_lossy(&sim(&["--requests", REQUESTS]).stdout).into_owned();
    let json: serde_json::Value = serde_json::from_slice(&sim(&["--requests", REQUESTS, "--json"]).stdout)
        .expect("--json prints one JSON object");

    let settings = &json["settings"];
    assert_eq!(settings["hops"], 10);
    assert_eq!(settings["composition"], "serial");
    assert_eq!(settings["base_nanos"], 1_000_000);
    assert_eq!(settings["requests"], 1_000_000);
    assert_eq!(settings["hop_latencies"][1]["latency_nanos"], 60_000_000_000u64);

    let points = json["hop_percentiles"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    for (point, hop_quantile, label, nanos, latency) in [
        (&points[0], 0.99, "serial-p91.4", 1_009_000_000u64, "1.009s"),
        (&points[1], 0.999, "serial-p99.11", 60_009_000_000, "1m0.009s"),
    ] {
        assert_eq!(point["hop_quantile"], hop_quantile);
        let shows_at = point["shows_at"].as_f64().unwrap();
        assert!((shows_at - f64::powi(hop_quantile, 10)).abs() < 1e-12, "{point}");
        assert_eq!(point["label"], label);
        let named = label["serial-p".len()..].parse::<f64>().unwrap() / 100.0;
        assert!((point["printed_quantile"].as_f64().unwrap() - named).abs() < 1e-12, "{point}");
        assert_eq!(point["latency_nanos"], nanos);
        assert_eq!(point["latency"], latency);
        assert!(point["noise_sigmas"].as_f64().unwrap() >= 10.0, "{point}");
        assert!(text.contains(&format!("{label}={latency}")), "{text}");
    }

    // The request latency line, value for value.
    let quantiles = json["request_quantiles"].as_array().unwrap();
    let names: Vec<&str> = quantiles.iter().map(|q| q["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["p50", "p90", "p99", "p99.9", "max"]);
    let line: Vec<String> = quantiles
        .iter()
        .map(|q| format!("{}={}", q["name"].as_str().unwrap(), q["latency"].as_str().unwrap()))
        .collect();
    assert!(text.contains(&format!("request latency: {}\n", line.join(" "))), "{text}\n{line:?}");
    assert_eq!(quantiles[0]["latency_nanos"], 10_000_000, "ten 1 ms hops");
}

/// The command as documented, with the default 10 M requests and seed (~10 s unoptimized).
#[test]
fn the_documented_command_prints_one_slow_hop_and_nine_fast_ones() {
    let stdout = String::from_utf8_lossy(&sim(&[]).stdout).into_owned();
    assert!(stdout.contains("serial-p91.4=1.009s serial-p99.11=1m0.009s "), "{stdout}");
}
