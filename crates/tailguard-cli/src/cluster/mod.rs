//! `tailguard cluster`: several `serve` nodes of different CPU capacity, foreground load at
//! each over HTTP, and one distributed backup — each node exports its own key range under its
//! own limiter, and the coordinator collects the parts and verifies them together.
//!
//! Nodes are started here as child processes (`--node-cpus`, each confined by a cgroup quota or
//! CPU affinity, and on CPUs of its own where the nodes fit side by side) or named by address
//! (`--node`, started elsewhere). Each node finds its own
//! share from its own foreground load; nothing is coordinated but the key ranges, which are
//! sized by each node's detected cores so the parts finish together.
//!
//! With `--kill-node I`, node I is killed with SIGKILL mid-backup, started again on the same
//! port and backup directory, and its range resumed from the key after the last complete chunk
//! of its partial file (`GET /jobs/{id}` of the restarted node reports it): the partial file and
//! the resumed one are both parts of the backup, and the verification checks every key.

mod html;
mod http;
mod load;
mod node;
mod part;
mod place;
mod report;
mod run;
mod split;
mod verify;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;

use crate::choices::GeneratorPriority;
use crate::duration::parse_duration;
use crate::error::CliError;
use crate::restore::KeyspaceArgs;
use crate::signals::Signals;

pub use self::node::Confine;

/// Arguments of `tailguard cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Local nodes to start (default: one per `--node-cpus` entry).
    #[arg(long)]
    nodes: Option<usize>,
    /// Cores of each local node, comma-separated (fractions need a cgroup quota), e.g. `1,2`.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    node_cpus: Vec<f64>,
    /// How local nodes are held to their cores.
    #[arg(long, value_enum, default_value_t = Confine::Auto)]
    confine: Confine,
    /// Local nodes on CPUs of their own where they fit side by side (`ceil(cores)` each, in
    /// order from CPU 0), so one node's elastic work cannot delay another's foreground, as on
    /// separate machines; `false`: every node may run on any CPU, held only by its quota.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    own_cpus: bool,
    /// A node started elsewhere, `http://HOST:PORT` (repeatable; instead of local nodes). Each
    /// must serve the same keyspace as `--keys`/`--value-size`/`--seed` say.
    #[arg(long = "node", value_name = "URL", conflicts_with_all = ["nodes", "kill_node"])]
    remote: Vec<String>,
    /// The keyspace every node serves.
    #[command(flatten)]
    keyspace: KeyspaceArgs,
    /// Foreground load at each node, as a fraction of the capacity measured at the start.
    #[arg(long, default_value_t = 0.4)]
    load: f64,
    /// Foreground rate at each node, requests per second (instead of `--load`).
    #[arg(long)]
    rate: Option<f64>,
    /// Client connections per node: enough that a node's stall (a CFS quota's throttled period
    /// is up to 100 ms) delays the requests due meanwhile without starving the pacing.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Priority of the foreground clients (the open-loop load; the capacity burst and the
    /// coordinator's reads run at normal priority). `realtime`: `SCHED_FIFO`, ahead of the
    /// nodes' threads on the CPUs they share, as clients on other machines would be; needs root,
    /// and falls back to `normal` with a note.
    #[arg(long, value_enum, default_value_t = GeneratorPriority::Realtime)]
    generator_priority: GeneratorPriority,
    /// How long each node's capacity is measured.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    calibrate: Duration,
    /// Rounds of a baseline and a backup of the whole keyspace, one after the other while the
    /// foreground load runs throughout; figures are medians over rounds with 95 % bootstrap
    /// intervals (3 or more give an interval; `--kill-node` acts in the first round).
    #[arg(long, default_value = "1")]
    rounds: std::num::NonZeroU32,
    /// Foreground alone, before each backup: each node's baseline (its halves give the A/A).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    baseline: Duration,
    /// How often each node's limiter is read.
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    poll: Duration,
    /// Kill this node (0-based) with SIGKILL mid-backup, restart it and resume its range.
    #[arg(long)]
    kill_node: Option<usize>,
    /// When to kill it, after the backup's start (once its part has begun).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    kill_after: Duration,
    /// Directory of the local nodes' backups and logs (default: `tailguard-cluster-PID` in the
    /// system's temporary directory, kept after exit).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Write the report as JSON to this path (every figure, with the time series).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the report as a self-contained HTML page with charts to this path.
    #[arg(long)]
    html: Option<PathBuf>,
    /// A flag passed on to every local `tailguard serve` (repeatable), e.g. `--serve-arg=--ceiling=0.5`.
    #[arg(long, allow_hyphen_values = true)]
    serve_arg: Vec<String>,
}

/// Runs `tailguard cluster`.
///
/// # Errors
/// Bad flags, a node that does not start or answer, a backup that fails, or parts that do not
/// verify.
pub fn run(args: &ClusterArgs) -> Result<(), CliError> {
    if !(args.load > 0.0 && args.load <= 1.0) {
        return Err(format!("--load {} is out of range: use a fraction in (0, 1]", args.load).into());
    }
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err("--rate must be a positive number of requests per second".to_owned().into());
    }
    let stop = watch_signals().map_err(|e| format!("cannot install the signal handlers: {e}"))?;
    let report = match run::Run::new(args, Arc::clone(&stop)).and_then(run::Run::execute) {
        Ok(report) => report,
        // What failed then failed for the signal (a node it stopped, a pause it cut short).
        Err(_) if stop.load(Ordering::Relaxed) => {
            return Err(Interrupted("stopped by a signal before a round was done".to_owned()).into());
        }
        Err(e) => return Err(e.into()),
    };
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("cluster: report written to {}", path.display());
    }
    if let Some(path) = &args.html {
        std::fs::write(path, html::render(&report))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("cluster: page written to {}", path.display());
    }
    if let Some(interrupted) = report.interrupted {
        return Err(Interrupted(interrupted).into());
    }
    match &report.verified {
        Some(_) => Ok(()),
        None if report.nodes.iter().all(|n| n.confinement.is_none()) => Ok(()),
        None => Err("the backup's parts were not verified".to_owned().into()),
    }
}

/// The run was stopped by SIGINT or SIGTERM, after printing (and writing) the report of the
/// rounds it had done; the command exits with status [`Interrupted::EXIT_STATUS`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(String);

impl Interrupted {
    /// The exit status of a stopped run, as the demo's.
    pub const EXIT_STATUS: u8 = crate::demo::Interrupted::EXIT_STATUS;
}

/// Handles SIGINT and SIGTERM from now on: the first sets the flag returned, and the run stops
/// at its next step (a pause, a poll), stops its load and its nodes and reports the rounds
/// done; a second exits at once, the nodes then stopping on their own (their standard input
/// closes).
fn watch_signals() -> std::io::Result<Arc<AtomicBool>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut signals = {
        let _entered = runtime.enter();
        Signals::install(false)?
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::Builder::new().name("cluster-signals".into()).spawn(move || {
        runtime.block_on(async {
            let first = signals.next().await;
            flag.store(true, Ordering::Relaxed);
            eprintln!("cluster: {first}: stopping; the report will cover the rounds done (a second signal exits at once)");
            let second = signals.next().await;
            eprintln!("cluster: a second signal ({second}): exiting now");
            std::process::exit(i32::from(Interrupted::EXIT_STATUS));
        });
    })?;
    Ok(stop)
}
