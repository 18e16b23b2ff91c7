//! The backup directory: file names that never repeat across restarts, earlier runs' files left
//! alone, and retention.
//!
//! **Names.** A backup is `backup-N.tgbak` (written as `backup-N.tgbak.partial` until complete),
//! where N is its job's id. Job ids start after the highest N already in the directory, so a
//! restarted server continues the numbering; and the partial file is opened create-new and
//! linked into place without replacing anything, so that two servers sharing a directory get an
//! error, never a truncated or replaced backup.
//!
//! **Earlier runs.** A `backup-N.tgbak.partial` found at startup is an earlier run's backup that
//! stopped before its footer (a crash, a `kill -9`): it is left as it is, listed in the startup
//! log and in `GET /jobs` as an `interrupted` job, with the keys of its complete chunks (a
//! valid prefix of the keyspace, checked) and the key a backup resuming it would start from;
//! restore refuses the file as a whole.
//!
//! **Retention** (`--keep-backups N`, after every completed backup): the newest N complete
//! backups are kept, older ones removed; of the `.partial` files, the newest N are kept too and
//! older ones removed. Every removal is logged and listed in the completed job's `pruned`. Only
//! names of this exact form are ever touched.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use crate::workload::backup::PARTIAL_SUFFIX;

/// Prefix of backup file names.
const PREFIX: &str = "backup-";
/// Extension of complete backup files.
const EXTENSION: &str = ".tgbak";

/// The default of `--keep-backups`: at the default keyspace (100 000 keys of 256 bytes, about
/// 2 MB a backup) ten backups are about 20 MB, and as many partial files at most as much again.
pub const DEFAULT_KEEP: usize = 10;

/// Whether a backup file is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Completeness {
    /// `backup-N.tgbak`: has its footer.
    Complete,
    /// `backup-N.tgbak.partial`: stopped before its footer.
    Partial,
}

/// One of our files in the backup directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupFile {
    /// N of `backup-N.tgbak`.
    pub number: u64,
    /// Complete or partial.
    pub completeness: Completeness,
    /// The file.
    pub path: PathBuf,
    /// Its size, bytes.
    pub bytes: u64,
}

/// `backup-N.tgbak`: where the backup of job `id` goes once complete.
pub fn path_of(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{id}{EXTENSION}"))
}

/// The number and completeness a file name stands for; `None` for any other name (N must be
/// written canonically: no sign, no leading zero).
fn parse_name(name: &str) -> Option<(u64, Completeness)> {
    let rest = name.strip_prefix(PREFIX)?;
    let (number, completeness) = match rest.strip_suffix(PARTIAL_SUFFIX) {
        Some(rest) => (rest.strip_suffix(EXTENSION)?, Completeness::Partial),
        None => (rest.strip_suffix(EXTENSION)?, Completeness::Complete),
    };
    let canonical = !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
        && (number == "0" || !number.starts_with('0'));
    canonical.then(|| number.parse().ok().map(|n| (n, completeness))).flatten()
}

/// Our files in `dir`, by number (a complete file before the partial file of the same number).
///
/// # Errors
/// The OS error when the directory cannot be read.
pub fn list(dir: &Path) -> std::io::Result<Vec<BackupFile>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some((number, completeness)) = entry.file_name().to_str().and_then(parse_name) else {
            continue;
        };
        let Ok(metadata) = entry.metadata() else { continue };
        if metadata.is_file() {
            files.push(BackupFile { number, completeness, path: entry.path(), bytes: metadata.len() });
        }
    }
    files.sort_by_key(|f| (f.number, f.completeness));
    Ok(files)
}

/// The first number above every file's in `files` (1 in an empty directory).
pub fn next_number(files: &[BackupFile]) -> u64 {
    files.iter().map(|f| f.number.saturating_add(1)).max().unwrap_or(1)
}

