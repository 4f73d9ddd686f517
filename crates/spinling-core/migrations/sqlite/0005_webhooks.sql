-- Webhooks (spec §2.6): a URL that runs a function version, or what an alias names, without
-- a token. A webhook names either an alias (function_id and function_version null) or a
-- function and, as sent, a version (null when none was given: invoked as the current code).
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY,
    function_id TEXT,
    function_version INTEGER,
    function_alias TEXT,
    description TEXT,
    project_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE INDEX IF NOT EXISTS webhooks_by_project ON webhooks (project_id, created_at);

-- Function and version deletes look for the webhooks that still use them.
CREATE INDEX IF NOT EXISTS webhooks_by_function ON webhooks (function_id, function_version);
