//! The command line of `tailguard demo`, the scenarios it runs, and the checks on both.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::mode::Mode;
use super::summary::Statistic;
use crate::choices::{ControllerChoice, GeneratorPriority, IdleBy, Placement, SignalChoice};
use crate::duration::parse_duration;
use crate::error::CliError;
use crate::workload::generator;
use crate::workload::service::WorkConfig;

/// Rounds of a default run: a median and a (min–max) interval at about 1.5 times the length of
/// a single pass; `--rounds 5` gives figures worth quoting.
pub const DEFAULT_ROUNDS: u32 = 2;

/// Offered load of the two tenants together, as a multiple of capacity (65 % each).
pub const OVERLOAD_DEFAULT_TENANT_LOAD: f64 = 1.3;

/// The queue's overload threshold when `--admission-threshold` is not given: 32 runnable tasks
/// per worker, the library's default (CockroachDB's 32 goroutines per CPU). The scenario's
/// signal counts the admitted requests as runnable ([`WorkQueueConfig::count_admitted`]), so
/// the slot count settles just above the threshold times the workers over two (the adjuster
/// adds slots up to half the threshold and takes none away below it): 34 slots on 2 workers. On the 2-core VM, thresholds 16, 32 and 64 (18, 34 and 66 slots) all kept
/// throughput within a few percent of no queue; heartbeat p99 was ~3, ~4 and ~7 ms.
pub const OVERLOAD_DEFAULT_THRESHOLD: f64 = 32.0;

/// Bytes hashed per hop when `--hop-bytes` is not given: 16 KiB, ~90 µs of CPU per request on
/// the 2-core VM. Under overload every arrival queues: with the other scenarios' 4 KiB hops
/// (~25 µs per request, ~100 000 arrivals per second) the queue cost 11 % of the throughput in
/// one run, with 16 KiB a few percent.
pub const OVERLOAD_DEFAULT_HOP_BYTES: usize = 16 << 10;

/// Measured window per mode when `--duration` is not given.
pub const OVERLOAD_DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Default `--stolen-over`: 0.5 % of the machine's CPU time. Over the compare runs of the
/// project's VMs, the baseline's median p99 was 0.42 ms in windows with less steal and
/// 0.88–0.93 ms in windows with 0.5–2 % (docs/design-notes.md, "Windows the host stole from").
pub const DEFAULT_STOLEN_OVER: f64 = 0.005;

