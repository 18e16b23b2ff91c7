//! The controller's rules, tick by tick: tables for the reference, and both variants against
//! the same plants — a smooth one and one with a knee.

use super::*;

const TICK: Duration = Duration::from_millis(100);
const MS: u64 = 1_000_000;

fn config(kind: ControllerKind, initial: f64) -> LimiterConfig {
    LimiterConfig { controller: kind, initial_share: Some(initial), ..Default::default() }
}

fn input(p99_micros: u64, waiting: bool) -> ControllerInput {
    ControllerInput {
        p99: Some(Duration::from_micros(p99_micros)),
        recent_p99: None,
        waiting_now: waiting,
        waiting_fraction: if waiting { 1.0 } else { 0.0 },
        used_fraction: if waiting { 1.0 } else { 0.0 },
        elapsed: TICK,
        silent: false,
        cpu: None,
        quiet_p99: None,
        steal: None,
    }
}

/// A table of ticks: (p99 µs, waiting, expected share after the tick).
fn run_table(kind: ControllerKind, initial: f64, table: &[(u64, bool, f64)]) {
    check_table(Controller::new(&config(kind, initial)), table);
}

/// An adaptive controller at `share` that has steered for [`KNEE_ARM`](super::super::knee::KNEE_ARM),
/// holding the share (work waits but did not use its allotment), so a violation may set a knee.
fn armed_adaptive(share: f64) -> Controller {
    let mut controller = Controller::new(&config(ControllerKind::Adaptive, share));
    let hold = ControllerInput { used_fraction: 0.0, ..input(900, true) };
    for _ in 0..10 {
        assert_eq!(controller.tick(hold), share);
    }
    controller
}

fn check_table(mut controller: Controller, table: &[(u64, bool, f64)]) {
    for (i, &(p99, waiting, expected)) in table.iter().enumerate() {
        let share = controller.tick(input(p99, waiting));
        assert!((share - expected).abs() < 1e-9, "tick {i}: share {share} != expected {expected}");
    }
}

#[test]
fn reference_reproduces_cockroachdb_rule() {
    run_table(
        ControllerKind::Reference,
        0.50,
        &[
            (500, true, 0.5001),    // under target, waiting: +0.01 %
            (500, true, 0.5002),    //
            (1_500, true, 0.5000),  // over target: -0.02 %
            (1_000, true, 0.5001),  // exactly at target counts as under
            (2_000, false, 0.4999), // over target, idle: still -0.02 %
            (500, false, 0.499875), // idle under target: -0.0025 % toward inactive
            (500, false, 0.49985),
        ],
    );
}

#[test]
fn reference_clamps_at_floor_ceiling_and_inactive_point() {
    run_table(ControllerKind::Reference, 0.05, &[(5_000, true, 0.05), (500, true, 0.0501)]);
    run_table(ControllerKind::Reference, 0.75, &[(500, true, 0.75), (500, true, 0.75)]);
    // Decay stops at the inactive point (0.12) and never goes below it when idle.
    run_table(ControllerKind::Reference, 0.120_01, &[(500, false, 0.12), (500, false, 0.12)]);
    run_table(ControllerKind::Reference, 0.10, &[(500, false, 0.10)]);
}

#[test]
fn reference_climb_takes_about_ten_minutes() {
    let mut controller = Controller::new(&config(ControllerKind::Reference, 0.12));
    let mut ticks = 0;
    while controller.tick(input(500, true)) < 0.75 - 1e-9 {
        ticks += 1;
    }
    // 0.63 / 0.0001 per tick = 6300 ticks = 630 s.
    assert!((6_290..=6_310).contains(&ticks), "{ticks}");
}

#[test]
fn no_signal_holds_the_share() {
    for kind in [ControllerKind::Reference, ControllerKind::Adaptive] {
        let mut controller = Controller::new(&config(kind, 0.3));
        let share = controller.tick(ControllerInput { p99: None, ..input(0, true) });
        assert_eq!(share, 0.3);
    }
}

