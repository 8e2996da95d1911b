-- Build output shares the log pipeline of instance consoles: a line is an instance's
-- or a build's (then `process` is 'build'), never both. Bookkeeping like every log line.
ALTER TABLE log_lines ALTER COLUMN instance_id DROP NOT NULL;
ALTER TABLE log_lines ADD COLUMN build_id uuid;
ALTER TABLE log_lines ADD CONSTRAINT log_lines_one_source
    CHECK ((instance_id IS NULL) <> (build_id IS NULL));
CREATE INDEX log_lines_build ON log_lines (build_id, id) WHERE build_id IS NOT NULL;
