//! Local nodes: `tailguard serve` child processes, each confined to its own CPU capacity — a
//! cgroup v1 CFS quota where this process may create cgroups, else a CPU affinity set; and on
//! CPUs of its own where the nodes fit side by side (`place.rs`) — and restartable on the same
//! port and backup directory after a kill.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use clap::ValueEnum;

use crate::workload::keyspace::KeyspaceConfig;

/// Where cgroup v1's cpu controller is mounted.
const CGROUP_V1_CPU: &str = "/sys/fs/cgroup/cpu";
/// How the node cgroups' names start: `tailguard-cluster-PID-nodeI`, PID the coordinator's.
const CGROUP_PREFIX: &str = "tailguard-cluster-";
/// CFS period of the quotas this module sets, microseconds (the kernel's default).
const CFS_PERIOD_MICROS: u64 = 100_000;
/// How long a starting node may take to print its address.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How local nodes are held to their CPU capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Confine {
    /// A cgroup quota when a cgroup can be created, else CPU affinity.
    Auto,
    /// A cgroup v1 CFS quota of exactly the node's cores (fails when no cgroup can be created).
    Cgroup,
    /// CPU affinity to the first `ceil(cores)` CPUs, and as many workers.
    Affinity,
}

/// What holds one node to its capacity: a quota, CPUs, or both.
#[derive(Debug)]
struct Confinement {
    /// A cgroup of its own with a CFS quota, removed when the node is dropped.
    cgroup: Option<PathBuf>,
    /// `taskset -c LIST`.
    cpus: Option<String>,
}

impl Confinement {
    fn describe(&self) -> String {
        match (&self.cgroup, &self.cpus) {
            (Some(dir), Some(cpus)) => format!("cgroup quota {} on CPUs {cpus}", dir.display()),
            (Some(dir), None) => format!("cgroup quota {}", dir.display()),
            (None, Some(cpus)) => format!("CPUs {cpus}"),
            (None, None) => "unconfined".to_owned(),
        }
    }
}

/// One node to start: its capacity and the keyspace it serves.
#[derive(Clone, Debug)]
pub struct NodePlan {
    /// Position in the cluster (0-based).
    pub index: usize,
    /// CPU capacity, cores (fractions allowed with a cgroup quota).
    pub cores: f64,
    /// Where the node's backups and log go.
    pub dir: PathBuf,
    /// The keyspace its store is populated with.
    pub keyspace: KeyspaceConfig,
    /// Further `tailguard serve` flags.
    pub serve_args: Vec<String>,
    /// CPUs of its own (a `taskset -c` list), where the nodes fit side by side.
    pub cpus: Option<String>,
}

/// A running local node.
#[derive(Debug)]
pub struct LocalNode {
    plan: NodePlan,
    confinement: Confinement,
    child: Child,
    /// The address it listens on (kept across restarts).
    pub addr: SocketAddr,
}

impl LocalNode {
    /// Starts the node confined as `confine` says, and waits until it listens.
    ///
    /// # Errors
    /// A message when the cgroup, the directories or the process cannot be made, or the node
    /// does not come up.
    pub fn start(plan: NodePlan, confine: Confine) -> Result<Self, String> {
        let confinement = confinement(&plan, confine)?;
        std::fs::create_dir_all(plan.dir.join("backups"))
            .map_err(|e| format!("cannot create {}: {e}", plan.dir.display()))?;
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("a literal address");
        let (child, addr) = spawn(&plan, &confinement, listen)?;
        Ok(LocalNode { plan, confinement, child, addr })
    }

    /// How the node is confined, in words.
    pub fn confinement(&self) -> String {
        self.confinement.describe()
    }