#[test]
fn a_silent_signal_falls_to_the_floor_and_feedback_resumes() {
    for kind in [ControllerKind::Reference, ControllerKind::Adaptive] {
        let mut controller = Controller::new(&config(kind, 0.75));
        let silent = ControllerInput { silent: true, ..input(100, true) };
        // 0.5 share per second: 0.05 per 100 ms tick, whatever the latency reads.
        assert!((controller.tick(silent) - 0.70).abs() < 1e-9, "{kind:?}");
        let mut ticks = 1;
        while controller.tick(silent) > 0.05 {
            ticks += 1;
            assert!(ticks < 100, "{kind:?} never reached the floor");
        }
        assert_eq!(ticks, 13, "{kind:?}: from 0.70, 0.05 a tick");
        assert_eq!(controller.share(), 0.05);
        // Samples return far under target with demand: the share climbs again.
        assert!(controller.tick(input(100, true)) > 0.05, "{kind:?}");
    }
    let mut fixed = Controller::new(&config(ControllerKind::Fixed(0.4), 0.4));
    assert_eq!(fixed.tick(ControllerInput { silent: true, ..input(100, true) }), 0.4);
}

#[test]
fn fixed_never_moves() {
    let mut controller = Controller::new(&config(ControllerKind::Fixed(0.25), 0.3));
    assert_eq!(controller.share(), 0.25);
    assert_eq!(controller.tick(input(50_000, true)), 0.25);
    assert_eq!(controller.tick(input(10, false)), 0.25);
}

#[test]
fn adaptive_rules_in_a_table() {
    check_table(
        armed_adaptive(0.50),
        &[
            // Far under target (e = ln 0.25): climbs by 0.08 * 1.386 * 0.1.
            (250, true, 0.5 + 0.08 * 4f64.ln() * 0.1),
            // Over after the climb: a knee; the share is held 5 % under it at once.
            (1_100, true, (0.5 + 0.08 * 4f64.ln() * 0.1) * 0.95),
            // Still over, near target: a reference-sized step down.
            (1_100, true, (0.5 + 0.08 * 4f64.ln() * 0.1) * 0.95 - 0.0002),
            // Far over target (e = ln 4 = 1.386): cut by 0.25 * 1.386 * 0.1.
            (4_000, true, (0.5 + 0.08 * 4f64.ln() * 0.1) * 0.95 - 0.0002 - 0.25 * 4f64.ln() * 0.1),
            // Still over, but falling: the cut is damped.
            (
                3_000,
                true,
                (0.5 + 0.08 * 4f64.ln() * 0.1) * 0.95
                    - 0.0002
                    - 0.25 * 4f64.ln() * 0.1
                    - 0.25 * DAMPING * 3f64.ln() * 0.1,
            ),
        ],
    );
    // Near target without a knee: reference-sized steps.
    run_table(ControllerKind::Adaptive, 0.50, &[(1_100, true, 0.4998), (900, true, 0.4999)]);
    // Far under target with demand: climbs with the error; without demand: decays at 2 %/s.
    run_table(
        ControllerKind::Adaptive,
        0.30,
        &[(250, true, 0.30 + 0.08 * 4f64.ln() * 0.1), (250, false, 0.30 + 0.08 * 4f64.ln() * 0.1 - 0.002)],
    );
}

#[test]
fn adaptive_needs_waiting_and_use_to_climb() {
    let mut controller = Controller::new(&config(ControllerKind::Adaptive, 0.3));
    // Waited for a sliver of the tick only: not demand; the share decays.
    let sliver = ControllerInput { waiting_now: false, waiting_fraction: 0.05, ..input(250, true) };
    assert!(controller.tick(sliver) < 0.3);
    // Waiting but not using its share (e.g. blocked elsewhere): holds.
    let before = controller.share();
    let unused = ControllerInput { used_fraction: 0.1, ..input(250, true) };
    assert_eq!(controller.tick(unused), before);
}

#[test]
fn adaptive_cuts_from_the_share_elastic_work_used() {
    let over = |used_fraction| ControllerInput { used_fraction, ..input(2_000, true) };
    let cut_from = |used_fraction| {
        let mut controller = Controller::new(&config(ControllerKind::Adaptive, 0.5));
        0.5 - controller.tick(over(used_fraction))
    };
    // Used all of its share: the cut starts from the share.
    let full = cut_from(1.0);
    assert!(full > 0.0 && full < 0.05, "{full}");
    // Used 40 % of it (held back by the foreground): the cut starts from half the share, the
    // deepest a single reading may take it, and takes the same step from there.
    assert!((cut_from(0.4) - (0.25 + full)).abs() < 1e-9, "{}", cut_from(0.4));
    assert!((cut_from(0.8) - (0.1 + full)).abs() < 1e-9, "{}", cut_from(0.8));
    // Nothing granted in the span: no reading, the cut starts from the share.
    assert!((cut_from(0.0) - full).abs() < 1e-9);
    // The reference (CockroachDB's rule) is unchanged.
    let mut reference = Controller::new(&config(ControllerKind::Reference, 0.5));
    assert!(reference.tick(over(0.4)) > 0.49);
}

