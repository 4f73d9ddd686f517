//! The package store: zip bytes in SQLite, content-addressed (BLAKE3) and split into chunks
//! a Spin SQLite BLOB can always hold. Equal bytes are stored once however many functions and
//! versions use them.
//!
//! No transaction stays open while a large package is written (libSQL rolls back one open
//! longer than 5 s): an upload writes its chunks first, each in its own short statement
//! (`write_chunks`), and then publishes the reference to them (a function's code) in one
//! short transaction (`publish`). Until that commits nothing refers to the chunks and no
//! `packages` row names them, so a writer killed half-way leaves nothing visible, only chunks
//! nobody references, which the collector deletes later.
//!
//! Why the collector never takes chunks a publish needs. Chunks are deleted only in a write
//! transaction that sees their digest unreferenced: when the last reference is dropped
//! (`collect_garbage`) or, for a writer that never published, when a sweep finds its
//! `package_writes` row stale. A writer first stamps that row with the time it starts (its
//! publish removes it), and the collector leaves the chunks of a digest stamped within
//! the grace period (`WRITE_GRACE_SECONDS`, or `package_write_grace_seconds`) alone, so an
//! upload in progress is normally not disturbed. Correctness does not rest on that clock
//! (writers on other machines, an upload slower than the grace period): `publish` checks, in
//! its own transaction, that every chunk is present and writes any missing one again from the
//! bytes it holds, before it commits the reference. Write transactions are serialised, so
//! either the collector's transaction comes first and `publish` sees (and repairs) the gap,
//! or `publish` comes first and the collector then sees the digest referenced.
//!
//! A download of a large package stamps its digest the same way before it reads the
//! package's row, in a row of its own (`download_stamp`), so the chunks it is sending outlive
//! a delete, even when the same bytes are uploaded and published meanwhile (a publish drops
//! its write's stamp only) (see `StoredPackage`).

use crate::db::{Database, DbError, DbErrorKind, Value};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::types::SqliteSynchronous;
use bytes::Bytes;
use md5::{Digest as _, Md5};
use sha2::Sha256;

/// Spin guarantees BLOB values of at least 1 MB; stay well inside it.
pub const CHUNK_SIZE: usize = 512 * 1024;

/// How long the chunks of a digest whose write started are left alone by the collector,
/// even when nothing refers to them, unless the deployment says otherwise
/// (`package_write_grace_seconds`, see [`set_write_grace_seconds`]): far longer than writing
/// 50 MiB takes. Chunks of a killed writer stay this long.
pub const WRITE_GRACE_SECONDS: i64 = 15 * 60;

std::thread_local! {
    static WRITE_GRACE: std::cell::Cell<i64> = const { std::cell::Cell::new(WRITE_GRACE_SECONDS) };
}

/// Sets the grace period (in seconds, at least 1) of every package operation that follows on
/// this thread: the adapter sets `package_write_grace_seconds` before it serves a request (a
/// Spin instance serves one request, on one thread), so the handlers' calls need no
/// parameter for it. Unset, it is [`WRITE_GRACE_SECONDS`].
pub fn set_write_grace_seconds(seconds: i64) {
    WRITE_GRACE.with(|grace| grace.set(seconds.max(1)));
}

/// The grace period in force (see [`set_write_grace_seconds`]).
fn write_grace() -> i64 {
    WRITE_GRACE.with(std::cell::Cell::get)
}

/// How many stale writes one sweep looks at: a few, so no transaction grows long.
const SWEEP_BATCH: i64 = 4;

/// What a package's storage key is a hash of its bytes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestKind {
    Blake3,
    /// The key of every package stored before BLAKE3 keys (migration 0011).
    Sha256,
}

impl DigestKind {
    fn as_str(self) -> &'static str {
        match self {
            DigestKind::Blake3 => "blake3",
            DigestKind::Sha256 => "sha256",
        }
    }
}

/// A validated package, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The storage key: hex BLAKE3 of the bytes, or their SHA-256 when they were stored
    /// under it already (see `keyed_as_stored`).
    pub digest: String,
    pub digest_kind: DigestKind,
    /// Hex MD5 of the bytes: Qinling's `code.md5sum`.
    pub md5: String,
    pub bytes: Bytes,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A package's storage key: its BLAKE3, several times faster than SHA-256 in wasm (where no
/// SHA instructions reach the guest) and as collision-resistant, which content addressing
/// across tenants needs.
pub fn digest_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

pub fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

/// A package's checksums, in hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksums {
    /// Hex BLAKE3: the storage key (see `Package::digest`).
    pub digest: String,
    pub md5: String,
}

/// Both checksums of bytes fed piece by piece: each piece is hashed twice while it is in
/// cache, and nothing is copied.
#[derive(Default)]
pub struct ChecksumsInProgress {
    digest: blake3::Hasher,
    md5: Md5,
}

impl ChecksumsInProgress {
    pub fn update(&mut self, bytes: &[u8]) {
        for block in bytes.chunks(64 * 1024) {
            self.digest.update(block);
            self.md5.update(block);
        }
    }

    pub fn finish(self) -> Checksums {
        Checksums {
            digest: self.digest.finalize().to_hex().to_string(),
            md5: hex(&self.md5.finalize()),
        }
    }
}

fn checksums_of(bytes: &[u8]) -> Checksums {
    let mut checksums = ChecksumsInProgress::default();
    checksums.update(bytes);
    checksums.finish()
}

/// An uploaded package's bytes, not yet checked, with their checksums when they were computed
/// as the request body streamed in (see `forms::PackageHasher`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upload {
    /// Shared with the request body it came in: not copied.
    pub bytes: Bytes,
    pub checksums: Option<Checksums>,
}

impl From<Vec<u8>> for Upload {
    fn from(bytes: Vec<u8>) -> Upload {
        Upload {
            bytes: bytes.into(),
            checksums: None,
        }
    }
}

impl Package {
    /// Checks an upload: its size against the limit, the client's md5 if given, and that it
    /// is a zip archive.
    pub fn from_upload(
        upload: impl Into<Upload>,
        claimed_md5: Option<&str>,
        max_size: u64,
    ) -> ApiResult<Package> {
        let Upload { bytes, checksums } = upload.into();
        if bytes.len() as u64 > max_size {
            return Err(too_large(max_size));
        }
        let Checksums { digest, md5 } = checksums.unwrap_or_else(|| checksums_of(&bytes));
        if let Some(claimed) = claimed_md5 {
            if !claimed.eq_ignore_ascii_case(&md5) {
                return Err(ApiError::bad_request("Package md5 mismatch."));
            }
        }
        if zip::ZipArchive::new(std::io::Cursor::new(&bytes[..])).is_err() {
            return Err(ApiError::bad_request("Package is not a valid ZIP package."));
        }
        Ok(Package {
            digest,
            digest_kind: DigestKind::Blake3,
            md5,
            bytes,
        })
    }