    /// Kills the node with SIGKILL and reaps it.
    ///
    /// # Errors
    /// The OS error.
    pub fn kill(&mut self) -> Result<(), String> {
        self.child.kill().map_err(|e| format!("cannot kill node {}: {e}", self.plan.index))?;
        self.child.wait().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Starts the node again on the same address and backup directory, with the same keyspace.
    ///
    /// # Errors
    /// A message when it does not come up (the port is retried for a while: it may linger).
    pub fn restart(&mut self) -> Result<(), String> {
        let mut last = String::new();
        for _ in 0..20 {
            match spawn(&self.plan, &self.confinement, self.addr) {
                Ok((child, _)) => {
                    self.child = child;
                    return Ok(());
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!("node {} did not restart on {}: {last}", self.plan.index, self.addr))
    }
}

impl Drop for LocalNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.confinement.cgroup {
            if let Err(e) = std::fs::remove_dir(dir) {
                tracing::warn!("cannot remove cgroup {}: {e}", dir.display());
            }
        }
    }
}

/// Removes the node cgroups under `root` of earlier runs whose coordinator is no longer `alive`
/// (one killed before it could remove them); one a process still holds stays, as the kernel
/// refuses to remove it. Returns the cgroups removed.
fn remove_stale_cgroups(root: &Path, alive: impl Fn(u32) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let Some(owner) = cgroup_owner(&entry.file_name().to_string_lossy()) else { continue };
        if alive(owner) {
            continue;
        }
        match std::fs::remove_dir(entry.path()) {
            Ok(()) => removed.push(entry.path()),
            Err(e) => tracing::warn!("cannot remove the stale cgroup {}: {e}", entry.path().display()),
        }
    }
    removed
}

/// [`remove_stale_cgroups`] in the cpu controller's hierarchy, a coordinator alive while its
/// `/proc` entry is.
pub fn remove_stale_node_cgroups() -> Vec<PathBuf> {
    remove_stale_cgroups(Path::new(CGROUP_V1_CPU), |pid| Path::new("/proc").join(pid.to_string()).exists())
}

/// The coordinator's PID in a node cgroup's name, `tailguard-cluster-PID-nodeI`.
fn cgroup_owner(name: &str) -> Option<u32> {
    let (pid, node) = name.strip_prefix(CGROUP_PREFIX)?.split_once("-node")?;
    node.parse::<usize>().ok()?;
    pid.parse().ok()
}

/// Makes the node's cgroup, and chooses its CPUs: its own where placed, else (without a
/// cgroup) the first `ceil(cores)`.
fn confinement(plan: &NodePlan, confine: Confine) -> Result<Confinement, String> {
    if confine != Confine::Affinity {
        match make_cgroup(plan) {
            Ok(dir) => return Ok(Confinement { cgroup: Some(dir), cpus: plan.cpus.clone() }),
            Err(e) if confine == Confine::Cgroup => return Err(e),
            Err(e) => tracing::info!("{e}; node {} is confined by CPU affinity instead", plan.index),
        }
    }
    if let Some(cpus) = &plan.cpus {
        return Ok(Confinement { cgroup: None, cpus: Some(cpus.clone()) });
    }
    let available = std::thread::available_parallelism().map_or(1, usize::from);
    let cpus = crate::capacity::whole_cpus(plan.cores);
    if cpus > available {
        return Err(format!(
            "node {} asks for {} cores but this machine has {available} CPUs for affinity",
            plan.index, plan.cores
        ));
    }
    let list = if cpus == 1 { "0".to_owned() } else { format!("0-{}", cpus - 1) };
    Ok(Confinement { cgroup: None, cpus: Some(list) })
}

/// A cgroup v1 cpu cgroup with a CFS quota of the node's cores.
fn make_cgroup(plan: &NodePlan) -> Result<PathBuf, String> {
    let dir =
        Path::new(CGROUP_V1_CPU).join(format!("{CGROUP_PREFIX}{}-node{}", std::process::id(), plan.index));
    std::fs::create_dir(&dir).map_err(|e| format!("cannot create cgroup {}: {e}", dir.display()))?;
    let quota = (plan.cores * CFS_PERIOD_MICROS as f64).round() as u64;
    let written = std::fs::write(dir.join("cpu.cfs_period_us"), CFS_PERIOD_MICROS.to_string())
        .and_then(|()| std::fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string()));
    if let Err(e) = written {
        let _ = std::fs::remove_dir(&dir);
        return Err(format!("cannot set the CPU quota of {}: {e}", dir.display()));
    }
    Ok(dir)
}

