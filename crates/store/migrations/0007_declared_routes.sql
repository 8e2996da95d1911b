-- Routes declared in a release's zeitwork.toml ([[routes]]), applied by every deploy or
-- rollback of the env; the others were made through the API and are left alone.
ALTER TABLE routes ADD COLUMN declared boolean NOT NULL DEFAULT false;
