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

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use tailguard::clock::{SharedClock, SystemClock};

use super::keyspace::{Key, Value};
use super::store::Store;

const MAGIC: &[u8; 8] = b"TGBACKUP";
const END_MAGIC: &[u8; 8] = b"TGEND!!\n";
const VERSION: u32 = 1;
const CHUNK_TAG: u8 = b'C';
const FOOTER_TAG: u8 = b'F';
const CHUNK_HEADER_BYTES: usize = 1 + 4 * 5;
const FOOTER_BYTES: usize = 1 + 8 + 8 + 4 + 8;
/// Entries copied out of the store per lock acquisition during an export.
const SCAN_BATCH: usize = 64;
/// A chunk is closed once its raw payload reaches this size, preempted or not, so that one
/// unpreempted export cannot hold the whole keyspace in memory.
pub const MAX_CHUNK_RAW_BYTES: usize = 4 << 20;
/// Suffix of the file a backup is written to until it is complete.
pub const PARTIAL_SUFFIX: &str = ".partial";

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
    compressed: Vec<u8>,
    compressed_crc32: u32,
    raw_crc32: u32,
    raw_bytes: u32,
    keys: u32,
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
    let mut encoder = ChunkEncoder::new();
    let mut batch = Vec::with_capacity(SCAN_BATCH);
    let mut from = resume_from.unwrap_or(Key(0));
    loop {
        batch.clear();
        store.scan_into(from, SCAN_BATCH, &mut batch);
        let Some(&(last_key, _)) = batch.last() else {
            return ExportOutcome { chunk: encoder.finish(), resume: None, end: ExportEnd::Done };
        };
        for (i, (key, value)) in batch.iter().enumerate() {
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
                None => key.successor().and_then(|after| first_key_from(store, after)),
            };
            let end = if resume.is_some() { end } else { ExportEnd::Done };
            return ExportOutcome { chunk: encoder.finish(), resume, end };
        }
        match last_key.successor() {
            Some(next) => from = next,
            None => return ExportOutcome { chunk: encoder.finish(), resume: None, end: ExportEnd::Done },
        }
    }
}

fn first_key_from(store: &Store, from: Key) -> Option<Key> {
    let mut one = Vec::with_capacity(1);
    store.scan_into(from, 1, &mut one);
    one.first().map(|(k, _)| *k)
}

/// What a finished backup file holds, as written in its footer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupManifest {
    /// Number of keys.
    pub keys: u64,
    /// Number of chunks.
    pub chunks: u64,
    /// CRC-32 over every chunk's compressed bytes, in order.
    pub total_crc32: u32,
}

/// Failure to write a backup.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file operation failed.
    #[error("backup I/O on {path}: {source} (check the directory exists, is writable and has space)")]
    Io {
        /// The file being written or renamed.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The destination or its partial file exists already: backups opened with
    /// [`BackupWriter::create_new`] never replace or truncate a file.
    #[error(
        "{path} exists already; a new backup never replaces a file (is another process writing backups to the same directory?)"
    )]
    Exists {
        /// The file that exists.
        path: PathBuf,
    },
    /// The caller cancelled the backup; no file was left at the destination.
    #[error("backup cancelled after {keys} keys; nothing was written at the destination, rerun to back up")]
    Cancelled {
        /// Keys exported before the cancellation.
        keys: u64,
    },
}

/// Writes a backup to `PATH.partial`, renamed to `PATH` by [`BackupWriter::finish`].
/// Dropped unfinished (an error, a cancellation), it removes the partial file.
#[derive(Debug)]
pub struct BackupWriter {
    path: PathBuf,
    partial: PathBuf,
    file: Option<BufWriter<File>>,
    keys: u64,
    chunks: u64,
    total_crc: crc32fast::Hasher,
    existing: Existing,
}

/// What a backup does with a file already at its destination or partial path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Existing {
    /// Truncate the partial file, replace the destination.
    Replace,
    /// Refuse either with [`BackupError::Exists`].
    Refuse,
}

/// `PATH.partial`: where an unfinished backup of `path` lives.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(PARTIAL_SUFFIX);
    PathBuf::from(name)
}

impl BackupWriter {
    /// Starts a backup whose finished file will be `path`, truncating any earlier `PATH.partial`.
    ///
    /// # Errors
    /// [`BackupError::Io`] when the partial file cannot be created.
    pub fn create(path: impl Into<PathBuf>) -> Result<Self, BackupError> {
        Self::open(path.into(), Existing::Replace)
    }

    /// Starts a backup whose finished file will be `path`, refusing to touch any existing file:
    /// `PATH.partial` is opened create-new, and [`finish`](Self::finish) links it to `path`
    /// only if nothing is there.
    ///
    /// # Errors
    /// [`BackupError::Exists`] when `path` or `PATH.partial` exists; [`BackupError::Io`] when
    /// the partial file cannot be created.
    pub fn create_new(path: impl Into<PathBuf>) -> Result<Self, BackupError> {
        let path = path.into();
        if path.exists() {
            return Err(BackupError::Exists { path });
        }
        Self::open(path, Existing::Refuse)
    }