#[test]
fn adaptive_share_follows_down_what_elastic_work_used() {
    // Elastic work that uses `used` of the machine whatever its share (held back by the
    // foreground), never waiting for a grant: the share after `ticks` from 0.6.
    let after = |used: f64, ticks| {
        let mut controller = Controller::new(&config(ControllerKind::Adaptive, 0.6));
        let mut share = 0.6;
        for _ in 0..ticks {
            let used_fraction = used / share;
            share = controller.tick(ControllerInput { used_fraction, ..input(200, false) });
        }
        share
    };
    // Uses 0.24: within a tick the share closes a tenth of its gap to 0.3 (1.25 × 0.24).
    assert!((after(0.24, 1) - (0.6 - 0.1 * 0.3)).abs() < 1e-9, "{}", after(0.24, 1));
    // Within 3 s it is there, give or take the slow decay.
    assert!((0.28..0.32).contains(&after(0.24, 30)), "{}", after(0.24, 30));
    // Using 0.55 (0.6 is under 1.25 × that): the slow decay only.
    assert!((after(0.55, 1) - (0.6 - DECAY_PER_SEC * 0.1)).abs() < 1e-9);
    // Nothing granted in the span (no work): the slow decay only.
    assert!((after(0.0, 1) - (0.6 - DECAY_PER_SEC * 0.1)).abs() < 1e-9);
}

#[test]
fn adaptive_reads_the_recent_part_of_the_window() {
    let with_recent = |p99: u64, recent: u64| ControllerInput {
        recent_p99: Some(Duration::from_micros(recent)),
        ..input(p99, true)
    };
    let mut controller = Controller::new(&config(ControllerKind::Adaptive, 0.5));
    // The window is over target but the recent part is back under: hold, cuts are working.
    assert_eq!(controller.tick(with_recent(3_000, 800)), 0.5);
    // The recent part over target cuts even while the whole window is still under.
    let cut = controller.tick(with_recent(900, 4_000));
    assert!((cut - (0.5 - DOWN_GAIN_PER_SEC * 4f64.ln() * 0.1)).abs() < 1e-9, "{cut}");
    // Both under: climbs by the recent reading (here 250 µs, e = ln 4), not the window's
    // 900 µs, which would allow only the reference's step. (The violation came with the
    // share standing still: no knee limits the climb.)
    let climbed = controller.tick(with_recent(900, 250));
    assert!((climbed - (cut + UP_GAIN_PER_SEC * 4f64.ln() * 0.1)).abs() < 1e-9, "{climbed}");
}

/// A plant: foreground load `fg` plus the elastic share (always in demand) make each tick's
/// load; a tick's latency tail is exponential with its p99 given by `curve(load)`. The share
/// reaches the load `lag` ticks late (grants in flight). The controller reads the pooled p99
/// of the last 25 ticks (the 2.5 s window) and of the last 5 (its recent part): as with real
/// histograms, a rise shows within a tick or two and a fall only once the window has
/// forgotten it.
struct Plant {
    p99s: std::collections::VecDeque<f64>,
    curve: fn(f64) -> f64,
    in_flight: std::collections::VecDeque<f64>,
}

impl Plant {
    /// Smooth: p99 = target × exp(8 (load − 0.8)), no lag.
    fn new(initial_load: f64) -> Self {
        Self::with(Self::smooth, 0, initial_load)
    }

    fn with(curve: fn(f64) -> f64, lag: usize, initial_load: f64) -> Self {
        Plant {
            p99s: std::iter::repeat_n(curve(initial_load), 25).collect(),
            curve,
            in_flight: std::iter::repeat_n(initial_load, lag).collect(),
        }
    }

    fn smooth(load: f64) -> f64 {
        MS as f64 * (8.0 * (load - 0.8)).exp()
    }

