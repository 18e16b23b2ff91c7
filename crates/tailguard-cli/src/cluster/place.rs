//! Which CPUs each local node runs on: disjoint sets where the nodes fit side by side, so one
//! node's elastic work cannot raise another's scheduling latency — as on separate machines —
//! and a quota alone then only caps how much of its CPUs a node uses.
//!
//! The coordinator (its load generators) runs on the whole CPUs no node was given, where there
//! are any, so that a node's elastic work does not delay the clients that time its foreground:
//! on a node's CPU the clients' threads compete with the node's cgroup as one entity, inside
//! which `SCHED_IDLE` cannot yield to them. Measured (docs/design-notes.md, "A cluster run"): a
//! 0.5-core node's foreground p99 rose 2–4.6× over its baseline with the clients on its CPU,
//! 1.14× with them on the other. Where no whole CPU is left the coordinator is not placed:
//! kept to the half CPU a 0.5-core node leaves, its load generators could not keep the pace —
//! 3 300 req/s offered to a 1-core node against 5 600 unplaced, and foreground p99 of 8–47 ms
//! in the baselines from requests started late.

use std::fmt::Write as _;

/// CPU placement of every local node.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    /// Each node's CPUs, as a `taskset -c` list.
    pub nodes: Vec<String>,
    /// The CPUs no node was given, for the coordinator; `None` when the nodes take them all.
    pub free: Option<String>,
}

/// Places nodes of `cores` capacity on CPUs `0..available`, each on `ceil(cores)` CPUs of its
/// own, in order; `None` when they do not fit side by side (then every node may run anywhere
/// and only its quota holds it).
pub fn place(cores: &[f64], available: usize) -> Option<Placement> {
    let mut next = 0;
    let mut nodes = Vec::with_capacity(cores.len());
    for &c in cores {
        let count = crate::capacity::whole_cpus(c);
        if next + count > available {
            return None;
        }
        nodes.push(cpu_list(next, count));
        next += count;
    }
    let free = (next < available).then(|| cpu_list(next, available - next));
    Some(Placement { nodes, free })
}

/// Keeps this process (every thread it has, and so every thread it starts) to `cpus`, a
/// `taskset -c` list.
///
/// # Errors
/// A message when `taskset` cannot be run or refuses.
pub fn pin_self(cpus: &str) -> Result<(), String> {
    let pid = std::process::id().to_string();
    let output = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid])
        .output()
        .map_err(|e| format!("cannot run taskset: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("taskset -a -p -c {cpus} {pid}: {}", String::from_utf8_lossy(&output.stderr).trim()))
    }
}

/// `count` CPUs from `first`, as `taskset -c` takes them.
fn cpu_list(first: usize, count: usize) -> String {
    let mut list = String::new();
    let _ = match count {
        1 => write!(list, "{first}"),
        _ => write!(list, "{first}-{}", first + count - 1),
    };
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_that_fit_get_cpus_of_their_own() {
        let placed = place(&[0.5, 1.0], 2).expect("fits");
        assert_eq!(placed.nodes, ["0", "1"]);
        assert_eq!(placed.free, None, "no CPU left for the coordinator");
        let placed = place(&[1.0, 2.0, 1.5], 6).expect("fits");
        assert_eq!(placed.nodes, ["0", "1-2", "3-4"]);
        assert_eq!(placed.free.as_deref(), Some("5"));
        assert_eq!(place(&[0.5], 16).expect("fits").free.as_deref(), Some("1-15"));
    }

    #[test]
    fn nodes_that_do_not_fit_share_every_cpu() {
        assert_eq!(place(&[1.0, 2.0], 2), None);
        assert_eq!(place(&[0.5, 0.5, 0.5], 2), None);
    }
}
