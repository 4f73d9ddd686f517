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

mod collector;
mod package;
mod reads;
mod stamps;
mod writes;

pub use collector::collect_garbage;
pub use package::{
    digest_hex, hex, md5_hex, sha256_hex, too_large, BodyChecksums, Checksums, ChecksumsInProgress,
    DigestKind, Package, Upload, CHUNK_SIZE,
};
pub use reads::{ChunkReader, Pieces, StoredPackage};
pub use stamps::{set_write_grace_seconds, WRITE_GRACE_SECONDS};
pub use writes::{checkpoint, publish, write_chunks};

/// Stores a package the way an upload does, for tests that need one in the store.
#[cfg(test)]
pub(crate) fn store(
    db: &dyn crate::store::db::Database,
    package: &Package,
) -> crate::error::ApiResult<()> {
    write_chunks(
        db,
        package,
        crate::store::durability::SqliteSynchronous::Full,
    )?;
    crate::store::db::in_transaction(db, |tx| publish(tx, package))
}

#[cfg(test)]
mod tests;