    /// The 99th percentile of the ticks' samples pooled: `mean(exp(-x ln 100 / p)) = 0.01`.
    fn pooled(p99s: &[f64]) -> Duration {
        let tail =
            |x: f64| p99s.iter().map(|p| (-x * 100f64.ln() / p).exp()).sum::<f64>() / p99s.len() as f64;
        let (mut low, mut high) = (0.0, p99s.iter().copied().fold(0.0, f64::max));
        for _ in 0..100 {
            let mid = (low + high) / 2.0;
            if tail(mid) > 0.01 { low = mid } else { high = mid }
        }
        Duration::from_nanos(high as u64)
    }

    /// Window and recent p99 after a tick at `load`.
    fn read(&mut self, load: f64) -> (Duration, Duration) {
        self.in_flight.push_back(load);
        let load = self.in_flight.pop_front().expect("just pushed");
        self.p99s.pop_front();
        self.p99s.push_back((self.curve)(load));
        let p99s = self.p99s.make_contiguous();
        (Self::pooled(p99s), Self::pooled(&p99s[p99s.len() - 5..]))
    }
}

/// Runs `ticks` ticks on `plant`; returns the shares seen and the recent p99s read.
fn run_plant(
    kind: ControllerKind,
    initial: f64,
    fg: impl Fn(usize) -> f64,
    ticks: usize,
    mut plant: Plant,
) -> (Vec<f64>, Vec<Duration>) {
    let mut controller = Controller::new(&config(kind, initial));
    (0..ticks)
        .map(|t| {
            let (p99, recent) = plant.read(fg(t) + controller.share());
            let share = controller.tick(ControllerInput {
                p99: Some(p99),
                recent_p99: Some(recent),
                ..input(0, true)
            });
            (share, recent)
        })
        .unzip()
}

/// Runs `ticks` ticks on the smooth plant; returns the shares seen.
fn simulate(kind: ControllerKind, initial: f64, fg: impl Fn(usize) -> f64, ticks: usize) -> Vec<f64> {
    run_plant(kind, initial, &fg, ticks, Plant::new(fg(0) + initial)).0
}

/// First tick after which the share stays within `tolerance` of `equilibrium` to the end.
fn settling_tick(shares: &[f64], equilibrium: f64, tolerance: f64) -> Option<usize> {
    let last_out = shares.iter().rposition(|s| (s - equilibrium).abs() > tolerance);
    match last_out {
        None => Some(0),
        Some(i) if i + 1 < shares.len() => Some(i + 1),
        Some(_) => None,
    }
}

/// Direction changes of the share after `from`, counting moves larger than 0.01.
fn reversals(shares: &[f64], from: usize) -> usize {
    let mut count = 0;
    let mut direction = 0i8;
    let mut extreme = shares[from];
    for &s in &shares[from..] {
        let d = if s > extreme + 0.01 {
            1
        } else if s < extreme - 0.01 {
            -1
        } else {
            continue;
        };
        if direction != 0 && d != direction {
            count += 1;
        }
        direction = d;
        extreme = s;
    }
    count
}

/// Over the last 100 ticks the share moves within a band of 0.01.
fn assert_no_sustained_oscillation(shares: &[f64]) {
    let tail = &shares[shares.len() - 100..];
    let max = tail.iter().copied().fold(f64::MIN, f64::max);
    let min = tail.iter().copied().fold(f64::MAX, f64::min);
    assert!(max - min < 0.01, "share still swings {min}..{max}");
}

#[test]
fn adaptive_settles_after_a_foreground_step_without_oscillating() {
    // Foreground 40 % for 20 s, then 60 %: equilibrium share 0.4, then 0.2.
    let shares = simulate(ControllerKind::Adaptive, 0.4, |t| if t < 200 { 0.4 } else { 0.6 }, 600);
    let after = &shares[200..];
    let settled = settling_tick(after, 0.2, 0.05).expect("never settled");
    assert!(settled <= 10, "settled after {settled} ticks");
    // At most one turn: the hold below the knee, then the slow approach.
    assert!(reversals(after, settled) <= 1, "oscillates after settling");
    assert_no_sustained_oscillation(after);
    assert!(after.iter().all(|s| (0.05..=0.75).contains(s)));
    // The reference has barely moved in the same time.
    let reference = simulate(ControllerKind::Reference, 0.4, |t| if t < 200 { 0.4 } else { 0.6 }, 600);
    assert!(reference[599] > 0.3, "{}", reference[599]);
}

