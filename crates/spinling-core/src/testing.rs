//! Fixtures the core's unit tests share.

use crate::domain::commands::NewFunction;
use crate::domain::context::Caller;
use crate::domain::functions;
use crate::domain::rules::Rules;
use crate::domain::types::{CodeSource, FunctionId};
use crate::store::db::testing::TestDb;
use crate::store::db::Database;
use serde_json::json;

/// A migrated database with the built-in runtime `r` and a function of `caller`'s project on
/// it, running `package`; returns the function's id.
pub fn package_function(db: &TestDb, caller: &Caller, package: Vec<u8>) -> FunctionId {
    crate::store::migrations::migrate(db).unwrap();
    db.execute(
        "INSERT INTO runtimes (id, image, status, project_id, created_at)
         VALUES ('r', 'spinling/wasm', 'available', 'p', 'now') ON CONFLICT DO NOTHING",
        &[],
    )
    .unwrap();
    let new = NewFunction {
        name: None,
        description: None,
        entry: None,
        cpu: functions::CPU.default,
        memory_size: functions::MEMORY.default,
        timeout: functions::TIMEOUT.default,
        code: json!({"source": "package"}).as_object().unwrap().clone(),
        source: CodeSource::Package,
        runtime_id: Some("r".into()),
        package: Some(package.into()),
    };
    functions::create(db, caller, &Rules::default(), new)
        .unwrap()
        .id
}

/// A member (not an admin) of project `p1`, with the policy enforced or not.
pub fn member_of_p1(policy_enforced: bool) -> Caller {
    Caller {
        project_id: "p1".into(),
        user_id: None,
        is_admin: false,
        policy_enforced,
        token: None,
        is_service: false,
    }
}
