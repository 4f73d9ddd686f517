-- Every change of an alias's version or routing (issue 25): who made it, when, what it was
-- before and after (JSON `{"function_version": n, "routing": {...}}`), and why (`cause`: a
-- request, a rollout's start, step, promotion, rollback or abort; `reason` in words).
-- `alias_name` and `project_id` are kept so the history outlives the alias row.
CREATE TABLE IF NOT EXISTS alias_history (
    id TEXT PRIMARY KEY,
    alias_id TEXT NOT NULL,
    alias_name TEXT NOT NULL,
    project_id TEXT NOT NULL,
    actor_project_id TEXT,
    actor_user_id TEXT,
    cause TEXT NOT NULL,
    reason TEXT,
    before TEXT,
    after TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alias_history_by_alias ON alias_history (project_id, alias_name);
-- A rollout moves an alias from `from_version` to `to_version` through `steps` (JSON list of
-- percentages), one each `step_seconds`, unless the canary's failures trip the rule (see
-- `rollouts`). `step` is the index into `steps` (a promoted rollout has it at their count);
-- `revision` grows with every decision, so two schedulers deciding at once compare-and-swap
-- on it and only one wins. At most one rollout per alias is `running`.
CREATE TABLE IF NOT EXISTS alias_rollouts (
    id TEXT PRIMARY KEY,
    alias_id TEXT NOT NULL,
    alias_name TEXT NOT NULL,
    project_id TEXT NOT NULL,
    function_id TEXT NOT NULL,
    from_version INTEGER NOT NULL,
    to_version INTEGER NOT NULL,
    steps TEXT NOT NULL,
    step_seconds INTEGER NOT NULL,
    -- Its shortest decimal text, read back exactly (as a routing's weights).
    max_failure_rate TEXT NOT NULL,
    min_executions INTEGER NOT NULL,
    status TEXT NOT NULL,
    step INTEGER NOT NULL,
    step_started_at INTEGER NOT NULL,
    revision INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS alias_rollouts_one_running ON alias_rollouts (alias_id) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS alias_rollouts_by_alias ON alias_rollouts (project_id, alias_name);
CREATE INDEX IF NOT EXISTS alias_rollouts_running ON alias_rollouts (status);
