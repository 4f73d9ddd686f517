//! A package's bytes: their digest and checksums, their chunks, and the size limit.

use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::store::db::{Database, Value};
use bytes::Bytes;
use md5::{Digest as _, Md5};
use sha2::Sha256;
use std::ops::Range;

/// Spin guarantees BLOB values of at least 1 MB; stay well inside it.
pub const CHUNK_SIZE: usize = 512 * 1024;

/// What a package's storage key is a hash of its bytes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestKind {
    Blake3,
    /// The key of every package stored before BLAKE3 keys (migration 0011).
    Sha256,
}

impl DigestKind {
    pub(super) fn as_str(self) -> &'static str {
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

pub fn hex(bytes: &[u8]) -> String {
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

pub(super) fn checksums_of(bytes: &[u8]) -> Checksums {
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
    pub(super) fn chunks(&self) -> impl Iterator<Item = (i64, Bytes)> + '_ {
        let len = self.bytes.len();
        (0..).zip(
            (0..len)
                .step_by(CHUNK_SIZE)
                .map(move |start| self.bytes.slice(start..(start + CHUNK_SIZE).min(len))),
        )
    }

    pub(super) fn chunk_count(&self) -> usize {
        self.bytes.len().div_ceil(CHUNK_SIZE)
    }
}

pub fn too_large(max_size: u64) -> ApiError {
    ApiError::new(
        ErrorKind::PayloadTooLarge,
        format!("Package size exceeds the maximum of {max_size} bytes."),
    )
}
/// The checksums of the stretch `range` of a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyChecksums {
    pub range: Range<usize>,
    pub checksums: Checksums,
}
