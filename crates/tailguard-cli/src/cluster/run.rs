//! One cluster run, step by step: nodes, capacity, baseline, backup (with the kill and the
//! resumption), verification, report.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tailguard::elastic::ThreadPriority;

use super::ClusterArgs;
use super::http::{Client, parse_address};
use super::load::{self, Load};
use super::node::{Confine, LocalNode, NodePlan, remove_stale_node_cgroups};
use super::part::{Part, cancel, start_backup};
use super::place::{pin_self, place};
use super::report::{ClusterReport, NodeReport, NodeRound, RoundReport, estimate, rate_ratio};
use super::split::{KeyRange, split};
use super::verify::{Segment, verify_parts};
use super::watch::{self, Capacity, Watch};
use crate::demo::stats::median_estimate;
use crate::report::P99_GOAL;
use crate::workload::keyspace::KeyspaceConfig;

/// How often the backup's progress is read (and printed, every fourth read).
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);
/// Open-loop trials that correct each node's foreground rate to `--load` of its CPU.
const LOAD_TRIALS: usize = 3;
/// How far (relative) a trial's CPU use may be from the load before the rate is corrected.
const LOAD_TOLERANCE: f64 = 0.1;
/// Time given the trial's clients to start before the node's CPU is read.
const LOAD_TRIAL_LEAD: Duration = Duration::from_millis(300);
/// The longest a backup part may run before the run gives up on it.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(3600);
/// How often a pause looks for a signal's request to stop.
const STOP_POLL: Duration = Duration::from_millis(50);
/// How long a failed step waits for a signal that may have caused it: a Ctrl-C reaches the
/// nodes too, and a request can fail before the coordinator's own handler has run.
const SIGNAL_GRACE: Duration = Duration::from_millis(500);
/// The error of a step cut short by a signal.
const STOPPED: &str = "stopped by a signal";

/// A node of the run, local or remote.
struct Node {
    index: usize,
    addr: SocketAddr,
    local: Option<LocalNode>,
    capacity: Capacity,
    client: Client,
}

/// One round as it ran: when its baseline and backup began and ended, and the parts.
struct RoundRun {
    baseline_start: f64,
    backup_start: f64,
    backup_end: f64,
    parts: Vec<Part>,
}

/// `round N: ` before a round's progress lines when there are several, else nothing.
fn round_label(round: usize, rounds: u32) -> String {
    if rounds > 1 { format!("round {}: ", round + 1) } else { String::new() }
}

/// The rate at which a node uses `load` of its cores, after a trial at `rate` used `used` of
/// them (CPU per request taken as the trial's); `None` when the trial was within
/// `LOAD_TOLERANCE` of the load already.
fn corrected_rate(rate: f64, used: f64, load: f64) -> Option<f64> {
    (used > 0.0 && (used / load - 1.0).abs() > LOAD_TOLERANCE).then(|| rate * load / used)
}

