//! Verify a backup against the store it came from: key by key, value by value.

use std::path::Path;

use super::SCAN_BATCH;
use super::format::{RestoreError, restore};
use crate::workload::keyspace::Key;
use crate::workload::store::Store;

/// Proof that a backup equals the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Keys compared (all equal).
    pub keys: u64,
    /// Value bytes compared.
    pub value_bytes: u64,
    /// Chunks in the file.
    pub chunks: u64,
}

/// A backup that does not equal the store; names the first difference in key order.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file itself was refused.
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// A key of the store is absent from the backup.
    #[error("backup is missing key {0} that the store holds")]
    Missing(Key),
    /// The backup holds a key the store does not.
    #[error("backup holds key {0} that the store does not")]
    Extra(Key),
    /// Both hold the key with different values.
    #[error("value of key {key} differs: backup has {backup_bytes} bytes, store has {store_bytes} bytes")]
    ValueMismatch {
        /// The key.
        key: Key,
        /// Length in the backup.
        backup_bytes: usize,
        /// Length in the store.
        store_bytes: usize,
    },
}

/// Restores `path` and checks that it holds exactly the keys and values of `store`.
///
/// # Errors
/// [`VerifyError`] naming the file problem or the first differing key.
pub fn verify(path: &Path, store: &Store) -> Result<VerifyReport, VerifyError> {
    verify_range(path, store, Key(0), None)
}

/// [`verify`] of a backup of the keys `from..until` (`until` `None`: to the end): it must hold
/// exactly the store's keys and values in that range.
///
/// # Errors
/// [`VerifyError`] naming the file problem or the first differing key.
pub fn verify_range(
    path: &Path,
    store: &Store,
    from: Key,
    until: Option<Key>,
) -> Result<VerifyReport, VerifyError> {
    let restored = restore(path)?;
    let mut backup = restored.entries.iter().peekable();
    let (mut keys, mut value_bytes) = (0u64, 0u64);
    let mut batches = store.batches(from, SCAN_BATCH);
    'scan: while let Some(batch) = batches.next_batch() {
        for (key, value) in batch {
            if until.is_some_and(|until| *key >= until) {
                break 'scan;
            }
            match backup.next() {
                None => return Err(VerifyError::Missing(*key)),
                Some((bkey, _)) if bkey > key => return Err(VerifyError::Missing(*key)),
                Some((bkey, _)) if bkey < key => return Err(VerifyError::Extra(*bkey)),
                Some((_, bvalue)) if bvalue != value => {
                    return Err(VerifyError::ValueMismatch {
                        key: *key,
                        backup_bytes: bvalue.len(),
                        store_bytes: value.len(),
                    });
                }
                Some(_) => {
                    keys += 1;
                    value_bytes += value.len() as u64;
                }
            }
        }
    }
    if let Some((extra, _)) = backup.next() {
        return Err(VerifyError::Extra(*extra));
    }
    Ok(VerifyReport { keys, value_bytes, chunks: restored.manifest.chunks })
}