/// Arguments of `tailguard demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// What to run: the mode comparison, the load-step scenario that compares controllers, or
    /// foreground overload without and with the admission work queue.
    #[arg(long, value_enum, default_value_t = Scenario::Compare)]
    pub scenario: Scenario,
    /// Measurement time per mode and round (default 3s for compare, 30s for adapt, 10s for
    /// overload).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Rounds of the compare and adapt scenarios: every mode runs once per round, the baseline
    /// twice, in an order that rotates from round to round; figures are medians over rounds
    /// with 95 % intervals. 5 rounds give figures worth quoting.
    #[arg(long, default_value_t = NonZeroU32::new(DEFAULT_ROUNDS).unwrap())]
    pub rounds: NonZeroU32,
    /// How foreground p99 is compared with the baseline's in the verdicts: the median of each
    /// round's per-interval p99s (the steadiest across repeated runs), each round's whole
    /// window, or all rounds' requests pooled.
    #[arg(long, value_enum, default_value_t = Statistic::Intervals)]
    pub statistic: Statistic,
    /// Comma-separated modes for the compare scenario: baseline, uncontrolled, static:<share>,
    /// os-priority, elastic, elastic+os-priority, and utilization, a peer for comparison (TiKV's
    /// background rule: share = (cores - busy + background CPU) x 0.8, at least 10 %,
    /// re-adjusted every --utilization-period from the process's CPU; it reads no latency).
    #[arg(long, default_value = Mode::DEFAULTS)]
    pub modes: String,
    /// Foreground load as a fraction of the whole machine (calibrated at start). The overload
    /// scenario sets its load with --overload instead.
    #[arg(long, default_value_t = generator::DEFAULT_LOAD)]
    pub load: f64,
    /// Overload scenario: offered load of the two tenants together, as a multiple of the
    /// service's capacity, measured at start (1.3: 65 % each); heartbeats add 1 %.
    #[arg(long, default_value_t = OVERLOAD_DEFAULT_TENANT_LOAD)]
    pub overload: f64,
    /// Overload scenario: longest a request waits for an admission slot, from its scheduled
    /// arrival, before the queue refuses it.
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    pub max_wait: Duration,
    /// Overload scenario: runnable tasks per worker (tokio's global queue plus admitted
    /// requests) at or above which the queue takes a slot away; slots settle near
    /// threshold × workers / 2.
    #[arg(long, default_value_t = OVERLOAD_DEFAULT_THRESHOLD)]
    pub admission_threshold: f64,
    /// Keys in the store.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Mean value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Bytes hashed at each of a foreground request's four hops: its CPU cost (default 4 KiB,
    /// ~25 µs of CPU per request on the 2-core VM; 16 KiB, ~90 µs, for overload).
    #[arg(long)]
    pub hop_bytes: Option<usize>,
    /// Where elastic work runs: on threads of its own, or as tasks in the foreground runtime.
    #[arg(long, value_enum, default_value_t = Placement::Threads)]
    pub elastic_on: Placement,
    /// Target p99 scheduling latency of the limiter.
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    pub target: Duration,
    /// The adaptive controller steers by at least this many times the scheduling p99 measured
    /// while no elastic work ran (elastic work is not blamed for the machine's own latency);
    /// 0: by the target alone.
    #[arg(long, default_value_t = 1.5)]
    pub quiet_factor: f64,
    /// The adaptive controller steers by at most this many times the scheduling p99 measured
    /// while no elastic work ran, when that is under the target (never under 50 µs); 0: off.
    #[arg(long, default_value_t = 0.0)]
    pub quiet_headroom: f64,
    /// The adaptive controller holds its share instead of cutting for latency over target (up
    /// to 4×) while the hypervisor stole at least this fraction of the machine's CPU time in a
    /// tick of the last half second (/proc/stat); 0: off.
    #[arg(long, default_value_t = tailguard::elastic::DEFAULT_STEAL_HOLD)]
    pub steal_hold: f64,
    /// How much fill the elastic token bucket holds, as time at the share's rate: the most
    /// elastic work can run above its share after it could not use it; the longer it is, the
    /// more CPU over the share elastic work may spend just after a cut.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub burst: Duration,
    /// Rate of the scheduling-latency probe while no elastic work asks the limiter for CPU, Hz
    /// (1 kHz while work does); 0, the default here, keeps 1 kHz always, so that every mode,
    /// with a limiter or without, is measured by the same probe (`serve` idles at 10 Hz).
    #[arg(long, default_value_t = 0)]
    pub probe_idle_rate: u32,
    /// The adapt scenario: run the latency controllers' elastic work also at the OS's lowest
    /// priority (SCHED_IDLE), as the compare scenario's `elastic+os-priority` mode does; the
    /// utilisation peer's runs at normal priority, as its mode does.
    #[arg(long)]
    pub os_priority: bool,
    /// How elastic threads are put at the OS's idle priority where they are (the os-priority
    /// modes, --os-priority): each thread at SCHED_IDLE, or all in a cgroup of the lowest CPU
    /// weight beneath this process's own (cgroup v1 and root; refused with the reason otherwise,
    /// and the work runs at normal priority).
    #[arg(long, value_enum, default_value_t = IdleBy::SchedIdle)]
    pub idle_by: IdleBy,
    /// What the latency controllers steer by: the runtime probe's wake→poll delays; the
    /// foreground's own request tasks (spawn or wake to poll) merged with the probe's; a thread
    /// probe's timer overshoot merged with it; or the service's request latency alone (pair it
    /// with --quiet-headroom). Every window measures the chosen source, baseline included, and
    /// the series show its p99 per interval beside the probe's.
    #[arg(long, value_enum, default_value_t = SignalChoice::Probe)]
    pub signal: SignalChoice,
    /// Controller of the elastic modes in the compare scenario (reference or adaptive; the
    /// utilisation peer is a mode of its own, `utilization`).
    #[arg(long, value_enum, default_value_t = ControllerChoice::Adaptive)]
    pub controller: ControllerChoice,
    /// How often the `utilization` mode re-adjusts its share (TiKV's period, 10s; at least 1s).
    /// Its windows warm up for at least one period, so each is measured after an adjustment.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub utilization_period: Duration,
    /// Seed of the keyspace and the request schedule.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Time each mode runs before it is measured: the limiter's window fills and its share
    /// settles. The baseline, which has no limiter, warms up for at most 1s.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// CPU time granted to one elastic export request (the limiter's grant size); uncontrolled
    /// requests run for as long in wall time.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub grant: Duration,
    /// Elastic threads under a grant give the CPU away (sched_yield) after every this much CPU,
    /// so a foreground thread made runnable behind one waits about this long at most, not a
    /// whole OS time slice (elastic work placed on threads; 0s: never).
    #[arg(long, default_value = "250us", value_parser = parse_duration)]
    pub elastic_yield: Duration,
    /// Length of one point of the time series.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub interval: Duration,
    /// Worker threads of the foreground runtime (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Pin each worker of the foreground runtime to a CPU of its own
    /// (`tailguard::placement::pin_workers`): beside elastic work at `SCHED_IDLE`, Linux may
    /// otherwise queue two workers on one CPU while the other CPU runs idle-priority work.
    #[arg(long)]
    pub pin_workers: bool,
    /// The load generator's priority while it dispatches: `realtime` (SCHED_FIFO, ahead of the
    /// service's threads, as clients on other machines are; needs root, else it falls back to
    /// normal and says so) or `normal` (competing with the service for the CPU, so a request's
    /// lag before dispatch includes waits behind the runtime's workers).
    #[arg(long, value_enum, default_value_t = GeneratorPriority::Realtime)]
    pub generator_priority: GeneratorPriority,
    /// Keep the last complete backup of each worker in this directory (for `tailguard restore`);
    /// by default backups go to a temporary directory that is removed.
    #[arg(long)]
    pub backup_dir: Option<PathBuf>,
    /// Write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML page with plots to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Render a report written earlier with --json (table, and --html / --scatter if given)
    /// instead of running the experiment.
    #[arg(long, value_name = "JSON")]
    pub from_json: Option<PathBuf>,
    /// Write the compare scenario's scatter (elastic work against foreground p99, every mode,
    /// the static frontier) to this file as SVG.
    #[arg(long)]
    pub scatter: Option<PathBuf>,
    /// Measure a window again, up to this many times, when the hypervisor stole more than
    /// --stolen-over of the CPU during it; the last attempt is kept either way, and the report
    /// lists every window measured again (default 2 for compare, 0 for the others: their
    /// windows are 10 times longer and on a shared host seldom free of steal).
    #[arg(long)]
    pub rerun_stolen: Option<u32>,
    /// Fraction of the machine's CPU time the hypervisor may steal during a window before its
    /// figures count as the host's: such a window is measured again (--rerun-stolen) or, when
    /// kept, named in the report's notes. On the project's VMs a baseline's p99 doubles from
    /// windows with under 0.5 % steal to windows with 0.5–2 %.
    #[arg(long, default_value_t = DEFAULT_STOLEN_OVER)]
    pub stolen_over: f64,
    /// Print no progress, only the final table.
    #[arg(long)]
    pub quiet: bool,
}