    /// This package under the key its bytes are stored with already, when that is their
    /// SHA-256 (stored before BLAKE3 keys): the same bytes never get a second key. Only bytes
    /// with the md5 and size of such a package are hashed again.
    pub fn keyed_as_stored(mut self, db: &dyn Database) -> ApiResult<Package> {
        let candidates = db.execute(
            "SELECT digest FROM packages WHERE digest_kind = 'sha256' AND md5 = ? AND size = ?",
            &[
                self.md5.as_str().into(),
                Value::Integer(self.bytes.len() as i64),
            ],
        )?;
        if candidates.rows.is_empty() {
            return Ok(self);
        }
        let sha256 = sha256_hex(&self.bytes);
        if candidates.iter().any(|row| row.text(0) == sha256) {
            self.digest = sha256;
            self.digest_kind = DigestKind::Sha256;
        }
        Ok(self)
    }

    /// Its chunks, as slices of its bytes (no copies).
    fn chunks(&self) -> impl Iterator<Item = (i64, Bytes)> + '_ {
        let len = self.bytes.len();
        (0..).zip(
            (0..len)
                .step_by(CHUNK_SIZE)
                .map(move |start| self.bytes.slice(start..(start + CHUNK_SIZE).min(len))),
        )
    }

    fn chunk_count(&self) -> usize {
        self.bytes.len().div_ceil(CHUNK_SIZE)
    }
}

pub fn too_large(max_size: u64) -> ApiError {
    ApiError::new(
        ErrorKind::PayloadTooLarge,
        format!("Package size exceeds the maximum of {max_size} bytes."),
    )
}

fn insert_chunk(db: &dyn Database, digest: &str, seq: i64, data: Bytes) -> ApiResult<()> {
    db.execute(
        "INSERT OR IGNORE INTO package_chunks (digest, seq, data) VALUES (?, ?, ?)",
        &[digest.into(), Value::Integer(seq), Value::Blob(data)],
    )?;
    Ok(())
}

/// Writes the package's chunks before anything refers to them: outside any transaction, each
/// chunk in its own statement, so no lock is held across the whole package. Bytes already
/// published are not written again (`publish` checks them). Follow with `publish`, whose
/// commit makes them durable with `durability`.
pub fn write_chunks(
    db: &dyn Database,
    package: &Package,
    durability: SqliteSynchronous,
) -> ApiResult<()> {
    write_chunks_at(db, package, durability, crate::time::now_unix())
}

fn write_chunks_at(
    db: &dyn Database,
    package: &Package,
    durability: SqliteSynchronous,
    now: i64,
) -> ApiResult<()> {
    if package_row(db, &package.digest)?.is_some() {
        return Ok(());
    }
    crate::db::with_short_busy_waits(db, || {
        db.execute(
            "INSERT OR REPLACE INTO package_writes (digest, started_at) VALUES (?, ?)",
            &[package.digest.as_str().into(), Value::Integer(now)],
        )
    })?;
    let relaxed = relax_durability(db);
    // Outside a transaction, each write may find another connection's transaction holding the
    // lock: wait it out, going on from the chunk that found it.
    let next = std::cell::Cell::new(0);
    let written = crate::db::with_short_busy_waits(db, || {
        for (seq, data) in package.chunks().skip(next.get()) {
            db.execute(
                "INSERT OR IGNORE INTO package_chunks (digest, seq, data) VALUES (?, ?, ?)",
                &[
                    package.digest.as_str().into(),
                    Value::Integer(seq),
                    Value::Blob(data),
                ],
            )?;
            next.set(next.get() + 1);
        }
        Ok(())
    })
    .map_err(ApiError::from);
    if relaxed {
        let _ = db.execute(
            &format!("PRAGMA synchronous = {}", durability.pragma_value()),
            &[],
        );
    }
    written
}

/// Lets the chunk writes skip a disk sync each: in WAL mode, the publish's commit syncs the
/// log, and with it every chunk written before it (until then nothing refers to them, so
/// losing them in a crash loses nothing). Only in WAL mode, where `synchronous = NORMAL` never
/// corrupts. Nor does this connection checkpoint the log as it grows, chunk by chunk and
/// again at the publish's commit: `checkpoint` does it once, after the answer. A backend
/// without these pragmas (libSQL remote) refuses them and keeps its own durability: nothing
/// depends on them.
fn relax_durability(db: &dyn Database) -> bool {
    let wal = db
        .execute("PRAGMA journal_mode", &[])
        .ok()
        .and_then(|rows| rows.first().map(|r| r.text(0)))
        .is_some_and(|mode| mode.eq_ignore_ascii_case("wal"));
    wal && db.execute("PRAGMA synchronous = NORMAL", &[]).is_ok() && {
        let _ = db.execute("PRAGMA wal_autocheckpoint = 0", &[]);
        true
    }
}

/// Copies the log of an upload's connection into the database (SQLite's checkpoint, which
/// that connection skipped): call after the answer is sent, so that the upload does not wait
/// for it. Without it, the next commit of any connection does it. A backend without the
/// pragma ignores it.
pub fn checkpoint(db: &dyn Database) {
    let _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)", &[]);
}

/// Makes the package, whose chunks `write_chunks` wrote, available to the reference the
/// calling transaction records: writes again any chunk the collector took meanwhile, and
/// records the package's row, and drops the write's stamp. Call inside that transaction.
/// Also sweeps a few stale writes.
pub fn publish(tx: &dyn Database, package: &Package) -> ApiResult<()> {
    publish_at(tx, package, crate::time::now_unix())
}

fn publish_at(tx: &dyn Database, package: &Package, now: i64) -> ApiResult<()> {
    let present: std::collections::HashSet<i64> = tx
        .execute(
            "SELECT seq FROM package_chunks WHERE digest = ?",
            &[package.digest.as_str().into()],
        )?
        .iter()
        .map(|r| r.int(0))
        .collect();
    if present.len() < package.chunk_count() {
        for (seq, data) in package.chunks().filter(|(seq, _)| !present.contains(seq)) {
            insert_chunk(tx, &package.digest, seq, data)?;
        }
    }
    tx.execute(
        "INSERT OR IGNORE INTO packages (digest, size, md5, chunk_count, created_at, digest_kind)
         VALUES (?, ?, ?, ?, ?, ?)",
        &[
            package.digest.as_str().into(),
            Value::Integer(package.bytes.len() as i64),
            package.md5.as_str().into(),
            Value::Integer(package.chunk_count() as i64),
            crate::time::format_timestamp(now).into(),
            package.digest_kind.as_str().into(),
        ],
    )?;
    // Referenced from this commit on: the write's stamp has done its work. Only the write's:
    // a download of the same bytes keeps its own (see `download_stamp`).
    tx.execute(
        "DELETE FROM package_writes WHERE digest = ?",
        &[package.digest.as_str().into()],
    )?;
    sweep(tx, now)
}

