-- The port a `tcp` route is reached on at every edge (allocated by the operator from its
-- range); NULL for routes reached by hostname. One route per port.
ALTER TABLE routes ADD COLUMN listen_port integer CONSTRAINT routes_listen_port_unique UNIQUE;