    fn open(path: PathBuf, existing: Existing) -> Result<Self, BackupError> {
        let partial = partial_path(&path);
        let io_err = |source| BackupError::Io { path: partial.clone(), source };
        let file = match existing {
            Existing::Replace => File::create(&partial),
            Existing::Refuse => fs::OpenOptions::new().write(true).create_new(true).open(&partial),
        };
        let file = match file {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(BackupError::Exists { path: partial });
            }
            Err(e) => return Err(io_err(e)),
        };
        let mut file = BufWriter::new(file);
        let header = file.write_all(MAGIC).and_then(|()| file.write_all(&VERSION.to_le_bytes()));
        let writer = Self {
            path,
            partial: partial.clone(),
            file: Some(file),
            keys: 0,
            chunks: 0,
            total_crc: crc32fast::Hasher::new(),
            existing,
        };
        // On error the writer's drop removes the partial file it created.
        header.map_err(io_err)?;
        Ok(writer)
    }

    fn io_err(&self, source: io::Error) -> BackupError {
        BackupError::Io { path: self.partial.clone(), source }
    }

    /// Appends one chunk (empty chunks are skipped).
    ///
    /// # Errors
    /// [`BackupError::Io`] when the write fails.
    pub fn append(&mut self, chunk: &ExportChunk) -> Result<(), BackupError> {
        if chunk.keys == 0 {
            return Ok(());
        }
        let mut head = Vec::with_capacity(CHUNK_HEADER_BYTES);
        head.push(CHUNK_TAG);
        for word in [chunk.keys, chunk.raw_bytes, chunk.raw_crc32, chunk.compressed.len() as u32] {
            head.extend_from_slice(&word.to_le_bytes());
        }
        head.extend_from_slice(&chunk.compressed_crc32.to_le_bytes());
        let file = self.file.as_mut().expect("a writer has its file until finish");
        let written = file.write_all(&head).and_then(|()| file.write_all(&chunk.compressed));
        written.map_err(|e| self.io_err(e))?;
        self.total_crc.update(&chunk.compressed);
        self.keys += chunk.keys();
        self.chunks += 1;
        Ok(())
    }

    /// Writes the footer, syncs, and renames `PATH.partial` to `PATH`.
    ///
    /// # Errors
    /// [`BackupError::Io`] when writing, syncing or renaming fails (the partial file is removed).
    pub fn finish(mut self) -> Result<BackupManifest, BackupError> {
        let manifest = BackupManifest {
            keys: self.keys,
            chunks: self.chunks,
            total_crc32: self.total_crc.clone().finalize(),
        };
        let mut footer = Vec::with_capacity(FOOTER_BYTES);
        footer.push(FOOTER_TAG);
        footer.extend_from_slice(&manifest.keys.to_le_bytes());
        footer.extend_from_slice(&manifest.chunks.to_le_bytes());
        footer.extend_from_slice(&manifest.total_crc32.to_le_bytes());
        footer.extend_from_slice(END_MAGIC);
        let mut file = self.file.take().expect("a writer has its file until finish");
        let done = file
            .write_all(&footer)
            .and_then(|()| file.into_inner().map_err(io::IntoInnerError::into_error))
            .and_then(|f| f.sync_all());
        if let Err(e) = done {
            let _ = fs::remove_file(&self.partial);
            return Err(self.io_err(e));
        }
        let placed = match self.existing {
            Existing::Replace => fs::rename(&self.partial, &self.path),
            // A hard link fails if the destination exists, where a rename would replace it.
            Existing::Refuse => {
                fs::hard_link(&self.partial, &self.path).and_then(|()| fs::remove_file(&self.partial))
            }
        };
        if let Err(source) = placed {
            let _ = fs::remove_file(&self.partial);
            if source.kind() == io::ErrorKind::AlreadyExists {
                return Err(BackupError::Exists { path: self.path.clone() });
            }
            return Err(BackupError::Io { path: self.path.clone(), source });
        }
        // Make the rename durable too (best effort: not every platform can sync a directory).
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(manifest)
    }
}

impl BackupWriter {
    /// Stops an unfinished backup but keeps what was written, as `PATH.partial` without a footer:
    /// its name and its missing footer both mark it incomplete, and [`restore`] refuses it. The
    /// caller records the resumption key to continue elsewhere. Returns the partial file's path.
    ///
    /// # Errors
    /// [`BackupError::Io`] when flushing fails (the partial file is then removed).
    pub fn abandon(mut self) -> Result<PathBuf, BackupError> {
        let file = self.file.take().expect("a writer has its file until finish");
        if let Err(e) = file.into_inner().map_err(io::IntoInnerError::into_error) {
            let _ = fs::remove_file(&self.partial);
            return Err(self.io_err(e));
        }
        Ok(self.partial.clone())
    }
}

