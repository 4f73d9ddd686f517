//! A cache of hot reads in Spin's key-value store, which is cheap to reach, where SQLite costs
//! a fresh connection per request. The cache may be lost or full at any time: every failure
//! is a miss, and SQLite stays the only copy of anything.
//!
//! Every entry about a function carries the function's *generation*: a random tag kept under
//! its own key, which every write to the function deletes after its commit (its `forget`).
//! A reader reads the generation first (making a new one when there is none), then the
//! database, and tags what it stores with it; an entry is served only under the generation it
//! was read in. So a reader that read the database before a write's commit and stores its
//! answer after the write's forget has tagged it with a generation that is gone: no request
//! after the forget is served the old answer, not even for a moment. Entries also
//! expire ([`KeyValueScope::trust_seconds`]): soon when each replica has its own store, which
//! another replica's writes cannot forget from; after 5 minutes when the store is shared, in
//! case a writer died between its commit and its `forget`.
//!
//! Every key the app writes is deleted or overwritten eventually, or bounded in number:
//! Redis, as Spin's key-value backend, has no TTL, so an entry nobody deletes stays forever.
//! Version entries and prepared modules are keyed by function and version and forgotten
//! when those are deleted; validated tokens share a fixed set of slots (see `auth`). Nothing
//! lists keys (`get_keys` is Redis' `KEYS *`).

use crate::error::ApiResult;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Seconds an entry is trusted when every replica shares the store.
pub const SHARED_TRUST_SECONDS: i64 = 300;
/// Seconds an entry is trusted when each replica has its own store: how long another
/// replica may show what a write changed.
pub const REPLICA_TRUST_SECONDS: i64 = 2;

/// Whose key-value store `default` is (variable `key_value_scope`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyValueScope {
    /// Each replica has its own (Spin's default store is a file per replica, per SpinKube
    /// pod): a write forgets what it changed on its own replica only.
    #[default]
    Replica,
    /// Every replica shares it (Redis): a write's forgetting reaches them all.
    Shared,
}

impl KeyValueScope {
    pub fn parse(value: &str) -> Result<KeyValueScope, String> {
        match value.to_ascii_lowercase().as_str() {
            "replica" => Ok(KeyValueScope::Replica),
            "shared" => Ok(KeyValueScope::Shared),
            _ => Err(format!(
                "variable key_value_scope must be replica or shared, not {value:?}"
            )),
        }
    }

    /// Seconds an answer read from the database is served from the cache: the longest a
    /// write on another replica can go unseen.
    pub fn trust_seconds(self) -> i64 {
        match self {
            KeyValueScope::Replica => REPLICA_TRUST_SECONDS,
            KeyValueScope::Shared => SHARED_TRUST_SECONDS,
        }
    }
}

/// The key-value seam (Spin's `key-value` interface, or nothing).
pub trait Cache {
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    /// The value of each of `keys`, in their order: one call where the store can answer them
    /// together (each call is a host call, a round trip on a networked store).
    fn get_many(&self, keys: &[&str]) -> Vec<Option<Vec<u8>>> {
        keys.iter().map(|key| self.get(key)).collect()
    }
    fn set(&self, key: &str, value: &[u8]);
    fn delete(&self, key: &str);
    /// Deletes every one of `keys`, in one call where the store can.
    fn delete_many(&self, keys: &[String]) {
        for key in keys {
            self.delete(key);
        }
    }
    /// Whose store this is, which bounds how long [`read_through`] trusts an entry.
    fn scope(&self) -> KeyValueScope;
}

/// No cache at all: every read goes to the database.
pub struct NoCache;

impl Cache for NoCache {
    fn get(&self, _key: &str) -> Option<Vec<u8>> {
        None
    }
    fn set(&self, _key: &str, _value: &[u8]) {}
    fn delete(&self, _key: &str) {}
    /// It holds nothing, so nothing it holds can be stale anywhere.
    fn scope(&self) -> KeyValueScope {
        KeyValueScope::Shared
    }
}

#[derive(Serialize, Deserialize)]
struct Entry<T> {
    cached_at: i64,
    /// The function's generation the value was read in.
    generation: String,
    value: T,
}

/// Where a function's generation is kept; deleting it invalidates every entry about the
/// function at once.
pub fn generation_key(function_id: &str) -> String {
    format!("spinling:v1:generation:{function_id}")
}

/// The function's current generation, `stored` under its key, or a new one when there is
/// none (never stored, lost, or deleted by a write).
fn generation_or_new(cache: &dyn Cache, function_id: &str, stored: Option<Vec<u8>>) -> String {
    if let Some(tag) = stored.and_then(|b| String::from_utf8(b).ok()) {
        return tag;
    }
    let tag = crate::id::new_id();
    cache.set(&generation_key(function_id), tag.as_bytes());
    tag
}

