-- The article index: the permanent id minted for each slug the first time herald saw it.
-- Times are Unix milliseconds (UTC), integers on every backend.
CREATE TABLE articles (
    slug          TEXT    NOT NULL PRIMARY KEY,
    id            TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    first_seen_ms BIGINT  NOT NULL,
    content_hash  TEXT    NOT NULL,
    changed_ms    BIGINT  NOT NULL
);

-- One permanent id per feed (the publication, each tag), minted at first build.
CREATE TABLE feeds (
    key        TEXT   NOT NULL PRIMARY KEY,
    id         TEXT   NOT NULL,
    created_ms BIGINT NOT NULL
);

-- Small named values herald keeps for itself (a generated signing secret, ...).
CREATE TABLE settings (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
