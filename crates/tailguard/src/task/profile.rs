//! The two profilers and their output: grouped text, like a goroutine profile, and JSON.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::panic::Location;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::gate::{self, lock};
use super::record::{TaskRecord, TaskState, published};
use super::registry::{Registry, RegistryInner, Run};

/// Which profiler produced a [`TaskProfile`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProfileMode {
    /// Two-phase profile whose pause does not depend on the number of tasks
    /// ([`Registry::profile`]).
    LowPause,
    /// Everything stopped while every task is copied ([`Registry::profile_stop_the_world`]).
    StopTheWorld,
}

impl ProfileMode {
    /// `"low-pause"` or `"stop-the-world"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileMode::LowPause => "low-pause",
            ProfileMode::StopTheWorld => "stop-the-world",
        }
    }
}

/// A consistent snapshot of a registry's tasks at one cut.
///
/// Every task that existed at the cut appears exactly once, with the state it had at the cut;
/// tasks spawned after the cut do not appear.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TaskProfile {
    /// Which profiler took it.
    pub mode: ProfileMode,
    /// The tasks, in id (spawn) order.
    pub tasks: Vec<TaskRecord>,
    /// Tasks with this id or a larger one were spawned after the cut.
    pub cut_id: u64,
    /// The longest interval during which no tracked task could start a poll.
    pub longest_pause: Duration,
    /// The sum of all such intervals.
    pub total_pause: Duration,
    /// Wall time from the request to the finished profile.
    pub elapsed: Duration,
}

/// Tasks of a profile with the same frames, spawn location and name, counted together.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskGroup {
    /// How many tasks.
    pub count: usize,
    /// Their frames, outermost first.
    pub frames: Vec<&'static str>,
    /// Where they were spawned.
    pub location: &'static Location<'static>,
    /// Their name.
    pub name: Option<Arc<str>>,
    /// How many are idle, scheduled and running.
    pub idle: usize,
    /// See `idle`.
    pub scheduled: usize,
    /// See `idle`.
    pub running: usize,
}

type GroupKey = (Vec<&'static str>, &'static Location<'static>, Option<Arc<str>>);

impl TaskProfile {
    /// The tasks grouped by identical frames, spawn location and name, largest group first
    /// (ties by frames), as a goroutine profile groups identical stacks.
    pub fn groups(&self) -> Vec<TaskGroup> {
        let mut groups: HashMap<GroupKey, TaskGroup> = HashMap::new();
        for task in &self.tasks {
            let key = (task.frames.clone(), task.location, task.name.clone());
            let group = groups.entry(key).or_insert_with(|| TaskGroup {
                count: 0,
                frames: task.frames.clone(),
                location: task.location,
                name: task.name.clone(),
                idle: 0,
                scheduled: 0,
                running: 0,
            });
            group.count += 1;
            match task.state {
                TaskState::Idle => group.idle += 1,
                TaskState::Scheduled => group.scheduled += 1,
                TaskState::Running => group.running += 1,
            }
        }
        let mut groups: Vec<TaskGroup> = groups.into_values().collect();
        groups.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.frames.cmp(&b.frames))
                .then_with(|| {
                    (a.location.file(), a.location.line()).cmp(&(b.location.file(), b.location.line()))
                })
                .then_with(|| a.name.cmp(&b.name))
        });
        groups
    }

    /// Full per-task detail as a JSON document:
    /// `{"mode", "cut_id", "longest_pause_nanos", "total_pause_nanos", "elapsed_nanos",
    /// "tasks": [{"id", "name", "location", "state", "polls", "running_nanos",
    /// "total_scheduling_delay_nanos", "max_scheduling_delay_nanos", "since_last_poll_nanos",
    /// "age_nanos", "value", "frames"}]}` (`name` and `since_last_poll_nanos` may be `null`).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(128 + self.tasks.len() * 256);
        let _ = write!(
            out,
            "{{\"mode\":\"{}\",\"cut_id\":{},\"longest_pause_nanos\":{},\"total_pause_nanos\":{},\
             \"elapsed_nanos\":{},\"tasks\":[",
            self.mode.as_str(),
            self.cut_id,
            self.longest_pause.as_nanos(),
            self.total_pause.as_nanos(),
            self.elapsed.as_nanos()
        );
        for (i, t) in self.tasks.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{{\"id\":{},\"name\":", t.id);
            match &t.name {
                Some(name) => json_string(&mut out, name),
                None => out.push_str("null"),
            }
            out.push_str(",\"location\":");
            json_string(&mut out, &t.location.to_string());
            let _ = write!(
                out,
                ",\"state\":\"{}\",\"polls\":{},\"running_nanos\":{},\"total_scheduling_delay_nanos\":{},\
                 \"max_scheduling_delay_nanos\":{},\"since_last_poll_nanos\":",
                t.state.as_str(),
                t.polls,
                t.running.as_nanos(),
                t.total_scheduling_delay.as_nanos(),
                t.max_scheduling_delay.as_nanos()
            );
            match t.since_last_poll {
                Some(d) => {
                    let _ = write!(out, "{}", d.as_nanos());
                }
                None => out.push_str("null"),
            }
            let _ = write!(out, ",\"age_nanos\":{},\"value\":{},\"frames\":[", t.age.as_nanos(), t.value);
            for (j, frame) in t.frames.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                json_string(&mut out, frame);
            }
            out.push_str("]}");
        }
        out.push_str("]}");
        out
    }
}

