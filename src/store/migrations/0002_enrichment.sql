-- Enrichment: summaries, index terms, related posts.

ALTER TABLE posts ADD COLUMN summary TEXT;
ALTER TABLE posts ADD COLUMN summary_source TEXT;   -- feed | extract | whole
ALTER TABLE posts ADD COLUMN terms TEXT;            -- weighted index terms: "stem count stem count ..."
ALTER TABLE posts ADD COLUMN enriched_hash TEXT;    -- content_hash the summary and terms were computed from

CREATE TABLE related (
    post_id    INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    rank       INTEGER NOT NULL,                    -- 1 = most related
    related_id INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    score      REAL    NOT NULL,
    PRIMARY KEY (post_id, rank)
);

CREATE INDEX related_by_target ON related (related_id);