/// A stored package, to be sent a few chunks at a time so that a large one is never whole in
/// memory (a download streams it).
///
/// Why its chunks stay while it is sent, whatever updates and deletes commit meanwhile. A
/// package of at most [`CHUNKS_PER_READ`] chunks is read whole before anything is sent, in
/// one statement after its row (if its bytes went in between, so did the row: the package is
/// gone, and the caller looks again for the one that replaced it). A larger one is first stamped in `package_writes`, as an upload stamps its bytes,
/// and only then is its row looked up: once the stamp has committed, the collector leaves its
/// chunks alone for the grace period even if its last reference goes (it deletes only the
/// row, and a sweep takes the chunks once the stamp is stale), and the stamp is renewed while
/// the download lasts: as chunks are read, and while the sender waits for a client that reads
/// nothing ([`Pieces::keep_stamp`]). No transaction stays open while a client reads: a slow or stalled
/// client holds neither SQLite's log (which cannot be checkpointed past an open snapshot) nor
/// a libSQL stream (which sqld drops after 10 s idle).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPackage {
    digest: String,
    /// Its length in bytes, known before the first chunk is read (a `Content-Length`).
    pub size: u64,
    chunk_count: i64,
    /// A small package's chunks, read with its row.
    read_whole: Option<Vec<Vec<u8>>>,
    /// When a large package was last stamped, in seconds since the Unix epoch (renewed as it
    /// is sent).
    stamped_at: i64,
}

/// How many chunks one read takes: fewer calls to the database, little memory each.
const CHUNKS_PER_READ: i64 = 4;

/// How often a download renews its stamp: well within the grace the stamp buys (a third of
/// it; at every read of chunks when the grace is under 3 s).
fn restamp_seconds() -> i64 {
    write_grace() / 3
}

impl StoredPackage {
    /// The package with `digest`, ready to send; `None` when there is no such package (also
    /// when it was deleted while this looked).
    pub fn open(db: &dyn Database, digest: &str) -> ApiResult<Option<StoredPackage>> {
        Self::open_at(db, digest, crate::time::now_unix())
    }

    fn open_at(db: &dyn Database, digest: &str, now: i64) -> ApiResult<Option<StoredPackage>> {
        let Some((size, chunk_count)) = package_row(db, digest)? else {
            return Ok(None);
        };
        let mut package = StoredPackage {
            digest: digest.to_string(),
            size,
            chunk_count,
            read_whole: None,
            stamped_at: now,
        };
        if chunk_count > CHUNKS_PER_READ {
            match stamp(db, digest, now) {
                // After the stamp: a row seen now keeps its chunks.
                Ok(()) => return Ok(package_row(db, digest)?.map(|_| package)),
                // Too busy for even this small write: a read needs none, so read it whole now,
                // as a small package is (memory, only while writers crowd the database).
                Err(e) if e.is_busy() => {}
                Err(e) => return Err(e.into()),
            }
        }
        match package.read_all(db) {
            Ok(chunks) if chunks.iter().map(|c| c.len() as u64).sum::<u64>() == size => {
                package.read_whole = Some(chunks);
                Ok(Some(package))
            }
            Ok(_) => Err(damaged(digest)),
            // Its last reference went, and its bytes with it, between the reads.
            Err(_) if package_row(db, digest)?.is_none() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// All its chunks, a few per query (a libSQL server caps the size of one answer).
    fn read_all(&self, db: &dyn Database) -> ApiResult<Vec<Vec<u8>>> {
        let mut chunks = Vec::with_capacity(self.chunk_count as usize);
        for first in (0..self.chunk_count).step_by(CHUNKS_PER_READ as usize) {
            let last = (first + CHUNKS_PER_READ).min(self.chunk_count) - 1;
            chunks.extend(self.read_chunks(db, first, last)?);
        }
        Ok(chunks)
    }

    /// Its bytes, in order, a chunk per piece. An error (the database failed, or the bytes
    /// are not those recorded) ends them.
    pub fn pieces(mut self, db: &dyn Database) -> Pieces<'_> {
        let (ready, next_seq) = match self.read_whole.take() {
            Some(chunks) => (chunks.into(), self.chunk_count),
            None => (Default::default(), 0),
        };
        Pieces {
            db,
            package: self,
            ready,
            next_seq,
            read: 0,
        }
    }

    /// Chunks `first..=last`, checked against the row's record of them.
    fn read_chunks(&self, db: &dyn Database, first: i64, last: i64) -> ApiResult<Vec<Vec<u8>>> {
        let read = || {
            db.execute(
                "SELECT data FROM package_chunks WHERE digest = ? AND seq BETWEEN ? AND ? ORDER BY seq",
                &[
                    self.digest.as_str().into(),
                    Value::Integer(first),
                    Value::Integer(last),
                ],
            )
        };
        let rows = match read() {
            // A libSQL stream idle for 10 s is gone (a client reading slowly): read on a
            // fresh connection. Outside a transaction nothing else is lost with it.
            Err(e) if e.kind == DbErrorKind::TransactionLost => {
                db.reconnect();
                read()?
            }
            rows => rows?,
        };
        if rows.rows.len() as i64 != last - first + 1 {
            return Err(ApiError::internal(format!(
                "Package {} is missing chunks {first}-{last}.",
                self.digest
            )));
        }
        rows.rows
            .into_iter()
            .map(|row| match row.into_iter().next() {
                Some(Value::Blob(data)) => Ok(data.into()),
                _ => Err(damaged(&self.digest)),
            })
            .collect()
    }
}

/// The package's size and chunk count, if it is published (its `packages` row is there).
fn package_row(db: &dyn Database, digest: &str) -> ApiResult<Option<(u64, i64)>> {
    Ok(db
        .execute(
            "SELECT size, chunk_count FROM packages WHERE digest = ?",
            &[digest.into()],
        )?
        .first()
        .map(|r| (r.int(0).max(0) as u64, r.int(1))))
}

/// Stamps `digest` as being downloaded at `now`: the collector leaves its chunks alone for
/// the grace period (see `collect_garbage`).
fn stamp(db: &dyn Database, digest: &str, now: i64) -> Result<(), DbError> {
    crate::db::with_short_busy_waits(db, || {
        db.execute(
            "INSERT OR REPLACE INTO package_writes (digest, started_at) VALUES (?, ?)",
            &[download_stamp(digest).into(), Value::Integer(now)],
        )
    })
    .map(drop)
}

/// The `package_writes` key of downloads' stamp on `digest`: a row apart from an upload's,
/// so that the publish of an upload of the same bytes, which drops its own stamp, leaves a
/// download in flight protected.
fn download_stamp(digest: &str) -> String {
    format!("{digest}{DOWNLOAD_SUFFIX}")
}

const DOWNLOAD_SUFFIX: &str = "+download";

/// Whether a write or a download stamped `digest` within the grace period before `now`.
fn stamped(tx: &dyn Database, digest: &str, now: i64) -> ApiResult<bool> {
    Ok(tx
        .execute(
            "SELECT 1 FROM package_writes WHERE digest IN (?, ?) AND started_at > ?",
            &[
                digest.into(),
                download_stamp(digest).into(),
                Value::Integer(now - write_grace()),
            ],
        )?
        .first()
        .is_some())
}

/// See [`StoredPackage::pieces`].
pub struct Pieces<'a> {
    db: &'a dyn Database,
    package: StoredPackage,
    /// Chunks read and not yet handed out.
    ready: std::collections::VecDeque<Vec<u8>>,
    next_seq: i64,
    /// Bytes of the chunks read from the database here.
    read: u64,
}