impl Drop for BackupWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Unfinished: best effort, the `.partial` name already marks it as incomplete.
            let _ = fs::remove_file(&self.partial);
        }
    }
}

/// One export request's elastic grant: asked after every exported key whether to stop.
///
/// Any `FnMut() -> bool` is a grant, so a limiter's grant plugs in as a closure that owns it:
/// `|| { let grant = limiter.acquire(); move || grant.over_limit() }`. The grant is dropped
/// (released) when the request ends.
pub trait ExportGrant {
    /// Whether the request must stop now (the grant's CPU slice is used up).
    fn over_limit(&mut self) -> bool;
}

impl<F: FnMut() -> bool> ExportGrant for F {
    fn over_limit(&mut self) -> bool {
        self()
    }
}

/// Live counters of a running backup, readable from another thread (relaxed; monotonically
/// increasing, never reset).
#[derive(Debug, Default)]
pub struct BackupProgress {
    /// Export requests issued.
    pub requests: AtomicU64,
    /// Requests that ended preempted (`over_limit()` said stop before the keyspace ended).
    pub preemptions: AtomicU64,
    /// Keys exported.
    pub keys: AtomicU64,
    /// Raw (uncompressed) record bytes exported.
    pub raw_bytes: AtomicU64,
    /// Compressed bytes written.
    pub compressed_bytes: AtomicU64,
}

/// Totals of a finished backup.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackupStats {
    /// Footer of the written file.
    pub manifest: BackupManifest,
    /// Export requests issued.
    pub requests: u64,
    /// Requests that ended preempted.
    pub preemptions: u64,
    /// Raw record bytes exported.
    pub raw_bytes: u64,
    /// Compressed bytes written.
    pub compressed_bytes: u64,
    /// Wall time from start to the renamed file.
    pub elapsed: Duration,
}

#[cfg(test)]
impl BackupStats {
    /// Keys per second of wall time (0 when no time passed).
    pub fn keys_per_sec(&self) -> f64 {
        per_sec(self.manifest.keys, self.elapsed)
    }
    /// Raw bytes per second of wall time (0 when no time passed).
    pub fn raw_bytes_per_sec(&self) -> f64 {
        per_sec(self.raw_bytes, self.elapsed)
    }
}

