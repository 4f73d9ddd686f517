//! What each write forgets from the cache. What a write changed is forgotten by the domain
//! operation that wrote it, after its commit (never by a handler): these are its vocabulary.

use crate::domain::types::{VersionNumber, VersionRef};
use crate::store::cache::{
    function_key, generation_key, prepared_key, version_key, version_list_key, Cache,
};

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
    cache.delete(&generation_key(function_id));
    cache.delete(&version_list_key(function_id));
    for n in numbers {
        cache.delete(&version_key(function_id, n.get()));
    }
}

/// Forgets the cached function: for a change of its settings or code, its `count`, or its
/// `latest_version` (a version published or deleted), and for its deletion.
pub fn forget_function(cache: &dyn Cache, function_id: &str) {
    cache.delete(&generation_key(function_id));
    cache.delete(&function_key(function_id));
}

/// Forgets the module the built-in runtime prepared for `version` (detach).
pub fn forget_prepared(cache: &dyn Cache, function_id: &str, version: VersionRef) {
    cache.delete(&prepared_key(function_id, version.to_wire()));
}
