//! What changed between two versions of a function (or its current code, "version 0"): the
//! files of their packages, compared by the CRC-32 and size their zips' central directories
//! record (nothing is unpacked, and only the chunks that hold a central directory are read),
//! and the settings a version snapshots.

use crate::domain::context::Caller;
use crate::domain::functions;
use crate::domain::types::{CodeSource, VersionRef};
use crate::domain::versions;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::store::cache::Cache;
use crate::store::db::Database;
use crate::store::packages::ChunkReader;
use serde_json::{json, Map, Value as Json};
use std::collections::BTreeMap;

/// What one side of a diff is: a package and the settings it runs with.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    package_digest: Option<String>,
    entry: Option<String>,
    cpu: i64,
    memory_size: i64,
    timeout: i64,
}

impl Snapshot {
    /// The snapshotted settings, by field name, in the order they are rendered.
    fn settings(&self) -> [(&'static str, Json); 4] {
        [
            ("entry", json!(self.entry)),
            ("cpu", json!(self.cpu)),
            ("memory_size", json!(self.memory_size)),
            ("timeout", json!(self.timeout)),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    Modified,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Modified => "modified",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    pub change: Change,
    pub size_from: Option<u64>,
    pub size_to: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VersionDiff {
    pub from: VersionRef,
    pub to: VersionRef,
    /// Files that differ, by path.
    pub files: Vec<FileChange>,
    /// Settings that differ: field, value in `from`, value in `to`.
    pub settings: Vec<(&'static str, Json, Json)>,
}

impl VersionDiff {
    pub fn to_json(&self) -> Json {
        let files: Vec<Json> = self
            .files
            .iter()
            .map(|f| {
                json!({
                    "path": f.path,
                    "change": f.change.as_str(),
                    "size_from": f.size_from,
                    "size_to": f.size_to,
                })
            })
            .collect();
        let settings: Map<String, Json> = self
            .settings
            .iter()
            .map(|(field, from, to)| ((*field).to_string(), json!({"from": from, "to": to})))
            .collect();
        json!({
            "from": self.from,
            "to": self.to,
            "files": files,
            "settings": settings,
        })
    }
}

/// How often a diff reads the current code again when an update replaced it meanwhile.
const DIFF_TRIES: usize = 3;

/// A file's CRC-32 and uncompressed size, by path.
type Entries = BTreeMap<String, (u32, u64)>;

/// The differences from `from` to `to` of the function, if the caller may read it (the
/// visibility of version show: another project's function is an unknown version).
pub fn diff(
    db: &dyn Database,
    cache: &dyn Cache,
    caller: &Caller,
    function_id: &str,
    from: VersionRef,
    to: VersionRef,
) -> ApiResult<VersionDiff> {
    let mut tries = 0;
    let (before, after, files) = loop {
        let before = snapshot(db, cache, caller, function_id, from)?;
        let after = snapshot(db, cache, caller, function_id, to)?;
        if before.package_digest == after.package_digest {
            break (before, after, Vec::new());
        }
        let files = entries(db, before.package_digest.as_deref()).and_then(|old| {
            Ok(compare_files(
                &old,
                &entries(db, after.package_digest.as_deref())?,
            ))
        });
        match files {
            Ok(files) => break (before, after, files),
            // The current code was replaced (and its old bytes deleted) between reading the
            // function and its package: diff against the new code, as a download sends it.
            Err(e) => {
                tries += 1;
                let changed = [(from, &before), (to, &after)]
                    .into_iter()
                    .any(|(which, seen)| {
                        which == VersionRef::Current
                            && snapshot(db, cache, caller, function_id, which)
                                .is_ok_and(|now| now.package_digest != seen.package_digest)
                    });
                if !changed || tries == DIFF_TRIES {
                    return Err(e);
                }
            }
        }
    };
    let settings = before
        .settings()
        .into_iter()
        .zip(after.settings())
        .filter(|((_, a), (_, b))| a != b)
        .map(|((field, a), (_, b))| (field, a, b))
        .collect();
    Ok(VersionDiff {
        from,
        to,
        files,
        settings,
    })
}

fn snapshot(
    db: &dyn Database,
    cache: &dyn Cache,
    caller: &Caller,
    function_id: &str,
    which: VersionRef,
) -> ApiResult<Snapshot> {
    match which {
        VersionRef::Number(n) => {
            let v = versions::find(db, cache, caller, function_id, n)?;
            Ok(Snapshot {
                package_digest: Some(v.package_digest),
                entry: v.entry,
                cpu: v.cpu,
                memory_size: v.memory_size,
                timeout: v.timeout,
            })
        }
        VersionRef::Current => {
            let f = functions::find(db, caller, function_id)?;
            if f.source() == Some(CodeSource::Image) {
                return Err(ApiError::new(
                    ErrorKind::MethodNotAllowed,
                    "Diff of image function is not allowed.",
                ));
            }
            Ok(Snapshot {
                package_digest: f.package_digest,
                entry: f.entry,
                cpu: f.cpu,
                memory_size: f.memory_size,
                timeout: f.timeout,
            })
        }
    }
}

/// The files of the stored package `digest` (none without a package), read from its central
/// directory only.
fn entries(db: &dyn Database, digest: Option<&str>) -> ApiResult<Entries> {
    let Some(digest) = digest else {
        return Ok(Entries::new());
    };
    let reader = ChunkReader::open(db, digest)?
        .ok_or_else(|| ApiError::internal(format!("Package {digest} is missing.")))?;
    let damaged = |e: zip::result::ZipError| {
        ApiError::internal(format!("Package {digest} cannot be read: {e}"))
    };
    let archive = zip::ZipArchive::new(reader).map_err(damaged)?;
    let mut entries = Entries::new();
    for i in 0..archive.len() {
        let entry = archive.by_index_data(i).map_err(damaged)?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().map_err(damaged)?.into_owned();
        entries.insert(name, (entry.crc32(), entry.size()));
    }
    Ok(entries)
}

/// The files added, removed or modified from `before` to `after`, by path.
fn compare_files(before: &Entries, after: &Entries) -> Vec<FileChange> {
    let paths: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    paths
        .into_iter()
        .filter_map(|path| {
            let (a, b) = (before.get(path), after.get(path));
            let change = match (a, b) {
                (None, Some(_)) => Change::Added,
                (Some(_), None) => Change::Removed,
                (Some(a), Some(b)) if a != b => Change::Modified,
                _ => return None,
            };
            Some(FileChange {
                path: path.clone(),
                change,
                size_from: a.map(|e| e.1),
                size_to: b.map(|e| e.1),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::commands::FunctionChanges;
    use crate::domain::rules::Rules;
    use crate::domain::types::VersionNumber;
    use crate::store::cache::NoCache;
    use crate::store::db::testing::TestDb;
    use crate::store::packages::{self, Package, CHUNK_SIZE};
    use spinling_test_support::zip_of;

    fn caller(project: &str) -> Caller {
        Caller {
            project_id: project.into(),
            user_id: None,
            is_admin: false,
            policy_enforced: true,
            token: None,
            is_service: false,
        }
    }

    fn v(n: i64) -> VersionRef {
        VersionRef::Number(VersionNumber::new(n).unwrap())
    }

    fn setup(db: &TestDb, package: Vec<u8>) -> String {
        crate::testing::package_function(db, &caller("p"), package).to_string()
    }

    fn publish(db: &TestDb, fid: &str) {
        versions::publish_version(
            db,
            &NoCache,
            &caller("p"),
            &Rules::default(),
            fid,
            None,
            None,
        )
        .unwrap();
    }

    fn update(db: &TestDb, fid: &str, changes: FunctionChanges) {
        functions::update(
            db,
            &NoCache,
            &caller("p"),
            &Rules::default(),
            fid,
            changes,
            None,
        )
        .unwrap();
    }

    #[test]
    fn files_and_settings_that_differ_are_listed_and_the_rest_left_out() {
        let db = TestDb::in_memory();
        let fid = setup(
            &db,
            zip_of(&[("same", b"s"), ("gone", b"g"), ("changed", b"one")]),
        );
        publish(&db, &fid);
        update(
            &db,
            &fid,
            FunctionChanges {
                package: Some(
                    zip_of(&[("same", b"s"), ("changed", b"three"), ("new", b"n")]).into(),
                ),
                timeout: Some(60),
                ..FunctionChanges::default()
            },
        );
        let d = diff(&db, &NoCache, &caller("p"), &fid, v(1), VersionRef::Current).unwrap();
        let files: Vec<(&str, Change, Option<u64>, Option<u64>)> = d
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.change, f.size_from, f.size_to))
            .collect();
        assert_eq!(
            files,
            vec![
                ("changed", Change::Modified, Some(3), Some(5)),
                ("gone", Change::Removed, Some(1), None),
                ("new", Change::Added, None, Some(1)),
            ]
        );
        assert_eq!(d.settings, vec![("timeout", json!(5), json!(60))]);
    }

    #[test]
    fn another_projects_function_is_an_unknown_version() {
        let db = TestDb::in_memory();
        let fid = setup(&db, zip_of(&[("a", b"a")]));
        publish(&db, &fid);
        let err = diff(&db, &NoCache, &caller("other"), &fid, v(1), v(1)).unwrap_err();
        assert_eq!(
            (err.status(), err.message),
            (
                404,
                format!("FunctionVersion not found [function_id={fid}, version_number=1]")
            )
        );
        let err = diff(
            &db,
            &NoCache,
            &caller("other"),
            &fid,
            VersionRef::Current,
            VersionRef::Current,
        )
        .unwrap_err();
        assert_eq!(err.status(), 404);
    }

    #[test]
    fn listing_a_large_packages_files_reads_only_its_last_chunks() {
        let db = TestDb::in_memory();
        crate::store::migrations::migrate(&db).unwrap();
        let files: Vec<(String, Vec<u8>)> = (0..40)
            .map(|i| {
                let mut state = i as u32 + 1;
                let bytes = (0..CHUNK_SIZE / 4)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 17;
                        state ^= state << 5;
                        state as u8
                    })
                    .collect();
                (format!("f{i}"), bytes)
            })
            .collect();
        let named: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let package = Package::from_upload(zip_of(&named), None, u64::MAX).unwrap();
        assert!(package.bytes.len() > 8 * CHUNK_SIZE);
        packages::store(&db, &package).unwrap();
        let mut reader = ChunkReader::open(&db, &package.digest).unwrap().unwrap();
        {
            let archive = zip::ZipArchive::new(&mut reader).unwrap();
            assert_eq!(archive.len(), 40);
            for i in 0..archive.len() {
                let entry = archive.by_index_data(i).unwrap();
                assert_eq!(entry.size(), (CHUNK_SIZE / 4) as u64);
            }
        }
        assert!(reader.chunks_loaded() <= 2, "{}", reader.chunks_loaded());
    }

    #[test]
    fn the_chunk_reader_reads_what_was_stored_across_chunks() {
        use std::io::{Read, Seek, SeekFrom};
        let db = TestDb::in_memory();
        crate::store::migrations::migrate(&db).unwrap();
        let big: Vec<u8> = (0..(CHUNK_SIZE * 2 + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let package = Package::from_upload(zip_of(&[("a", &big)]), None, u64::MAX).unwrap();
        packages::store(&db, &package).unwrap();
        let mut reader = ChunkReader::open(&db, &package.digest).unwrap().unwrap();
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        assert_eq!(all, package.bytes);
        reader.seek(SeekFrom::End(-10)).unwrap();
        let mut tail = Vec::new();
        reader.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, package.bytes[package.bytes.len() - 10..]);
        assert!(reader
            .seek(SeekFrom::Current(-(all.len() as i64) - 1))
            .is_err());
    }

    /// A database on which the function gets new code (and its old bytes are deleted) just
    /// after the diff first looks up a package: another request's update, between the diff's
    /// statements.
    struct UpdatedWhileDiffed<'a> {
        db: &'a TestDb,
        fid: String,
        lookups: std::cell::Cell<usize>,
    }

    impl crate::store::db::Database for UpdatedWhileDiffed<'_> {
        fn execute(
            &self,
            sql: &str,
            params: &[crate::store::db::Value],
        ) -> Result<crate::store::db::Rows, crate::store::db::DbError> {
            if sql.contains("FROM packages WHERE digest") {
                self.lookups.set(self.lookups.get() + 1);
                if self.lookups.get() == 2 {
                    let changes = FunctionChanges {
                        package: Some(zip_of(&[("a.py", b"three")]).into()),
                        ..FunctionChanges::default()
                    };
                    update(self.db, &self.fid, changes);
                }
            }
            self.db.execute(sql, params)
        }
    }

    #[test]
    fn a_diff_against_code_replaced_meanwhile_diffs_the_new_code() {
        let db = TestDb::in_memory();
        let fid = setup(&db, zip_of(&[("a.py", b"one")]));
        publish(&db, &fid);
        let changes = FunctionChanges {
            package: Some(zip_of(&[("a.py", b"two!")]).into()),
            ..FunctionChanges::default()
        };
        update(&db, &fid, changes);
        let racing = UpdatedWhileDiffed {
            db: &db,
            fid: fid.clone(),
            lookups: Default::default(),
        };
        let d = diff(
            &racing,
            &NoCache,
            &caller("p"),
            &fid,
            v(1),
            VersionRef::Current,
        )
        .unwrap();
        assert_eq!(d.files.len(), 1);
        assert_eq!(d.files[0].size_to, Some(5), "the code that replaced it");
    }
}
