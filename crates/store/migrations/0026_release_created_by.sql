-- Who made each release (the actor of its release_created event: a token, a webhook's
-- push, or the system), for the dashboard's and the CLI's release lists.
ALTER TABLE releases ADD COLUMN created_by text;
UPDATE releases r SET created_by = e.actor
    FROM events e
    WHERE e.kind = 'release_created' AND (e.payload->>'release_id')::uuid = r.id;
UPDATE releases SET created_by = 'system' WHERE created_by IS NULL;
ALTER TABLE releases ALTER COLUMN created_by SET NOT NULL;
