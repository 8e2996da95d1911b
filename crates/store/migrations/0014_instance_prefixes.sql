-- Every node's instance /64, allocated by the control plane (zeitwork_core::ipam) in the
-- event that registers or enrolls it: unique, so two nodes' instances never share an
-- address. NULL for nodes enrolled by earlier builds until they enroll again.
ALTER TABLE nodes ADD COLUMN instance_prefix text CONSTRAINT nodes_instance_prefix_unique UNIQUE;