/// The files retention removes from `files`: all complete ones but the newest `keep`, and all
/// partial ones but the newest `keep`.
pub fn to_prune(files: &[BackupFile], keep: NonZeroUsize) -> Vec<BackupFile> {
    let mut pruned = Vec::new();
    for completeness in [Completeness::Complete, Completeness::Partial] {
        let of_kind: Vec<&BackupFile> = files.iter().filter(|f| f.completeness == completeness).collect();
        let surplus = of_kind.len().saturating_sub(keep.get());
        pruned.extend(of_kind[..surplus].iter().map(|f| (*f).clone()));
    }
    pruned
}

/// Applies retention to `dir`; returns the files removed. A file that cannot be removed is
/// logged and left.
pub fn prune(dir: &Path, keep: NonZeroUsize) -> Vec<BackupFile> {
    let files = match list(dir) {
        Ok(files) => files,
        Err(error) => {
            tracing::warn!("retention: cannot list {}: {error}", dir.display());
            return Vec::new();
        }
    };
    let mut removed = Vec::new();
    for file in to_prune(&files, keep) {
        let what = match file.completeness {
            Completeness::Complete => "complete backup",
            Completeness::Partial => "unfinished backup (never restorable as a whole)",
        };
        match std::fs::remove_file(&file.path) {
            Ok(()) => {
                tracing::info!(
                    "retention (--keep-backups {keep}): removed {what} {} ({} bytes)",
                    file.path.display(),
                    file.bytes
                );
                removed.push(file);
            }
            Err(error) => {
                tracing::warn!("retention: cannot remove {}: {error}", file.path.display())
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(number: u64, completeness: Completeness) -> BackupFile {
        BackupFile { number, completeness, path: PathBuf::from(format!("f{number}")), bytes: 1 }
    }

    #[test]
    fn only_canonical_backup_names_are_ours() {
        assert_eq!(parse_name("backup-7.tgbak"), Some((7, Completeness::Complete)));
        assert_eq!(parse_name("backup-12.tgbak.partial"), Some((12, Completeness::Partial)));
        for other in [
            "backup-07.tgbak",
            "backup-+7.tgbak",
            "backup-.tgbak",
            "backup-7.tgbak.bak",
            "notes.txt",
            "backup-7",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }

    #[test]
    fn numbering_continues_after_the_highest_file_of_either_kind() {
        assert_eq!(next_number(&[]), 1);
        let files = [file(3, Completeness::Complete), file(9, Completeness::Partial)];
        assert_eq!(next_number(&files), 10);
    }

    #[test]
    fn retention_keeps_the_newest_of_each_kind() {
        let keep = NonZeroUsize::new(2).unwrap();
        let files: Vec<BackupFile> = [
            (1, Completeness::Complete),
            (2, Completeness::Partial),
            (3, Completeness::Complete),
            (4, Completeness::Partial),
            (5, Completeness::Complete),
            (6, Completeness::Partial),
            (7, Completeness::Complete),
        ]
        .into_iter()
        .map(|(n, c)| file(n, c))
        .collect();
        let pruned: Vec<(u64, Completeness)> =
            to_prune(&files, keep).iter().map(|f| (f.number, f.completeness)).collect();
        assert_eq!(
            pruned,
            [(1, Completeness::Complete), (3, Completeness::Complete), (2, Completeness::Partial)]
        );
        assert!(to_prune(&files[..2], keep).is_empty());
    }

    #[test]
    fn listing_and_pruning_a_directory_touch_only_our_names() {
        let dir = tempfile::tempdir().unwrap();
        for name in
            ["backup-1.tgbak", "backup-2.tgbak", "backup-3.tgbak", "backup-4.tgbak.partial", "keep.me"]
        {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        let files = list(dir.path()).unwrap();
        assert_eq!(files.len(), 4);
        assert_eq!(next_number(&files), 5);
        let removed = prune(dir.path(), NonZeroUsize::new(2).unwrap());
        assert_eq!(removed.iter().map(|f| f.number).collect::<Vec<_>>(), [1]);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["backup-2.tgbak", "backup-3.tgbak", "backup-4.tgbak.partial", "keep.me"]);
    }
}