/// A node's figures in one round, over its own part: once it is done, it runs no elastic work.
fn node_round(
    part: &Part,
    run: &RoundRun,
    samples: &[load::Sample],
    series: &[watch::LimiterPoint],
    cores: f64,
) -> NodeRound {
    let (baseline_start, backup_start) = (run.baseline_start, run.backup_start);
    let part_end = part.ended_at.unwrap_or(run.backup_end);
    let baseline = load::window(samples, baseline_start, backup_start);
    let during = load::window(samples, backup_start, part_end);
    // The demo's `intervals` statistic: one bad second sets a whole window's p99.
    let ratio = baseline.interval_p99_seconds.zip(during.interval_p99_seconds).map(|(b, d)| d / b);
    let pooled_ratio = baseline.p99_seconds.zip(during.p99_seconds).map(|(b, d)| d / b);
    // The baseline against itself, its second half over its first: the noise floor.
    let halfway = (baseline_start + backup_start) / 2.0;
    let baseline_aa_ratio = load::window(samples, baseline_start, halfway)
        .interval_p99_seconds
        .zip(load::window(samples, halfway, backup_start).interval_p99_seconds)
        .map(|(first, second)| second / first);
    let (keys_per_second, mb_per_second, seconds) = part.rate();
    let baseline_cpu = watch::cpu_fraction(series, baseline_start, backup_start, cores, |p| p.cpu_seconds);
    let elastic_cpu = watch::cpu_fraction(series, backup_start, part_end, cores, |p| p.elastic_cpu_seconds);
    NodeRound {
        baseline,
        during_backup: during,
        p99_ratio: ratio,
        pooled_p99_ratio: pooled_ratio,
        baseline_aa_ratio,
        scheduling_p99_seconds: (
            watch::median_p99(series, baseline_start, backup_start),
            watch::median_p99(series, backup_start, part_end),
        ),
        mean_share: watch::mean_share(series, backup_start, part_end),
        baseline_cpu_fraction: baseline_cpu,
        elastic_cpu_fraction: elastic_cpu,
        elastic_of_idle: baseline_cpu.zip(elastic_cpu).and_then(|(b, e)| (b < 1.0).then(|| e / (1.0 - b))),
        share_settled_after_seconds: watch::settled_after(series, backup_start, part_end),
        backup_keys_per_second: keys_per_second,
        backup_mb_per_second: mb_per_second,
        backup_seconds: seconds,
        killed_and_resumed: part.killed,
        segments: part.segments.clone(),
    }
}

/// The run's state.
pub struct Run<'a> {
    args: &'a ClusterArgs,
    keyspace: KeyspaceConfig,
    nodes: Vec<Node>,
    /// The foreground clients' priority, as granted (`None`: normal).
    priority: Option<ThreadPriority>,
    /// Set by the first SIGINT or SIGTERM: stop at the next step and report the rounds done.
    stop: Arc<AtomicBool>,
    epoch: Instant,
}

fn progress(epoch: Instant, message: &str) {
    eprintln!("cluster {:>6.1}s: {message}", epoch.elapsed().as_secs_f64());
}

