-- Uploads write their chunks before anything refers to them, each chunk in its own short
-- statement, and publish the reference afterwards in a short transaction. A row here says
-- that a digest's chunks were being written, and since when, so that the collector leaves
-- them alone for a while (see `packages`); rows are removed by that collector.
CREATE TABLE IF NOT EXISTS package_writes (
    digest TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS package_writes_by_age ON package_writes (started_at);