#[cfg(test)]
fn per_sec(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// Runs a whole backup as a sequence of export requests, re-issuing each preempted one from
/// its resumption key, and writes the file.
#[derive(Debug)]
pub struct BackupDriver {
    store: Arc<Store>,
    path: PathBuf,
    clock: SharedClock,
    progress: Arc<BackupProgress>,
}

impl BackupDriver {
    /// A driver backing `store` up to `path`, timed by the system clock.
    pub fn new(store: Arc<Store>, path: impl Into<PathBuf>) -> Self {
        Self::with_clock(store, path, SystemClock::shared())
    }

    /// A driver timed by `clock`.
    pub fn with_clock(store: Arc<Store>, path: impl Into<PathBuf>, clock: SharedClock) -> Self {
        Self { store, path: path.into(), clock, progress: Arc::default() }
    }

    /// The live counters, to sample from another thread while [`run`](Self::run) works.
    pub fn progress(&self) -> Arc<BackupProgress> {
        Arc::clone(&self.progress)
    }

    /// Runs the backup: before each export request calls `acquire()` for a grant (which may
    /// block until elastic capacity is free), runs the request under it, appends the chunk and
    /// drops the grant. `cancelled()` is checked between requests (e.g. a Ctrl-C flag).
    ///
    /// # Errors
    /// [`BackupError::Cancelled`] when `cancelled()` returned true (no file is left at the
    /// destination); [`BackupError::Io`] when the file cannot be written.
    pub fn run<G: ExportGrant>(
        &self,
        mut acquire: impl FnMut() -> G,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<BackupStats, BackupError> {
        let start_nanos = self.clock.now_nanos();
        let mut writer = BackupWriter::create(&self.path)?;
        let (mut requests, mut preemptions, mut raw_bytes, mut compressed_bytes) = (0u64, 0u64, 0u64, 0u64);
        let mut resume = None;
        loop {
            if cancelled() {
                return Err(BackupError::Cancelled { keys: writer.keys });
            }
            let outcome = {
                let mut grant = acquire();
                export(&self.store, resume, &mut || grant.over_limit())
            };
            writer.append(&outcome.chunk)?;
            requests += 1;
            raw_bytes += outcome.chunk.raw_bytes();
            compressed_bytes += outcome.chunk.compressed_bytes();
            let p = &self.progress;
            p.requests.fetch_add(1, Relaxed);
            p.keys.fetch_add(outcome.chunk.keys(), Relaxed);
            p.raw_bytes.fetch_add(outcome.chunk.raw_bytes(), Relaxed);
            p.compressed_bytes.fetch_add(outcome.chunk.compressed_bytes(), Relaxed);
            if outcome.end == ExportEnd::Preempted {
                preemptions += 1;
                p.preemptions.fetch_add(1, Relaxed);
            }
            resume = outcome.resume;
            if resume.is_none() {
                break;
            }
        }
        let manifest = writer.finish()?;
        let elapsed = Duration::from_nanos(self.clock.now_nanos().saturating_sub(start_nanos));
        Ok(BackupStats { manifest, requests, preemptions, raw_bytes, compressed_bytes, elapsed })
    }
}

/// Why a backup file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The path names an unfinished backup.
    #[error("{path} is an unfinished backup ({PARTIAL_SUFFIX}); it can never be restored, rerun the backup")]
    Partial {
        /// The refused path.
        path: PathBuf,
    },
    /// Nothing exists at the path but the unfinished `PATH.partial` of an interrupted backup.
    #[error(
        "{path} does not exist: its backup never finished (only {path}{PARTIAL_SUFFIX} is there, which can never be restored); rerun the backup"
    )]
    Unfinished {
        /// The refused path.
        path: PathBuf,
    },
    /// The file could not be read.
    #[error("cannot read backup {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file does not start with the backup magic.
    #[error("not a tailguard backup (bad magic); pass the file written by the backup")]
    BadMagic,
    /// The format version is unknown.
    #[error("backup format version {0} is not supported (this build reads version {VERSION})")]
    UnsupportedVersion(u32),
    /// The file ends before its footer.
    #[error("backup truncated at byte {offset} while reading {what}: the backup did not complete, rerun it")]
    Truncated {
        /// Where the data ran out.
        offset: usize,
        /// What was being read.
        what: &'static str,
    },
    /// A byte that starts neither a chunk nor the footer.
    #[error("corrupt backup: unknown record tag {tag:#04x} at byte {offset}")]
    UnknownTag {
        /// Position of the tag.
        offset: usize,
        /// The byte found.
        tag: u8,
    },
    /// A chunk's checksum or contents do not match its header.
    #[error("corrupt backup: chunk {chunk} at byte {offset}: {reason}")]
    CorruptChunk {
        /// Chunk index, from 0.
        chunk: u64,
        /// Position of the chunk header.
        offset: usize,
        /// What does not match.
        reason: String,
    },
    /// Keys do not increase strictly.
    #[error("corrupt backup: key {key} in chunk {chunk} is not greater than the key before it")]
    KeyOrder {
        /// Chunk index.
        chunk: u64,
        /// The out-of-order key.
        key: Key,
    },
    /// The footer disagrees with the chunks read.
    #[error("corrupt backup: footer says {what} = {footer}, the file holds {actual}")]
    FooterMismatch {
        /// The field.
        what: &'static str,
        /// Value in the footer.
        footer: u64,
        /// Value computed from the chunks.
        actual: u64,
    },
    /// The footer's last 8 bytes are not the end marker.
    #[error("corrupt backup: the footer's end marker at byte {offset} is not \"TGEND!!\\n\"")]
    BadEndMarker {
        /// Position of the end marker.
        offset: usize,
    },
    /// Bytes follow the footer.
    #[error("corrupt backup: {extra} unexpected bytes after the footer")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

/// The contents of a verified-complete backup file.
#[derive(Clone, Debug)]
pub struct Restored {
    /// Every key and value, in order.
    pub entries: BTreeMap<Key, Value>,
    /// The footer.
    pub manifest: BackupManifest,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RestoreError> {
        let out = self
            .bytes
            .get(self.offset..self.offset.saturating_add(n))
            .ok_or(RestoreError::Truncated { offset: self.bytes.len(), what })?;
        self.offset += n;
        Ok(out)
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, RestoreError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, RestoreError> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }
}

/// Reads and checks a complete backup file: every chunk checksum, key order, the footer's
/// counts and total checksum, and that nothing follows the footer.
///
/// # Errors
/// A [`RestoreError`] naming the first problem; `.partial` paths are always refused, and so is
/// a missing path whose `.partial` exists.
pub fn restore(path: &Path) -> Result<Restored, RestoreError> {
    if path.as_os_str().to_string_lossy().ends_with(PARTIAL_SUFFIX) {
        return Err(RestoreError::Partial { path: path.to_owned() });
    }
    let bytes = fs::read(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound && partial_path(path).exists() {
            RestoreError::Unfinished { path: path.to_owned() }
        } else {
            RestoreError::Io { path: path.to_owned(), source }
        }
    })?;
    parse(&bytes)
}

