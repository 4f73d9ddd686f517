//! What the domain's rules take from a deployment's settings (read from Spin variables by
//! `web::config`): the version cap and what publishing at it does, the largest package, the
//! hosts a worker runtime may live on, and how durably package bytes are written.

use crate::store::durability::SqliteSynchronous;

/// The deployment's choices the domain's rules follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// How many versions a function may have at once.
    pub max_versions: i64,
    /// What publishing a version at the cap does (variable `version_retention`).
    pub version_retention: VersionRetention,
    /// The largest package accepted, in bytes.
    pub max_package_size: u64,
    /// Hosts an external worker runtime may live on (`*` for any).
    pub worker_hosts: Vec<String>,
    /// SQLite's `synchronous` for writes: `FULL` (every commit is on disk before the answer)
    /// or `NORMAL` (in WAL mode, the last commits may be lost on power loss, never corrupted).
    pub sqlite_synchronous: SqliteSynchronous,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            max_versions: 10,
            version_retention: VersionRetention::Reject,
            max_package_size: 50 * 1024 * 1024,
            worker_hosts: vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()],
            sqlite_synchronous: SqliteSynchronous::default(),
        }
    }
}

impl Rules {
    /// Whether an external worker runtime may live on `host`.
    pub fn worker_host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.worker_hosts.iter().any(|allowed| {
            allowed == "*"
                || *allowed == host
                || allowed
                    .strip_prefix("*.")
                    .is_some_and(|suffix| host.ends_with(&format!(".{suffix}")))
        })
    }
}

/// What publishing a version does when the function already has `max_versions` versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRetention {
    /// Qinling's 403 `Can not exceed maximum number(N) of versions`.
    Reject,
    /// The oldest version nothing references (alias, alias routing, webhook, running or
    /// paused job) is deleted in the publish's transaction; when none can go, the 403 stands.
    PruneOldest,
}

impl VersionRetention {
    pub fn parse(value: &str) -> Result<VersionRetention, String> {
        match value.to_ascii_lowercase().as_str() {
            "reject" => Ok(VersionRetention::Reject),
            "prune_oldest" => Ok(VersionRetention::PruneOldest),
            _ => Err(format!(
                "variable version_retention must be reject or prune_oldest, not {value:?}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_hosts_match_exactly_or_by_wildcard_suffix() {
        let s = Rules {
            worker_hosts: vec!["*.example.org".into(), "w1".into()],
            ..Rules::default()
        };
        assert!(s.worker_host_allowed("a.example.org"));
        assert!(s.worker_host_allowed("W1"));
        assert!(!s.worker_host_allowed("example.org"));
        assert!(!s.worker_host_allowed("w2"));
    }
}