/// `load`'s answer about function `function_id`, from the cache when a fresh entry of the
/// function's current generation is there.
pub fn read_through<T>(
    cache: &dyn Cache,
    function_id: &str,
    key: &str,
    load: impl Fn() -> ApiResult<T>,
) -> ApiResult<T>
where
    T: Serialize + DeserializeOwned,
{
    read_through_at(cache, function_id, key, crate::time::now_unix(), load)
}

/// [`read_through`] at `now` (seconds since the epoch). An entry is fresh for
/// [`KeyValueScope::trust_seconds`] whole seconds from the second it was read in, so less
/// than that long after the database read it holds.
fn read_through_at<T>(
    cache: &dyn Cache,
    function_id: &str,
    key: &str,
    now: i64,
    load: impl Fn() -> ApiResult<T>,
) -> ApiResult<T>
where
    T: Serialize + DeserializeOwned,
{
    // The generation before the database read (see the module's comment), with the entry in
    // the same call.
    let generation_key = generation_key(function_id);
    let mut stored = cache.get_many(&[&generation_key, key]).into_iter();
    let (stored_generation, stored_entry) = (stored.next().flatten(), stored.next().flatten());
    let generation = generation_or_new(cache, function_id, stored_generation);
    let trusted = 0..cache.scope().trust_seconds();
    if let Some(entry) = stored_entry
        .and_then(|bytes| serde_json::from_slice::<Entry<T>>(&bytes).ok())
        .filter(|e| e.generation == generation && trusted.contains(&(now - e.cached_at)))
    {
        return Ok(entry.value);
    }
    let value = load()?;
    if let Ok(bytes) = serde_json::to_vec(&Entry {
        cached_at: now,
        generation,
        value: &value,
    }) {
        cache.set(key, &bytes);
    }
    Ok(value)
}

/// A function as `GET /v1/functions/{id}` shows it; forgotten by every write that changes
/// what it shows ([`forget_function`]).
pub fn function_key(function_id: &str) -> String {
    format!("spinling:v1:function:{function_id}")
}

pub fn version_key(function_id: &str, number: i64) -> String {
    format!("spinling:v1:version:{function_id}:{number}")
}

pub fn version_list_key(function_id: &str) -> String {
    format!("spinling:v1:versions:{function_id}")
}

/// Where the built-in runtime keeps the module it prepared for a function version (0: the
/// function's current code). The entry names the md5 of the package it was prepared from and
/// is used only for a job of that md5 (`spinling_runner::worker`), so an entry another
/// replica did not forget, or one of older code, never runs. Detaching or deleting the
/// version forgets it.
pub fn prepared_key(function_id: &str, number: i64) -> String {
    format!("spinling:v1:prepared:{function_id}:{number}")
}

#[cfg(test)]
pub(crate) mod testing {
    use super::{Cache, KeyValueScope};
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    /// An in-memory cache for unit tests; shared unless made with [`MemoryCache::replica`],
    /// so that tests of forgetting are not passed by expiry.
    pub struct MemoryCache {
        pub entries: RefCell<HashMap<String, Vec<u8>>>,
        pub scope: KeyValueScope,
    }

    impl Default for MemoryCache {
        fn default() -> Self {
            MemoryCache {
                entries: RefCell::default(),
                scope: KeyValueScope::Shared,
            }
        }
    }

    impl MemoryCache {
        /// One replica's own store.
        pub fn replica() -> Self {
            MemoryCache {
                scope: KeyValueScope::Replica,
                ..MemoryCache::default()
            }
        }
    }

    /// Counts the calls a store answers, as a host counts host calls.
    #[derive(Default)]
    pub struct CountingCache {
        pub inner: MemoryCache,
        pub calls: Cell<usize>,
    }

    impl Cache for CountingCache {
        fn get(&self, key: &str) -> Option<Vec<u8>> {
            self.calls.set(self.calls.get() + 1);
            self.inner.get(key)
        }
        fn get_many(&self, keys: &[&str]) -> Vec<Option<Vec<u8>>> {
            self.calls.set(self.calls.get() + 1);
            keys.iter().map(|k| self.inner.get(k)).collect()
        }
        fn set(&self, key: &str, value: &[u8]) {
            self.calls.set(self.calls.get() + 1);
            self.inner.set(key, value)
        }
        fn delete(&self, key: &str) {
            self.calls.set(self.calls.get() + 1);
            self.inner.delete(key)
        }
        fn delete_many(&self, keys: &[String]) {
            self.calls.set(self.calls.get() + 1);
            keys.iter().for_each(|k| self.inner.delete(k))
        }
        fn scope(&self) -> KeyValueScope {
            self.inner.scope
        }
    }

