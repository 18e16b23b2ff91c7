//! Choices the demo and `serve` share: where elastic work runs, which controller steers it, and
//! how its threads are put at the OS's idle priority.

use std::fmt;
use std::time::Duration;

use clap::ValueEnum;
use tailguard::elastic::ControllerKind;

/// Where elastic work runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Placement {
    /// On threads of its own, beside the foreground runtime's workers.
    Threads,
    /// Backups as tasks in the foreground runtime (elastic tasks, charged with their own
    /// running time), yielding every [`QUANTUM`] of work (the catch-up scan, which has no await
    /// points, stays on its own thread).
    Runtime,
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Placement::Threads => "threads",
            Placement::Runtime => "runtime",
        })
    }
}

/// Longest stretch an elastic task works before it yields its worker to the foreground.
pub const QUANTUM: Duration = Duration::from_micros(500);

/// Which controller steers the limiter: `serve --controller`, and the elastic modes of the demo
/// (whose `utilization` peer is a mode of its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ControllerChoice {
    /// CockroachDB's rule and constants: tiny steps.
    Reference,
    /// tailguard's controller: steps scaled with the error.
    Adaptive,
    /// A peer for comparison, not a latency controller: TiKV's utilisation rule (the CPU the
    /// foreground leaves free × 0.8, at least 10 %), re-adjusted every 10 s from the process's
    /// CPU.
    Utilization,
}

impl ControllerChoice {
    /// The library's controller for this choice.
    pub fn kind(self) -> ControllerKind {
        match self {
            ControllerChoice::Reference => ControllerKind::Reference,
            ControllerChoice::Adaptive => ControllerKind::Adaptive,
            ControllerChoice::Utilization => ControllerKind::utilization(),
        }
    }

    /// The choice's name as the command line takes it.
    pub fn name(self) -> &'static str {
        match self {
            ControllerChoice::Reference => "reference",
            ControllerChoice::Adaptive => "adaptive",
            ControllerChoice::Utilization => "utilization",
        }
    }
}

/// What the latency controllers steer by: `--signal`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum SignalChoice {
    /// The runtime probe's wake→poll delays (1 kHz).
    #[default]
    Probe,
    /// The foreground's own tasks: each request's task, from its spawn (or wake) to its poll,
    /// merged with the probe's samples, which keep the signal alive when no request runs.
    Tasks,
    /// The runtime probe merged with a thread probe: how late a plain OS thread wakes from a
    /// timer (a load generator's, an IO thread's), which the runtime's own delays do not show.
    Threads,
    /// The service's own request latency (from its handler's entry to the response), alone.
    /// Pair it with a target set by the latency without elastic work (`--quiet-headroom`).
    Requests,
}

impl SignalChoice {
    /// The choice's name as the command line takes it.
    pub fn name(self) -> &'static str {
        match self {
            SignalChoice::Probe => "probe",
            SignalChoice::Tasks => "tasks",
            SignalChoice::Threads => "threads",
            SignalChoice::Requests => "requests",
        }
    }
}

/// How the demo's load generator dispatches requests: `--generator-priority`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum GeneratorPriority {
    /// At `SCHED_FIFO` (priority 1), ahead of the service's threads, as clients on other
    /// machines would be: its dispatch never waits for a CPU behind a runtime worker. Needs
    /// root (`CAP_SYS_NICE`); refused, the generator runs at normal priority and the report
    /// says so.
    #[default]
    Realtime,
    /// At the normal policy, competing with the service for the CPU: a request's lag (its
    /// scheduled arrival to its dispatch) then includes waits behind the runtime's workers.
    Normal,
}

impl GeneratorPriority {
    /// The choice's name as the command line takes it.
    pub fn name(self) -> &'static str {
        match self {
            GeneratorPriority::Realtime => "realtime",
            GeneratorPriority::Normal => "normal",
        }
    }

    /// The priority the dispatching thread asks for; `None`: it stays as it is.
    pub fn priority(self) -> Option<tailguard::elastic::ThreadPriority> {
        match self {
            GeneratorPriority::Realtime => Some(tailguard::elastic::ThreadPriority::Realtime(1)),
            GeneratorPriority::Normal => None,
        }
    }

    /// The name of the priority the generator ran at: this choice's when the OS `granted` it,
    /// else `normal`.
    pub fn ran_as(self, granted: Option<tailguard::elastic::ThreadPriority>) -> &'static str {
        if granted.is_some() { self.name() } else { GeneratorPriority::Normal.name() }
    }

    /// The priority the generator will get: this choice's, when the OS grants it to a thread
    /// (tried on one of its own), else `None` with the reason.
    pub fn granted(self) -> (Option<tailguard::elastic::ThreadPriority>, Option<String>) {
        let Some(priority) = self.priority() else { return (None, None) };
        let tried = std::thread::spawn(move || {
            tailguard::elastic::PriorityGuard::enter(priority).map(drop).map_err(|e| e.to_string())
        })
        .join()
        .unwrap_or_else(|_| Err("the thread that tried it panicked".to_owned()));
        match tried {
            Ok(()) => (Some(priority), None),
            Err(error) => (None, Some(error)),
        }
    }
}

/// How elastic threads are put at the OS's idle priority (the `os-priority` modes of the demo,
/// `--os-priority` of `serve` and the adapt scenario): `--idle-by`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum IdleBy {
    /// Each elastic thread at `SCHED_IDLE`.
    #[default]
    SchedIdle,
    /// Elastic threads in a cgroup v1 `cpu` cgroup of the lowest weight (and `cpu.idle`)
    /// beneath the process's own (`tailguard::budget::IdleCgroup`; needs root and cgroup v1).
    Cgroup,
}

impl IdleBy {
    /// The choice's name as the command line takes it.
    pub fn name(self) -> &'static str {
        match self {
            IdleBy::SchedIdle => "sched-idle",
            IdleBy::Cgroup => "cgroup",
        }
    }

    /// The thread priority that does it.
    pub fn priority(self) -> tailguard::elastic::ThreadPriority {
        match self {
            IdleBy::SchedIdle => tailguard::elastic::ThreadPriority::Idle,
            IdleBy::Cgroup => tailguard::elastic::ThreadPriority::IdleCgroup,
        }
    }
}

/// The runtime probe's settings for `--probe-idle-rate HZ` (0: 1 kHz always).
pub fn probe_config(idle_rate_hz: u32) -> tailguard::observe::ProbeConfig {
    tailguard::observe::ProbeConfig {
        idle_rate_hz: (idle_rate_hz > 0).then_some(idle_rate_hz),
        ..tailguard::observe::ProbeConfig::default()
    }
}

/// The foreground's runtime: `workers` threads named `name`, each pinned to a CPU of its own
/// when `pin` is set (`tailguard::placement::pin_workers`: beside `SCHED_IDLE` elastic work,
/// Linux may otherwise queue two workers on one CPU while the other runs idle-priority work).
///
/// # Errors
///
/// The runtime cannot start, or the CPUs the process may use cannot be read.
pub fn foreground_runtime(workers: usize, name: &str, pin: bool) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(workers).thread_name(name).enable_all();
    if pin {
        let pins = tailguard::placement::pin_workers(&mut builder, workers)?;
        tracing::info!("runtime workers pinned to CPUs {:?}", pins.cpus());
    }
    builder.build()
}