/// The experiment to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Every mode side by side at a constant foreground load.
    Compare,
    /// Foreground load steps 20 % → 60 % → 20 % while the backup runs; the reference and
    /// adaptive controllers and the utilisation peer.
    Adapt,
    /// Foreground offered above capacity (two tenants weighted 2:1 and a high-priority
    /// heartbeat class), without and with the admission work queue; no elastic work.
    Overload,
}

impl Scenario {
    /// Measured time per window when `--duration` is not given.
    pub fn default_duration(self) -> Duration {
        match self {
            Scenario::Compare => Duration::from_secs(3),
            Scenario::Adapt => Duration::from_secs(30),
            Scenario::Overload => OVERLOAD_DEFAULT_DURATION,
        }
    }

    /// How often a stolen window is measured again when `--rerun-stolen` is not given.
    pub fn default_rerun_stolen(self) -> u32 {
        match self {
            Scenario::Compare => 2,
            Scenario::Adapt | Scenario::Overload => 0,
        }
    }

    /// Bytes hashed per hop of a foreground request when `--hop-bytes` is not given.
    pub fn default_hop_bytes(self) -> usize {
        match self {
            Scenario::Overload => OVERLOAD_DEFAULT_HOP_BYTES,
            Scenario::Compare | Scenario::Adapt => WorkConfig::default().hash_bytes_per_hop,
        }
    }
}

impl DemoArgs {
    /// The measured time per window, as given or the scenario's default.
    pub fn duration(&self) -> Duration {
        self.duration.unwrap_or(self.scenario.default_duration())
    }

    /// How often a window the host stole from is measured again, as given or the scenario's
    /// default.
    pub fn rerun_stolen(&self) -> u32 {
        self.rerun_stolen.unwrap_or(self.scenario.default_rerun_stolen())
    }

    /// Bytes hashed per hop of a foreground request, as given or the scenario's default.
    pub fn hop_bytes(&self) -> usize {
        self.hop_bytes.unwrap_or(self.scenario.default_hop_bytes())
    }