    impl Cache for MemoryCache {
        fn get(&self, key: &str) -> Option<Vec<u8>> {
            self.entries.borrow().get(key).cloned()
        }
        fn set(&self, key: &str, value: &[u8]) {
            self.entries.borrow_mut().insert(key.into(), value.to_vec());
        }
        fn delete(&self, key: &str) {
            self.entries.borrow_mut().remove(key);
        }
        fn scope(&self) -> KeyValueScope {
            self.scope
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{CountingCache, MemoryCache};
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
        assert_eq!(read_through(&cache, "f", "k", load).unwrap(), 7);
        let after_fill = loads.get();
        assert_eq!(read_through(&cache, "f", "k", load).unwrap(), 7);
        assert_eq!(loads.get(), after_fill);
    }

    #[test]
    fn a_fill_that_raced_a_write_is_never_served() {
        let cache = MemoryCache::default();
        // A reader reads the database, then a writer commits and forgets, then the reader
        // stores the answer it read before the commit.
        let load = || {
            cache.delete(&generation_key("f"));
            Ok(1)
        };
        assert_eq!(read_through(&cache, "f", "k", load).unwrap(), 1);
        assert!(cache.get("k").is_some(), "the late fill is stored");
        assert_eq!(read_through(&cache, "f", "k", || Ok(2)).unwrap(), 2);
    }

    #[test]
    fn a_forget_invalidates_every_entry_about_the_function() {
        let cache = MemoryCache::default();
        read_through(&cache, "f", "a", || Ok(1)).unwrap();
        read_through(&cache, "f", "b", || Ok(1)).unwrap();
        read_through(&cache, "g", "c", || Ok(1)).unwrap();
        cache.delete(&generation_key("f"));
        assert_eq!(read_through(&cache, "f", "a", || Ok(2)).unwrap(), 2);
        assert_eq!(read_through(&cache, "f", "b", || Ok(2)).unwrap(), 2);
        assert_eq!(read_through(&cache, "g", "c", || Ok(2)).unwrap(), 1);
    }

    #[test]
    fn a_hit_is_one_call_to_a_store_that_batches() {
        let cache = CountingCache::default();
        read_through(&cache, "f", "k", || Ok(1)).unwrap();
        cache.calls.set(0);
        assert_eq!(read_through(&cache, "f", "k", || Ok(2)).unwrap(), 1);
        assert_eq!(cache.calls.get(), 1);
    }

    #[test]
    fn errors_are_not_cached() {
        let cache = MemoryCache::default();
        let result: ApiResult<i32> = read_through(&cache, "f", "k", || {
            Err(crate::error::ApiError::not_found("x"))
        });
        assert!(result.is_err());
        assert!(cache.get("k").is_none());
    }

    #[test]
    fn an_expired_entry_is_a_miss() {
        let cache = MemoryCache::default();
        let generation = super::generation_or_new(&cache, "f", None);
        cache.set(
            "k",
            format!(r#"{{"cached_at": 0, "generation": "{generation}", "value": 1}}"#).as_bytes(),
        );
        assert_eq!(read_through(&cache, "f", "k", || Ok(2)).unwrap(), 2);
    }

    /// The database's answer at each read; `write` changes it without forgetting the key, as a
    /// write on another replica does.
    struct Database(Cell<i32>);

    impl Database {
        fn write(&self, value: i32) {
            self.0.set(value);
        }
        /// What a reader through `cache` gets at `now`.
        fn read(&self, cache: &MemoryCache, now: i64) -> i32 {
            read_through_at(cache, "f", "k", now, || Ok(self.0.get())).unwrap()
        }
    }

    const T: i64 = 1_800_000_000;

    #[test]
    fn on_a_replicas_own_store_a_write_elsewhere_is_seen_within_two_seconds() {
        let (cache, db) = (MemoryCache::replica(), Database(Cell::new(1)));
        assert_eq!(db.read(&cache, T), 1);
        db.write(2);
        assert_eq!(db.read(&cache, T + 1), 1);
        assert_eq!(db.read(&cache, T + 2), 2);
    }

    #[test]
    fn on_a_shared_store_an_entry_is_trusted_for_five_minutes() {
        let (cache, db) = (MemoryCache::default(), Database(Cell::new(1)));
        assert_eq!(db.read(&cache, T), 1);
        db.write(2);
        assert_eq!(db.read(&cache, T + 299), 1);
        assert_eq!(db.read(&cache, T + 300), 2);
    }

    #[test]
    fn an_entry_dated_after_now_is_a_miss() {
        let (cache, db) = (MemoryCache::default(), Database(Cell::new(1)));
        db.read(&cache, T);
        db.write(2);
        assert_eq!(db.read(&cache, T - 1), 2);
    }

    #[test]
    fn a_damaged_entry_is_a_miss() {
        let cache = MemoryCache::default();
        cache.set("k", b"garbage");
        assert_eq!(read_through(&cache, "f", "k", || Ok(3)).unwrap(), 3);
    }
}