impl<'a> Run<'a> {
    /// Starts (or reaches) the nodes and reads their capacity.
    ///
    /// # Errors
    /// A message when a node cannot be started or reached.
    pub fn new(args: &'a ClusterArgs, stop: Arc<AtomicBool>) -> Result<Self, String> {
        let keyspace = args.keyspace.config();
        let epoch = Instant::now();
        let mut nodes = Vec::new();
        if args.remote.is_empty() {
            let count = args.nodes.unwrap_or(args.node_cpus.len());
            if count == 0 || args.node_cpus.len() != count {
                return Err(format!(
                    "--nodes {count} needs {count} entries in --node-cpus, got {}",
                    args.node_cpus.len()
                ));
            }
            if let Some(kill) = args.kill_node.filter(|&k| k >= count) {
                return Err(format!("--kill-node {kill}: there are nodes 0..{count}"));
            }
            if args.confine != Confine::Affinity {
                for stale in remove_stale_node_cgroups() {
                    progress(epoch, &format!("removed {}, left by an earlier run", stale.display()));
                }
            }
            let dir = args.dir.clone().unwrap_or_else(|| {
                std::env::temp_dir().join(format!("tailguard-cluster-{}", std::process::id()))
            });
            if let Some((index, cores)) =
                args.node_cpus.iter().enumerate().find(|(_, c)| !(c.is_finite() && **c > 0.0))
            {
                return Err(format!("--node-cpus: node {index} has {cores} cores; use a positive number"));
            }
            let available = std::thread::available_parallelism().map_or(1, usize::from);
            let placement = args.own_cpus.then(|| place(&args.node_cpus, available)).flatten();
            if args.own_cpus && placement.is_none() {
                progress(
                    epoch,
                    &format!(
                        "the nodes' CPUs do not fit side by side in {available}: every node may run on \
                         any CPU, held only by its quota"
                    ),
                );
            }
            for (index, &cores) in args.node_cpus.iter().enumerate() {
                let plan = NodePlan {
                    index,
                    cores,
                    dir: dir.join(format!("node-{index}")),
                    keyspace,
                    serve_args: args.serve_arg.clone(),
                    cpus: placement.as_ref().map(|p| p.nodes[index].clone()),
                };
                let local = LocalNode::start(plan, args.confine)?;
                progress(
                    epoch,
                    &format!("node {index} listens on http://{} ({})", local.addr, local.confinement()),
                );
                nodes.push((local.addr, Some(local)));
            }
            // The load generators off the nodes' CPUs, where a whole CPU is left for them.
            if let Some(free) = placement.as_ref().and_then(|p| p.free.as_deref()) {
                let message = match pin_self(free) {
                    Ok(()) => format!("the coordinator runs on CPUs {free}, apart from the nodes"),
                    Err(e) => format!("the coordinator runs on any CPU ({e})"),
                };
                progress(epoch, &message);
            }
        } else {
            for text in &args.remote {
                nodes.push((parse_address(text)?, None));
            }
        }
        let nodes = nodes
            .into_iter()
            .enumerate()
            .map(|(index, (addr, local))| {
                let mut client = Client::new(addr);
                let capacity =
                    watch::capacity(&mut client).map_err(|e| format!("node {index} ({addr}): {e}"))?;
                progress(epoch, &format!("node {index}: {} cores ({})", capacity.cores, capacity.source));
                Ok(Node { index, addr, local, capacity, client })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let (priority, refused) = args.generator_priority.granted();
        if let Some(reason) = refused {
            progress(epoch, &format!("the foreground clients run at normal priority: {reason}"));
        }
        Ok(Run { args, keyspace, nodes, priority, stop, epoch })
    }

    fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    /// Sleeps for `duration`, or until a signal asks the run to stop; `false` if one did.
    fn pause(&self, duration: Duration) -> bool {
        let end = Instant::now() + duration;
        while !self.stop.load(Relaxed) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(STOP_POLL));
        }
        false
    }

    /// After a step failed: whether a signal stopped the run (given `SIGNAL_GRACE` to arrive).
    fn stopped_by_signal(&self) -> bool {
        !self.pause(SIGNAL_GRACE)
    }