/// Spawns `tailguard serve` for `plan` on `listen`, confined; returns it with its bound address.
fn spawn(
    plan: &NodePlan,
    confinement: &Confinement,
    listen: SocketAddr,
) -> Result<(Child, SocketAddr), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the tailguard binary: {e}"))?;
    let log_path = plan.dir.join("serve.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let k = &plan.keyspace;
    let mut serve: Vec<String> = vec![
        "serve".into(),
        "--listen".into(),
        listen.to_string(),
        "--backup-dir".into(),
        plan.dir.join("backups").display().to_string(),
        "--keys".into(),
        k.keys.to_string(),
        "--value-size".into(),
        k.mean_value_bytes.to_string(),
        "--seed".into(),
        k.seed.to_string(),
        "--workers".into(),
        crate::capacity::whole_cpus(plan.cores).to_string(),
        // Down with the coordinator, however it ends: it holds the pipe's other end.
        "--stop-on-stdin-eof".into(),
    ];
    serve.extend(plan.serve_args.iter().cloned());
    let mut program: Vec<std::ffi::OsString> = Vec::new();
    if let Some(cpus) = &confinement.cpus {
        program.extend(["taskset".into(), "-c".into(), cpus.into()]);
    }
    program.push(exe.into());
    let mut command = match &confinement.cgroup {
        // The shell joins the cgroup, then becomes the server (through taskset, which keeps
        // the cgroup): it is inside from its first instruction, so it detects its quota at
        // startup.
        Some(dir) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(r#"echo $$ > "$0/cgroup.procs" && exec "$@""#).arg(dir).args(&program);
            c
        }
        None => {
            let mut c = Command::new(&program[0]);
            c.args(&program[1..]);
            c
        }
    };
    let mut child = command
        .args(&serve)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start node {}: {e}", plan.index))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // The first line gives the address; the rest is read so the pipe never fills.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let address = rx
        .recv_timeout(READY_TIMEOUT)
        .ok()
        .and_then(|line| line.split("http://").nth(1)?.split_whitespace().next()?.parse::<SocketAddr>().ok());
    match address {
        Some(addr) => Ok((child, addr)),
        None => {
            let _ = child.kill();
            let status = child.wait().map_err(|e| e.to_string())?;
            Err(format!("node {} did not start ({status}); its log is {}", plan.index, log_path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_node_cgroups_of_a_coordinator_gone_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let names = [
            "tailguard-cluster-100-node0",
            "tailguard-cluster-100-node1",
            "tailguard-cluster-200-node0", // its coordinator runs
            "tailguard-cluster-300-nodex", // not a node's
            "other-100-node0",
        ];
        for name in names {
            std::fs::create_dir(root.path().join(name)).unwrap();
        }
        // A cgroup still holding a process cannot be removed: here, one not empty.
        std::fs::create_dir(root.path().join("tailguard-cluster-400-node0")).unwrap();
        std::fs::write(root.path().join("tailguard-cluster-400-node0/cgroup.procs"), "1").unwrap();

        let mut removed = remove_stale_cgroups(root.path(), |pid| pid == 200);
        removed.sort();
        assert_eq!(
            removed,
            [
                root.path().join("tailguard-cluster-100-node0"),
                root.path().join("tailguard-cluster-100-node1")
            ]
        );
        let mut left: Vec<String> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "other-100-node0",
                "tailguard-cluster-200-node0",
                "tailguard-cluster-300-nodex",
                "tailguard-cluster-400-node0"
            ]
        );
        assert_eq!(remove_stale_cgroups(&root.path().join("absent"), |_| false), Vec::<PathBuf>::new());
    }
}
