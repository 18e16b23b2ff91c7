//! The elastic backup: preemptible export requests, the backup file, restore and verify.
//!
//! # File format (all integers little-endian unless noted)
//!
//! ```text
//! header  "TGBACKUP" version:u32
//! chunk*  'C' keys:u32 raw_len:u32 raw_crc32:u32 compressed_len:u32 compressed_crc32:u32 deflate-bytes
//! footer  'F' keys:u64 chunks:u64 total_crc32:u32 "TGEND!!\n"      (then end of file)
//! record  key:u64 (big-endian) value_len:u32 value-bytes           (inside a chunk's raw payload)
//! ```
//!
//! `total_crc32` covers every chunk's compressed bytes in order. Keys increase strictly across the
//! whole file. A writer writes `PATH.partial` and renames it to `PATH` only after the footer is
//! written and synced, so an interrupted backup never leaves a file at `PATH`; restore refuses
//! `.partial` files and any file whose footer is missing, truncated or inconsistent.

mod driver;
mod export;
mod format;
#[cfg(test)]
mod tests;
mod verify;

pub use self::driver::BackupDriver;
pub use self::export::{export, export_until};
pub use self::format::{BackupError, BackupWriter, RestoreError, read_partial, restore, restore_partial};
pub use self::verify::{verify, verify_range};

pub(super) const MAGIC: &[u8; 8] = b"TGBACKUP";
pub(super) const END_MAGIC: &[u8; 8] = b"TGEND!!\n";
pub(super) const VERSION: u32 = 1;
pub(super) const CHUNK_TAG: u8 = b'C';
pub(super) const FOOTER_TAG: u8 = b'F';
pub(super) const CHUNK_HEADER_BYTES: usize = 1 + 4 * 5;
pub(super) const FOOTER_BYTES: usize = 1 + 8 + 8 + 4 + 8;
/// Entries copied out of the store per lock acquisition during an export.
pub(super) const SCAN_BATCH: usize = 64;
/// A chunk is closed once its raw payload reaches this size, preempted or not, so that one
/// unpreempted export cannot hold the whole keyspace in memory.
pub const MAX_CHUNK_RAW_BYTES: usize = 4 << 20;
/// Suffix of the file a backup is written to until it is complete.
pub const PARTIAL_SUFFIX: &str = ".partial";
