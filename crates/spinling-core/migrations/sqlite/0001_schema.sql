CREATE TABLE IF NOT EXISTS runtimes (
    id TEXT PRIMARY KEY,
    name TEXT,
    description TEXT,
    image TEXT NOT NULL,
    status TEXT NOT NULL,
    is_public INTEGER NOT NULL DEFAULT 1,
    trusted INTEGER NOT NULL DEFAULT 1,
    project_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

-- Package bytes, content-addressed (by SHA-256 here; see 0011) and split into chunks no larger than a
-- Spin SQLite BLOB is guaranteed to hold. A package row exists only while a function
-- or a version references its digest (see `packages::collect_garbage`).
CREATE TABLE IF NOT EXISTS packages (
    digest TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    md5 TEXT NOT NULL,
    chunk_count INTEGER NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS package_chunks (
    digest TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (digest, seq)
);

-- `version_seq` is the highest version number ever given out, so numbers are never
-- reused; the `latest_version` shown to clients is the newest existing version.
CREATE TABLE IF NOT EXISTS functions (
    id TEXT PRIMARY KEY,
    name TEXT,
    description TEXT,
    runtime_id TEXT,
    cpu INTEGER NOT NULL,
    memory_size INTEGER NOT NULL,
    timeout INTEGER NOT NULL,
    code TEXT NOT NULL,
    entry TEXT,
    count INTEGER NOT NULL DEFAULT 0,
    version_seq INTEGER NOT NULL DEFAULT 0,
    package_digest TEXT,
    project_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE INDEX IF NOT EXISTS functions_by_project ON functions (project_id, created_at);

CREATE INDEX IF NOT EXISTS functions_by_runtime ON functions (runtime_id);

CREATE INDEX IF NOT EXISTS functions_by_package ON functions (package_digest);

-- A version snapshots the code and the settings it runs with.
CREATE TABLE IF NOT EXISTS function_versions (
    id TEXT PRIMARY KEY,
    function_id TEXT NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
    version_number INTEGER NOT NULL,
    description TEXT,
    count INTEGER NOT NULL DEFAULT 0,
    code TEXT NOT NULL,
    package_digest TEXT NOT NULL,
    entry TEXT,
    cpu INTEGER NOT NULL,
    memory_size INTEGER NOT NULL,
    timeout INTEGER NOT NULL,
    project_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    UNIQUE (function_id, version_number)
);

CREATE INDEX IF NOT EXISTS function_versions_by_package ON function_versions (package_digest);

CREATE TABLE IF NOT EXISTS function_aliases (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    function_id TEXT NOT NULL,
    function_version INTEGER NOT NULL DEFAULT 0,
    project_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    UNIQUE (project_id, name),
    UNIQUE (project_id, function_id, function_version)
);

CREATE INDEX IF NOT EXISTS function_aliases_by_function ON function_aliases (function_id, function_version);
