-- Jobs (spec §2.7): a function (or alias) run at a time or on a cron pattern. Times are
-- Qinling timestamps (`YYYY-MM-DDTHH:MM:SSZ`, UTC), so they sort as text. `function_id` is
-- NULL for a job through an alias (resolved each time it fires). A job that fires moves
-- `next_execution_time` and `count` by compare-and-swap in the transaction that inserts
-- its execution (see `jobs::fire`).
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT,
    pattern TEXT,
    status TEXT NOT NULL,
    first_execution_time TEXT,
    next_execution_time TEXT NOT NULL,
    count INTEGER,
    function_id TEXT,
    function_version INTEGER NOT NULL DEFAULT 0,
    function_alias TEXT,
    function_input TEXT,
    project_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE INDEX IF NOT EXISTS jobs_by_project ON jobs (project_id, created_at);

-- What the scheduler asks every tick: the running jobs that are due.
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (status, next_execution_time);

CREATE INDEX IF NOT EXISTS jobs_by_function ON jobs (function_id, function_version);

-- Who runs the scheduler loop, until when (unix seconds): one loop per database at a
-- time. A loop renews its lease every tick; a request that finds it expired while jobs
-- are running starts a new loop (see `jobs::take_lease` and the adapter's scheduler).
CREATE TABLE IF NOT EXISTS scheduler_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until INTEGER NOT NULL
);
