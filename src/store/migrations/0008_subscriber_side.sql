-- The subscriber's side (issue 13): the public archive lists issues newest first,
-- across digests, a page at a time.
CREATE INDEX issues_by_due ON issues (due_at DESC, id DESC);
