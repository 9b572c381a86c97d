-- When each feed file's bytes last changed: what `Last-Modified` says. Kept in the store, not
-- taken from file modification times, so it survives restarts and several instances sharing
-- one store agree on it. `entries` is how many entries the file holds (a build that finds no
-- articles while the last one published some keeps the previous feeds).
CREATE TABLE feed_files (
    path         TEXT    NOT NULL PRIMARY KEY,
    content_hash TEXT    NOT NULL,
    entries      BIGINT  NOT NULL,
    modified_ms  BIGINT  NOT NULL
);
