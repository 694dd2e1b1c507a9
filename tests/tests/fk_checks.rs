//! A person's erasure checks its foreign keys once per request instead of once per deleted row
//! (`erasure.batch_fk_checks`): never an orphan, the CRM's own triggers still fire, concurrent
//! writers are still refused, and REPEATABLE READ keeps PostgreSQL's own checks.

use std::time::Duration;

use erasure_tests::*;

/// A generated contact with a conversation whose first message has media: (contact,
/// conversation, org).
fn contact_with_media(db: &mut TestDb) -> (i64, i64, i64) {
    let row = db
        .client
        .query_one(
            "SELECT v.contact_id, v.id, v.org_id FROM conversations v
               JOIN messages m ON m.conversation_id = v.id
               JOIN media d ON d.message_id = m.id
              ORDER BY v.contact_id LIMIT 1",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// Erases the contact, which must complete.
fn erase_completed(db: &mut TestDb, contact: i64) {
    let report = db.json(
        "SELECT erasure.request_erasure($1)",
        &[&format!("contact:{contact}")],
    );
    assert_eq!(report["status"], "completed", "{report:#}");
}

/// Rows of any CRM table that reference a row that no longer exists.
fn orphans(db: &mut TestDb) -> i64 {
    db.count(
        "SELECT (SELECT count(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM conversations v WHERE v.id = m.conversation_id))
              + (SELECT count(*) FROM media d WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = d.message_id))
              + (SELECT count(*) FROM conversations v WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = v.contact_id))
              + (SELECT count(*) FROM ai_logs a WHERE a.conversation_id IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM conversations v WHERE v.id = a.conversation_id))",
        &[],
    )
}

/// A CRM trigger that puts a row back under its parent whenever one is deleted from `table`
/// (linked through `column`): a step after it meets a row that references what it deletes.
fn copy_trigger(table: &str, column: &str, values: &str) -> String {
    format!(
        "CREATE FUNCTION public.keep_{table}_copy() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO public.{table} (org_id, {column}, {values}) SELECT OLD.org_id, OLD.{column}, {values}
               FROM (SELECT (OLD).*) o;
             RETURN OLD;
         END $$;
         CREATE TRIGGER keep_copy AFTER DELETE ON public.{table}
             FOR EACH ROW WHEN (pg_trigger_depth() < 2) EXECUTE FUNCTION public.keep_{table}_copy();"
    )
}

/// Requests whose rows are not CRM rows: the fingerprint without the request log.
fn crm_fingerprint(db: &mut TestDb) -> Vec<(String, String)> {
    db.fingerprint()
        .into_iter()
        .filter(|(t, _)| t != "erasure.requests" && t != "erasure.audit_log")
        .collect()
}

/// Erasing `subject` fails on the engine's own check, with a message naming `child`, `parent`
/// and `constraint`: recorded as failed, no CRM row changed. With `erasure.batch_fk_checks`
/// off, PostgreSQL's own per-row check fails it instead (which shows the engine's check
/// replaced PostgreSQL's: that one would otherwise have fired first, with its own message).
fn refused_by_the_engines_check(
    db: &mut TestDb,
    subject: &str,
    (child, parent, constraint): (&str, &str, &str),
) {
    let before = crm_fingerprint(db);
    let msg = assert_sqlstate(
        db.client
            .query("SELECT erasure.request_erasure($1)", &[&subject]),
        "23503",
    );
    assert!(
        msg.contains(&format!("rows of {child} still reference rows of {parent}"))
            && msg.contains(constraint),
        "{msg}"
    );
    let id = last_request_id(db);
    assert_eq!(
        wait_for_failed_request(db, id),
        Some(("failed".into(), "23503".into()))
    );
    assert_eq!(
        crm_fingerprint(db),
        before,
        "a failed request changes no CRM row"
    );
    db.client
        .batch_execute("SET erasure.batch_fk_checks = off")
        .unwrap();
    let msg = assert_sqlstate(
        db.client
            .query("SELECT erasure.request_erasure($1)", &[&subject]),
        "23503",
    );
    assert!(msg.contains("violates foreign key constraint"), "{msg}");
    db.client
        .batch_execute("RESET erasure.batch_fk_checks")
        .unwrap();
}

