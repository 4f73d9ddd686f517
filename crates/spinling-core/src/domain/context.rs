//! Who is calling, and which projects' rows a list of theirs shows.

use crate::error::{ApiError, ApiResult};
use crate::redacted::Redacted;
use std::fmt;

/// The caller as Qinling's request context sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    /// The effective project: every row a caller creates belongs to it.
    pub project_id: String,
    /// The user the caller's token names (Keystone's `user.id`), in auth mode `keystone`;
    /// none otherwise: with no token, nothing vouches for one (an `X-User-Id` a client sends
    /// is not trusted). Recorded in alias history entries.
    pub user_id: Option<String>,
    pub is_admin: bool,
    /// False in auth mode `none`: as Qinling with auth disabled, no policy is checked.
    pub policy_enforced: bool,
    /// The caller's validated token, which runtimes present to download the package of an
    /// execution on the caller's behalf (auth mode `keystone` only).
    pub token: Option<String>,
    /// Spinling's own Keystone service account (`keystone_service_user`), which runtimes
    /// present to fetch the package of an execution no caller's token backs (webhook
    /// invokes): it may download any project's package, and is an ordinary caller otherwise.
    pub is_service: bool,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("project_id", &self.project_id)
            .field("user_id", &self.user_id)
            .field("is_admin", &self.is_admin)
            .field("policy_enforced", &self.policy_enforced)
            .field("token", &self.token.as_ref().map(|_| Redacted))
            .field("is_service", &self.is_service)
            .finish()
    }
}

impl Caller {
    /// Auth mode `none`: everyone is project `default`, an admin only for visibility rules
    /// (`X-Roles: admin`), and no policy is enforced.
    pub fn unauthenticated(is_admin: bool) -> Caller {
        Caller {
            project_id: "default".into(),
            user_id: None,
            is_admin,
            policy_enforced: false,
            token: None,
            is_service: false,
        }
    }

    /// Acts in `project_id` for a request that carries no token of its own (a webhook
    /// invoke): not an admin; `token`, if any, is Spinling's service token, which the
    /// runtime presents to fetch the package.
    pub fn acting_for(project_id: &str, policy_enforced: bool, token: Option<String>) -> Caller {
        Caller {
            project_id: project_id.into(),
            user_id: None,
            is_admin: false,
            policy_enforced,
            token,
            is_service: false,
        }
    }

    /// Who reads a package for a download: Spinling's service account reads any
    /// project's (as an admin would, for this read only); anyone else is themselves.
    pub fn package_reader(&self) -> Caller {
        Caller {
            is_admin: self.is_admin || self.is_service,
            ..self.clone()
        }
    }

    /// Admin-only operations (runtime writes, detach, `all_projects` lists).
    pub fn require_admin(&self) -> ApiResult<()> {
        if self.policy_enforced && !self.is_admin {
            Err(ApiError::not_allowed())
        } else {
            Ok(())
        }
    }

    /// Whether a row of `project_id` may be read by id: own rows, or any row for an admin.
    pub fn may_read(&self, project_id: &str) -> bool {
        self.is_admin || self.project_id == project_id
    }
}

/// Which projects a list shows, after Qinling's `get_project_params` rules (with
/// `all_projects` parsed as a real boolean).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListScope {
    Project(String),
    AllProjects,
}

impl ListScope {
    /// The project to filter by, or none.
    pub fn project(&self) -> Option<&str> {
        match self {
            ListScope::Project(p) => Some(p),
            ListScope::AllProjects => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::member_of_p1 as user;

    #[test]
    fn a_caller_s_token_is_redacted_in_debug_output() {
        let caller = Caller {
            token: Some("gAAAAAB-secret-token".into()),
            ..user(true)
        };
        let printed = format!("{caller:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(printed.contains("token: Some(<redacted>)"), "{printed}");
        assert!(format!("{:?}", user(true)).contains("token: None"));
    }
}
