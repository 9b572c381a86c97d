-- Subscribers, what each receives, and the confirmation emails queued for them.
-- (PostgreSQL: INTEGER PRIMARY KEY becomes BIGINT GENERATED ALWAYS AS IDENTITY.)
CREATE TABLE subscribers (
    id                  INTEGER PRIMARY KEY,
    email               TEXT    NOT NULL,
    email_key           TEXT    NOT NULL UNIQUE,   -- lower-cased: one row per mailbox
    name                TEXT    NOT NULL DEFAULT '',
    status              TEXT    NOT NULL,          -- pending|confirmed|unsubscribed|bounced|complained
    created_ms          BIGINT  NOT NULL,
    updated_ms          BIGINT  NOT NULL,
    -- consent evidence: when, from where, how
    consent_ms          BIGINT,
    consent_source      TEXT,
    consent_ip          TEXT,
    consent_user_agent  TEXT,
    confirmed_ms        BIGINT,
    unsubscribed_ms     BIGINT,
    -- the sign-up awaiting confirmation: its link's nonce and the newsletters asked for
    pending_nonce       TEXT,
    pending_since_ms    BIGINT,
    pending_newsletters TEXT    NOT NULL DEFAULT '',
    timezone            TEXT
);
CREATE INDEX subscribers_by_status ON subscribers (status, id);

CREATE TABLE subscriptions (
    subscriber_id BIGINT NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    newsletter_id TEXT   NOT NULL,
    created_ms    BIGINT NOT NULL,
    PRIMARY KEY (subscriber_id, newsletter_id)
);
CREATE INDEX subscriptions_by_newsletter ON subscriptions (newsletter_id, subscriber_id);

CREATE TABLE confirmation_mails (
    id              INTEGER PRIMARY KEY,
    subscriber_id   BIGINT  NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    email_key       TEXT    NOT NULL,
    nonce           TEXT    NOT NULL,
    status          TEXT    NOT NULL,           -- queued|sending|sent|failed|skipped
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_ms      BIGINT  NOT NULL,
    next_attempt_ms BIGINT  NOT NULL,
    locked_until_ms BIGINT,
    last_error      TEXT
);
CREATE INDEX confirmation_mails_due ON confirmation_mails (next_attempt_ms) WHERE status IN ('queued', 'sending');
CREATE INDEX confirmation_mails_by_address ON confirmation_mails (email_key, created_ms);
