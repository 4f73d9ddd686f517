-- `function_id` is not a foreign key: executions outlive their function, as in
-- Qinling.
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    function_id TEXT NOT NULL,
    function_version INTEGER NOT NULL DEFAULT 0,
    function_alias TEXT,
    description TEXT,
    status TEXT NOT NULL,
    sync INTEGER NOT NULL DEFAULT 1,
    input TEXT,
    result TEXT,
    logs TEXT NOT NULL DEFAULT '',
    project_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE INDEX IF NOT EXISTS executions_by_project ON executions (project_id, created_at);
