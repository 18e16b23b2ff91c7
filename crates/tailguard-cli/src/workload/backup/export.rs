//! Export requests: keys from a resumption point, encoded and compressed into one chunk,
//! until the caller says stop, the chunk is full, or the keyspace ends.

use flate2::Compression;
use flate2::write::DeflateEncoder;
use std::io::Write;

use super::{MAX_CHUNK_RAW_BYTES, SCAN_BATCH};
use crate::workload::keyspace::Key;
use crate::workload::store::Store;

/// Why an export request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportEnd {
    /// The scan reached the end of the keyspace.
    Done,
    /// `stop()` returned true: the request was preempted and must be re-issued from `resume`.
    Preempted,
    /// The chunk reached [`MAX_CHUNK_RAW_BYTES`].
    ChunkFull,
}

/// One encoded, compressed and checksummed chunk, ready to be appended to a backup file.
#[derive(Clone, Debug)]
pub struct ExportChunk {
    pub(super) compressed: Vec<u8>,
    pub(super) compressed_crc32: u32,
    pub(super) raw_crc32: u32,
    pub(super) raw_bytes: u32,
    pub(super) keys: u32,
}

impl ExportChunk {
    /// Number of keys in the chunk.
    pub fn keys(&self) -> u64 {
        u64::from(self.keys)
    }
    /// Size of the encoded records before compression, in bytes.
    pub fn raw_bytes(&self) -> u64 {
        u64::from(self.raw_bytes)
    }
    /// Size after compression, in bytes.
    pub fn compressed_bytes(&self) -> u64 {
        self.compressed.len() as u64
    }
}

/// The result of one export request.
#[derive(Clone, Debug)]
pub struct ExportOutcome {
    /// The keys exported by this request (possibly empty at the end of the keyspace).
    pub chunk: ExportChunk,
    /// Where the next request starts (inclusive); `None` once the keyspace is exhausted.
    pub resume: Option<Key>,
    /// Why the request ended.
    pub end: ExportEnd,
}

/// Encodes records into a raw payload and compresses them as they arrive, so the compression
/// CPU is spent inside the export request, between `stop()` checks.
struct ChunkEncoder {
    deflate: DeflateEncoder<Vec<u8>>,
    raw_crc: crc32fast::Hasher,
    raw_bytes: usize,
    keys: u32,
}

impl ChunkEncoder {
    fn new() -> Self {
        Self {
            deflate: DeflateEncoder::new(Vec::new(), Compression::default()),
            raw_crc: crc32fast::Hasher::new(),
            raw_bytes: 0,
            keys: 0,
        }
    }

    fn push(&mut self, key: Key, value: &[u8]) {
        let mut head = [0u8; 12];
        head[..8].copy_from_slice(&key.to_bytes());
        head[8..].copy_from_slice(&(value.len() as u32).to_le_bytes());
        for part in [&head[..], value] {
            self.raw_crc.update(part);
            // Writing into a `Vec` cannot fail.
            self.deflate.write_all(part).expect("in-memory compression cannot fail");
        }
        self.raw_bytes += head.len() + value.len();
        self.keys += 1;
    }

    fn finish(self) -> ExportChunk {
        let compressed = self.deflate.finish().expect("in-memory compression cannot fail");
        ExportChunk {
            compressed_crc32: crc32fast::hash(&compressed),
            compressed,
            raw_crc32: self.raw_crc.finalize(),
            raw_bytes: self.raw_bytes as u32,
            keys: self.keys,
        }
    }
}

/// One export request: scans `store` in key order from `resume_from` (the start of the
/// keyspace when `None`), encoding and compressing each key into a chunk, and asks `stop()`
/// after every key. This is where an elastic limiter plugs in: pass
/// `&mut || handle.over_limit()`.
///
/// The request ends when `stop()` returns true, when the chunk is full, or at the end of the
/// keyspace; [`ExportOutcome::resume`] says where the next request starts.
pub fn export(store: &Store, resume_from: Option<Key>, stop: &mut dyn FnMut() -> bool) -> ExportOutcome {
    export_until(store, resume_from, None, stop)
}

/// [`export`] of the keys below `until` only (every key when `None`): the range
/// `resume_from..until` ends where the keyspace or `until` does, whichever comes first.
pub fn export_until(
    store: &Store,
    resume_from: Option<Key>,
    until: Option<Key>,
    stop: &mut dyn FnMut() -> bool,
) -> ExportOutcome {
    let in_range = |key: Key| until.is_none_or(|until| key < until);
    let mut encoder = ChunkEncoder::new();
    let mut batches = store.batches(resume_from.unwrap_or(Key(0)), SCAN_BATCH);
    while let Some(batch) = batches.next_batch() {
        for (i, (key, value)) in batch.iter().enumerate() {
            if !in_range(*key) {
                return ExportOutcome { chunk: encoder.finish(), resume: None, end: ExportEnd::Done };
            }
            encoder.push(*key, value);
            let end = if stop() {
                ExportEnd::Preempted
            } else if encoder.raw_bytes >= MAX_CHUNK_RAW_BYTES {
                ExportEnd::ChunkFull
            } else {
                continue;
            };
            let resume = match batch.get(i + 1) {
                Some((next, _)) => Some(*next),
                None => key.successor().and_then(|after| store.first_key_from(after)),
            };
            let resume = resume.filter(|next| in_range(*next));
            let end = if resume.is_some() { end } else { ExportEnd::Done };
            return ExportOutcome { chunk: encoder.finish(), resume, end };
        }
    }
    ExportOutcome { chunk: encoder.finish(), resume: None, end: ExportEnd::Done }
}
