-- List safety (issue 16): a random nonce per subscriber for the links herald mails,
-- confirmation requests that expire and are used once, and a durable outbox for
-- transactional mail (confirmations), written in the transaction that asks for it.

ALTER TABLE subscribers ADD COLUMN token_nonce TEXT;
UPDATE subscribers SET token_nonce = lower(hex(randomblob(16))) WHERE token_nonce IS NULL;

-- One row per sign-up: what it asks for, applied only when the mailbox confirms it.
CREATE TABLE confirmations (
    id            INTEGER PRIMARY KEY,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    nonce         TEXT    NOT NULL UNIQUE,          -- random; part of the confirm link
    name          TEXT,                             -- the name asked for (NULL: keep the stored one)
    digests       TEXT    NOT NULL,                 -- JSON array of the digests asked for
    created_at    TEXT    NOT NULL,
    expires_at    TEXT    NOT NULL,
    used_at       TEXT
);
CREATE INDEX confirmations_by_subscriber ON confirmations (subscriber_id);

-- Transactional mail, sent once like a delivery: marked sent only after the 250.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    kind            TEXT    NOT NULL,               -- confirm
    subscriber_id   INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    confirmation_id INTEGER REFERENCES confirmations (id) ON DELETE CASCADE,
    status          TEXT    NOT NULL,               -- queued | sending | sent | deferred | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_reply      TEXT,
    message_id      TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
);
CREATE INDEX outbox_to_send ON outbox (status, next_attempt_at);
CREATE INDEX outbox_by_subscriber ON outbox (subscriber_id);
CREATE INDEX outbox_by_confirmation ON outbox (confirmation_id);
