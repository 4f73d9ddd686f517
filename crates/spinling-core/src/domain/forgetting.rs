//! What each write forgets from the cache. What a write changed is forgotten by the domain
//! operation that wrote it, after its commit (never by a handler): these are its vocabulary.
//! Each forgets in one call (several keys in one [`Cache::delete_many`]): a key-value call is a
//! host call, and a network round trip on a shared store.

use crate::domain::types::{VersionNumber, VersionRef};
use crate::store::cache::{
    function_key, generation_key, prepared_key, version_key, version_list_key, Cache,
};

/// The generation, the list and the resources of versions `numbers`.
fn version_resource_keys(function_id: &str, numbers: &[VersionNumber]) -> Vec<String> {
    let mut keys = vec![generation_key(function_id), version_list_key(function_id)];
    keys.extend(numbers.iter().map(|n| version_key(function_id, n.get())));
    keys
}

/// [`version_resource_keys`] of `versions`, and the code prepared for each.
fn version_keys(function_id: &str, versions: &[VersionRef]) -> Vec<String> {
    let numbers: Vec<VersionNumber> = versions.iter().filter_map(|v| v.number()).collect();
    let mut keys = version_resource_keys(function_id, &numbers);
    keys.extend(
        versions
            .iter()
            .map(|v| prepared_key(function_id, v.to_wire())),
    );
    keys
}

/// Forgets the cached resources (not the prepared code) of versions `numbers` and their list:
/// for a change of what a version shows, such as its execution `count`, or of the list.
pub fn forget_version_resources(cache: &dyn Cache, function_id: &str, numbers: &[VersionNumber]) {
    cache.delete_many(&version_resource_keys(function_id, numbers));
}

/// Forgets the cached function: for a change of its settings or code, or its `count`.
pub fn forget_function(cache: &dyn Cache, function_id: &str) {
    cache.delete_many(&[generation_key(function_id), function_key(function_id)]);
}

/// Forgets the function, the list of its versions and what is cached about `versions` (their
/// resources and the code prepared for them): for a version published (`versions` empty) or
/// deleted, which changes the function's `latest_version` too, and for the function's deletion.
pub fn forget_function_and_versions(cache: &dyn Cache, function_id: &str, versions: &[VersionRef]) {
    let mut keys = version_keys(function_id, versions);
    keys.push(function_key(function_id));
    cache.delete_many(&keys);
}

/// Forgets the module the built-in runtime prepared for `version` (detach).
pub fn forget_prepared(cache: &dyn Cache, function_id: &str, version: VersionRef) {
    cache.delete(&prepared_key(function_id, version.to_wire()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::cache::read_through;
    use crate::store::cache::testing::CountingCache;

    #[test]
    fn a_publish_forgets_in_one_call() {
        let cache = CountingCache::default();
        read_through(&cache, "f", &function_key("f"), || Ok(1)).unwrap();
        read_through(&cache, "f", &version_list_key("f"), || Ok(1)).unwrap();
        cache.calls.set(0);
        forget_function_and_versions(&cache, "f", &[]);
        assert_eq!(cache.calls.get(), 1);
        assert_eq!(
            read_through(&cache, "f", &function_key("f"), || Ok(2)).unwrap(),
            2
        );
        assert_eq!(
            read_through(&cache, "f", &version_list_key("f"), || Ok(2)).unwrap(),
            2
        );
    }
}
