-- A join token enrolls new node names only, unless the platform admin named the one
-- existing node it may enroll again (replacing that node's credential).
ALTER TABLE join_tokens ADD COLUMN replaces text;