#[test]
fn adaptive_transients_from_too_high_and_too_low() {
    let high = simulate(ControllerKind::Adaptive, 0.75, |_| 0.4, 400);
    let settled_high = settling_tick(&high, 0.4, 0.05).expect("never settled from 75 %");
    assert!(settled_high <= 20, "from 75 %: {settled_high} ticks");
    // No undershoot beyond the hold below the knee (5 %), and one turn at most: the hold,
    // then the slow approach.
    assert!(reversals(&high, 0) <= 1);
    assert!(
        high.iter().all(|&s| s >= 0.4 * (1.0 - super::super::knee::KNEE_MARGIN) - 0.01),
        "undershoot to {}",
        high.iter().copied().fold(1.0, f64::min)
    );
    assert_no_sustained_oscillation(&high);

    let low = simulate(ControllerKind::Adaptive, 0.05, |_| 0.4, 400);
    let settled_low = settling_tick(&low, 0.4, 0.05).expect("never settled from 5 %");
    assert!(settled_low <= 40, "from 5 %: {settled_low} ticks");
    assert!(reversals(&low, settled_low) <= 1);
    assert_no_sustained_oscillation(&low);
    // The reference from too low climbs 0.01 % per tick: far from settled after 400 ticks.
    let reference = simulate(ControllerKind::Reference, 0.05, |_| 0.4, 400);
    assert!(settling_tick(&reference, 0.4, 0.05).is_none());
}

/// A knee: p99 at 0.2 × target up to 80 % load, then ×e for every 2.5 % more (the target at
/// 84 %), and grants in flight delaying the share's effect by 0.5 s. Foreground 50 %: the knee
/// is at share 0.34.
fn knee_curve(load: f64) -> f64 {
    0.2 * MS as f64 * (40.0 * (load - 0.8).max(0.0)).exp()
}

/// 500 ms intervals (5 ticks) whose recent p99 went over the 1 ms target.
fn intervals_over_target(recent: &[Duration]) -> usize {
    recent.chunks(5).filter(|c| c.iter().any(|p| *p > Duration::from_millis(1))).count()
}

#[test]
fn adaptive_remembers_the_knee_instead_of_cycling_through_it() {
    let ticks = 900;
    let (shares, recent) =
        run_plant(ControllerKind::Adaptive, 0.1, |_| 0.5, ticks, Plant::with(knee_curve, 5, 0.6));
    // The last 60 s: at most one 500 ms interval over target per 10 s.
    let tail = &recent[ticks - 600..];
    let over = intervals_over_target(tail);
    assert!(over <= 6, "{over} intervals over target in 60 s");
    // And not by hiding at the floor: near the knee (0.33) on average.
    let mean = shares[ticks - 600..].iter().sum::<f64>() / 600.0;
    assert!(mean > 0.28, "mean share {mean}");
    assert!(shares.iter().all(|s| (0.05..=0.75).contains(s)));
}

#[test]
fn the_utilization_peer_ignores_latency_and_silence() {
    let kind = ControllerKind::Utilization { period: Duration::from_secs(1) };
    let mut controller = Controller::new(&LimiterConfig { cores: 2.0, ..config(kind, 0.3) });
    let cpu = |busy_ms: u64| Some(CpuReading { busy_nanos: busy_ms * MS, elastic_nanos: 0 });
    // Far over target, then silent: the share holds, the period runs.
    assert_eq!(controller.tick(ControllerInput { cpu: cpu(0), ..input(50_000, false) }), 0.3);
    for i in 1..10 {
        let tick = ControllerInput { cpu: cpu(i * 100), silent: i % 2 == 0, ..input(50_000, false) };
        assert_eq!(controller.tick(tick), 0.3);
    }
    // One core busy over the period: (2 - 1) * 0.8 = 0.8 cores of 2 = 40 %.
    let share = controller.tick(ControllerInput { cpu: cpu(1_000), p99: None, ..input(0, false) });
    assert!((share - 0.4).abs() < 1e-9, "{share}");
}

#[test]
fn both_variants_stay_within_bounds_under_any_signal() {
    for kind in [ControllerKind::Reference, ControllerKind::Adaptive] {
        let mut controller = Controller::new(&config(kind, 0.4));
        for i in 0..5_000u64 {
            let p99 = (i * 7_919) % 20_000 + 1;
            let waiting = i % 3 != 0;
            let share = controller.tick(input(p99, waiting));
            assert!((0.05..=0.75).contains(&share), "{kind:?} tick {i}: {share}");
        }
    }
}