/// Writes `s` as a JSON string literal.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The grouped text form: a header line, then one block per group, largest first:
///
/// ```text
/// task profile (low-pause): 3 tasks, cut at id 4, longest pause 8.1µs, total pause 8.1µs, took 52µs
///
/// 2 @ serve > read_request
/// #   spawned at src/main.rs:10:5 name "conn"
/// #   idle 1, scheduled 1, running 0
/// ```
impl fmt::Display for TaskProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "task profile ({}): {} tasks, cut at id {}, longest pause {:?}, total pause {:?}, took {:?}",
            self.mode.as_str(),
            self.tasks.len(),
            self.cut_id,
            self.longest_pause,
            self.total_pause,
            self.elapsed
        )?;
        for group in self.groups() {
            writeln!(f)?;
            let frames =
                if group.frames.is_empty() { "(no frames)".to_owned() } else { group.frames.join(" > ") };
            writeln!(f, "{} @ {}", group.count, frames)?;
            write!(f, "#   spawned at {}", group.location)?;
            if let Some(name) = &group.name {
                write!(f, " name {name:?}")?;
            }
            writeln!(f)?;
            writeln!(f, "#   idle {}, scheduled {}, running {}", group.idle, group.scheduled, group.running)?;
        }
        Ok(())
    }
}

impl Registry {
    /// Takes a consistent snapshot of every live task with a pause that does not depend on the
    /// number of tasks.
    ///
    /// 1. **Cut** (gate closed, O(1)): wait for polls under way to return, bump the profile
    ///    generation, note the first id that is excluded, publish the profile; reopen.
    /// 2. **Sweep** (gate open): walk the registry shard by shard, recording each task of the
    ///    cut that is not yet recorded. Meanwhile every change to a task — its next poll, a
    ///    wake-up, a value change, its exit — first records it if needed (the barrier), so
    ///    what is recorded is the state at the cut; an atomic word per task makes each
    ///    recorded exactly once.
    /// 3. **Finish**: the sweep returns only after every claim was published, so ending the
    ///    profile is a single store and needs no second pause.
    ///
    /// Costs more total time than [`profile_stop_the_world`](Self::profile_stop_the_world)
    /// (each task is claimed with a compare-and-swap), but tasks keep running during the walk.
    ///
    /// Called from inside a tracked task, that task appears as running, with its state at the
    /// call. The call blocks the calling thread for the whole sweep: from async code prefer
    /// `tokio::task::spawn_blocking`.
    pub fn profile(&self) -> TaskProfile {
        low_pause(&self.inner)
    }

    /// Takes the same snapshot by stopping every tracked task while copying all of them: the
    /// pause grows with the number of tasks. Kept for comparison.
    pub fn profile_stop_the_world(&self) -> TaskProfile {
        stop_the_world(&self.inner)
    }
}

fn sinks(n: usize) -> Box<[Mutex<Vec<TaskRecord>>]> {
    (0..n.next_power_of_two()).map(|_| Mutex::new(Vec::new())).collect()
}

fn low_pause(inner: &RegistryInner) -> TaskProfile {
    let clock = &inner.clock;
    let started = clock.now_nanos();
    let mut writer = gate::writer();
    // Allocate before the pause.
    let sinks = sinks(inner.shards.len());
    let mut tasks = Vec::with_capacity(inner.len() + inner.len() / 8 + 16);

    // 1. The cut.
    let pause_start = clock.now_nanos();
    let closed = writer.close();
    let generation = (inner.target.load(Ordering::SeqCst) >> 1) + 1;
    let cut_id = inner.next_id.load(Ordering::SeqCst);
    let run = Arc::new(Run { generation, cut_id, cut_nanos: clock.now_nanos(), sinks });
    // Publish the run before the target, so a barrier that sees the new target finds it.
    let previous = inner.current.write().unwrap_or_else(PoisonError::into_inner).replace(Arc::clone(&run));
    inner.target.store(published(generation), Ordering::SeqCst);
    drop(closed);
    let pause = Duration::from_nanos(clock.now_nanos().saturating_sub(pause_start));
    debug_assert!(previous.is_none(), "profiles are serialized by the gate's writer lock");

    // 2. The sweep: copy each shard's members under its lock, record them outside it.
    let mut batch = Vec::new();
    for shard in inner.shards.iter() {
        batch.extend(lock(shard).iter().filter(|t| t.id < cut_id).cloned());
        for task in batch.drain(..) {
            run.record_with(&task, |record| tasks.push(record));
        }
    }

    // 3. Finish.
    *inner.current.write().unwrap_or_else(PoisonError::into_inner) = None;
    drop(writer);
    for sink in run.sinks.iter() {
        tasks.append(&mut lock(sink));
    }
    tasks.sort_unstable_by_key(|t| t.id);
    TaskProfile {
        mode: ProfileMode::LowPause,
        tasks,
        cut_id,
        longest_pause: pause,
        total_pause: pause,
        elapsed: Duration::from_nanos(clock.now_nanos().saturating_sub(started)),
    }
}

fn stop_the_world(inner: &RegistryInner) -> TaskProfile {
    let clock = &inner.clock;
    let started = clock.now_nanos();
    let mut writer = gate::writer();
    let mut tasks = Vec::with_capacity(inner.len() + inner.len() / 8 + 16);
    let pause_start = clock.now_nanos();
    let closed = writer.close();
    let cut_id = inner.next_id.load(Ordering::SeqCst);
    let cut_nanos = clock.now_nanos();
    for shard in inner.shards.iter() {
        tasks.extend(lock(shard).iter().filter(|t| t.id < cut_id).map(|t| t.snapshot(cut_nanos)));
    }
    drop(closed);
    let pause = Duration::from_nanos(clock.now_nanos().saturating_sub(pause_start));
    drop(writer);
    tasks.sort_unstable_by_key(|t| t.id);
    TaskProfile {
        mode: ProfileMode::StopTheWorld,
        tasks,
        cut_id,
        longest_pause: pause,
        total_pause: pause,
        elapsed: Duration::from_nanos(clock.now_nanos().saturating_sub(started)),
    }
}