    /// Checks the arguments that clap's types do not.
    ///
    /// # Errors
    ///
    /// The first argument out of range, saying what to give instead.
    pub fn validate(&self) -> Result<(), CliError> {
        let duration = self.duration();
        if duration < Duration::from_secs(1)
            || self.interval < Duration::from_millis(50)
            || self.interval > duration
        {
            return Err("--duration must be at least 1s, and --interval between 50ms and the duration".into());
        }
        if !(self.load > 0.0 && self.load <= 1.0) {
            return Err(format!(
                "--load {} is out of range: give a fraction of the machine in (0, 1]",
                self.load
            )
            .into());
        }
        if self.utilization_period < tailguard::elastic::utilization::MIN_PERIOD {
            return Err("--utilization-period must be at least 1s (TiKV never re-adjusts sooner)".into());
        }
        if self.controller == ControllerChoice::Utilization {
            return Err("--controller utilization: the utilisation peer is a mode of its own; add `utilization` to --modes and keep --controller reference or adaptive".into());
        }
        if !(self.stolen_over > 0.0 && self.stolen_over < 1.0) {
            return Err(format!(
                "--stolen-over {} is out of range: give a fraction of the machine's CPU time in (0, 1), e.g. 0.005",
                self.stolen_over
            )
            .into());
        }
        if self.keys == 0 || self.value_size == 0 || self.hop_bytes == Some(0) {
            return Err("--keys, --value-size and --hop-bytes must be at least 1".into());
        }
        if self.scenario == Scenario::Overload {
            self.validate_overload()?;
        }
        if self.os_priority && self.scenario != Scenario::Adapt {
            return Err("--os-priority is for --scenario adapt; the compare scenario takes it per mode (elastic+os-priority)".into());
        }
        Ok(())
    }

    /// Checks the overload scenario's own flags.
    ///
    /// # Errors
    ///
    /// The first flag out of range, named.
    fn validate_overload(&self) -> Result<(), CliError> {
        if !(self.overload > 0.0 && self.overload <= 10.0) {
            return Err(format!(
                "--overload {} is out of range: give the tenants' load as a multiple of capacity in (0, 10]",
                self.overload
            )
            .into());
        }
        if !(Duration::from_millis(1)..=Duration::from_secs(60)).contains(&self.max_wait) {
            return Err("--max-wait must be within 1ms ..= 60s".into());
        }
        if !(self.admission_threshold.is_finite() && self.admission_threshold > 0.0) {
            return Err(format!(
                "--admission-threshold {} is invalid: give a positive number of runnable tasks per CPU",
                self.admission_threshold
            )
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: DemoArgs,
    }

    /// `tailguard demo` arguments parsed from `argv` (without the command), checked.
    pub(crate) fn demo_args(argv: &[&str]) -> DemoArgs {
        let args = Wrapper::try_parse_from(std::iter::once("demo").chain(argv.iter().copied())).unwrap().args;
        args.validate().unwrap();
        args
    }

    #[test]
    fn the_utilization_period_defaults_to_tikvs_and_is_at_least_a_second() {
        assert_eq!(demo_args(&[]).utilization_period, Duration::from_secs(10));
        assert_eq!(demo_args(&["--utilization-period", "2s"]).utilization_period, Duration::from_secs(2));
        let short = Wrapper::try_parse_from(["demo", "--utilization-period", "500ms"]).unwrap().args;
        assert!(short.validate().unwrap_err().to_string().contains("at least 1s"));
        let peer_as_controller =
            Wrapper::try_parse_from(["demo", "--controller", "utilization"]).unwrap().args;
        assert!(peer_as_controller.validate().unwrap_err().to_string().contains("a mode of its own"));
    }

    #[test]
    fn stolen_windows_are_rerun_by_default_only_in_the_compare_scenario() {
        let compare = demo_args(&[]);
        assert_eq!((compare.rerun_stolen(), compare.stolen_over), (2, DEFAULT_STOLEN_OVER));
        assert_eq!(demo_args(&["--scenario", "adapt"]).rerun_stolen(), 0);
        assert_eq!(demo_args(&["--scenario", "adapt", "--rerun-stolen", "1"]).rerun_stolen(), 1);
        for bad in ["0", "1", "1.5", "NaN"] {
            let args = Wrapper::try_parse_from(["demo", "--stolen-over", bad]).unwrap().args;
            assert!(args.validate().unwrap_err().to_string().contains("--stolen-over"), "{bad}");
        }
    }

    #[test]
    fn os_priority_is_refused_outside_the_adapt_scenario() {
        assert!(demo_args(&["--scenario", "adapt", "--os-priority"]).os_priority);
        let compare = Wrapper::try_parse_from(["demo", "--os-priority"]).unwrap().args;
        assert!(compare.validate().unwrap_err().to_string().contains("is for --scenario adapt"));
    }
}
