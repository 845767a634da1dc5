-- Scale (issue 14): an index under every lookup and cascade path, and counts kept as
-- rows change, so that /metrics and /healthz never count a large table.

-- Deleting a subscriber cascades into the ledger: without this, every removal scanned
-- every delivery ever recorded.
CREATE INDEX deliveries_by_subscriber ON deliveries (subscriber_id);
-- `subscribers list --status` and the per-status counts.
CREATE INDEX subscribers_by_status ON subscribers (status);

-- Rows per (table, status), kept by the triggers below and, for the deliveries an issue
-- queues in bulk, by the transaction that queues them (one trigger run per queued row
-- would double the cost of creating an issue for a million subscribers).
CREATE TABLE tallies (
    name   TEXT    NOT NULL,                      -- subscribers | deliveries | posts
    status TEXT    NOT NULL,                      -- '' for posts
    n      INTEGER NOT NULL,
    PRIMARY KEY (name, status)
) WITHOUT ROWID;

INSERT INTO tallies (name, status, n)
SELECT 'subscribers', status, count(*) FROM subscribers GROUP BY status;
INSERT INTO tallies (name, status, n)
SELECT 'deliveries', status, count(*) FROM deliveries GROUP BY status;
INSERT INTO tallies (name, status, n) SELECT 'posts', '', count(*) FROM posts;

CREATE TRIGGER subscribers_tally_insert AFTER INSERT ON subscribers BEGIN
    INSERT INTO tallies (name, status, n) VALUES ('subscribers', NEW.status, 1)
    ON CONFLICT (name, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER subscribers_tally_delete AFTER DELETE ON subscribers BEGIN
    UPDATE tallies SET n = n - 1 WHERE name = 'subscribers' AND status = OLD.status;
END;
CREATE TRIGGER subscribers_tally_update AFTER UPDATE OF status ON subscribers
WHEN OLD.status <> NEW.status BEGIN
    UPDATE tallies SET n = n - 1 WHERE name = 'subscribers' AND status = OLD.status;
    INSERT INTO tallies (name, status, n) VALUES ('subscribers', NEW.status, 1)
    ON CONFLICT (name, status) DO UPDATE SET n = n + 1;
END;

-- Inserts into deliveries are counted by `create_issue`, the only place that writes them.
CREATE TRIGGER deliveries_tally_delete AFTER DELETE ON deliveries BEGIN
    UPDATE tallies SET n = n - 1 WHERE name = 'deliveries' AND status = OLD.status;
END;
CREATE TRIGGER deliveries_tally_update AFTER UPDATE OF status ON deliveries
WHEN OLD.status <> NEW.status BEGIN
    UPDATE tallies SET n = n - 1 WHERE name = 'deliveries' AND status = OLD.status;
    INSERT INTO tallies (name, status, n) VALUES ('deliveries', NEW.status, 1)
    ON CONFLICT (name, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER posts_tally_insert AFTER INSERT ON posts BEGIN
    INSERT INTO tallies (name, status, n) VALUES ('posts', '', 1)
    ON CONFLICT (name, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER posts_tally_delete AFTER DELETE ON posts BEGIN
    UPDATE tallies SET n = n - 1 WHERE name = 'posts' AND status = '';
END;