    /// Runs the experiment and returns its report.
    ///
    /// # Errors
    /// A message when a backup part fails or the parts do not verify.
    pub fn execute(mut self) -> Result<ClusterReport, String> {
        let weights: Vec<f64> = self.nodes.iter().map(|n| n.capacity.cores).collect();
        let ranges = split(self.keyspace.keys, &weights)?;
        let rates: Vec<f64> = match self.args.rate {
            Some(rate) => vec![rate; self.nodes.len()],
            None => self.foreground_rates(),
        };
        let watches: Vec<Watch> =
            self.nodes.iter().map(|n| Watch::start(n.addr, self.args.poll, self.epoch)).collect();
        let loads = self.start_loads(&rates);
        let mut rounds: Vec<RoundRun> = Vec::new();
        let mut outcome = Ok(());
        for round in 0..self.args.rounds.get() {
            match self.round(round, &ranges, &watches) {
                Ok(run) => rounds.push(run),
                Err(_) if self.stopped_by_signal() => break,
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        let samples: Vec<Vec<load::Sample>> = loads.into_iter().map(Load::finish).collect();
        let series: Vec<Vec<watch::LimiterPoint>> = watches.into_iter().map(Watch::finish).collect();
        outcome?;
        let planned = self.args.rounds.get() as usize;
        let interrupted = (self.stop.load(Relaxed) && rounds.len() < planned).then(|| {
            format!(
                "stopped by a signal in round {}: the report covers {} of {planned} rounds",
                rounds.len() + 1,
                rounds.len()
            )
        });
        if rounds.is_empty() {
            return Err(STOPPED.to_owned());
        }
        let mut round_reports = Vec::with_capacity(rounds.len());
        let mut verified = None;
        for (round, run) in rounds.iter().enumerate() {
            let all: Vec<Segment> = run.parts.iter().flat_map(|p| p.segments.iter().cloned()).collect();
            let verification = if self.nodes.iter().all(|n| n.local.is_some()) {
                let report = verify_parts(&self.keyspace, &all)?;
                let text = format!(
                    "verified byte-exact: {} keys, {} value bytes, each once, in {} files",
                    report.keys, report.value_bytes, report.files
                );
                verified.get_or_insert(report);
                text
            } else {
                self.verify_remote(&run.parts, &ranges)?
            };
            progress(self.epoch, &format!("{}{verification}", round_label(round, self.args.rounds.get())));
            let rates: Vec<f64> = run.parts.iter().map(|p| p.rate().0).collect();
            round_reports.push(RoundReport {
                baseline_started_at: run.baseline_start,
                backup_started_at: run.backup_start,
                backup_ended_at: run.backup_end,
                backup_seconds: run.backup_end - run.backup_start,
                rate_ratio: rate_ratio(&rates, &weights),
                verification,
            });
        }
        let run_end = rounds.last().map_or(0.0, |r| r.backup_end);
        let nodes = self
            .nodes
            .iter()
            .enumerate()
            .zip(ranges.iter().zip(rates))
            .zip(samples.iter().zip(series))
            .map(|(((i, node), (range, rate)), (samples, series))| {
                let per_round: Vec<NodeRound> = rounds
                    .iter()
                    .map(|run| node_round(&run.parts[i], run, samples, &series, node.capacity.cores))
                    .collect();
                let p99_ratio = estimate(per_round.iter().map(|r| r.p99_ratio));
                NodeReport {
                    index: node.index,
                    address: format!("http://{}", node.addr),
                    confinement: node.local.as_ref().map(LocalNode::confinement),
                    cores: node.capacity.cores,
                    cores_source: node.capacity.source.clone(),
                    range: *range,
                    offered_rate: rate,
                    p99_ratio,
                    isolation_met: p99_ratio.map(|r| r.median <= P99_GOAL),
                    pooled_p99_ratio: estimate(per_round.iter().map(|r| r.pooled_p99_ratio)),
                    baseline_aa_ratio: estimate(per_round.iter().map(|r| r.baseline_aa_ratio)),
                    mean_share: estimate(per_round.iter().map(|r| r.mean_share)),
                    baseline_cpu_fraction: estimate(per_round.iter().map(|r| r.baseline_cpu_fraction)),
                    elastic_of_idle: estimate(per_round.iter().map(|r| r.elastic_of_idle)),
                    share_settled_after_seconds: estimate(
                        per_round.iter().map(|r| r.share_settled_after_seconds),
                    ),
                    backup_keys_per_second: median_estimate(
                        &per_round.iter().map(|r| r.backup_keys_per_second).collect::<Vec<_>>(),
                    ),
                    rounds: per_round,
                    share_series: series,
                    foreground_p99_series: (0..run_end.ceil() as u32)
                        .map(|second| {
                            let at = f64::from(second);
                            (at, load::window(samples, at, at + 1.0).p99_seconds)
                        })
                        .collect(),
                }
            })
            .collect();
        Ok(ClusterReport {
            keys: self.keyspace.keys,
            load: self.args.load,
            generator_priority: self.args.generator_priority.ran_as(self.priority).to_owned(),
            baseline_seconds: self.args.baseline.as_secs_f64(),
            backup_seconds: median_estimate(
                &round_reports.iter().map(|r| r.backup_seconds).collect::<Vec<_>>(),
            ),
            rate_ratio: estimate(round_reports.iter().map(|r| r.rate_ratio)),
            verified,
            p99_goal: P99_GOAL,
            rounds: round_reports,
            nodes,
            interrupted,
        })
    }

    /// Open-loop foreground load at every node, at its rate in `rates`.
    fn start_loads(&self, rates: &[f64]) -> Vec<Load> {
        self.nodes
            .iter()
            .zip(rates)
            .map(|(n, &rate)| {
                Load::start(n.addr, self.keyspace, rate, self.args.connections, self.priority, self.epoch)
            })
            .collect()
    }

    /// Each node's foreground rate for `--load`: the rate at which the node's process uses that
    /// fraction of its cores. A closed-loop burst gives a first estimate (its requests per
    /// second × the load), but paced requests cost each more CPU than back-to-back ones (a
    /// wake-up each, nothing batched), so open-loop trials at every node together measure the
    /// CPU each node uses and correct its rate, until it is within `LOAD_TOLERANCE` of the load
    /// or after `LOAD_TRIALS` trials. A node that does not report its CPU keeps the estimate.
    fn foreground_rates(&mut self) -> Vec<f64> {
        let load = self.args.load;
        let mut rates: Vec<f64> = self
            .nodes
            .iter()
            .map(|n| {
                let connections = 2 * crate::capacity::whole_cpus(n.capacity.cores);
                let capacity =
                    load::measure_capacity(n.addr, &self.keyspace, connections, self.args.calibrate);
                progress(self.epoch, &format!("node {}: capacity {capacity:.0} req/s back to back", n.index));
                capacity * load
            })
            .collect();
        let mut settled = vec![false; rates.len()];
        for _ in 0..LOAD_TRIALS {
            if settled.iter().all(|s| *s) {
                break;
            }
            let loads = self.start_loads(&rates);
            // Past the clients' start, then over the trial.
            std::thread::sleep(LOAD_TRIAL_LEAD);
            let before: Vec<Option<watch::LimiterPoint>> =
                self.nodes.iter_mut().map(|n| watch::read(&mut n.client, self.epoch)).collect();
            let stopped = !self.pause(self.args.calibrate);
            let after: Vec<Option<watch::LimiterPoint>> =
                self.nodes.iter_mut().map(|n| watch::read(&mut n.client, self.epoch)).collect();
            for load in loads {
                load.finish();
            }
            if stopped {
                break;
            }
            for (i, node) in self.nodes.iter().enumerate() {
                if settled[i] {
                    continue;
                }
                let readings: Vec<watch::LimiterPoint> = before[i].into_iter().chain(after[i]).collect();
                let used =
                    watch::cpu_fraction(&readings, 0.0, f64::MAX, node.capacity.cores, |p| p.cpu_seconds);
                let Some(used) = used else {
                    progress(
                        self.epoch,
                        &format!("node {i}: reports no process CPU; keeping {:.0} req/s", rates[i]),
                    );
                    settled[i] = true;
                    continue;
                };
                let corrected = corrected_rate(rates[i], used, load);
                progress(
                    self.epoch,
                    &format!(
                        "node {i}: {:.0} req/s used {:.0} % of its {} cores{}",
                        rates[i],
                        used * 100.0,
                        node.capacity.cores,
                        corrected.map_or_else(String::new, |r| format!(
                            "; {r:.0} req/s for {:.0} %",
                            load * 100.0
                        )),
                    ),
                );
                match corrected {
                    Some(rate) => rates[i] = rate,
                    None => settled[i] = true,
                }
            }
        }
        rates
    }

    /// One round: the foreground alone for the baseline, then a backup of the whole keyspace,
    /// each node its own range (node `--kill-node` killed and resumed in the first round).
    fn round(&mut self, round: u32, ranges: &[KeyRange], watches: &[Watch]) -> Result<RoundRun, String> {
        let label = round_label(round as usize, self.args.rounds.get());
        let baseline_start = self.now();
        progress(self.epoch, &format!("{label}baseline: foreground alone for {:?}", self.args.baseline));
        if !self.pause(self.args.baseline) {
            return Err(STOPPED.to_owned());
        }
        let backup_start = self.now();
        let mut parts: Vec<Part> = Vec::new();
        for (node, range) in self.nodes.iter_mut().zip(ranges) {
            let status = start_backup(&mut node.client, *range, None)?;
            progress(
                self.epoch,
                &format!(
                    "{label}node {}: backup job {} of keys {}..{}",
                    node.index, status["id"], range.from, range.to
                ),
            );
            parts.push(Part { job: status["id"].as_u64(), start: range.from, status, ..Part::default() });
        }
        let kill = self.args.kill_node.filter(|_| round == 0);
        if let Err(e) = self.follow(&mut parts, ranges, backup_start, watches, kill) {
            if self.stopped_by_signal() {
                for (node, part) in self.nodes.iter_mut().zip(&parts) {
                    cancel(&mut node.client, part);
                }
            }
            return Err(e);
        }
        let backup_end = self.now();
        progress(self.epoch, &format!("{label}backup done in {:.1}s", backup_end - backup_start));
        Ok(RoundRun { baseline_start, backup_start, backup_end, parts })
    }

    /// Polls every part until all are done, killing and resuming a node when asked.
    fn follow(
        &mut self,
        parts: &mut [Part],
        ranges: &[KeyRange],
        start: f64,
        watches: &[Watch],
        kill: Option<usize>,
    ) -> Result<(), String> {
        let mut reads = 0u64;
        while parts.iter().any(|p| !p.done) {
            if !self.pause(PROGRESS_INTERVAL) {
                return Err(STOPPED.to_owned());
            }
            if self.now() - start > BACKUP_TIMEOUT.as_secs_f64() {
                return Err(format!("the backup did not finish within {BACKUP_TIMEOUT:?}"));
            }
            for i in 0..parts.len() {
                if parts[i].done {
                    continue;
                }
                let id = parts[i].job.expect("a running part has a job");
                parts[i].status = self.nodes[i].client.get_json(&format!("/jobs/{id}"))?;
                let state = parts[i].status["state"].as_str().unwrap_or("").to_owned();
                let kill_due = kill == Some(i)
                    && !parts[i].killed
                    && self.now() - start >= self.args.kill_after.as_secs_f64();
                match state.as_str() {
                    "running" if kill_due && parts[i].status["keys"].as_u64().unwrap_or(0) > 0 => {
                        self.kill_and_resume(i, &mut parts[i], ranges[i])?;
                    }
                    "running" => {}
                    "completed" if kill == Some(i) && !parts[i].killed => {
                        return Err(format!(
                            "node {i}'s part completed before the kill (--kill-after {:?}): use a larger \
                             keyspace or an earlier --kill-after",
                            self.args.kill_after
                        ));
                    }
                    "completed" => {
                        let part = &mut parts[i];
                        let path =
                            part.status["output"].as_str().ok_or("a completed backup names its file")?;
                        part.segments.push(Segment {
                            node: i,
                            path: PathBuf::from(path),
                            from: part.start,
                            to: ranges[i].to,
                            complete: true,
                        });
                        part.done = true;
                        part.ended_at = Some(self.now());
                        progress(self.epoch, &format!("node {i}: part done ({} keys)", part.status["keys"]));
                    }
                    other => {
                        return Err(format!("node {i}'s backup job {id} ended {other}: {}", parts[i].status));
                    }
                }
            }
            reads += 1;
            if reads % 4 == 0 {
                let line: Vec<String> = parts
                    .iter()
                    .zip(watches)
                    .enumerate()
                    .map(|(i, (p, w))| {
                        let share =
                            w.last().map_or_else(|| "-".to_owned(), |l| format!("{:.1}%", l.share * 100.0));
                        let fraction =
                            if p.done { 1.0 } else { p.status["fraction"].as_f64().unwrap_or(0.0) };
                        format!("node {i} {:>3.0}% share {share}", fraction * 100.0)
                    })
                    .collect();
                progress(self.epoch, &line.join(" | "));
            }
        }
        Ok(())
    }

    /// SIGKILLs node `i`, starts it again, and resumes its range from its partial file.
    fn kill_and_resume(&mut self, i: usize, part: &mut Part, range: KeyRange) -> Result<(), String> {
        let id = part.job.expect("a running part has a job");
        let node = &mut self.nodes[i];
        let local = node.local.as_mut().ok_or("only local nodes can be killed")?;
        local.kill()?;
        part.killed = true;
        let before = part.status["resume_key"].clone();
        progress(
            self.epoch,
            &format!("node {i}: killed (SIGKILL) mid-backup; last resume key polled {before}"),
        );
        part.earlier.0 += part.status["elapsed_seconds"].as_f64().unwrap_or(0.0);
        local.restart()?;
        let interrupted = node.client.get_json(&format!("/jobs/{id}"))?;
        if interrupted["state"] != "interrupted" {
            return Err(format!(
                "the restarted node {i} does not show job {id} as interrupted: {interrupted}"
            ));
        }
        let file = interrupted["output"].as_str().ok_or("an interrupted job names its partial file")?;
        // Keys below `from` are not this range's: a file without a complete chunk resumes at `from`.
        let resume = interrupted["resume_key"].as_u64().unwrap_or(0).max(part.start);
        let kept = interrupted["keys"].as_u64().unwrap_or(0);
        part.earlier.1 += kept;
        part.earlier.2 += part.status["raw_bytes"].as_u64().unwrap_or(0);
        part.segments.push(Segment {
            node: i,
            path: PathBuf::from(file),
            from: part.start,
            to: resume.min(range.to),
            complete: false,
        });
        if resume >= range.to {
            part.done = true;
            part.ended_at = Some(self.epoch.elapsed().as_secs_f64());
            progress(self.epoch, &format!("node {i}: restarted; its partial file holds the whole range"));
            return Ok(());
        }
        let status = start_backup(&mut node.client, range, Some(resume))?;
        progress(
            self.epoch,
            &format!(
                "node {i}: restarted; {kept} keys kept in {file}; job {} resumes at key {resume}",
                status["id"]
            ),
        );
        part.job = status["id"].as_u64();
        part.start = resume;
        part.status = status;
        Ok(())
    }

    /// Remote nodes keep their files: each verifies its part against its own store, and the
    /// ranges must tile the keyspace with the keys counted.
    fn verify_remote(&mut self, parts: &[Part], ranges: &[KeyRange]) -> Result<String, String> {
        let mut keys = 0u64;
        for ((node, part), range) in self.nodes.iter_mut().zip(parts).zip(ranges) {
            let id = part.job.expect("a part has a job");
            let reply = node.client.request("POST", &format!("/jobs/{id}/verify"), b"")?;
            let verified = reply.json()?;
            if reply.status != 200 {
                return Err(format!("node {}'s part does not verify: {verified}", node.index));
            }
            if verified["keys"].as_u64() != Some(range.len()) {
                return Err(format!(
                    "node {}'s part holds {} keys, its range {}",
                    node.index,
                    verified["keys"],
                    range.len()
                ));
            }
            keys += range.len();
        }
        Ok(format!("each node verified its part against its own store: {keys} keys in all"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trial_off_the_load_corrects_the_rate_in_proportion() {
        // 3400 req/s used 65 % of the node where 40 % was asked: 40/65 of the rate.
        let rate = corrected_rate(3400.0, 0.65, 0.4).unwrap();
        assert!((rate - 3400.0 * 0.4 / 0.65).abs() < 1e-9, "{rate}");
        assert!(corrected_rate(1000.0, 0.2, 0.4).unwrap() > 1000.0, "too little load: more");
        assert_eq!(corrected_rate(3400.0, 0.43, 0.4), None, "within a tenth of the load");
        assert_eq!(corrected_rate(3400.0, 0.0, 0.4), None, "nothing measured");
    }

    #[test]
    fn rounds_are_labelled_only_when_there_are_several() {
        assert_eq!(round_label(0, 1), "");
        assert_eq!(round_label(1, 3), "round 2: ");
    }
}