impl Pieces<'_> {
    /// Renews the package's stamp if it is due and chunks are still to be read: for a sender
    /// that waits for its client to take what it has, so that the chunks it has yet to send
    /// stay however long the client reads nothing. Call it at least every
    /// [`Pieces::stamp_interval`] while waiting.
    pub fn keep_stamp(&mut self) -> ApiResult<()> {
        match self.next_seq < self.package.chunk_count {
            true => self.renew_stamp(crate::time::now_unix()),
            false => Ok(()),
        }
    }

    /// How often a waiting sender calls [`Pieces::keep_stamp`].
    pub fn stamp_interval() -> std::time::Duration {
        std::time::Duration::from_secs(restamp_seconds().max(1) as u64)
    }

    fn renew_stamp(&mut self, now: i64) -> ApiResult<()> {
        if now - self.package.stamped_at < restamp_seconds() {
            return Ok(());
        }
        let renewed = match stamp(self.db, &self.package.digest, now) {
            // A libSQL stream idle for 10 s is gone (a client that paused): stamp on a fresh
            // connection, as a read of chunks does.
            Err(e) if e.kind == DbErrorKind::TransactionLost => {
                self.db.reconnect();
                stamp(self.db, &self.package.digest, now)
            }
            renewed => renewed,
        };
        match renewed {
            Ok(()) => self.package.stamped_at = now,
            // Too busy: tried again at the next read or wait; the stamp it renews holds for
            // two more periods.
            Err(e) if e.is_busy() => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Reads the next few chunks into `ready`, renewing the package's stamp when it is due.
    fn read_more(&mut self, now: i64) -> ApiResult<()> {
        self.renew_stamp(now)?;
        let package = &self.package;
        let last = (self.next_seq + CHUNKS_PER_READ).min(package.chunk_count) - 1;
        let chunks = package.read_chunks(self.db, self.next_seq, last)?;
        self.read += chunks.iter().map(|c| c.len() as u64).sum::<u64>();
        self.ready.extend(chunks);
        self.next_seq = last + 1;
        let at_end = self.next_seq == package.chunk_count;
        if self.read > package.size || (at_end && self.read != package.size) {
            return Err(damaged(&package.digest));
        }
        Ok(())
    }

    fn next_at(&mut self, now: i64) -> Option<ApiResult<Vec<u8>>> {
        if self.ready.is_empty() && self.next_seq < self.package.chunk_count {
            if let Err(e) = self.read_more(now) {
                // Nothing more after an error.
                self.ready.clear();
                self.next_seq = self.package.chunk_count;
                return Some(Err(e));
            }
        }
        self.ready.pop_front().map(Ok)
    }
}

fn damaged(digest: &str) -> ApiError {
    ApiError::internal(format!("Package {digest} is damaged."))
}

impl Iterator for Pieces<'_> {
    type Item = ApiResult<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_at(crate::time::now_unix())
    }
}

/// A stored package as `Read + Seek`, loading a chunk only when a read reaches it: a zip's
/// central directory is at its end, so listing the entries of a large package reads its last
/// chunk or two, not all of it.
pub struct ChunkReader<'a> {
    db: &'a dyn Database,
    digest: String,
    size: u64,
    position: u64,
    /// The chunks loaded so far, by sequence number.
    loaded: std::collections::HashMap<u64, Vec<u8>>,
}

impl<'a> ChunkReader<'a> {
    /// The stored package with `digest`, if there is one; no chunk is read yet.
    pub fn open(db: &'a dyn Database, digest: &str) -> ApiResult<Option<ChunkReader<'a>>> {
        Ok(package_row(db, digest)?.map(|(size, _)| ChunkReader {
            db,
            digest: digest.to_string(),
            size,
            position: 0,
            loaded: std::collections::HashMap::new(),
        }))
    }

    /// How many chunks reads have loaded.
    pub fn chunks_loaded(&self) -> usize {
        self.loaded.len()
    }

    fn chunk(&mut self, seq: u64) -> std::io::Result<&[u8]> {
        if !self.loaded.contains_key(&seq) {
            let rows = self
                .db
                .execute(
                    "SELECT data FROM package_chunks WHERE digest = ? AND seq = ?",
                    &[self.digest.as_str().into(), Value::Integer(seq as i64)],
                )
                .map_err(std::io::Error::other)?;
            let data = rows.first().map(|r| r.blob(0)).ok_or_else(|| {
                std::io::Error::other(format!("Package {} is missing chunk {seq}.", self.digest))
            })?;
            self.loaded.insert(seq, data);
        }
        Ok(&self.loaded[&seq])
    }
}

impl std::io::Read for ChunkReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.position >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let seq = self.position / CHUNK_SIZE as u64;
        let offset = (self.position % CHUNK_SIZE as u64) as usize;
        let chunk = self.chunk(seq)?;
        let available = chunk.get(offset..).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "a short package chunk")
        })?;
        let n = available.len().min(buf.len());
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "a short package chunk",
            ));
        }
        buf[..n].copy_from_slice(&available[..n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl std::io::Seek for ChunkReader<'_> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            std::io::SeekFrom::Start(n) => Some(n),
            std::io::SeekFrom::End(d) => self.size.checked_add_signed(d),
            std::io::SeekFrom::Current(d) => self.position.checked_add_signed(d),
        }
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the package",
            )
        })?;
        self.position = target;
        Ok(target)
    }
}

fn is_referenced(tx: &dyn Database, digest: &str) -> ApiResult<bool> {
    Ok(tx
        .execute(
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM functions WHERE package_digest = ?1)
                         OR EXISTS (SELECT 1 FROM function_versions WHERE package_digest = ?1)",
            &[digest.into()],
        )?
        .first()
        .is_some())
}

