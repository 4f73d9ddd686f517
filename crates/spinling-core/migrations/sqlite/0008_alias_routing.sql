-- An alias's weighted routing: extra versions of its function, each taking `weight` (in
-- (0, 1), their sum < 1) of the executions created through it; the alias's own version takes
-- the rest. A row per extra version, so a version delete finds whether any alias routes to it.
CREATE TABLE IF NOT EXISTS function_alias_routes (
    alias_id TEXT NOT NULL,
    function_id TEXT NOT NULL,
    function_version INTEGER NOT NULL,
    -- Its shortest decimal text (what Rust prints for the f64), read back exactly.
    weight TEXT NOT NULL,
    PRIMARY KEY (alias_id, function_version)
);
CREATE INDEX IF NOT EXISTS function_alias_routes_by_version ON function_alias_routes (function_id, function_version);
