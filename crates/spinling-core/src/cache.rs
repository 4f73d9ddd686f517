//! A cache of hot reads in Spin's key-value store, which is cheap to reach, where SQLite costs
//! a fresh connection per request. The cache may be lost or full at any time: every failure
//! is a miss, and SQLite stays the only copy of anything.
//!
//! Filling is verified: after storing what it read, a reader reads the database again and
//! removes the entry if the answer changed meanwhile. So a writer that commits and then
//! forgets the key can never be overtaken by a reader filling in the old answer; entries also
//! expire, in case a writer died between its commit and its `forget`.

use crate::error::ApiResult;
use crate::types::{VersionNumber, VersionRef};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Seconds an entry is trusted.
const TTL_SECONDS: i64 = 300;

/// The key-value seam (Spin's `key-value` interface, or nothing).
pub trait Cache {
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    fn set(&self, key: &str, value: &[u8]);
    fn delete(&self, key: &str);
}

/// No cache at all: every read goes to the database.
pub struct NoCache;

impl Cache for NoCache {
    fn get(&self, _key: &str) -> Option<Vec<u8>> {
        None
    }
    fn set(&self, _key: &str, _value: &[u8]) {}
    fn delete(&self, _key: &str) {}
}

#[derive(Serialize, Deserialize)]
struct Entry<T> {
    cached_at: i64,
    value: T,
}

/// `load`'s answer, from the cache when a fresh entry is there.
pub fn read_through<T>(
    cache: &dyn Cache,
    key: &str,
    load: impl Fn() -> ApiResult<T>,
) -> ApiResult<T>
where
    T: Serialize + DeserializeOwned + PartialEq,
{
    let now = crate::time::now_unix();
    if let Some(entry) = cache
        .get(key)
        .and_then(|bytes| serde_json::from_slice::<Entry<T>>(&bytes).ok())
        .filter(|e| (0..TTL_SECONDS).contains(&(now - e.cached_at)))
    {
        return Ok(entry.value);
    }
    let value = load()?;
    if let Ok(bytes) = serde_json::to_vec(&Entry {
        cached_at: now,
        value: &value,
    }) {
        cache.set(key, &bytes);
        if !matches!(load(), Ok(again) if again == value) {
            cache.delete(key);
        }
    }
    Ok(value)
}

pub fn version_key(function_id: &str, number: i64) -> String {
    format!("spinling:v1:version:{function_id}:{number}")
}

pub fn version_list_key(function_id: &str) -> String {
    format!("spinling:v1:versions:{function_id}")
}

/// Where the built-in runtime keeps the module it prepared for a function version (0: the
/// function's current code). Detaching the version forgets it.
pub fn prepared_key(function_id: &str, number: i64) -> String {
    format!("spinling:v1:prepared:{function_id}:{number}")
}

// What a write changed is forgotten by the domain operation that wrote it, after its commit
// (never by a handler): these are its vocabulary.

/// Forgets what is cached about a function's `versions` (their resources and the code
/// prepared for them) and their list.
pub fn forget_versions(cache: &dyn Cache, function_id: &str, versions: &[VersionRef]) {
    let numbers: Vec<VersionNumber> = versions.iter().filter_map(|v| v.number()).collect();
    forget_version_resources(cache, function_id, &numbers);
    for version in versions {
        forget_prepared(cache, function_id, *version);
    }
}

/// Forgets the cached resources (not the prepared code) of versions `numbers` and their list:
/// for a change of what a version shows, such as its execution `count`, or of the list.
pub fn forget_version_resources(cache: &dyn Cache, function_id: &str, numbers: &[VersionNumber]) {
    cache.delete(&version_list_key(function_id));
    for n in numbers {
        cache.delete(&version_key(function_id, n.get()));
    }
}

/// Forgets the module the built-in runtime prepared for `version` (detach).
pub fn forget_prepared(cache: &dyn Cache, function_id: &str, version: VersionRef) {
    cache.delete(&prepared_key(function_id, version.to_wire()));
}

#[cfg(test)]
pub(crate) mod testing {
    use super::Cache;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// An in-memory cache for unit tests.
    #[derive(Default)]
    pub struct MemoryCache(pub RefCell<HashMap<String, Vec<u8>>>);

    impl Cache for MemoryCache {
        fn get(&self, key: &str) -> Option<Vec<u8>> {
            self.0.borrow().get(key).cloned()
        }
        fn set(&self, key: &str, value: &[u8]) {
            self.0.borrow_mut().insert(key.into(), value.to_vec());
        }
        fn delete(&self, key: &str) {
            self.0.borrow_mut().remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::MemoryCache;
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_hit_does_not_load() {
        let cache = MemoryCache::default();
        let loads = Cell::new(0);
        let load = || {
            loads.set(loads.get() + 1);
            Ok(7)
        };
        assert_eq!(read_through(&cache, "k", load).unwrap(), 7);
        let after_fill = loads.get();
        assert_eq!(read_through(&cache, "k", load).unwrap(), 7);
        assert_eq!(loads.get(), after_fill);
    }

    #[test]
    fn a_fill_that_raced_a_write_is_not_kept() {
        let cache = MemoryCache::default();
        let answer = Cell::new(1);
        let load = || {
            let a = answer.get();
            answer.set(a + 1); // a writer commits between the two reads
            Ok(a)
        };
        assert_eq!(read_through(&cache, "k", load).unwrap(), 1);
        assert!(cache.get("k").is_none());
    }

    #[test]
    fn errors_are_not_cached() {
        let cache = MemoryCache::default();
        let result: ApiResult<i32> =
            read_through(&cache, "k", || Err(crate::error::ApiError::not_found("x")));
        assert!(result.is_err());
        assert!(cache.0.borrow().is_empty());
    }

    #[test]
    fn an_expired_entry_is_a_miss() {
        let cache = MemoryCache::default();
        cache.set("k", br#"{"cached_at": 0, "value": 1}"#);
        assert_eq!(read_through(&cache, "k", || Ok(2)).unwrap(), 2);
    }

    #[test]
    fn a_damaged_entry_is_a_miss() {
        let cache = MemoryCache::default();
        cache.set("k", b"garbage");
        assert_eq!(read_through(&cache, "k", || Ok(3)).unwrap(), 3);
    }
}