/// Deletes every trace of `digest`: its row, its chunks and its stamps.
fn delete_package(tx: &dyn Database, digest: &str) -> ApiResult<()> {
    for statement in [
        "DELETE FROM packages WHERE digest = ?",
        "DELETE FROM package_chunks WHERE digest = ?",
        "DELETE FROM package_writes WHERE digest = ?",
    ] {
        tx.execute(statement, &[digest.into()])?;
    }
    tx.execute(
        "DELETE FROM package_writes WHERE digest = ?",
        &[download_stamp(digest).into()],
    )?;
    Ok(())
}

/// Deletes the package with `digest` if no function and no version refers to it any more;
/// call in the transaction that dropped a reference. Its chunks stay while a write of the
/// same bytes, or a download of them, may be under way (both stamp the digest; a sweep takes
/// them later). Also sweeps a few stale writes.
pub fn collect_garbage(tx: &dyn Database, digest: &str) -> ApiResult<()> {
    collect_garbage_at(tx, digest, crate::time::now_unix())
}

fn collect_garbage_at(tx: &dyn Database, digest: &str, now: i64) -> ApiResult<()> {
    if !is_referenced(tx, digest)? {
        match stamped(tx, digest, now)? {
            true => {
                tx.execute("DELETE FROM packages WHERE digest = ?", &[digest.into()])?;
            }
            false => delete_package(tx, digest)?,
        }
    }
    sweep(tx, now)
}

/// Collects the chunks of writes that started more than the grace period ago and that nothing
/// references (a killed writer's), a few at a time; forgets the stamps of the others.
fn sweep(tx: &dyn Database, now: i64) -> ApiResult<()> {
    let stale = tx.execute(
        "SELECT digest FROM package_writes WHERE started_at <= ? ORDER BY started_at LIMIT ?",
        &[
            Value::Integer(now - write_grace()),
            Value::Integer(SWEEP_BATCH),
        ],
    )?;
    for key in stale.iter().map(|r| r.text(0)) {
        let digest = key.strip_suffix(DOWNLOAD_SUFFIX).unwrap_or(&key);
        // Referenced bytes, or bytes another write or download stamped since, stay: only
        // this stale stamp goes.
        match is_referenced(tx, digest)? || stamped(tx, digest, now)? {
            true => {
                tx.execute(
                    "DELETE FROM package_writes WHERE digest = ?",
                    &[key.as_str().into()],
                )?;
            }
            false => delete_package(tx, digest)?,
        }
    }
    Ok(())
}

