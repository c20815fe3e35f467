-- Keys, the audit log and the master key check value. Changes to keys that
-- matter to a verifier are announced on the channel signet_keys, so that
-- every instance drops them from its cache.

CREATE TABLE signet_keys (
	id          text PRIMARY KEY,
	owner       text NOT NULL,
	alg         text NOT NULL,
	scopes      text[] NOT NULL DEFAULT '{}',
	label       text NOT NULL DEFAULT '',
	created     timestamptz NOT NULL,
	expires     timestamptz,
	revoked     timestamptz,
	last_used   timestamptz,
	predecessor text NOT NULL DEFAULT '',
	successor   text NOT NULL DEFAULT '',
	public_key  text,   -- PEM (SPKI), asymmetric keys
	secret      bytea,  -- sealed HMAC secret
	version     bigint NOT NULL DEFAULT 1,
	CHECK ((public_key IS NULL) <> (secret IS NULL))
);

CREATE INDEX signet_keys_owner ON signet_keys (owner, created);

CREATE TABLE signet_audit (
	id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at     timestamptz NOT NULL,
	actor  text NOT NULL,
	action text NOT NULL,
	key_id text NOT NULL DEFAULT '',
	detail text NOT NULL DEFAULT ''
);

CREATE INDEX signet_audit_key ON signet_audit (key_id, id);

CREATE FUNCTION signet_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'signet_audit is append-only';
END
$$;

CREATE TRIGGER signet_audit_append_only BEFORE UPDATE OR DELETE ON signet_audit
	FOR EACH ROW EXECUTE FUNCTION signet_audit_append_only();

CREATE TRIGGER signet_audit_no_truncate BEFORE TRUNCATE ON signet_audit
	FOR EACH STATEMENT EXECUTE FUNCTION signet_audit_append_only();

CREATE TABLE signet_meta (
	name  text PRIMARY KEY,
	value bytea NOT NULL
);

-- NOTIFY is sent on commit, and only then, so a listener that hears of a
-- key reads it changed. Last-used times and re-sealed secrets do not count.
CREATE FUNCTION signet_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		PERFORM pg_notify('signet_keys', '*');
	ELSIF TG_OP = 'DELETE' THEN
		PERFORM pg_notify('signet_keys', OLD.id);
	ELSIF TG_OP = 'INSERT' THEN
		PERFORM pg_notify('signet_keys', NEW.id);
	ELSIF (to_jsonb(OLD) - 'last_used' - 'secret') IS DISTINCT FROM (to_jsonb(NEW) - 'last_used' - 'secret') THEN
		PERFORM pg_notify('signet_keys', OLD.id);
		IF NEW.id IS DISTINCT FROM OLD.id THEN
			PERFORM pg_notify('signet_keys', NEW.id);
		END IF;
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER signet_keys_notify AFTER INSERT OR UPDATE OR DELETE ON signet_keys
	FOR EACH ROW EXECUTE FUNCTION signet_keys_notify();

CREATE TRIGGER signet_keys_notify_truncate AFTER TRUNCATE ON signet_keys
	FOR EACH STATEMENT EXECUTE FUNCTION signet_keys_notify();
