//! The whole distributed backup checked byte for byte: the parts (each node's files, a killed
//! node's partial file and the file that resumed it) must tile the keyspace, and every key must
//! be in exactly one part with exactly its canonical value.

use std::path::PathBuf;

use serde::Serialize;

use crate::workload::backup::{restore, restore_partial};
use crate::workload::keyspace::{Key, KeyspaceConfig};

/// One file of the backup and the keys it must hold.
#[derive(Clone, Debug, Serialize)]
pub struct Segment {
    /// The node that wrote it.
    pub node: usize,
    /// The file.
    pub path: PathBuf,
    /// First key it must hold (inclusive).
    pub from: u64,
    /// End of its keys (exclusive).
    pub to: u64,
    /// A complete file (checked to its footer), or an interrupted `.partial` one (its complete
    /// chunks).
    pub complete: bool,
}

/// What the check found: every key, once, equal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PartsReport {
    /// Keys compared, all equal.
    pub keys: u64,
    /// Value bytes compared.
    pub value_bytes: u64,
    /// Files read.
    pub files: usize,
}

/// Checks that `segments` together hold exactly `keyspace`: their ranges tile `0..keys`, and
/// each file holds every key of its range, no other, each with its canonical value.
///
/// # Errors
/// A message naming the first gap, overlap, unreadable file, missing, extra or different key.
pub fn verify_parts(keyspace: &KeyspaceConfig, segments: &[Segment]) -> Result<PartsReport, String> {
    let mut sorted: Vec<&Segment> = segments.iter().collect();
    sorted.sort_by_key(|s| (s.from, s.to));
    let mut next = 0u64;
    for segment in &sorted {
        if segment.from != next || segment.to < segment.from {
            let what = if segment.from > next { "a gap" } else { "an overlap" };
            return Err(format!(
                "the parts do not tile the keyspace: {what} at key {next} (node {}'s {} holds {}..{})",
                segment.node,
                segment.path.display(),
                segment.from,
                segment.to
            ));
        }
        next = segment.to;
    }
    if next != keyspace.keys {
        return Err(format!(
            "the parts end at key {next}, the keyspace at {}: keys are missing",
            keyspace.keys
        ));
    }
    let mut report = PartsReport::default();
    for segment in sorted {
        let entries = if segment.complete {
            restore(&segment.path).map(|r| r.entries)
        } else {
            restore_partial(&segment.path)
        }
        .map_err(|e| format!("node {}'s {}: {e}", segment.node, segment.path.display()))?;
        let name = || format!("node {}'s {}", segment.node, segment.path.display());
        let mut expected = segment.from;
        for (key, value) in &entries {
            if key.0 != expected {
                return Err(if key.0 > expected && expected < segment.to {
                    format!("{} is missing key {expected}", name())
                } else {
                    format!(
                        "{} holds key {} outside its range {}..{}",
                        name(),
                        key.0,
                        segment.from,
                        segment.to
                    )
                });
            }
            if key.0 >= segment.to {
                return Err(format!("{} holds key {} beyond its range's end {}", name(), key.0, segment.to));
            }
            let canonical = keyspace.value_of(Key(key.0));
            if **value != *canonical {
                return Err(format!(
                    "{}: the value of key {} differs from the keyspace's ({} bytes, expected {})",
                    name(),
                    key.0,
                    value.len(),
                    canonical.len()
                ));
            }
            report.value_bytes += value.len() as u64;
            expected += 1;
        }
        if expected != segment.to {
            return Err(format!("{} is missing key {expected} (it ends before {})", name(), segment.to));
        }
        report.keys += entries.len() as u64;
        report.files += 1;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::backup::{BackupWriter, export_until};
    use crate::workload::store::Store;
    use std::path::Path;

    const KEYSPACE: KeyspaceConfig = KeyspaceConfig { keys: 100, mean_value_bytes: 32, seed: 5 };

    /// Writes `from..to` of `store` into `path`; `cut_after` keys, abandons it as partial.
    fn write(store: &Store, path: &Path, from: u64, to: u64, cut_after: Option<u64>) -> PathBuf {
        let mut writer = BackupWriter::create(path).unwrap();
        let mut resume = Some(Key(from));
        let mut written = 0u64;
        while let Some(start) = resume {
            if cut_after.is_some_and(|cut| written >= cut) {
                return writer.abandon().unwrap();
            }
            let mut keys = 0;
            let outcome = export_until(store, Some(start), Some(Key(to)), &mut || {
                keys += 1;
                keys == 10
            });
            written += outcome.chunk.keys();
            writer.append(&outcome.chunk).unwrap();
            resume = outcome.resume;
        }
        writer.finish().unwrap();
        path.to_owned()
    }

    fn segment(node: usize, path: PathBuf, from: u64, to: u64, complete: bool) -> Segment {
        Segment { node, path, from, to, complete }
    }

    #[test]
    fn a_killed_nodes_partial_file_and_its_resumption_verify_with_the_other_parts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::populate(&KEYSPACE, 4);
        let partial = write(&store, &dir.path().join("a-1"), 0, 40, Some(20));
        let resumed = write(&store, &dir.path().join("a-2"), 20, 40, None);
        let other = write(&store, &dir.path().join("b-1"), 40, 100, None);
        let parts = vec![
            segment(0, partial.clone(), 0, 20, false),
            segment(0, resumed.clone(), 20, 40, true),
            segment(1, other.clone(), 40, 100, true),
        ];
        let report = verify_parts(&KEYSPACE, &parts).unwrap();
        assert_eq!((report.keys, report.files), (100, 3));
        assert_eq!(report.value_bytes, KEYSPACE.entries().map(|(_, v)| v.len() as u64).sum::<u64>());

        // A gap, an overlap, a range claiming keys its file lacks: each is named.
        let gap = [parts[0].clone(), parts[2].clone()];
        assert!(verify_parts(&KEYSPACE, &gap).unwrap_err().contains("a gap at key 20"));
        let overlap = [segment(0, partial.clone(), 0, 25, false), segment(0, resumed.clone(), 20, 40, true)];
        assert!(verify_parts(&KEYSPACE, &overlap).unwrap_err().contains("an overlap"));
        let claims_more =
            [segment(0, partial, 0, 21, false), segment(0, resumed, 21, 40, true), parts[2].clone()];
        let error = verify_parts(&KEYSPACE, &claims_more).unwrap_err();
        assert!(error.contains("missing key 20"), "{error}");
    }

    #[test]
    fn a_value_that_differs_from_the_keyspace_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::populate(&KEYSPACE, 4);
        store.put(Key(70), b"changed".to_vec().into());
        let first = write(&store, &dir.path().join("a"), 0, 50, None);
        let second = write(&store, &dir.path().join("b"), 50, 100, None);
        let parts = [segment(0, first, 0, 50, true), segment(1, second, 50, 100, true)];
        let error = verify_parts(&KEYSPACE, &parts).unwrap_err();
        assert!(error.contains("value of key 70 differs"), "{error}");
        let short = KeyspaceConfig { keys: 120, ..KEYSPACE };
        assert!(verify_parts(&short, &parts).unwrap_err().contains("keys are missing"));
    }
}