/// Stores a package the way an upload does, for tests that need one in the store.
#[cfg(test)]
pub(crate) fn store(db: &dyn Database, package: &Package) -> ApiResult<()> {
    write_chunks(db, package, SqliteSynchronous::Full)?;
    crate::db::in_transaction(db, |tx| publish(tx, package))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::TestDb;
    use spinling_test_support::{incompressible, zip_of};

    fn db() -> TestDb {
        let db = TestDb::in_memory();
        crate::migrations::migrate(&db).unwrap();
        db
    }

    /// A stored package's bytes, as a download sends them.
    fn load(db: &dyn Database, digest: &str) -> ApiResult<Option<Vec<u8>>> {
        let Some(package) = StoredPackage::open(db, digest)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        for piece in package.pieces(db) {
            bytes.extend(piece?);
        }
        Ok(Some(bytes))
    }

    /// Two connections to one database file in WAL mode, as two Spin requests have.
    fn two_connections(dir: &tempfile::TempDir) -> (TestDb, TestDb) {
        let path = dir.path().join("db.sqlite");
        let first = TestDb::open(&path);
        first.execute("PRAGMA journal_mode=WAL", &[]).unwrap();
        crate::migrations::migrate(&first).unwrap();
        (first, TestDb::open(&path))
    }

    #[test]
    fn a_package_round_trips_through_many_chunks() {
        let db = db();
        let big: Vec<u8> = (0..(CHUNK_SIZE * 2 + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let package = Package::from_upload(zip_of(&[("main.py", &big)]), None, u64::MAX).unwrap();
        store(&db, &package).unwrap();
        assert_eq!(load(&db, &package.digest).unwrap().unwrap(), package.bytes);
    }

    #[test]
    fn equal_bytes_are_stored_once() {
        let db = db();
        let package = Package::from_upload(zip_of(&[("a", b"x")]), None, u64::MAX).unwrap();
        store(&db, &package).unwrap();
        store(&db, &package).unwrap();
        let n = db.execute("SELECT COUNT(*) FROM packages", &[]).unwrap();
        assert_eq!(n.first().unwrap().int(0), 1);
    }

    /// The package as it was stored before BLAKE3 keys: under its SHA-256.
    fn stored_under_its_sha256(db: &TestDb, package: &Package) -> Package {
        let legacy = Package {
            digest: sha256_hex(&package.bytes),
            digest_kind: DigestKind::Sha256,
            ..package.clone()
        };
        store(db, &legacy).unwrap();
        legacy
    }

    #[test]
    fn bytes_stored_under_their_sha256_keep_that_key() {
        let db = db();
        let package = three_chunks();
        let legacy = stored_under_its_sha256(&db, &package);
        let again = package.keyed_as_stored(&db).unwrap();
        assert_eq!(again.digest, legacy.digest);
        assert_eq!(again.digest_kind, DigestKind::Sha256);
        store(&db, &again).unwrap();
        assert_eq!(count(&db, "SELECT COUNT(*) FROM packages"), 1);
    }

    #[test]
    fn other_bytes_of_the_same_md5_and_size_get_their_own_key() {
        let db = db();
        let package = three_chunks();
        // The row says md5 and size match; the bytes under it differ.
        let mut other_bytes = package.bytes.to_vec();
        other_bytes[0] ^= 1;
        stored_under_its_sha256(
            &db,
            &Package {
                bytes: other_bytes.into(),
                ..package.clone()
            },
        );
        let keyed = package.clone().keyed_as_stored(&db).unwrap();
        assert_eq!(keyed, package);
    }

    #[test]
    fn new_packages_are_keyed_by_their_blake3() {
        let db = db();
        let package = three_chunks().keyed_as_stored(&db).unwrap();
        assert_eq!(package.digest_kind, DigestKind::Blake3);
        store(&db, &package).unwrap();
        let kind = db
            .execute("SELECT digest_kind FROM packages", &[])
            .unwrap()
            .first()
            .unwrap()
            .text(0);
        assert_eq!(kind, "blake3");
    }

    #[test]
    fn an_unreferenced_package_is_collected() {
        let db = db();
        let package = Package::from_upload(zip_of(&[("a", b"x")]), None, u64::MAX).unwrap();
        store(&db, &package).unwrap();
        collect_garbage(&db, &package.digest).unwrap();
        assert!(load(&db, &package.digest).unwrap().is_none());
        let n = db
            .execute("SELECT COUNT(*) FROM package_chunks", &[])
            .unwrap();
        assert_eq!(n.first().unwrap().int(0), 0);
    }

    /// A database on which the package is collected (its last reference gone) right after
    /// its chunks are first read: another request's delete, between a reader's statements.
    struct CollectedWhileRead<'a> {
        db: &'a TestDb,
        digest: String,
        chunks_read: std::cell::Cell<usize>,
    }

    impl Database for CollectedWhileRead<'_> {
        fn execute(
            &self,
            sql: &str,
            params: &[Value],
        ) -> Result<crate::db::Rows, crate::db::DbError> {
            if sql.contains("FROM package_chunks") {
                self.chunks_read.set(self.chunks_read.get() + 1);
                if self.chunks_read.get() == 1 {
                    collect_garbage(self.db, &self.digest).unwrap();
                }
            }
            self.db.execute(sql, params)
        }
    }

    #[test]
    fn a_small_package_collected_as_it_is_opened_is_gone_not_damaged() {
        let db = db();
        let package = three_chunks();
        store(&db, &package).unwrap();
        let reader = CollectedWhileRead {
            db: &db,
            digest: package.digest.clone(),
            chunks_read: Default::default(),
        };
        assert!(StoredPackage::open(&reader, &package.digest)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_large_package_deleted_during_its_download_is_sent_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (sender, updater) = two_connections(&dir);
        let package = chunks_of(1, 6);
        store(&sender, &package).unwrap();
        let stored = StoredPackage::open(&sender, &package.digest)
            .unwrap()
            .unwrap();
        let mut pieces = stored.pieces(&sender);
        let mut sent = pieces.next().unwrap().unwrap();
        // Its last reference goes half-way: the row goes, the stamped bytes stay.
        collect_garbage(&updater, &package.digest).unwrap();
        assert_eq!(count(&updater, "SELECT COUNT(*) FROM packages"), 0);
        for piece in pieces {
            sent.extend(piece.unwrap());
        }
        assert_eq!(sent, package.bytes);
        // A sweep once the stamp is stale takes them.
        let later = crate::time::now_unix() + WRITE_GRACE_SECONDS + 1;
        collect_garbage_at(&updater, "none", later).unwrap();
        assert_eq!(count(&updater, "SELECT COUNT(*) FROM package_chunks"), 0);
    }

    #[test]
    fn a_download_longer_than_its_stamp_renews_it() {
        let db = db();
        let package = chunks_of(2, 10);
        store(&db, &package).unwrap();
        let now = crate::time::now_unix();
        let stored = StoredPackage::open_at(&db, &package.digest, now)
            .unwrap()
            .unwrap();
        let mut pieces = stored.pieces(&db);
        let stamped = || count(&db, "SELECT MAX(started_at) FROM package_writes");
        pieces.next_at(now).unwrap().unwrap();
        assert_eq!(stamped(), now);
        // The next read, after the first four chunks are sent, comes later.
        for _ in 0..3 {
            pieces.next_at(now).unwrap().unwrap();
        }
        pieces.next_at(now + restamp_seconds()).unwrap().unwrap();
        assert_eq!(stamped(), now + restamp_seconds());
    }

    #[test]
    fn a_download_waiting_on_its_client_keeps_its_stamp_until_every_chunk_is_read() {
        let db = db();
        let package = chunks_of(5, 6);
        store(&db, &package).unwrap();
        let now = crate::time::now_unix();
        let stored = StoredPackage::open_at(&db, &package.digest, now - 2 * restamp_seconds())
            .unwrap()
            .unwrap();
        let stamped = || count(&db, "SELECT MAX(started_at) FROM package_writes");
        let mut pieces = stored.pieces(&db);
        pieces
            .next_at(now - 2 * restamp_seconds())
            .unwrap()
            .unwrap();
        assert!(stamped() < now);
        // The client takes nothing for a while: the sender's wait renews the stamp.
        pieces.keep_stamp().unwrap();
        assert!(stamped() >= now, "renewed");
        // Nothing left to read from the database: no stamp is needed any more.
        while pieces.next_seq < pieces.package.chunk_count {
            pieces.next().unwrap().unwrap();
        }
        pieces.package.stamped_at = 0;
        db.execute("UPDATE package_writes SET started_at = 0", &[])
            .unwrap();
        pieces.keep_stamp().unwrap();
        assert_eq!(stamped(), 0);
    }

    #[test]
    fn a_shorter_grace_period_frees_stamped_bytes_sooner() {
        let db = db();
        let package = three_chunks();
        write_chunks_at(&db, &package, SqliteSynchronous::Full, T).unwrap();
        set_write_grace_seconds(2);
        collect_garbage_at(&db, &package.digest, T + 1).unwrap();
        assert_eq!(count(&db, "SELECT COUNT(*) FROM package_chunks"), 3);
        collect_garbage_at(&db, &package.digest, T + 2).unwrap();
        set_write_grace_seconds(WRITE_GRACE_SECONDS);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM package_chunks"), 0);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM package_writes"), 0);
    }

    /// A libSQL connection whose stream expired while a download waited on its client.
    struct StampExpiresOnce<'a> {
        db: &'a TestDb,
        expired: std::cell::Cell<bool>,
        reconnected: std::cell::Cell<bool>,
    }

    impl Database for StampExpiresOnce<'_> {
        fn execute(
            &self,
            sql: &str,
            params: &[Value],
        ) -> Result<crate::db::Rows, crate::db::DbError> {
            if sql.contains("INTO package_writes") && !self.expired.replace(true) {
                return Err(crate::db::DbError {
                    kind: DbErrorKind::TransactionLost,
                    message: "STREAM_EXPIRED".into(),
                });
            }
            self.db.execute(sql, params)
        }
        fn reconnect(&self) {
            self.reconnected.set(true);
        }
    }

    #[test]
    fn a_stamp_renewal_whose_stream_expired_goes_on_from_a_fresh_connection() {
        let db = db();
        let package = chunks_of(6, 6);
        store(&db, &package).unwrap();
        let now = crate::time::now_unix();
        let stored = StoredPackage::open_at(&db, &package.digest, now - 2 * restamp_seconds())
            .unwrap()
            .unwrap();
        let expiring = StampExpiresOnce {
            db: &db,
            expired: Default::default(),
            reconnected: Default::default(),
        };
        let mut pieces = stored.pieces(&expiring);
        pieces
            .next_at(now - 2 * restamp_seconds())
            .unwrap()
            .unwrap();
        pieces.keep_stamp().unwrap();
        assert!(expiring.reconnected.get());
        let stamped = count(&db, "SELECT MAX(started_at) FROM package_writes");
        assert!(stamped >= now, "renewed");
    }

    /// A database whose writers never let a download's stamp through.
    struct CrowdedByWriters<'a>(&'a TestDb);

    impl Database for CrowdedByWriters<'_> {
        fn execute(
            &self,
            sql: &str,
            params: &[Value],
        ) -> Result<crate::db::Rows, crate::db::DbError> {
            match sql.contains("INTO package_writes") {
                true => Err(crate::db::DbError {
                    kind: DbErrorKind::Busy,
                    message: "database is locked".into(),
                }),
                false => self.0.execute(sql, params),
            }
        }
    }

    #[test]
    fn a_large_package_too_busy_to_stamp_is_read_whole_at_once() {
        let db = db();
        let package = chunks_of(4, 6);
        store(&db, &package).unwrap();
        let stored = StoredPackage::open(&CrowdedByWriters(&db), &package.digest)
            .unwrap()
            .unwrap();
        db.execute("DELETE FROM package_chunks", &[]).unwrap();
        let sent: Vec<u8> = stored.pieces(&db).flat_map(Result::unwrap).collect();
        assert_eq!(sent, package.bytes);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM package_writes"), 0);
    }

    #[test]
    fn a_small_package_is_read_whole_when_opened_and_stamps_nothing() {
        let db = db();
        let package = three_chunks();
        store(&db, &package).unwrap();
        let stored = StoredPackage::open(&db, &package.digest).unwrap().unwrap();
        db.execute("DELETE FROM package_chunks", &[]).unwrap();
        let sent: Vec<u8> = stored.pieces(&db).flat_map(Result::unwrap).collect();
        assert_eq!(sent, package.bytes);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM package_writes"), 0);
    }

    /// A libSQL connection whose stream expires before the first chunk is read.
    struct ExpiresOnce<'a> {
        db: &'a TestDb,
        expired: std::cell::Cell<bool>,
        reconnected: std::cell::Cell<bool>,
    }

    impl Database for ExpiresOnce<'_> {
        fn execute(
            &self,
            sql: &str,
            params: &[Value],
        ) -> Result<crate::db::Rows, crate::db::DbError> {
            if sql.contains("FROM package_chunks") && !self.expired.replace(true) {
                return Err(crate::db::DbError {
                    kind: DbErrorKind::TransactionLost,
                    message: "STREAM_EXPIRED".into(),
                });
            }
            self.db.execute(sql, params)
        }
        fn reconnect(&self) {
            self.reconnected.set(true);
        }
    }

    #[test]
    fn a_download_whose_stream_expired_goes_on_from_a_fresh_connection() {
        let db = db();
        let package = three_chunks();
        store(&db, &package).unwrap();
        let expiring = ExpiresOnce {
            db: &db,
            expired: Default::default(),
            reconnected: Default::default(),
        };
        assert_eq!(
            load(&expiring, &package.digest).unwrap().unwrap(),
            package.bytes
        );
        assert!(expiring.reconnected.get());
    }

    #[test]
    fn a_package_missing_a_chunk_is_sent_short_with_an_error() {
        let db = db();
        let package = three_chunks();
        store(&db, &package).unwrap();
        db.execute("DELETE FROM package_chunks WHERE seq = 2", &[])
            .unwrap();
        let err = load(&db, &package.digest).unwrap_err();
        assert_eq!(err.status(), 500);
    }

    #[test]
    fn a_large_package_missing_a_chunk_ends_short_with_an_error() {
        let db = db();
        let package = chunks_of(3, 6);
        store(&db, &package).unwrap();
        db.execute("DELETE FROM package_chunks WHERE seq = 5", &[])
            .unwrap();
        let stored = StoredPackage::open(&db, &package.digest).unwrap().unwrap();
        let pieces: Vec<ApiResult<Vec<u8>>> = stored.pieces(&db).collect();
        assert_eq!(pieces.len(), 5, "four chunks, then the error");
        assert_eq!(pieces[4].as_ref().unwrap_err().status(), 500);
    }

    #[test]
    fn a_package_that_is_not_stored_opens_as_none() {
        let db = db();
        assert!(StoredPackage::open(&db, "nothing").unwrap().is_none());
    }

    #[test]
    fn a_package_is_sent_a_chunk_at_a_time() {
        let db = db();
        let package = three_chunks();
        store(&db, &package).unwrap();
        let stored = StoredPackage::open(&db, &package.digest).unwrap().unwrap();
        assert_eq!(stored.size, package.bytes.len() as u64);
        let sizes: Vec<usize> = stored.pieces(&db).map(|p| p.unwrap().len()).collect();
        assert_eq!(sizes[..2], [CHUNK_SIZE, CHUNK_SIZE]);
        assert_eq!(sizes.len(), 3);
    }

    /// A package of three chunks: two chunks of bytes that do not compress, and its zip's
    /// framing.
    fn three_chunks() -> Package {
        chunks_of(1, 3)
    }

    /// A package of `chunks` chunks (at least 2), its bytes drawn from `seed`.
    fn chunks_of(seed: u64, chunks: usize) -> Package {
        let content = incompressible(seed, CHUNK_SIZE * (chunks - 1));
        let package = Package::from_upload(zip_of(&[("a", &content)]), None, u64::MAX).unwrap();
        assert_eq!(package.chunk_count(), chunks);
        package
    }

    fn count(db: &TestDb, sql: &str) -> i64 {
        db.execute(sql, &[]).unwrap().first().unwrap().int(0)
    }

    fn refer_to(db: &TestDb, package: &Package) {
        db.execute(
            "INSERT INTO functions (id, cpu, memory_size, timeout, code, package_digest,
                 project_id, created_at)
             VALUES ('f', 1, 1, 1, '{}', ?, 'p', 'now')",
            &[package.digest.as_str().into()],
        )
        .unwrap();
    }

    fn publish_now(db: &TestDb, package: &Package, now: i64) {
        crate::db::in_transaction(db, |tx| publish_at(tx, package, now)).unwrap();
    }

    const T: i64 = 1_700_000_000;

    #[test]
    fn both_checksums_are_those_of_the_bytes() {
        let package = three_chunks();
        assert_eq!(package.digest, digest_hex(&package.bytes));
        assert_eq!(package.md5, md5_hex(&package.bytes));
    }

    #[test]
    fn written_chunks_are_invisible_until_published() {
        let db = db();
        let package = three_chunks();
        write_chunks_at(&db, &package, SqliteSynchronous::Full, T).unwrap();
        assert_eq!(count(&db, "SELECT COUNT(*) FROM package_chunks"), 3);
        assert!(load(&db, &package.digest).unwrap().is_none());
        publish_now(&db, &package, T);
        assert_eq!(load(&db, &package.digest).unwrap().unwrap(), package.bytes);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM package_writes"), 0);
    }

    #[test]
    fn a_download_in_flight_outlives_an_upload_of_the_same_bytes_and_every_delete() {
        let dir = tempfile::tempdir().unwrap();
        let (sender, updater) = two_connections(&dir);
        let package = chunks_of(3, 6);
        store(&sender, &package).unwrap();
        let stored = StoredPackage::open(&sender, &package.digest)
            .unwrap()
            .unwrap();
        let mut pieces = stored.pieces(&sender);
        let mut sent = pieces.next().unwrap().unwrap();
        // Meanwhile the same bytes are uploaded again (another function) and published...
        write_chunks(&updater, &package, SqliteSynchronous::Full).unwrap();
        crate::db::in_transaction(&updater, |tx| publish(tx, &package)).unwrap();
        // ...and then every reference goes.
        collect_garbage(&updater, &package.digest).unwrap();
        assert_eq!(count(&updater, "SELECT COUNT(*) FROM packages"), 0);
        for piece in pieces {
            sent.extend(piece.unwrap());
        }
        assert_eq!(sent, package.bytes);
        // A sweep once the download's stamp is stale takes them.
        let later = crate::time::now_unix() + WRITE_GRACE_SECONDS + 1;
        collect_garbage_at(&updater, "none", later).unwrap();
        assert_eq!(count(&updater, "SELECT COUNT(*) FROM package_chunks"), 0);
        assert_eq!(count(&updater, "SELECT COUNT(*) FROM package_writes"), 0);
    }

    #[test]
    fn the_collector_leaves_the_chunks_of_a_write_under_way_alone() {
        let db = db();
        let package = three_chunks();
        write_chunks_at(&db, &package, SqliteSynchronous::Full, T).unwrap();
        // The last reference to the same bytes goes while they are being written again.
        collect_garbage_at(&db, &package.digest, T + 1).unwrap();
        assert_eq!(count(&db, "SELECT COUNT(*) FROM package_chunks"), 3);
        publish_now(&db, &package, T + 2);
        assert_eq!(load(&db, &package.digest).unwrap().unwrap(), package.bytes);
    }

    #[test]
    fn a_publish_after_the_collector_took_the_chunks_writes_them_again() {
        let db = db();
        let package = three_chunks();
        write_chunks_at(&db, &package, SqliteSynchronous::Full, T).unwrap();
        // A write slower than the grace period: the collector's transaction comes first.
        let later = T + WRITE_GRACE_SECONDS + 1;
        collect_garbage_at(&db, &package.digest, later).unwrap();
        assert_eq!(count(&db, "SELECT COUNT(*) FROM package_chunks"), 0);
        publish_now(&db, &package, later);
        assert_eq!(load(&db, &package.digest).unwrap().unwrap(), package.bytes);
    }

    #[test]
    fn a_publish_writes_again_the_one_chunk_that_is_missing() {
        let db = db();
        let package = three_chunks();
        write_chunks_at(&db, &package, SqliteSynchronous::Full, T).unwrap();
        db.execute("DELETE FROM package_chunks WHERE seq = 1", &[])
            .unwrap();
        publish_now(&db, &package, T);
        assert_eq!(load(&db, &package.digest).unwrap().unwrap(), package.bytes);
    }

    #[test]
    fn a_killed_writers_chunks_are_swept_once_the_grace_period_is_over() {
        let db = db();
        let killed = three_chunks();
        // Stamped, one chunk written, then the writer died.
        db.execute(
            "INSERT INTO package_writes (digest, started_at) VALUES (?, ?)",
            &[killed.digest.as_str().into(), Value::Integer(T)],
        )
        .unwrap();
        insert_chunk(&db, &killed.digest, 0, killed.bytes.slice(..CHUNK_SIZE)).unwrap();
        // Other publishes sweep: too early first, then after the grace period.
        let other = Package::from_upload(zip_of(&[("b", b"y")]), None, u64::MAX).unwrap();
        write_chunks_at(&db, &other, SqliteSynchronous::Full, T).unwrap();
        publish_now(&db, &other, T + 1);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM package_chunks"), 2);
        collect_garbage_at(&db, "none", T + WRITE_GRACE_SECONDS + 1).unwrap();
        let left = db
            .execute("SELECT DISTINCT digest FROM package_chunks", &[])
            .unwrap();
        assert_eq!(left.first().unwrap().text(0), other.digest);
        assert_eq!(left.rows.len(), 1);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM package_writes"), 0);
    }

    #[test]
    fn a_stale_stamp_of_referenced_bytes_is_dropped_and_the_bytes_kept() {
        let db = db();
        let package = three_chunks();
        store(&db, &package).unwrap();
        refer_to(&db, &package);
        // A second upload of the same bytes, which looked before they were published,
        // stamps them and dies.
        db.execute(
            "INSERT INTO package_writes (digest, started_at) VALUES (?, ?)",
            &[package.digest.as_str().into(), Value::Integer(T)],
        )
        .unwrap();
        assert_eq!(count(&db, "SELECT COUNT(*) FROM package_writes"), 1);
        collect_garbage_at(&db, "none", T + WRITE_GRACE_SECONDS + 1).unwrap();
        assert_eq!(count(&db, "SELECT COUNT(*) FROM package_writes"), 0);
        assert_eq!(load(&db, &package.digest).unwrap().unwrap(), package.bytes);
    }

    #[test]
    fn chunk_writes_leave_the_connection_at_the_configured_durability() {
        let dir = std::env::temp_dir().join(format!("spinling-pkg-{}", crate::id::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = TestDb::open(&dir.join("db.sqlite"));
        crate::migrations::migrate(&db).unwrap();
        let journal = db.execute("PRAGMA journal_mode", &[]).unwrap();
        assert_eq!(journal.first().unwrap().text(0), "wal");
        let package = three_chunks();
        write_chunks_at(&db, &package, SqliteSynchronous::Full, T).unwrap();
        // FULL is 2: the publish's commit syncs the log, chunks included.
        assert_eq!(count(&db, "PRAGMA synchronous"), 2);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_wrong_md5_is_refused() {
        let err = Package::from_upload(zip_of(&[("a", b"x")]), Some("0000"), u64::MAX).unwrap_err();
        assert_eq!(err.message, "Package md5 mismatch.");
    }

    #[test]
    fn bytes_that_are_not_a_zip_are_refused() {
        let err = Package::from_upload(b"hello".to_vec(), None, u64::MAX).unwrap_err();
        assert_eq!(err.message, "Package is not a valid ZIP package.");
    }

    #[test]
    fn a_package_over_the_limit_is_too_large() {
        let err = Package::from_upload(vec![0; 11], None, 10).unwrap_err();
        assert_eq!(err.status(), 413);
    }
}
