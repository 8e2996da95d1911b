-- The WireGuard overlay between nodes (docs/architecture.md, "Overlay"): each node's public
-- key and UDP port (from its enrollment; the private key never leaves the node), and what
-- its last heartbeat said of each peer. Two nodes presenting one key are refused by the
-- enrollment (under the append lock) and, should the log hold them anyway, peered by no one.
ALTER TABLE nodes ADD COLUMN wireguard_key text, ADD COLUMN wireguard_port integer;
ALTER TABLE node_heartbeats ADD COLUMN overlay jsonb NOT NULL DEFAULT '[]';
