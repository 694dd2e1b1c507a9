-- pg_erasure's own tables. Nothing here holds a subject's personal data: subjects are kept as
-- salted hashes, reports and the ledger hold table names, row keys, counts and dates.

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'erasure_admin') THEN
        CREATE ROLE erasure_admin NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'erasure_app') THEN
        CREATE ROLE erasure_app NOLOGIN;
    END IF;
END
$roles$;
COMMENT ON ROLE erasure_admin IS 'pg_erasure: installs rule modules, places legal holds, loads the data map';
COMMENT ON ROLE erasure_app IS 'pg_erasure: files erasure requests, reads their status, answers Meta callbacks';

CREATE TABLE erasure.settings (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- Salts subject hashes so the audit trail cannot be reversed by hashing every phone number.
    subject_salt text NOT NULL DEFAULT (gen_random_uuid()::text || gen_random_uuid()::text)
);
INSERT INTO erasure.settings DEFAULT VALUES;
COMMENT ON TABLE erasure.settings IS 'pg_erasure: installation-wide settings (one row)';

CREATE TABLE erasure.data_map (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    map         jsonb NOT NULL,
    loaded_at   timestamptz NOT NULL DEFAULT now(),
    loaded_by   name NOT NULL DEFAULT session_user,
    active      boolean NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX data_map_one_active ON erasure.data_map (active) WHERE active;
COMMENT ON TABLE erasure.data_map IS 'pg_erasure: every data map loaded with load_data_map(); the active one drives erasures';

CREATE TABLE erasure.modules (
    sha256       text PRIMARY KEY,
    slot         text NOT NULL CHECK (slot IN ('retention', 'legal_hold')),
    wasm         bytea NOT NULL,
    precompiled  bytea NOT NULL,
    config       jsonb NOT NULL DEFAULT '{}',
    size_bytes   integer NOT NULL,
    installed_by name NOT NULL DEFAULT session_user,
    installed_at timestamptz NOT NULL DEFAULT now(),
    active       boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX modules_one_active_per_slot ON erasure.modules (slot) WHERE active;
COMMENT ON TABLE erasure.modules IS 'pg_erasure: installed rule modules (wasm, its precompiled form, config); one active per slot';

-- An enum, not a CHECK: PostgreSQL re-reads and plans a CHECK expression in every INSERT
-- statement (about 7 us each here), while the enum's literal is resolved when the statement is
-- prepared.
CREATE TYPE erasure.request_state AS ENUM ('completed', 'failed');
COMMENT ON TYPE erasure.request_state IS 'pg_erasure: how an erasure request ended';

CREATE TABLE erasure.requests (
    id                bigint PRIMARY KEY,
    confirmation_code text NOT NULL UNIQUE,
    status            erasure.request_state NOT NULL,
    subject_kind      text,
    subject_hash      text,
    org_id            bigint,
    source            text NOT NULL,
    requested_at      timestamptz NOT NULL,
    -- The promises of the data-deletion page: acknowledged within 7 days, done within 30.
    acknowledge_by    timestamptz NOT NULL,
    complete_by       timestamptz NOT NULL,
    completed_at      timestamptz,
    -- Encrypted backups holding the erased rows are rotated out within 30 days.
    backups_purged_by timestamptz,
    error_code        text,
    error_message     text,
    report            jsonb,
    -- Records decided and their verdicts (JSON bytes; no personal data), for replaying a
    -- candidate rule module against past requests.
    decision_log      bytea
);
CREATE INDEX requests_subject_hash ON erasure.requests (subject_hash);
CREATE SEQUENCE erasure.requests_id_seq OWNED BY erasure.requests.id;
-- A completed request's row (report and decision log, ~3 kB) is compressed on insert: lz4
-- takes about half of pglz's time for the same size. Servers built without lz4 keep pglz.
DO $$
BEGIN
    ALTER TABLE erasure.requests ALTER COLUMN report SET COMPRESSION lz4,
                                 ALTER COLUMN decision_log SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END
$$;
COMMENT ON TABLE erasure.requests IS 'pg_erasure: every erasure request, completed or failed; subjects only as salted hashes';

-- Kept rows with the same verdict share a chunk row: recording and purging cost one ledger row
-- per chunk of up to 1000 keys (LEDGER_CHUNK_KEYS), not one per kept row.
CREATE TABLE erasure.ledger_chunks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id    bigint NOT NULL,
    table_name    text NOT NULL,
    row_keys      bigint[] NOT NULL CHECK (cardinality(row_keys) BETWEEN 1 AND 1000),
    -- Kept rows in the chunk, so counting and batching never read (detoast) the keys.
    row_count     integer GENERATED ALWAYS AS (cardinality(row_keys)) STORED,
    action        text NOT NULL CHECK (action IN ('retained', 'anonymized', 'held')),
    until         timestamptz,
    basis         text,
    module_sha256 text NOT NULL,
    case_ref      text,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
-- purge_due() walks each table's due chunks in (until, id) order: until <= now(), or NULL for
-- rows only a hold kept.
CREATE INDEX ledger_chunks_due ON erasure.ledger_chunks (table_name, until, id);
CREATE INDEX ledger_chunks_request ON erasure.ledger_chunks (request_id);
COMMENT ON TABLE erasure.ledger_chunks IS 'pg_erasure: rows kept after an erasure, stored as chunks of keys sharing one verdict (action, until, basis, module, case); erasure.ledger shows them one per row';

CREATE VIEW erasure.ledger AS
SELECT c.id AS chunk_id, c.request_id, c.table_name, k.row_key, c.action, c.until, c.basis,
       c.module_sha256, c.case_ref, c.recorded_at
  FROM erasure.ledger_chunks c
 CROSS JOIN LATERAL unnest(c.row_keys) AS k(row_key);
COMMENT ON VIEW erasure.ledger IS 'pg_erasure: rows kept after an erasure (retained, anonymised or held), one per row: until when, on what basis, decided by which module';

CREATE TABLE erasure.storage_outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id   bigint NOT NULL,
    table_name   text NOT NULL,
    object_key   text NOT NULL,
    enqueued_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);
CREATE INDEX storage_outbox_pending ON erasure.storage_outbox (id) WHERE deleted_at IS NULL;
COMMENT ON TABLE erasure.storage_outbox IS 'pg_erasure: objects outside the database (media files) to delete, written in the erasure''s transaction';

CREATE TABLE erasure.legal_holds (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject_kind text NOT NULL,
    subject_hash text NOT NULL,
    org_id       bigint,
    case_ref     text NOT NULL,
    categories   text[],
    placed_by    name NOT NULL DEFAULT session_user,
    placed_at    timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    released_at  timestamptz
);
CREATE INDEX legal_holds_subject ON erasure.legal_holds (subject_hash) WHERE released_at IS NULL;
COMMENT ON TABLE erasure.legal_holds IS 'pg_erasure: legal holds (preservation orders); an active hold keeps the covered data of its subject';

CREATE TABLE erasure.audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       name NOT NULL DEFAULT session_user,
    event       text NOT NULL,
    request_id  bigint,
    detail      jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE erasure.audit_log IS 'pg_erasure: what was done, by whom, when; counts and hashes, never personal data';