fn parse(bytes: &[u8]) -> Result<Restored, RestoreError> {
    let mut cur = Cursor { bytes, offset: 0 };
    if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) {
        // Empty, or cut inside the magic: a backup that stopped before its header was written.
        return Err(RestoreError::Truncated { offset: bytes.len(), what: "the header" });
    }
    if cur.take(MAGIC.len(), "the header").map_err(|_| RestoreError::BadMagic)? != MAGIC {
        return Err(RestoreError::BadMagic);
    }
    let version = cur.u32("the header")?;
    if version != VERSION {
        return Err(RestoreError::UnsupportedVersion(version));
    }
    let mut entries = BTreeMap::new();
    let mut last_key: Option<Key> = None;
    let (mut chunks, mut total_crc) = (0u64, crc32fast::Hasher::new());
    loop {
        let at = cur.offset;
        match cur.take(1, "a record tag (the footer is missing)")?[0] {
            CHUNK_TAG => {
                let keys = cur.u32("a chunk header")?;
                let raw_len = cur.u32("a chunk header")?;
                let raw_crc = cur.u32("a chunk header")?;
                let compressed_len = cur.u32("a chunk header")?;
                let compressed_crc = cur.u32("a chunk header")?;
                let compressed = cur.take(compressed_len as usize, "a chunk body")?;
                let corrupt =
                    |reason: String| RestoreError::CorruptChunk { chunk: chunks, offset: at, reason };
                if crc32fast::hash(compressed) != compressed_crc {
                    return Err(corrupt("compressed checksum mismatch".into()));
                }
                let mut raw = Vec::with_capacity(raw_len as usize);
                DeflateDecoder::new(compressed)
                    .take(u64::from(raw_len) + 1)
                    .read_to_end(&mut raw)
                    .map_err(|e| corrupt(format!("cannot decompress: {e}")))?;
                if raw.len() != raw_len as usize || crc32fast::hash(&raw) != raw_crc {
                    return Err(corrupt("decompressed payload does not match its length or checksum".into()));
                }
                let mut rec = Cursor { bytes: &raw, offset: 0 };
                for _ in 0..keys {
                    let key = Key(u64::from_be_bytes(rec.take(8, "a record")?.try_into().expect("8 bytes")));
                    let len = rec.u32("a record")? as usize;
                    let value: Value = rec.take(len, "a record value")?.into();
                    if last_key.is_some_and(|last| key <= last) {
                        return Err(RestoreError::KeyOrder { chunk: chunks, key });
                    }
                    last_key = Some(key);
                    entries.insert(key, value);
                }
                if rec.offset != raw.len() {
                    return Err(corrupt(format!(
                        "{} bytes beyond its {keys} records",
                        raw.len() - rec.offset
                    )));
                }
                total_crc.update(compressed);
                chunks += 1;
            }
            FOOTER_TAG => {
                let keys = cur.u64("the footer")?;
                let footer_chunks = cur.u64("the footer")?;
                let footer_crc = cur.u32("the footer")?;
                let end_at = cur.offset;
                if cur.take(END_MAGIC.len(), "the footer")? != END_MAGIC {
                    return Err(RestoreError::BadEndMarker { offset: end_at });
                }
                let checks = [
                    ("keys", keys, entries.len() as u64),
                    ("chunks", footer_chunks, chunks),
                    ("total_crc32", u64::from(footer_crc), u64::from(total_crc.finalize())),
                ];
                for (what, footer, actual) in checks {
                    if footer != actual {
                        return Err(RestoreError::FooterMismatch { what, footer, actual });
                    }
                }
                if cur.offset != bytes.len() {
                    return Err(RestoreError::TrailingBytes { extra: bytes.len() - cur.offset });
                }
                let manifest = BackupManifest { keys, chunks, total_crc32: footer_crc };
                return Ok(Restored { entries, manifest });
            }
            tag => return Err(RestoreError::UnknownTag { offset: at, tag }),
        }
    }
}

/// How far an unfinished backup got: what its complete chunks hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartialPrefix {
    /// Keys in the complete chunks.
    pub keys: u64,
    /// Complete chunks (each checksum checked).
    pub chunks: u64,
    /// The last key in them; a backup resuming this one starts after it (`None`: no chunk is
    /// complete, resume from the start).
    pub last_key: Option<Key>,
}

