use super::collector::*;
use super::package::*;
use super::reads::*;
use super::stamps::*;
use super::writes::*;
use super::*;
use crate::error::ApiResult;
use crate::store::db::testing::TestDb;
use crate::store::db::{Database, DbErrorKind, Value};
use crate::store::durability::SqliteSynchronous;
use spinling_test_support::{incompressible, zip_of};

fn db() -> TestDb {
    let db = TestDb::in_memory();
    crate::store::migrations::migrate(&db).unwrap();
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
    crate::store::migrations::migrate(&first).unwrap();
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
    ) -> Result<crate::store::db::Rows, crate::store::db::DbError> {
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
    ) -> Result<crate::store::db::Rows, crate::store::db::DbError> {
        if sql.contains("INTO package_writes") && !self.expired.replace(true) {
            return Err(crate::store::db::DbError {
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
    ) -> Result<crate::store::db::Rows, crate::store::db::DbError> {
        match sql.contains("INTO package_writes") {
            true => Err(crate::store::db::DbError {
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
    ) -> Result<crate::store::db::Rows, crate::store::db::DbError> {
        if sql.contains("FROM package_chunks") && !self.expired.replace(true) {
            return Err(crate::store::db::DbError {
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
    crate::store::db::in_transaction(db, |tx| publish_at(tx, package, now)).unwrap();
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
    crate::store::db::in_transaction(&updater, |tx| publish(tx, &package)).unwrap();
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
    crate::store::migrations::migrate(&db).unwrap();
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
