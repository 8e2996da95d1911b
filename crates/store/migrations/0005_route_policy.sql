-- How the edge treats a route's traffic (zeitwork_core::RoutePolicy as JSON); '{}' is
-- the platform default, which is what routes created before policies existed get.
ALTER TABLE routes ADD COLUMN policy jsonb NOT NULL DEFAULT '{}';
