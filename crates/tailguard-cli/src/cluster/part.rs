//! A node's part of the backup: the jobs that make it, as the coordinator follows them.

use serde_json::{Value, json};

use super::http::Client;
use super::split::KeyRange;
use super::verify::Segment;

/// A node's part of the backup as it goes.
#[derive(Default)]
pub struct Part {
    /// The current job's id on the node.
    pub job: Option<u64>,
    /// Where the current job starts within the range.
    pub start: u64,
    /// The latest status of the current job.
    pub status: Value,
    /// Running seconds, keys and raw bytes of jobs ended before the current one.
    pub earlier: (f64, u64, u64),
    /// The part's files so far.
    pub segments: Vec<Segment>,
    /// Whether the node was killed mid-part (and its range resumed).
    pub killed: bool,
    /// Whether the part is complete.
    pub done: bool,
    /// When the last job ended, seconds from the run's start.
    pub ended_at: Option<f64>,
}

impl Part {
    /// Keys per second, raw megabytes per second and running seconds of the part's jobs.
    pub fn rate(&self) -> (f64, f64, f64) {
        let (seconds, keys, raw) = self.totals();
        if seconds > 0.0 {
            (keys as f64 / seconds, raw as f64 / seconds / 1e6, seconds)
        } else {
            (0.0, 0.0, seconds)
        }
    }

    /// Running seconds, keys and raw bytes of every job of the part.
    pub fn totals(&self) -> (f64, u64, u64) {
        let s = &self.status;
        (
            self.earlier.0 + s["elapsed_seconds"].as_f64().unwrap_or(0.0),
            self.earlier.1 + s["keys"].as_u64().unwrap_or(0),
            self.earlier.2 + s["raw_bytes"].as_u64().unwrap_or(0),
        )
    }
}

/// Asks the node to cancel the part's job, if it runs one (a stopped run leaves no backup
/// running on a node that outlives it); a node that does not answer is left as it is.
pub fn cancel(client: &mut Client, part: &Part) {
    if let Some(id) = part.job.filter(|_| !part.done) {
        let _ = client.request("POST", &format!("/jobs/{id}/cancel"), b"");
    }
}

/// Starts a backup of `range` (from `resume_from` on) on a node.
pub fn start_backup(client: &mut Client, range: KeyRange, resume_from: Option<u64>) -> Result<Value, String> {
    let body = json!({ "from": range.from, "to": range.to, "resume_from": resume_from }).to_string();
    let reply = client.request("POST", "/jobs/backup", body.as_bytes())?;
    if reply.status != 202 {
        return Err(format!("POST /jobs/backup: {} {}", reply.status, String::from_utf8_lossy(&reply.body)));
    }
    reply.json()
}
