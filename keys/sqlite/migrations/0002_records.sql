-- Richer key records (disabled keys, metadata, rate limits, budgets of
-- uses), pages of keys in creation order, and usage counts per key and
-- hour.

ALTER TABLE signet_keys ADD COLUMN disabled INTEGER;
ALTER TABLE signet_keys ADD COLUMN metadata TEXT NOT NULL DEFAULT '';   -- canonical JSON object; '' none
ALTER TABLE signet_keys ADD COLUMN rate TEXT NOT NULL DEFAULT '';       -- e.g. '100/s'; '' none
ALTER TABLE signet_keys ADD COLUMN burst INTEGER NOT NULL DEFAULT 0;
ALTER TABLE signet_keys ADD COLUMN uses_remaining INTEGER CHECK (uses_remaining >= 0);  -- NULL: no budget
ALTER TABLE signet_keys ADD COLUMN uses_refill TEXT NOT NULL DEFAULT '';
ALTER TABLE signet_keys ADD COLUMN uses_refilled INTEGER;
ALTER TABLE signet_keys ADD COLUMN uses_set INTEGER;

CREATE INDEX signet_keys_created ON signet_keys (created, id);

-- Spending uses (uses_remaining, uses_refilled) is no change to a verifier,
-- like last_used and secret.
DROP TRIGGER signet_keys_updated;
CREATE TRIGGER signet_keys_updated AFTER UPDATE ON signet_keys
WHEN OLD.id IS NOT NEW.id OR OLD.owner IS NOT NEW.owner OR OLD.alg IS NOT NEW.alg
	OR OLD.scopes IS NOT NEW.scopes OR OLD.label IS NOT NEW.label
	OR OLD.expires IS NOT NEW.expires OR OLD.revoked IS NOT NEW.revoked
	OR OLD.successor IS NOT NEW.successor OR OLD.public_key IS NOT NEW.public_key
	OR OLD.version IS NOT NEW.version OR OLD.disabled IS NOT NEW.disabled
	OR OLD.metadata IS NOT NEW.metadata OR OLD.rate IS NOT NEW.rate OR OLD.burst IS NOT NEW.burst
	OR OLD.uses_refill IS NOT NEW.uses_refill OR OLD.uses_set IS NOT NEW.uses_set
BEGIN
	INSERT INTO signet_key_changes (key_id) VALUES (OLD.id);
	INSERT INTO signet_key_changes (key_id) SELECT NEW.id WHERE NEW.id IS NOT OLD.id;
	DELETE FROM signet_key_changes WHERE seq <= (SELECT max(seq) FROM signet_key_changes) - 1000;
END;

-- Requests per key, hour (Unix seconds of its start), route and outcome
-- ('' accepted, else the reason code of the refusal). Counts are added to,
-- never replaced.
CREATE TABLE signet_usage (
	key_id  TEXT NOT NULL,
	hour    INTEGER NOT NULL,
	route   TEXT NOT NULL,
	outcome TEXT NOT NULL,
	n       INTEGER NOT NULL,
	PRIMARY KEY (key_id, hour, route, outcome)
) STRICT, WITHOUT ROWID;

CREATE INDEX signet_usage_hour ON signet_usage (hour);

-- The batches of counts added in the last week, so that a batch given
-- again (its first write failed without saying whether it was done) is
-- added once.
CREATE TABLE signet_usage_batches (
	id TEXT PRIMARY KEY,
	at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX signet_usage_batches_at ON signet_usage_batches (at);
