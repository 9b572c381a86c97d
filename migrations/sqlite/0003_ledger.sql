-- Issues of newsletters and the delivery ledger: one row per (issue, subscriber), the single
-- source of truth for what was sent.

CREATE TABLE issues (
    id            INTEGER PRIMARY KEY,
    newsletter_id TEXT    NOT NULL,
    scheduled_ms  BIGINT  NOT NULL,         -- the fire time (or the moment of a manual send)
    created_ms    BIGINT  NOT NULL,
    title         TEXT    NOT NULL,
    articles      TEXT    NOT NULL,         -- article ids, newline-separated
    content       TEXT    NOT NULL,         -- the rendered issue (JSON), with subscriber placeholders
    recipients    BIGINT  NOT NULL DEFAULT 0,
    manual        INTEGER NOT NULL DEFAULT 0,
    UNIQUE (newsletter_id, scheduled_ms)
);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    issue_id        BIGINT  NOT NULL REFERENCES issues (id),
    subscriber_id   BIGINT  NOT NULL,
    status          TEXT    NOT NULL,       -- queued|sending|sent|deferred|failed|skipped
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT  NOT NULL,
    locked_until_ms BIGINT,
    locked_by       TEXT,
    last_code       INTEGER,
    last_error      TEXT,
    sent_ms         BIGINT,
    UNIQUE (issue_id, subscriber_id)
);
-- The lease query reads only due rows; without this it scans the whole ledger.
CREATE INDEX deliveries_due ON deliveries (next_attempt_ms) WHERE status IN ('queued', 'deferred');
CREATE INDEX deliveries_in_flight ON deliveries (locked_until_ms) WHERE status = 'sending';
CREATE INDEX deliveries_by_issue ON deliveries (issue_id, status);

-- The last fire time each newsletter's scheduler dealt with (sent, skipped empty, or skipped late).
CREATE TABLE newsletter_state (
    newsletter_id TEXT   NOT NULL PRIMARY KEY,
    last_fire_ms  BIGINT NOT NULL
);

-- Sending processes, so the leases of one that died (kill -9) are taken back at once.
CREATE TABLE workers (
    id           TEXT   NOT NULL PRIMARY KEY,
    host         TEXT   NOT NULL,
    pid          BIGINT NOT NULL,
    started_ms   BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL
);
