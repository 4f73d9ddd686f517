//! Reading a published package: whole when small, else a few chunks at a time, renewing
//! its download stamp while it lasts, with no transaction open while a client reads.

use super::package::CHUNK_SIZE;
use super::stamps::{stamp, write_grace};
use crate::error::{ApiError, ApiResult};
use crate::store::db::{Database, DbErrorKind, Value};

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
    pub(super) chunk_count: i64,
    /// A small package's chunks, read with its row.
    read_whole: Option<Vec<Vec<u8>>>,
    /// When a large package was last stamped, in seconds since the Unix epoch (renewed as it
    /// is sent).
    pub(super) stamped_at: i64,
}

/// How many chunks one read takes: fewer calls to the database, little memory each.
pub(super) const CHUNKS_PER_READ: i64 = 4;

/// How often a download renews its stamp: well within the grace the stamp buys (a third of
/// it; at every read of chunks when the grace is under 3 s).
pub(super) fn restamp_seconds() -> i64 {
    write_grace() / 3
}

impl StoredPackage {
    /// The package with `digest`, ready to send; `None` when there is no such package (also
    /// when it was deleted while this looked).
    pub fn open(db: &dyn Database, digest: &str) -> ApiResult<Option<StoredPackage>> {
        Self::open_at(db, digest, crate::time::now_unix())
    }

    pub(super) fn open_at(
        db: &dyn Database,
        digest: &str,
        now: i64,
    ) -> ApiResult<Option<StoredPackage>> {
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
pub(super) fn package_row(db: &dyn Database, digest: &str) -> ApiResult<Option<(u64, i64)>> {
    Ok(db
        .execute(
            "SELECT size, chunk_count FROM packages WHERE digest = ?",
            &[digest.into()],
        )?
        .first()
        .map(|r| (r.int(0).max(0) as u64, r.int(1))))
}

/// See [`StoredPackage::pieces`].
pub struct Pieces<'a> {
    db: &'a dyn Database,
    pub(super) package: StoredPackage,
    /// Chunks read and not yet handed out.
    ready: std::collections::VecDeque<Vec<u8>>,
    pub(super) next_seq: i64,
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

    pub(super) fn next_at(&mut self, now: i64) -> Option<ApiResult<Vec<u8>>> {
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

pub(super) fn damaged(digest: &str) -> ApiError {
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
