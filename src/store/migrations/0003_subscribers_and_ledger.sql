-- Subscribers, digest issues and the delivery ledger.

CREATE TABLE subscribers (
    id               INTEGER PRIMARY KEY,
    email            TEXT    NOT NULL,
    name             TEXT,
    status           TEXT    NOT NULL,              -- pending | confirmed | unsubscribed | bounced
    hard_failures    INTEGER NOT NULL DEFAULT 0,    -- permanent failures in a row
    created_at       TEXT    NOT NULL,
    confirmed_at     TEXT,
    unsubscribed_at  TEXT,
    bounced_at       TEXT
);
CREATE UNIQUE INDEX subscribers_by_email ON subscribers (email COLLATE NOCASE);

CREATE TABLE subscriptions (
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    digest        TEXT    NOT NULL,
    PRIMARY KEY (digest, subscriber_id)
);

-- One row per (digest, period): the unique key makes a period impossible to send twice.
CREATE TABLE issues (
    id           INTEGER PRIMARY KEY,
    digest       TEXT    NOT NULL,
    due_at       TEXT    NOT NULL,
    window_start TEXT,
    window_end   TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    post_ids     TEXT    NOT NULL,                  -- JSON array, in digest order
    status       TEXT    NOT NULL,                  -- sending | sent | empty
    created_at   TEXT    NOT NULL,
    finished_at  TEXT,
    UNIQUE (digest, due_at)
);

-- The ledger: one row per (issue, subscriber), written in the issue's transaction.
CREATE TABLE deliveries (
    issue_id        INTEGER NOT NULL REFERENCES issues (id),
    subscriber_id   INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    status          TEXT    NOT NULL,               -- queued | sent | deferred | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_reply      TEXT,
    message_id      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    PRIMARY KEY (issue_id, subscriber_id)
);
CREATE INDEX deliveries_to_send ON deliveries (issue_id, status, subscriber_id);

-- Small values herald generates and must keep (e.g. the signing secret when
-- HERALD_SECRET is not set).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
