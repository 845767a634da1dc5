-- Sources and the posts read from them. Timestamps are UTC text in one fixed format
-- (YYYY-MM-DDTHH:MM:SS.mmmZ) so that they sort as text.

CREATE TABLE sources (
    id                   INTEGER PRIMARY KEY,
    name                 TEXT    NOT NULL UNIQUE,
    url                  TEXT    NOT NULL,
    -- what the feed says about itself
    title                TEXT,
    site_url             TEXT,
    -- conditional GET validators of the last response whose posts were stored
    etag                 TEXT,
    last_modified        TEXT,
    last_checked_at      TEXT,
    last_success_at      TEXT,
    next_check_at        TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT,
    created_at           TEXT    NOT NULL
);

CREATE TABLE posts (
    id            INTEGER PRIMARY KEY,
    source_id     INTEGER NOT NULL REFERENCES sources (id),
    stable_id     TEXT    NOT NULL,
    url           TEXT,
    title         TEXT    NOT NULL,
    author        TEXT,
    tags          TEXT    NOT NULL DEFAULT '[]', -- JSON array of strings
    published_at  TEXT,                          -- as the source says; may be missing
    first_seen_at TEXT    NOT NULL,              -- digest windows are defined by this
    updated_at    TEXT    NOT NULL,              -- last time a changed version was stored
    html          TEXT    NOT NULL,              -- sanitized, absolute URLs; plain text is derived from it
    image         TEXT,
    feed_summary  TEXT,
    content_hash  TEXT    NOT NULL,
    UNIQUE (source_id, stable_id)
);

CREATE INDEX posts_by_first_seen ON posts (first_seen_at);
CREATE INDEX posts_by_date ON posts (coalesce(published_at, first_seen_at), id);
