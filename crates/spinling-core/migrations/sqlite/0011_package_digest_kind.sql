-- Packages stored from now on are keyed by their BLAKE3 (several times faster than SHA-256
-- in wasm, where no SHA instructions reach the guest); those stored before keep their
-- SHA-256 key. An upload of bytes stored under their SHA-256 finds them by md5 and size and
-- takes that key (`Package::keyed_as_stored`): the same bytes never get two keys, so code
-- that did not change still compares equal, and is not stored twice.
ALTER TABLE packages ADD COLUMN digest_kind TEXT NOT NULL DEFAULT 'sha256';

CREATE INDEX IF NOT EXISTS packages_keyed_by_sha256 ON packages (md5, size)
    WHERE digest_kind = 'sha256';
