-- Real-world feeds (issue 9): a post read from a malformed document by the recovery
-- pass is marked, so that `posts show` can say so and a strictly parsed copy of the
-- same entry is never overwritten by a recovered one.

ALTER TABLE posts ADD COLUMN recovered INTEGER NOT NULL DEFAULT 0;
