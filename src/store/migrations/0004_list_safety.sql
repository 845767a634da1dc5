-- List safety (issue 16): a random nonce per subscriber for the links herald mails,
-- confirmation requests that expire and are used once, and a durable outbox for
-- transactional mail (confirmations), written in the transaction that asks for it.

ALTER TABLE subscribers ADD COLUMN token_nonce TEXT;
UPDATE subscribers SET token_nonce = lower(hex(randomblob(16))) WHERE token_nonce IS NULL;
-- Links without a nonce (v1) were mailed only to the subscribers that exist now; they
-- keep working for them and for nobody else.
INSERT INTO settings (key, value)
SELECT 'v1_tokens_up_to_id', CAST(coalesce(max(id), 0) AS TEXT) FROM subscribers;
-- Hard failures counted before refusals were classified by step (a 552 or a 500 "line
-- too long" counted against the address): start the count again.
UPDATE subscribers SET hard_failures = 0;
-- How often the relay refused an issue's messages wholesale: a resumed send of such an
-- issue stops at its first refusal instead of judging the list's tail alone.
ALTER TABLE issues ADD COLUMN relay_refusals INTEGER NOT NULL DEFAULT 0;
-- Per-request lookups by subscriber (tokens, sign-ups) read the subscriptions of one
-- subscriber; the primary key starts with the digest.
CREATE INDEX subscriptions_by_subscriber ON subscriptions (subscriber_id, digest);

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