/// Reads an unfinished backup (`PATH.partial`, or any file cut before its footer): the chunks
/// that were written whole, checked, up to where the writer stopped. A chunk cut short at the
/// end, or a file cut inside its header, is where it stopped, not an error.
///
/// # Errors
/// [`RestoreError::Io`] when the file cannot be read; [`RestoreError::BadMagic`],
/// [`RestoreError::UnsupportedVersion`], [`RestoreError::UnknownTag`] or
/// [`RestoreError::CorruptChunk`] when what was written is not a backup's beginning.
pub fn read_partial(path: &Path) -> Result<PartialPrefix, RestoreError> {
    let bytes = fs::read(path).map_err(|source| RestoreError::Io { path: path.to_owned(), source })?;
    let header = MAGIC.len() + 4;
    if bytes.len() < header {
        return if MAGIC.starts_with(&bytes[..bytes.len().min(MAGIC.len())]) {
            Ok(PartialPrefix::default())
        } else {
            Err(RestoreError::BadMagic)
        };
    }
    let mut cur = Cursor { bytes: &bytes, offset: 0 };
    if cur.take(MAGIC.len(), "the header")? != MAGIC {
        return Err(RestoreError::BadMagic);
    }
    let version = cur.u32("the header")?;
    if version != VERSION {
        return Err(RestoreError::UnsupportedVersion(version));
    }
    let mut prefix = PartialPrefix::default();
    let mut last_chunk = None;
    while cur.offset < bytes.len() {
        let at = cur.offset;
        let tag = cur.take(1, "a record tag")?[0];
        if tag == FOOTER_TAG {
            break; // A complete backup under a partial name: its chunks are all there.
        }
        if tag != CHUNK_TAG {
            return Err(RestoreError::UnknownTag { offset: at, tag });
        }
        let Ok(head) = cur.take(CHUNK_HEADER_BYTES - 1, "a chunk header") else { break };
        let word = |i: usize| u32::from_le_bytes(head[4 * i..4 * i + 4].try_into().expect("4 bytes"));
        let (keys, raw_len, raw_crc, compressed_len, compressed_crc) =
            (word(0), word(1), word(2), word(3), word(4));
        let Ok(compressed) = cur.take(compressed_len as usize, "a chunk body") else { break };
        if crc32fast::hash(compressed) != compressed_crc {
            let reason = "compressed checksum mismatch".to_owned();
            return Err(RestoreError::CorruptChunk { chunk: prefix.chunks, offset: at, reason });
        }
        prefix.keys += u64::from(keys);
        prefix.chunks += 1;
        last_chunk = Some((at, compressed, raw_len, raw_crc, keys));
    }
    if let Some((at, compressed, raw_len, raw_crc, keys)) = last_chunk {
        let corrupt =
            |reason: String| RestoreError::CorruptChunk { chunk: prefix.chunks - 1, offset: at, reason };
        let mut raw = Vec::with_capacity(raw_len as usize);
        DeflateDecoder::new(compressed)
            .take(u64::from(raw_len) + 1)
            .read_to_end(&mut raw)
            .map_err(|e| corrupt(format!("cannot decompress: {e}")))?;
        if raw.len() != raw_len as usize || crc32fast::hash(&raw) != raw_crc {
            return Err(corrupt("decompressed payload does not match its length or checksum".into()));
        }
        let mut rec = Cursor { bytes: &raw, offset: 0 };
        for _ in 0..keys {
            let key = Key(u64::from_be_bytes(rec.take(8, "a record")?.try_into().expect("8 bytes")));
            let len = rec.u32("a record")? as usize;
            rec.take(len, "a record value")?;
            prefix.last_key = Some(key);
        }
    }
    Ok(prefix)
}

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
    let restored = restore(path)?;
    let mut backup = restored.entries.iter().peekable();
    let (mut keys, mut value_bytes) = (0u64, 0u64);
    let mut batch = Vec::with_capacity(SCAN_BATCH);
    let mut from = Some(Key(0));
    while let Some(start) = from {
        batch.clear();
        store.scan_into(start, SCAN_BATCH, &mut batch);
        from = batch.last().and_then(|(k, _)| k.successor());
        for (key, value) in &batch {
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
        if batch.is_empty() {
            break;
        }
    }
    if let Some((extra, _)) = backup.next() {
        return Err(VerifyError::Extra(*extra));
    }
    Ok(VerifyReport { keys, value_bytes, chunks: restored.manifest.chunks })
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use tailguard::clock::ManualClock;

    use super::*;
    use crate::workload::keyspace::KeyspaceConfig;

    fn store(keys: u64) -> Arc<Store> {
        Arc::new(Store::populate(&KeyspaceConfig { keys, mean_value_bytes: 48, seed: 11 }, 4))
    }

    fn backup_with(store: &Arc<Store>, path: &Path, mut stop_after: impl FnMut() -> u64) -> BackupStats {
        let driver = BackupDriver::new(Arc::clone(store), path);
        driver
            .run(
                || {
                    let budget = stop_after();
                    let mut seen = 0;
                    move || {
                        seen += 1;
                        seen >= budget
                    }
                },
                &|| false,
            )
            .expect("backup")
    }

    #[test]
    fn preempted_after_every_key_still_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.tgb");
        let store = store(300);
        let stats = backup_with(&store, &path, || 1);
        assert_eq!(stats.manifest.keys, 300);
        assert_eq!(stats.requests, 300);
        assert_eq!(stats.preemptions, 299, "the last request ends at the end of the keyspace");
        assert!(!partial_path(&path).exists());
        let report = verify(&path, &store).expect("verifies");
        assert_eq!(report.keys, 300);
        assert_eq!(report.chunks, 300);
    }

    #[test]
    fn preempted_at_random_points_verifies_and_is_never_preempted_too() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(2_000);
        for seed in 0..4 {
            let path = dir.path().join(format!("r{seed}.tgb"));
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let stats = backup_with(&store, &path, || rng.random_range(1..200));
            assert!(stats.preemptions > 5, "{stats:?}");
            assert_eq!(verify(&path, &store).expect("verifies").keys, 2_000);
        }
        let path = dir.path().join("whole.tgb");
        let stats = backup_with(&store, &path, || u64::MAX);
        assert_eq!((stats.requests, stats.preemptions), (1, 0));
        assert_eq!(restore(&path).unwrap().entries.len(), 2_000);
    }

    #[test]
    fn an_abandoned_backup_keeps_its_partial_file_which_restore_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.tgb");
        let store = store(100);
        let mut writer = BackupWriter::create(&path).unwrap();
        let mut seen = 0;
        let outcome = export(&store, None, &mut || {
            seen += 1;
            seen >= 40
        });
        writer.append(&outcome.chunk).unwrap();
        assert_eq!((outcome.chunk.keys(), outcome.resume), (40, Some(Key(40))));
        let partial = writer.abandon().unwrap();
        assert_eq!(partial, partial_path(&path));
        assert!(partial.exists() && !path.exists());
        assert!(matches!(restore(&partial), Err(RestoreError::Partial { .. })));
        // Even renamed, the missing footer gives it away.
        std::fs::rename(&partial, &path).unwrap();
        assert!(matches!(restore(&path), Err(RestoreError::Truncated { .. })), "{:?}", restore(&path).err());
    }

    #[test]
    fn export_resumes_exactly_where_it_stopped() {
        let store = store(10);
        let mut calls = 0;
        let first = export(&store, None, &mut || {
            calls += 1;
            calls == 3
        });
        assert_eq!((first.chunk.keys(), first.resume, first.end), (3, Some(Key(3)), ExportEnd::Preempted));
        let rest = export(&store, first.resume, &mut || false);
        assert_eq!((rest.chunk.keys(), rest.resume, rest.end), (7, None, ExportEnd::Done));
        let empty = export(&Store::new(2, 10), None, &mut || true);
        assert_eq!((empty.chunk.keys(), empty.resume, empty.end), (0, None, ExportEnd::Done));
    }

    #[test]
    fn verify_names_the_first_difference() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.tgb");
        let store = store(100);
        backup_with(&store, &path, || 7);
        store.put(Key(42), vec![1, 2, 3].into());
        assert!(matches!(verify(&path, &store), Err(VerifyError::ValueMismatch { key: Key(42), .. })));
        store.put(Key(42), KeyspaceConfig { keys: 100, mean_value_bytes: 48, seed: 11 }.value_of(Key(42)));
        store.put(Key(100), vec![0].into());
        assert!(matches!(verify(&path, &store), Err(VerifyError::Missing(Key(100)))));
        let smaller = Store::new(1, 100);
        for (k, v) in restore(&path).unwrap().entries.into_iter().filter(|(k, _)| k.0 != 5) {
            smaller.put(k, v);
        }
        assert!(matches!(verify(&path, &smaller), Err(VerifyError::Extra(Key(5)))));
    }

    #[test]
    fn truncated_corrupted_and_partial_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.tgb");
        let store = store(500);
        backup_with(&store, &path, || 50);
        let good = fs::read(&path).unwrap();
        let bad = dir.path().join("bad.tgb");
        // Every truncation point is refused, never mistaken for a shorter complete backup.
        for len in (0..good.len()).step_by(97).chain([good.len() - 1, good.len() - FOOTER_BYTES]) {
            fs::write(&bad, &good[..len]).unwrap();
            let err = restore(&bad).expect_err("truncated file refused");
            assert!(matches!(err, RestoreError::Truncated { .. }), "len {len}: {err}");
        }
        // A flipped byte anywhere after the header is caught.
        for at in (12..good.len()).step_by(131) {
            let mut flipped = good.clone();
            flipped[at] ^= 0x40;
            fs::write(&bad, &flipped).unwrap();
            assert!(restore(&bad).is_err(), "flip at {at} accepted");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        fs::write(&bad, &trailing).unwrap();
        assert!(matches!(restore(&bad), Err(RestoreError::TrailingBytes { extra: 1 })));
        // A complete file renamed to .partial is still refused by name.
        let partial = partial_path(&path);
        fs::write(&partial, &good).unwrap();
        let err = restore(&partial).unwrap_err();
        assert!(matches!(err, RestoreError::Partial { .. }));
        assert!(err.to_string().contains("rerun the backup"), "{err}");
        assert!(matches!(verify(&partial, &store), Err(VerifyError::Restore(RestoreError::Partial { .. }))));
        // Asked for the finished name of a backup that only got as far as its .partial file.
        let unfinished = dir.path().join("never.tgb");
        fs::write(partial_path(&unfinished), &good[..good.len() / 2]).unwrap();
        let err = restore(&unfinished).unwrap_err();
        assert!(matches!(err, RestoreError::Unfinished { .. }), "{err}");
        assert!(err.to_string().contains("never finished"), "{err}");
        assert!(matches!(restore(&dir.path().join("absent.tgb")), Err(RestoreError::Io { .. })));
    }

    #[test]
    fn cancelled_backup_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.tgb");
        let store = store(100);
        let driver = BackupDriver::with_clock(Arc::clone(&store), &path, ManualClock::new().shared());
        let progress = driver.progress();
        let requests = &progress.requests;
        let err = driver.run(|| || true, &|| requests.load(Relaxed) == 10).unwrap_err();
        assert!(matches!(err, BackupError::Cancelled { keys: 10 }), "{err}");
        assert!(!path.exists());
        assert!(!partial_path(&path).exists());
        assert_eq!(progress.preemptions.load(Relaxed), 10);
    }

    #[test]
    fn throughput_is_measured_on_the_injected_clock() {
        let clock = ManualClock::new();
        let dir = tempfile::tempdir().unwrap();
        let store = store(100);
        let driver = BackupDriver::with_clock(Arc::clone(&store), dir.path().join("b"), clock.shared());
        let stats = driver
            .run(
                || {
                    clock.advance(Duration::from_millis(10));
                    || false
                },
                &|| false,
            )
            .unwrap();
        assert_eq!(stats.elapsed, Duration::from_millis(10));
        assert!((stats.keys_per_sec() - 10_000.0).abs() < 1e-6);
        assert!(stats.raw_bytes_per_sec() > 0.0);
    }

    #[test]
    fn create_new_never_truncates_or_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(50);
        let write = |writer: &mut BackupWriter| {
            writer.append(&export(&store, None, &mut || false).chunk).unwrap();
        };
        let path = dir.path().join("b.tgb");
        // An earlier run's partial file is refused, and left byte for byte.
        fs::write(partial_path(&path), b"earlier").unwrap();
        assert!(matches!(BackupWriter::create_new(&path), Err(BackupError::Exists { .. })));
        assert_eq!(fs::read(partial_path(&path)).unwrap(), b"earlier");
        // A complete file is refused too.
        let done = dir.path().join("done.tgb");
        fs::write(&done, b"complete").unwrap();
        assert!(matches!(BackupWriter::create_new(&done), Err(BackupError::Exists { .. })));
        assert_eq!(fs::read(&done).unwrap(), b"complete");
        // A file that appears at the destination while the backup runs is not replaced.
        let raced = dir.path().join("raced.tgb");
        let mut writer = BackupWriter::create_new(&raced).unwrap();
        write(&mut writer);
        fs::write(&raced, b"someone else's").unwrap();
        assert!(matches!(writer.finish(), Err(BackupError::Exists { .. })));
        assert_eq!(fs::read(&raced).unwrap(), b"someone else's");
        // Without a collision it completes like `create`.
        let fresh = dir.path().join("fresh.tgb");
        let mut writer = BackupWriter::create_new(&fresh).unwrap();
        write(&mut writer);
        writer.finish().unwrap();
        assert_eq!(restore(&fresh).unwrap().entries.len(), 50);
        assert!(!partial_path(&fresh).exists());
    }

    #[test]
    fn a_flipped_end_marker_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.tgb");
        backup_with(&store(20), &path, || u64::MAX);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let error = restore(&path).unwrap_err();
        assert!(
            matches!(error, RestoreError::BadEndMarker { offset } if offset == bytes.len() - 8),
            "{error}"
        );
        assert!(error.to_string().contains("end marker at byte"), "{error}");
    }

    #[test]
    fn an_unfinished_backup_reads_as_its_complete_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.tgb");
        let store = store(100);
        let mut writer = BackupWriter::create(&path).unwrap();
        let mut seen = 0;
        let outcome = export(&store, None, &mut || {
            seen += 1;
            seen >= 40
        });
        writer.append(&outcome.chunk).unwrap();
        let partial = writer.abandon().unwrap();
        let whole = PartialPrefix { keys: 40, chunks: 1, last_key: Some(Key(39)) };
        assert_eq!(read_partial(&partial).unwrap(), whole);
        // A second chunk cut short (a kill mid-write) is where it stopped.
        let mut bytes = fs::read(&partial).unwrap();
        bytes.extend_from_slice(&[CHUNK_TAG, 7, 0, 0]);
        fs::write(&partial, &bytes).unwrap();
        assert_eq!(read_partial(&partial).unwrap(), whole);
        // Cut inside the header: nothing written yet.
        fs::write(&partial, &MAGIC[..3]).unwrap();
        assert_eq!(read_partial(&partial).unwrap(), PartialPrefix::default());
        fs::write(&partial, b"not a backup").unwrap();
        assert!(matches!(read_partial(&partial), Err(RestoreError::BadMagic)));
    }
}