#[test]
fn a_row_that_appears_under_a_deleted_parent_fails_the_request_and_erases_nothing() {
    let mut db = TestDb::new("fk_reappearing_child");
    // A user's plan runs children first (it detaches rows): team memberships go before the
    // user, and the trigger puts one back.
    let user: i64 = db
        .client
        .query_one("SELECT min(user_id) FROM team_memberships", &[])
        .unwrap()
        .get(0);
    db.client
        .batch_execute(&copy_trigger("team_memberships", "user_id", "role"))
        .unwrap();
    let subject = format!("user:{user}");
    // The engine's own check finds it; with the setting off PostgreSQL's does.
    refused_by_the_engines_check(
        &mut db,
        &subject,
        ("team_memberships", "users", "team_memberships_user_id_fkey"),
    );

    // Under REPEATABLE READ, PostgreSQL checks per row as usual.
    let mut tx = db
        .client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .start()
        .unwrap();
    let err = tx
        .query("SELECT erasure.request_erasure($1)", &[&subject])
        .unwrap_err();
    let db_err = err.as_db_error().unwrap();
    assert_eq!(db_err.code().code(), "23503");
    assert!(
        db_err.message().contains("violates foreign key constraint"),
        "{}",
        db_err.message()
    );
    drop(tx);

    // A contact's plan runs parents first: a media row put back under a message that is
    // already gone fails its own foreign-key check at once.
    let (contact, _, _) = contact_with_media(&mut db);
    db.client
        .batch_execute(&copy_trigger("media", "message_id", "kind, storage_key"))
        .unwrap();
    let msg = assert_sqlstate(
        db.client.query(
            "SELECT erasure.request_erasure($1)",
            &[&format!("contact:{contact}")],
        ),
        "23503",
    );
    assert!(
        msg.contains("insert or update on table \"media\" violates foreign key constraint"),
        "{msg}"
    );

    // Without the triggers both requests complete, leaving no orphan.
    db.client
        .batch_execute(
            "DROP TRIGGER keep_copy ON team_memberships; DROP TRIGGER keep_copy ON media",
        )
        .unwrap();
    let report = db.json("SELECT erasure.request_erasure($1)", &[&subject]);
    assert_eq!(report["status"], "completed", "{report:#}");
    erase_completed(&mut db, contact);
    assert_eq!(orphans(&mut db), 0);
    assert_eq!(
        db.count(
            "SELECT count(*) FROM team_memberships WHERE user_id = $1",
            &[&user]
        ),
        0
    );
}

#[test]
fn the_crms_own_triggers_still_fire_on_every_deleted_row() {
    let mut db = TestDb::new("fk_crm_triggers");
    let (contact, conversation, _) = contact_with_media(&mut db);
    db.client
        .batch_execute(
            "CREATE TABLE public.deletion_log (tbl text, id bigint, phase text);
             CREATE FUNCTION public.log_deletion() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 INSERT INTO public.deletion_log VALUES (TG_TABLE_NAME, OLD.id, TG_WHEN);
                 RETURN OLD;
             END $$;
             CREATE TRIGGER log_before BEFORE DELETE ON conversations
                 FOR EACH ROW EXECUTE FUNCTION public.log_deletion();
             CREATE TRIGGER log_after AFTER DELETE ON conversations
                 FOR EACH ROW EXECUTE FUNCTION public.log_deletion();
             CREATE TRIGGER log_after AFTER DELETE ON messages
                 FOR EACH ROW EXECUTE FUNCTION public.log_deletion();",
        )
        .unwrap();
    let messages = db.count(
        "SELECT count(*) FROM messages m JOIN conversations v ON v.id = m.conversation_id WHERE v.contact_id = $1",
        &[&contact],
    );
    let conversations = db.count(
        "SELECT count(*) FROM conversations WHERE contact_id = $1",
        &[&contact],
    );
    erase_completed(&mut db, contact);
    assert_eq!(
        db.count(
            "SELECT count(*) FROM deletion_log WHERE tbl = 'messages' AND phase = 'AFTER'",
            &[]
        ),
        messages
    );
    for phase in ["BEFORE", "AFTER"] {
        assert_eq!(
            db.count(
                "SELECT count(*) FROM deletion_log WHERE tbl = 'conversations' AND phase = $1",
                &[&phase]
            ),
            conversations,
            "{phase}"
        );
    }
    assert_eq!(
        db.count(
            "SELECT count(*) FROM deletion_log WHERE tbl = 'conversations' AND id = $1",
            &[&conversation]
        ),
        2
    );
    assert_eq!(orphans(&mut db), 0);
}

