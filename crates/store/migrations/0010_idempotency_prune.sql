-- Replay records are pruned by age (idempotency::prune) and never hold a secret: the
-- ones earlier builds kept for token creations held the token's secret in the clear.
DELETE FROM idempotency_keys WHERE body ? 'secret';
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
