-- Richer key records (disabled keys, metadata, rate limits, budgets of
-- uses), pages of keys in creation order, and usage counts per key and
-- hour.

ALTER TABLE signet_keys
	ADD COLUMN disabled       timestamptz,
	ADD COLUMN metadata       text NOT NULL DEFAULT '',  -- canonical JSON object; '' none
	ADD COLUMN rate           text NOT NULL DEFAULT '',  -- e.g. '100/s'; '' none
	ADD COLUMN burst          bigint NOT NULL DEFAULT 0,
	ADD COLUMN uses_remaining bigint CHECK (uses_remaining >= 0),  -- NULL: no budget
	ADD COLUMN uses_refill    text NOT NULL DEFAULT '',
	ADD COLUMN uses_refilled  timestamptz,
	ADD COLUMN uses_set       timestamptz;

CREATE INDEX signet_keys_created ON signet_keys (created, id);

-- Spending uses (uses_remaining, uses_refilled) is no change to a verifier,
-- like last_used and secret.
CREATE OR REPLACE FUNCTION signet_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		PERFORM pg_notify('signet_keys', '*');
	ELSIF TG_OP = 'DELETE' THEN
		PERFORM pg_notify('signet_keys', OLD.id);
	ELSIF TG_OP = 'INSERT' THEN
		PERFORM pg_notify('signet_keys', NEW.id);
	ELSIF (to_jsonb(OLD) - 'last_used' - 'secret' - 'uses_remaining' - 'uses_refilled')
		IS DISTINCT FROM (to_jsonb(NEW) - 'last_used' - 'secret' - 'uses_remaining' - 'uses_refilled') THEN
		PERFORM pg_notify('signet_keys', OLD.id);
		IF NEW.id IS DISTINCT FROM OLD.id THEN
			PERFORM pg_notify('signet_keys', NEW.id);
		END IF;
	END IF;
	RETURN NULL;
END
$$;

-- Requests per key, hour, route and outcome ('' accepted, else the reason
-- code of the refusal). Counts are added to, never replaced.
CREATE TABLE signet_usage (
	key_id  text NOT NULL,
	hour    timestamptz NOT NULL,
	route   text NOT NULL,
	outcome text NOT NULL,
	n       bigint NOT NULL,
	PRIMARY KEY (key_id, hour, route, outcome)
);

CREATE INDEX signet_usage_hour ON signet_usage (hour);

-- The batches of counts added in the last week, so that a batch given
-- again (its first write failed without saying whether it was done) is
-- added once.
CREATE TABLE signet_usage_batches (
	id text PRIMARY KEY,
	at timestamptz NOT NULL
);

CREATE INDEX signet_usage_batches_at ON signet_usage_batches (at);
