//! The backup file: written chunk by chunk as `PATH.partial` and put in place only once its
//! footer is synced; read back, checked, as a whole or as an unfinished prefix.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::DeflateDecoder;

use super::export::ExportChunk;
use super::{
    CHUNK_HEADER_BYTES, CHUNK_TAG, END_MAGIC, FOOTER_BYTES, FOOTER_TAG, MAGIC, PARTIAL_SUFFIX, VERSION,
};
use crate::workload::keyspace::{Key, Value};

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
    pub(super) keys: u64,
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

    /// Appends one chunk (empty chunks are skipped) and hands it to the OS, so that a process
    /// killed after `append` returns leaves the chunk in its partial file (a resumption key
    /// reported after it is found in the file too).
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
        let written = file
            .write_all(&head)
            .and_then(|()| file.write_all(&chunk.compressed))
            .and_then(|()| file.flush());
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
                let raw = decompress(compressed, raw_len, raw_crc).map_err(corrupt)?;
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

/// A chunk's records, inflated from `compressed` and checked against their length and checksum
/// (the reason they are corrupt, if they are).
fn decompress(compressed: &[u8], raw_len: u32, raw_crc: u32) -> Result<Vec<u8>, String> {
    let mut raw = Vec::with_capacity(raw_len as usize);
    DeflateDecoder::new(compressed)
        .take(u64::from(raw_len) + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("cannot decompress: {e}"))?;
    if raw.len() != raw_len as usize || crc32fast::hash(&raw) != raw_crc {
        return Err("decompressed payload does not match its length or checksum".into());
    }
    Ok(raw)
}

/// A chunk written whole in an unfinished backup: where it starts and its checked bytes.
struct CompleteChunk<'a> {
    at: usize,
    compressed: &'a [u8],
    raw_len: u32,
    raw_crc: u32,
    keys: u32,
}

impl CompleteChunk<'_> {
    /// The chunk's records, checked, in order; `index` is its position in the file (for errors).
    fn records(&self, index: u64) -> Result<Vec<(Key, Value)>, RestoreError> {
        let corrupt = |reason: String| RestoreError::CorruptChunk { chunk: index, offset: self.at, reason };
        let raw = decompress(self.compressed, self.raw_len, self.raw_crc).map_err(corrupt)?;
        let mut rec = Cursor { bytes: &raw, offset: 0 };
        let mut records = Vec::with_capacity(self.keys as usize);
        for _ in 0..self.keys {
            let key = Key(u64::from_be_bytes(rec.take(8, "a record")?.try_into().expect("8 bytes")));
            let len = rec.u32("a record")? as usize;
            records.push((key, rec.take(len, "a record value")?.into()));
        }
        Ok(records)
    }
}

/// The chunks of an unfinished backup's bytes that were written whole, each compressed
/// checksum checked, up to where the writer stopped.
fn complete_chunks(bytes: &[u8]) -> Result<Vec<CompleteChunk<'_>>, RestoreError> {
    let header = MAGIC.len() + 4;
    if bytes.len() < header {
        return if MAGIC.starts_with(&bytes[..bytes.len().min(MAGIC.len())]) {
            Ok(Vec::new())
        } else {
            Err(RestoreError::BadMagic)
        };
    }
    let mut cur = Cursor { bytes, offset: 0 };
    if cur.take(MAGIC.len(), "the header")? != MAGIC {
        return Err(RestoreError::BadMagic);
    }
    let version = cur.u32("the header")?;
    if version != VERSION {
        return Err(RestoreError::UnsupportedVersion(version));
    }
    let mut chunks = Vec::new();
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
            return Err(RestoreError::CorruptChunk { chunk: chunks.len() as u64, offset: at, reason });
        }
        chunks.push(CompleteChunk { at, compressed, raw_len, raw_crc, keys });
    }
    Ok(chunks)
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
    let chunks = complete_chunks(&bytes)?;
    let mut prefix = PartialPrefix {
        keys: chunks.iter().map(|c| u64::from(c.keys)).sum(),
        chunks: chunks.len() as u64,
        last_key: None,
    };
    if let Some(last) = chunks.last() {
        prefix.last_key = last.records(prefix.chunks - 1)?.last().map(|(key, _)| *key);
    }
    Ok(prefix)
}

/// The entries of an unfinished backup's complete chunks (see [`read_partial`]), every chunk
/// inflated and checked, keys in strictly increasing order.
///
/// # Errors
/// As [`read_partial`], and [`RestoreError::KeyOrder`] when keys do not increase.
pub fn restore_partial(path: &Path) -> Result<BTreeMap<Key, Value>, RestoreError> {
    let bytes = fs::read(path).map_err(|source| RestoreError::Io { path: path.to_owned(), source })?;
    let mut entries = BTreeMap::new();
    let mut last: Option<Key> = None;
    for (index, chunk) in complete_chunks(&bytes)?.iter().enumerate() {
        for (key, value) in chunk.records(index as u64)? {
            if last.is_some_and(|last| key <= last) {
                return Err(RestoreError::KeyOrder { chunk: index as u64, key });
            }
            last = Some(key);
            entries.insert(key, value);
        }
    }
    Ok(entries)
}
