-- Deliverability (issue 12): bounces and complaints that arrive after the send (DSNs,
-- ARF reports, provider webhooks), counted once per (delivery, outcome).

-- Soft bounces in a row (mailbox full, 4.x.x, delayed) and the delivery that counted
-- last, so that one delivery's "delayed" and "failed" count once; why the subscriber
-- is bounced or complained; when they complained.
ALTER TABLE subscribers ADD COLUMN soft_bounces       INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscribers ADD COLUMN last_soft_delivery TEXT;
ALTER TABLE subscribers ADD COLUMN status_reason      TEXT;
ALTER TABLE subscribers ADD COLUMN complained_at      TEXT;

-- One row per (delivery, subscriber, outcome): the key makes a report read twice, or a
-- webhook delivered twice, change nothing the second time. `delivery` is `issue:<id>`
-- for a digest, `outbox:<id>` for transactional mail, `message:<Message-ID>` when only
-- a provider's event names it.
CREATE TABLE mail_events (
    delivery      TEXT    NOT NULL,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    outcome       TEXT    NOT NULL,               -- failed | delayed | complained
    class         TEXT    NOT NULL,               -- hard | soft | message | policy | relay | complaint
    digest        TEXT,                           -- the digest the delivery belongs to
    source        TEXT    NOT NULL,               -- smtp | dsn | arf | mailgun | postmark
    detail        TEXT,
    received_at   TEXT    NOT NULL,
    PRIMARY KEY (delivery, subscriber_id, outcome)
) WITHOUT ROWID;
CREATE INDEX mail_events_by_subscriber ON mail_events (subscriber_id);

-- Bounces and complaints per (digest, class), kept as events are recorded, for /metrics.
CREATE TABLE event_tallies (
    digest TEXT    NOT NULL,                      -- '' for transactional mail
    class  TEXT    NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (digest, class)
) WITHOUT ROWID;

CREATE TRIGGER mail_events_tally_insert AFTER INSERT ON mail_events BEGIN
    INSERT INTO event_tallies (digest, class, n) VALUES (coalesce(NEW.digest, ''), NEW.class, 1)
    ON CONFLICT (digest, class) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER mail_events_tally_delete AFTER DELETE ON mail_events BEGIN
    UPDATE event_tallies SET n = n - 1 WHERE digest = coalesce(OLD.digest, '') AND class = OLD.class;
END;

-- Provider webhook signatures already accepted (Mailgun's token), for refusing replays.
CREATE TABLE webhook_seen (
    key     TEXT NOT NULL PRIMARY KEY,
    seen_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX webhook_seen_by_time ON webhook_seen (seen_at);