/// Whether the backend `pid` is waiting for a lock; polls up to 10 s.
fn waits_for_lock(db: &mut TestDb, pid: i32) -> bool {
    for _ in 0..100 {
        let waiting = db.count(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
            &[&pid],
        );
        if waiting > 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn insert_message(
    c: &mut impl postgres::GenericClient,
    org: i64,
    conversation: i64,
) -> Result<u64, postgres::Error> {
    c.execute(
        "INSERT INTO messages (org_id, conversation_id, body) VALUES ($1, $2, 'late message')",
        &[&org, &conversation],
    )
}

#[test]
fn a_writer_after_the_erasure_waits_for_it_and_is_refused() {
    let mut db = TestDb::new("fk_writer_after");
    let (contact, conversation, org) = contact_with_media(&mut db);
    let mut eraser = connect(&db.name);
    let mut tx = eraser.transaction().unwrap();
    let report: serde_json::Value = tx
        .query_one(
            "SELECT erasure.request_erasure($1)",
            &[&format!("contact:{contact}")],
        )
        .unwrap()
        .get(0);
    assert_eq!(report["status"], "completed");

    let name = db.name.clone();
    let (pid_tx, pid_rx) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        let mut w = connect(&name);
        let pid: i32 = w.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
        pid_tx.send(pid).unwrap();
        insert_message(&mut w, org, conversation).map_err(|e| e.code().map(|c| c.code().to_owned()))
    });
    let pid = pid_rx.recv().unwrap();
    assert!(
        waits_for_lock(&mut db, pid),
        "the writer must wait for the erasure"
    );
    tx.commit().unwrap();
    let outcome = writer.join().unwrap();
    assert_eq!(outcome, Err(Some("23503".to_owned())), "{outcome:?}");
    assert_eq!(orphans(&mut db), 0);
}

#[test]
fn a_writer_before_the_erasure_makes_it_wait_and_its_row_is_erased_too() {
    let mut db = TestDb::new("fk_writer_before");
    let (contact, conversation, org) = contact_with_media(&mut db);
    let mut writer = connect(&db.name);
    let mut wtx = writer.transaction().unwrap();
    insert_message(&mut wtx, org, conversation).unwrap();

    let name = db.name.clone();
    let subject = format!("contact:{contact}");
    let (pid_tx, pid_rx) = std::sync::mpsc::channel();
    let eraser = std::thread::spawn(move || {
        let mut e = connect(&name);
        let pid: i32 = e.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
        pid_tx.send(pid).unwrap();
        e.query_one("SELECT erasure.request_erasure($1)", &[&subject])
            .map(|r| r.get::<_, serde_json::Value>(0))
            .map_err(|e| {
                let db = e.as_db_error().unwrap();
                (db.code().code().to_owned(), db.message().to_owned())
            })
    });
    let pid = pid_rx.recv().unwrap();
    assert!(
        waits_for_lock(&mut db, pid),
        "the erasure must wait for the writer"
    );
    wtx.commit().unwrap();
    // The erasure ran parents first: it deleted the conversation once the writer committed,
    // then the conversation's messages with a snapshot that sees the late one.
    let report = eraser.join().unwrap().unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(report["status"], "completed", "{report:#}");
    assert_eq!(
        db.count(
            "SELECT count(*) FROM messages WHERE conversation_id = $1",
            &[&conversation]
        ),
        0
    );
    assert_eq!(
        db.count("SELECT count(*) FROM contacts WHERE id = $1", &[&contact]),
        0
    );
    assert_eq!(orphans(&mut db), 0);
}

