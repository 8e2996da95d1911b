-- GeoDNS (docs/cluster.md, "DNS"): where each region is reached from outside (its load
-- balancers' or edges' public addresses) and which client networks it serves. Set whole by
-- `region_addresses_set`; `zeitwork server dns` answers from them.
ALTER TABLE regions
    ADD COLUMN addresses text[] NOT NULL DEFAULT '{}',
    ADD COLUMN client_networks text[] NOT NULL DEFAULT '{}';
