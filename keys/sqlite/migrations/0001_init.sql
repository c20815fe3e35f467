-- Keys, the audit log, the master key check value, and the log of key
-- changes that lets every process on the file drop changed keys from its
-- cache. Times are Unix microseconds.

CREATE TABLE signet_keys (
	id          TEXT PRIMARY KEY,
	owner       TEXT NOT NULL,
	alg         TEXT NOT NULL,
	scopes      TEXT NOT NULL DEFAULT '',  -- space-separated
	label       TEXT NOT NULL DEFAULT '',
	created     INTEGER NOT NULL,
	expires     INTEGER,
	revoked     INTEGER,
	last_used   INTEGER,
	predecessor TEXT NOT NULL DEFAULT '',
	successor   TEXT NOT NULL DEFAULT '',
	public_key  BLOB,                      -- PEM (SPKI), asymmetric keys
	secret      BLOB,                      -- sealed HMAC secret
	version     INTEGER NOT NULL DEFAULT 1,
	CHECK ((public_key IS NULL) <> (secret IS NULL))
) STRICT;

CREATE INDEX signet_keys_owner ON signet_keys (owner, created);

CREATE TABLE signet_audit (
	id     INTEGER PRIMARY KEY AUTOINCREMENT,
	at     INTEGER NOT NULL,
	actor  TEXT NOT NULL,
	action TEXT NOT NULL,
	key_id TEXT NOT NULL DEFAULT '',
	detail TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX signet_audit_key ON signet_audit (key_id, id);

CREATE TRIGGER signet_audit_no_update BEFORE UPDATE ON signet_audit
BEGIN
	SELECT RAISE(ABORT, 'signet_audit is append-only');
END;

CREATE TRIGGER signet_audit_no_delete BEFORE DELETE ON signet_audit
BEGIN
	SELECT RAISE(ABORT, 'signet_audit is append-only');
END;

CREATE TABLE signet_meta (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
) STRICT;

-- Every change to a key that matters to a verifier appends its id here, in
-- commit order; a watcher reads what is new when PRAGMA data_version moves.
-- Only the last 1000 changes are kept: a watcher that fell further behind
-- drops its whole cache. Last-used times and re-sealed secrets do not count.
CREATE TABLE signet_key_changes (
	seq    INTEGER PRIMARY KEY AUTOINCREMENT,
	key_id TEXT NOT NULL
) STRICT;

CREATE TRIGGER signet_keys_inserted AFTER INSERT ON signet_keys
BEGIN
	INSERT INTO signet_key_changes (key_id) VALUES (NEW.id);
	DELETE FROM signet_key_changes WHERE seq <= (SELECT max(seq) FROM signet_key_changes) - 1000;
END;

CREATE TRIGGER signet_keys_updated AFTER UPDATE ON signet_keys
WHEN OLD.id IS NOT NEW.id OR OLD.owner IS NOT NEW.owner OR OLD.alg IS NOT NEW.alg
	OR OLD.scopes IS NOT NEW.scopes OR OLD.label IS NOT NEW.label
	OR OLD.expires IS NOT NEW.expires OR OLD.revoked IS NOT NEW.revoked
	OR OLD.successor IS NOT NEW.successor OR OLD.public_key IS NOT NEW.public_key
	OR OLD.version IS NOT NEW.version
BEGIN
	INSERT INTO signet_key_changes (key_id) VALUES (OLD.id);
	INSERT INTO signet_key_changes (key_id) SELECT NEW.id WHERE NEW.id IS NOT OLD.id;
	DELETE FROM signet_key_changes WHERE seq <= (SELECT max(seq) FROM signet_key_changes) - 1000;
END;

CREATE TRIGGER signet_keys_deleted AFTER DELETE ON signet_keys
BEGIN
	INSERT INTO signet_key_changes (key_id) VALUES (OLD.id);
	DELETE FROM signet_key_changes WHERE seq <= (SELECT max(seq) FROM signet_key_changes) - 1000;
END;
