//! The package store: zip bytes in SQLite, content-addressed by SHA-256 and split into chunks
//! a Spin SQLite BLOB can always hold. Equal bytes are stored once however many functions and
//! versions use them; bytes nobody references any more are deleted in the same transaction
//! that dropped the last reference.

use crate::db::{Database, Value};
use crate::error::{ApiError, ApiResult, ErrorKind};
use md5::{Digest as _, Md5};
use sha2::Sha256;

/// Spin guarantees BLOB values of at least 1 MB; stay well inside it.
pub const CHUNK_SIZE: usize = 512 * 1024;

/// A validated package, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Hex SHA-256 of the bytes: the storage key.
    pub digest: String,
    /// Hex MD5 of the bytes: Qinling's `code.md5sum`.
    pub md5: String,
    pub bytes: Vec<u8>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

impl Package {
    /// Checks an upload: its size against the limit, the client's md5 if given, and that it
    /// is a zip archive.
    pub fn from_upload(
        bytes: Vec<u8>,
        claimed_md5: Option<&str>,
        max_size: u64,
    ) -> ApiResult<Package> {
        if bytes.len() as u64 > max_size {
            return Err(too_large(max_size));
        }
        let md5 = md5_hex(&bytes);
        if let Some(claimed) = claimed_md5 {
            if !claimed.eq_ignore_ascii_case(&md5) {
                return Err(ApiError::bad_request("Package md5 mismatch."));
            }
        }
        if zip::ZipArchive::new(std::io::Cursor::new(bytes.as_slice())).is_err() {
            return Err(ApiError::bad_request("Package is not a valid ZIP package."));
        }
        Ok(Package {
            digest: sha256_hex(&bytes),
            md5,
            bytes,
        })
    }
}

pub fn too_large(max_size: u64) -> ApiError {
    ApiError::new(
        ErrorKind::PayloadTooLarge,
        format!("Package size exceeds the maximum of {max_size} bytes."),
    )
}

/// Stores the package unless its bytes are already there. Call inside the transaction that
/// records the reference to it.
pub fn store(tx: &dyn Database, package: &Package) -> ApiResult<()> {
    let exists = tx
        .execute(
            "SELECT 1 FROM packages WHERE digest = ?",
            &[package.digest.as_str().into()],
        )?
        .first()
        .is_some();
    if exists {
        return Ok(());
    }
    let chunks: Vec<&[u8]> = package.bytes.chunks(CHUNK_SIZE).collect();
    for (seq, chunk) in chunks.iter().enumerate() {
        tx.execute(
            "INSERT INTO package_chunks (digest, seq, data) VALUES (?, ?, ?)",
            &[
                package.digest.as_str().into(),
                Value::Integer(seq as i64),
                Value::Blob(chunk.to_vec()),
            ],
        )?;
    }
    tx.execute(
        "INSERT INTO packages (digest, size, md5, chunk_count, created_at) VALUES (?, ?, ?, ?, ?)",
        &[
            package.digest.as_str().into(),
            Value::Integer(package.bytes.len() as i64),
            package.md5.as_str().into(),
            Value::Integer(chunks.len() as i64),
            crate::time::now_timestamp().into(),
        ],
    )?;
    Ok(())
}

/// Reads a stored package back, chunk by chunk (a backend may cap the size of one result).
pub fn load(db: &dyn Database, digest: &str) -> ApiResult<Option<Vec<u8>>> {
    let Some(row) = db
        .execute(
            "SELECT size, chunk_count FROM packages WHERE digest = ?",
            &[digest.into()],
        )?
        .first()
        .map(|r| (r.int(0), r.int(1)))
    else {
        return Ok(None);
    };
    let (size, chunk_count) = row;
    let mut bytes = Vec::with_capacity(size as usize);
    for seq in 0..chunk_count {
        let rows = db.execute(
            "SELECT data FROM package_chunks WHERE digest = ? AND seq = ?",
            &[digest.into(), Value::Integer(seq)],
        )?;
        let chunk = rows.first().ok_or_else(|| {
            ApiError::internal(format!("Package {digest} is missing chunk {seq}."))
        })?;
        bytes.extend_from_slice(&chunk.blob(0));
    }
    if bytes.len() as i64 != size {
        return Err(ApiError::internal(format!("Package {digest} is damaged.")));
    }
    Ok(Some(bytes))
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
        Ok(db
            .execute(
                "SELECT size FROM packages WHERE digest = ?",
                &[digest.into()],
            )?
            .first()
            .map(|r| ChunkReader {
                db,
                digest: digest.to_string(),
                size: r.int(0).max(0) as u64,
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

/// Deletes the package with `digest` if no function and no version refers to it any more.
pub fn collect_garbage(tx: &dyn Database, digest: &str) -> ApiResult<()> {
    let referenced = tx
        .execute(
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM functions WHERE package_digest = ?1)
                         OR EXISTS (SELECT 1 FROM function_versions WHERE package_digest = ?1)",
            &[digest.into()],
        )?
        .first()
        .is_some();
    if !referenced {
        tx.execute(
            "DELETE FROM package_chunks WHERE digest = ?",
            &[digest.into()],
        )?;
        tx.execute("DELETE FROM packages WHERE digest = ?", &[digest.into()])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::TestDb;
    use spinling_test_support::zip_of;

    fn db() -> TestDb {
        let db = TestDb::in_memory();
        crate::migrations::migrate(&db).unwrap();
        db
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