#[test]
fn an_organization_checks_its_deleted_keys_against_every_other_organization() {
    let mut db = TestDb::new("fk_org_cross_tenant");
    // A media row of another organization that points at a message of organization 2:
    // nothing in organization 2's plan deletes it, so erasing 2 must fail rather than
    // orphan it.
    let other: i64 = db
        .client
        .query_one("SELECT min(org_id) FROM messages WHERE org_id <> 2", &[])
        .unwrap()
        .get(0);
    db.client
        .execute(
            "INSERT INTO media (org_id, message_id, kind, storage_key)
             SELECT $1, min(m.id), 'image', 'cross-tenant' FROM messages m WHERE m.org_id = 2",
            &[&other],
        )
        .unwrap();
    // The engine's own check, over the keys the steps recorded, finds it; with the setting
    // off PostgreSQL's does.
    refused_by_the_engines_check(
        &mut db,
        "org:2",
        ("media", "messages", "media_message_id_fkey"),
    );

    // Without the stray row the erasure completes, leaves no orphan, and the keys it
    // recorded are gone with its commit.
    db.client
        .batch_execute("DELETE FROM media WHERE storage_key = 'cross-tenant'")
        .unwrap();
    let report = db.json("SELECT erasure.request_erasure('org:2')", &[]);
    assert_eq!(report["status"], "completed", "{report:#}");
    assert!(
        report["totals"]["erased"].as_i64().unwrap() > 0,
        "{report:#}"
    );
    assert_eq!(orphans(&mut db), 0);
    assert_eq!(
        db.count("SELECT count(*) FROM messages WHERE org_id = 2", &[]),
        0
    );
    assert_eq!(
        db.count("SELECT count(*) FROM pg_temp.erasure_deleted_keys", &[]),
        0
    );
    // Two new organizations erased in one transaction: the second checks its own keys.
    db.client
        .batch_execute("SELECT public.crm_generate(2, 5)")
        .unwrap();
    let orgs: Vec<i64> = db
        .client
        .query(
            "SELECT id FROM organizations WHERE id NOT IN (2, $1) ORDER BY id",
            &[&other],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(orgs.len(), 2, "{orgs:?}");
    let mut tx = db.client.transaction().unwrap();
    for org in &orgs {
        let report: serde_json::Value = tx
            .query_one(
                "SELECT erasure.request_erasure($1)::jsonb",
                &[&format!("org:{org}")],
            )
            .unwrap()
            .get(0);
        assert_eq!(report["status"], "completed", "{report:#}");
    }
    tx.commit().unwrap();
    assert_eq!(orphans(&mut db), 0);
    // And again after the session's temporary table is dropped.
    db.client.batch_execute("DISCARD TEMP").unwrap();
    let report = db.json(
        "SELECT erasure.request_erasure($1)",
        &[&format!("org:{other}")],
    );
    assert_eq!(report["status"], "completed", "{report:#}");
    assert_eq!(orphans(&mut db), 0);
}

#[test]
fn a_purge_batch_checks_its_deleted_keys_once() {
    let mut db = TestDb::new("fk_purge");
    let report = db.json("SELECT erasure.request_erasure('org:2')", &[]);
    assert_eq!(report["status"], "completed", "{report:#}");
    // The organization row is kept as long as its invoices; made due before them, purging
    // it would orphan the kept rows that reference it.
    db.client
        .batch_execute(
            "UPDATE erasure.ledger_chunks SET until = now() - interval '1 second'
              WHERE table_name = 'organizations'",
        )
        .unwrap();
    let kept = db.count("SELECT count(*) FROM erasure.ledger", &[]);
    let msg = assert_sqlstate(db.client.query("SELECT erasure.purge_due()", &[]), "23503");
    assert!(
        msg.contains("still reference rows of organizations that the purge deleted"),
        "{msg}"
    );
    db.client
        .batch_execute("SET erasure.batch_fk_checks = off")
        .unwrap();
    let msg = assert_sqlstate(db.client.query("SELECT erasure.purge_due()", &[]), "23503");
    assert!(msg.contains("violates foreign key constraint"), "{msg}");
    db.client
        .batch_execute("RESET erasure.batch_fk_checks")
        .unwrap();
    assert_eq!(db.count("SELECT count(*) FROM erasure.ledger", &[]), kept);
    assert_eq!(
        db.count("SELECT count(*) FROM organizations WHERE id = 2", &[]),
        1
    );

    // Once everything is due, children first, the purge completes and leaves no orphan.
    db.client
        .batch_execute("UPDATE erasure.ledger_chunks SET until = now() - interval '1 second'")
        .unwrap();
    let purge = db.json("SELECT erasure.purge_due()", &[]);
    assert_eq!(purge["purged"], kept, "{purge:#}");
    assert_eq!(db.count("SELECT count(*) FROM erasure.ledger", &[]), 0);
    assert_eq!(
        db.count("SELECT count(*) FROM organizations WHERE id = 2", &[]),
        0
    );
    assert_eq!(orphans(&mut db), 0);
}
