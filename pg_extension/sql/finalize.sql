-- Privileges, comments, and the default rule modules.

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA erasure FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA erasure FROM PUBLIC;
GRANT USAGE ON SCHEMA erasure TO erasure_admin, erasure_app;

GRANT EXECUTE ON FUNCTION
    erasure.request_erasure(text, bigint, text),
    erasure.preview_erasure(text, bigint),
    erasure.request_status(text)
TO erasure_app, erasure_admin;

GRANT EXECUTE ON FUNCTION
    erasure.install_module(text, bytea, jsonb),
    erasure.activate_module(text, text),
    erasure.install_default_modules(text),
    erasure.evaluate_module(text, text, bigint),
    erasure.replay_module(text, integer),
    erasure.place_hold(text, text, bigint, timestamptz),
    erasure.release_hold(bigint),
    erasure.load_data_map(jsonb),
    erasure.reference_data_map(),
    erasure.explain_plan(text),
    erasure.purge_due(bigint)
TO erasure_admin;

-- One batch per transaction, so no lock outlives a batch (a procedure may COMMIT only when it
-- is neither SECURITY DEFINER nor has a SET clause: it runs as the caller, who needs EXECUTE
-- on purge_due, and names everything with its schema).
CREATE PROCEDURE erasure.purge_due_in_batches()
LANGUAGE plpgsql
AS $$
DECLARE
    step jsonb;
    purged bigint := 0;
    batches bigint := 0;
BEGIN
    LOOP
        -- A batch's commit need not wait for its WAL flush: ledger chunks and the rows they
        -- name go together, so a crash can only undo the last batches, which the next run
        -- purges again. (The caller's own transactions are not affected.)
        PERFORM pg_catalog.set_config('synchronous_commit', 'off', true);
        step := erasure.purge_due(1);
        purged := purged OPERATOR(pg_catalog.+) (step OPERATOR(pg_catalog.->>) 'purged')::bigint;
        batches := batches OPERATOR(pg_catalog.+) 1;
        COMMIT;
        EXIT WHEN (step OPERATOR(pg_catalog.->>) 'complete')::boolean;
        IF batches OPERATOR(pg_catalog.%) 10 = 0 THEN
            RAISE NOTICE 'purge_due_in_batches: % rows purged in % batches so far', purged, batches;
        END IF;
    END LOOP;
    RAISE NOTICE 'purge_due_in_batches: % rows purged in % batches', purged, batches;
END
$$;
REVOKE ALL ON PROCEDURE erasure.purge_due_in_batches() FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE erasure.purge_due_in_batches() TO erasure_admin;

-- Every request's context (salt, active map and modules, whether any hold is active) is cached
-- per backend; a write to any of its tables invalidates it everywhere.
CREATE FUNCTION erasure.context_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM erasure.invalidate_request_context(TG_RELID);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION erasure.context_changed() FROM PUBLIC;
CREATE TRIGGER context_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON erasure.settings
    FOR EACH STATEMENT EXECUTE FUNCTION erasure.context_changed();
CREATE TRIGGER context_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON erasure.data_map
    FOR EACH STATEMENT EXECUTE FUNCTION erasure.context_changed();
CREATE TRIGGER context_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON erasure.modules
    FOR EACH STATEMENT EXECUTE FUNCTION erasure.context_changed();
CREATE TRIGGER context_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON erasure.legal_holds
    FOR EACH STATEMENT EXECUTE FUNCTION erasure.context_changed();

GRANT SELECT ON erasure.requests, erasure.ledger, erasure.ledger_chunks, erasure.storage_outbox, erasure.legal_holds,
                erasure.audit_log, erasure.data_map TO erasure_admin;
GRANT SELECT (sha256, slot, config, size_bytes, installed_by, installed_at, active) ON erasure.modules TO erasure_admin;
-- The outbox is worked off by the application's media deleter, which marks what it deleted.
GRANT UPDATE (deleted_at) ON erasure.storage_outbox TO erasure_admin;

COMMENT ON FUNCTION erasure.request_erasure(text, bigint, text) IS
    'Erase a subject (user:<id>, contact:<id>, phone:<E.164>, email:<address>, meta:<id>, org:<id>) in this transaction; returns the report';
COMMENT ON FUNCTION erasure.preview_erasure(text, bigint) IS
    'The report request_erasure would return, changing nothing';
COMMENT ON FUNCTION erasure.request_status(text) IS
    'Status and deadlines of an erasure request, by confirmation code';
COMMENT ON FUNCTION erasure.purge_due(bigint) IS
    'Delete kept rows whose retention has ended and whose legal holds are lifted, in one transaction (at most max_batches batches when given)';
COMMENT ON PROCEDURE erasure.purge_due_in_batches() IS
    'purge_due one batch per transaction (CALL it, e.g. daily from pg_cron): no lock is held longer than a batch';
COMMENT ON FUNCTION erasure.install_module(text, bytea, jsonb) IS
    'Validate, compile and store a rule module (slot retention or legal_hold); returns its sha256';
COMMENT ON FUNCTION erasure.activate_module(text, text) IS
    'Make an installed module the active one of its slot; the previous one stays installed for rollback';
COMMENT ON FUNCTION erasure.install_default_modules(text) IS
    'Install and activate the shipped retention module (for eu-gdpr, in-dpdp or us-ccpa) and legal_hold module';
COMMENT ON FUNCTION erasure.evaluate_module(text, text, bigint) IS
    'Shadow evaluation: a candidate module''s outcome for a subject side by side with the active module''s; changes nothing';
COMMENT ON FUNCTION erasure.replay_module(text, integer) IS
    'Replay the decisions of the last N completed requests with a candidate module; counts what would change';
COMMENT ON FUNCTION erasure.place_hold(text, text, bigint, timestamptz) IS
    'Place a legal hold on a subject: erasures keep its data until release_hold or expiry';
COMMENT ON FUNCTION erasure.release_hold(bigint) IS
    'Release a legal hold';
COMMENT ON FUNCTION erasure.load_data_map(jsonb) IS
    'Validate a data map against the catalog and make it the active one';
COMMENT ON FUNCTION erasure.explain_plan(text) IS
    'The SQL an erasure of a subject kind runs under the active data map: root look-ups, then each step, children first, with its scope, the statement that erases (or detaches) its rows and the foreign keys it checks itself, then the one statement that checks them (delete_check)';
COMMENT ON FUNCTION erasure.invalidate_request_context(oid) IS
    'Drop every backend''s cached request context (called by the context_changed triggers)';
COMMENT ON FUNCTION erasure.context_changed() IS
    'Trigger: a write to settings, data_map, modules or legal_holds invalidates the cached request context';
COMMENT ON FUNCTION erasure.reference_data_map() IS
    'The data map of the reference WhatsApp CRM schema';

SELECT erasure.install_default_modules('eu-gdpr');
