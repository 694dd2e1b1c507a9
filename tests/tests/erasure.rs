//! End-to-end erasures against the reference CRM, one per subject kind, checked by independent
//! queries: exact per-table counts, nothing of the subject left, bystanders untouched, kept rows
//! exactly the ones the policy names.

use erasure_tests::*;
use serde_json::Value;

/// The rows of one hand-made end-customer.
struct Person {
    contact: i64,
    phone: String,
    email: String,
    name: String,
    secret: String,
}

/// A contact in `org` with a known number of rows in every table that can hold their data.
fn make_contact(db: &mut TestDb, org: i64, tag: &str, phone: &str) -> Person {
    let p = Person {
        contact: 0,
        phone: phone.to_owned(),
        email: format!("{tag}.Person@Example.COM"),
        name: format!("Person {tag}"),
        secret: format!("secret-message-{tag}"),
    };
    let c = &mut db.client;
    let contact: i64 = c
        .query_one(
            "INSERT INTO contacts (org_id, phone_e164, email, name, lifecycle_stage) VALUES ($1, $2, $3, $4, 'customer') RETURNING id",
            &[&org, &p.phone, &p.email, &p.name],
        )
        .unwrap()
        .get(0);
    let agent: i64 = c
        .query_one("SELECT min(id) FROM users WHERE org_id = $1", &[&org])
        .unwrap()
        .get(0);
    c.execute("INSERT INTO contact_labels (org_id, contact_id, label_id) SELECT $1, $2, id FROM labels WHERE org_id = $1 ORDER BY id LIMIT 2", &[&org, &contact]).unwrap();
    c.execute("INSERT INTO segment_members (org_id, segment_id, contact_id) SELECT $1, id, $2 FROM segments WHERE org_id = $1 ORDER BY id LIMIT 1", &[&org, &contact]).unwrap();
    c.execute("INSERT INTO lifecycle_events (org_id, contact_id, stage) VALUES ($1, $2, 'lead'), ($1, $2, 'customer')", &[&org, &contact]).unwrap();
    let conv: i64 = c
        .query_one(
            "INSERT INTO conversations (org_id, contact_id, assigned_user_id) VALUES ($1, $2, $3) RETURNING id",
            &[&org, &contact, &agent],
        )
        .unwrap()
        .get(0);
    let first: i64 = c
        .query_one(
            "INSERT INTO messages (org_id, conversation_id, sender_user_id, body) VALUES ($1, $2, NULL, $3) RETURNING id",
            &[&org, &conv, &p.secret],
        )
        .unwrap()
        .get(0);
    c.execute(
        "INSERT INTO messages (org_id, conversation_id, sender_user_id, body) VALUES ($1, $2, $3, 'how can we help?'), ($1, $2, NULL, $4)",
        &[&org, &conv, &agent, &format!("my phone is {}", p.phone)],
    )
    .unwrap();
    c.execute(
        "INSERT INTO media (org_id, message_id, kind, storage_key) VALUES ($1, $2, 'image', $3), ($1, $2, 'audio', $4)",
        &[&org, &first, &format!("org/{org}/media/{tag}-1"), &format!("org/{org}/media/{tag}-2")],
    )
    .unwrap();
    let order: i64 = c
        .query_one(
            "INSERT INTO orders (org_id, contact_id, total) VALUES ($1, $2, 42) RETURNING id",
            &[&org, &contact],
        )
        .unwrap()
        .get(0);
    c.execute("INSERT INTO order_items (org_id, order_id, sku, quantity, unit_price) VALUES ($1, $2, 'A', 1, 20), ($1, $2, 'B', 2, 11)", &[&org, &order]).unwrap();
    c.execute(
        "INSERT INTO reorder_cycles (org_id, contact_id, interval_days) VALUES ($1, $2, 30)",
        &[&org, &contact],
    )
    .unwrap();
    c.execute(
        "INSERT INTO ai_logs (org_id, contact_id, conversation_id, prompt, response) VALUES ($1, $2, $3, $4, 'ok'), ($1, $2, NULL, 'summarise', $4)",
        &[&org, &contact, &conv, &format!("reply to {}", p.name)],
    )
    .unwrap();
    c.execute("INSERT INTO ai_prompt_cache (org_id, contact_id, prompt, response) VALUES ($1, $2, $3, 'cached')", &[&org, &contact, &p.email]).unwrap();
    Person { contact, ..p }
}

/// The counts a full erasure of a `make_contact` person reports.
fn assert_person_erased(report: &Value) {
    for (table, n) in [
        ("contacts", 1),
        ("contact_labels", 2),
        ("segment_members", 1),
        ("lifecycle_events", 2),
        ("conversations", 1),
        ("messages", 3),
        ("media", 2),
        ("orders", 1),
        ("order_items", 2),
        ("reorder_cycles", 1),
        ("ai_logs", 2),
        ("ai_prompt_cache", 1),
    ] {
        assert_counts(report, table, (n, 0, 0, 0));
    }
    assert_eq!(report["status"], "completed");
    assert_eq!(report["storage_objects_queued"], 2);
    assert_eq!(report["totals"]["erased"], 19);
    for slot in ["retention", "legal_hold"] {
        assert_eq!(
            report["modules"][slot].as_str().map(str::len),
            Some(64),
            "{report:#}"
        );
    }
}

/// Rows of a contact left anywhere, by independent queries.
fn residual_rows(db: &mut TestDb, contact: i64) -> i64 {
    db.count(
        "SELECT (SELECT count(*) FROM contacts WHERE id = $1)
              + (SELECT count(*) FROM contact_labels WHERE contact_id = $1)
              + (SELECT count(*) FROM segment_members WHERE contact_id = $1)
              + (SELECT count(*) FROM lifecycle_events WHERE contact_id = $1)
              + (SELECT count(*) FROM conversations WHERE contact_id = $1)
              + (SELECT count(*) FROM messages m JOIN conversations v ON v.id = m.conversation_id WHERE v.contact_id = $1)
              + (SELECT count(*) FROM orders WHERE contact_id = $1)
              + (SELECT count(*) FROM reorder_cycles WHERE contact_id = $1)
              + (SELECT count(*) FROM ai_logs WHERE contact_id = $1)
              + (SELECT count(*) FROM ai_prompt_cache WHERE contact_id = $1)",
        &[&contact],
    )
}

fn table_sizes(db: &mut TestDb) -> Vec<(String, i64)> {
    db.tables(&["public"])
        .into_iter()
        .map(|t| {
            let n = db.count(&format!("SELECT count(*) FROM {t}"), &[]);
            (t.trim_start_matches("public.").to_owned(), n)
        })
        .collect()
}

fn erase(db: &mut TestDb, subject: &str) -> Value {
    db.json("SELECT erasure.request_erasure($1)", &[&subject])
}

#[test]
fn contact_erasure_removes_everything_and_only_that() {
    let mut db = TestDb::new("contact");
    let p = make_contact(&mut db, 1, "alice", "+4915111111111");
    let bystander = make_contact(&mut db, 1, "bob", "+4915122222222");
    let before = table_sizes(&mut db);
    let report = erase(&mut db, &format!("contact:{}", p.contact));
    assert_person_erased(&report);
    assert_eq!(residual_rows(&mut db, p.contact), 0);
    assert_eq!(residual_rows(&mut db, bystander.contact), 15);
    // Exactly the reported rows went, table by table.
    for ((t, b), (_, a)) in before.iter().zip(table_sizes(&mut db)) {
        let erased = report["tables"][t.as_str()]["erased"].as_i64().unwrap_or(0);
        assert_eq!(b - a, erased, "{t}");
    }
    // Nothing kept, so nothing in the ledger; the media objects are queued for deletion.
    assert_eq!(db.count("SELECT count(*) FROM erasure.ledger", &[]), 0);
    assert_eq!(
        db.count(
            "SELECT count(*) FROM erasure.storage_outbox WHERE object_key LIKE '%/alice-%'",
            &[]
        ),
        2
    );
    // The request is recorded with its confirmation code and deadlines.
    let code = report["confirmation_code"].as_str().unwrap().to_owned();
    let status = db.json("SELECT erasure.request_status($1)", &[&code]);
    assert_eq!(status["status"], "completed");
    assert_eq!(status["request_id"], report["request_id"]);
    assert_sqlstate(
        db.client
            .query("SELECT erasure.request_status('ER-NO-SUCH-CODE')", &[]),
        "P0002",
    );
    assert_eq!(
        db.count("SELECT count(*) FROM erasure.requests WHERE complete_by = requested_at + interval '30 days' AND acknowledge_by = requested_at + interval '7 days'", &[]),
        1
    );
}

#[test]
fn the_report_times_and_audit_entry_match_the_request_row() {
    let mut db = TestDb::new("report_times");
    let p = make_contact(&mut db, 1, "carol", "+4915133333333");
    // Erase inside the caller's open transaction: a plan setting the erasure changes while it
    // runs must be back to the caller's before the transaction ends (a SET LOCAL would last
    // until COMMIT).
    db.client
        .batch_execute("BEGIN; SET LOCAL plan_cache_mode = force_custom_plan")
        .unwrap();
    let report = erase(&mut db, &format!("contact:{}", p.contact));
    let mode: String = db
        .client
        .query_one("SHOW plan_cache_mode", &[])
        .unwrap()
        .get(0);
    db.client.batch_execute("COMMIT").unwrap();
    assert_eq!(mode, "force_custom_plan");
    let row = db.json(
        "SELECT jsonb_build_object(
                'completed_at', to_char(completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                'backups_purged_by', to_char(backups_purged_by AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                'rotation_days', extract(epoch FROM backups_purged_by - requested_at) / 86400,
                'audit', (SELECT detail FROM erasure.audit_log a WHERE a.request_id = r.id AND event = 'erasure_completed'))
           FROM erasure.requests r WHERE id = ($1::jsonb ->> 'request_id')::bigint",
        &[&report],
    );
    assert_eq!(row["completed_at"], report["completed_at"]);
    assert_eq!(row["backups_purged_by"], report["backups_purged_by"]);
    assert_eq!(row["rotation_days"].as_f64(), Some(30.0));
    assert_eq!(row["audit"]["totals"], report["totals"]);
    assert_eq!(row["audit"]["modules"], report["modules"]);
    assert_eq!(row["audit"]["subject_kind"], "contact");
    assert_eq!(
        row["audit"]["subject_hash"].as_str().map(str::len),
        Some(64)
    );
}

#[test]
fn end_customer_data_occurs_nowhere_after_erasure() {
    let mut db = TestDb::new("nowhere");
    let p = make_contact(&mut db, 2, "carol", "+4915133333333");
    // Requested by phone number, written with separators as a person would.
    let report = db.json(
        "SELECT erasure.request_erasure('phone:+49 151 333-333.33', NULL, 'email')",
        &[],
    );
    assert_person_erased(&report);
    for needle in [&p.phone, &p.email, &p.name, &p.secret, "4915133333333"] {
        assert_eq!(
            db.tables_containing(needle),
            Vec::<String>::new(),
            "{needle} still stored"
        );
    }
}

#[test]
fn email_subject_matches_case_insensitively_and_org_narrows() {
    let mut db = TestDb::new("email");
    let in_org1 = make_contact(&mut db, 1, "dave", "+4915144444444");
    let in_org2 = make_contact(&mut db, 2, "dave", "+4915155555555");
    let report = db.json(
        "SELECT erasure.request_erasure('email:DAVE.person@example.com', 2)",
        &[],
    );
    assert_person_erased(&report);
    assert_eq!(residual_rows(&mut db, in_org2.contact), 0);
    assert_eq!(
        residual_rows(&mut db, in_org1.contact),
        15,
        "org_id narrows the match"
    );
    // Without org_id, every organization's match goes.
    let report = db.json(
        "SELECT erasure.request_erasure('email:dave.person@example.com')",
        &[],
    );
    assert_person_erased(&report);
    assert_eq!(residual_rows(&mut db, in_org1.contact), 0);
}

#[test]
fn user_erasure_keeps_organization_data_and_anonymises_audit() {
    let mut db = TestDb::new("user");
    let c = &mut db.client;
    let user: i64 = c
        .query_one(
            "INSERT INTO users (org_id, email, full_name, phone, password_hash) VALUES (1, 'erin@crm.example', 'Erin Agent', '+4915166666666', 'x') RETURNING id",
            &[],
        )
        .unwrap()
        .get(0);
    c.execute(
        "INSERT INTO team_memberships (org_id, user_id, role) VALUES (1, $1, 'agent')",
        &[&user],
    )
    .unwrap();
    c.execute("INSERT INTO channel_connections (org_id, user_id, provider, access_token) VALUES (1, $1, 'telegram', 'tok-erin-1'), (1, $1, 'instagram', 'tok-erin-2')", &[&user]).unwrap();
    let customer = make_contact(&mut db, 1, "frank", "+4915177777777");
    let c = &mut db.client;
    let conv: i64 = c
        .query_one(
            "SELECT id FROM conversations WHERE contact_id = $1",
            &[&customer.contact],
        )
        .unwrap()
        .get(0);
    c.execute(
        "UPDATE conversations SET assigned_user_id = $1 WHERE id = $2",
        &[&user, &conv],
    )
    .unwrap();
    c.execute("INSERT INTO messages (org_id, conversation_id, sender_user_id, body) VALUES (1, $1, $2, 'agent says hi'), (1, $1, $2, 'agent says bye')", &[&conv, &user]).unwrap();
    c.execute(
        "INSERT INTO audit_logs (org_id, actor_user_id, action, at, ip_address, details) VALUES
           (1, $1, 'login', now() - interval '2 days', '10.1.2.3', 'erin@crm.example'),
           (1, $1, 'export', now() - interval '200 days', '10.1.2.3', 'by Erin Agent'),
           (1, $1, 'login', now() - interval '400 days', '10.1.2.3', 'old')",
        &[&user],
    )
    .unwrap();
    let messages_before = db.count("SELECT count(*) FROM messages", &[]);
    let report = erase(&mut db, &format!("user:{user}"));
    assert_counts(&report, "users", (1, 0, 0, 0));
    assert_counts(&report, "team_memberships", (1, 0, 0, 0));
    assert_counts(&report, "channel_connections", (2, 0, 0, 0));
    // Audit rows: the two of the last 12 months anonymised and kept, the older one erased.
    assert_counts(&report, "audit_logs", (1, 2, 0, 0));
    assert_eq!(report["tables"]["messages"]["detached"], 2);
    assert_eq!(report["tables"]["conversations"]["detached"], 1);
    assert_counts(&report, "messages", (0, 0, 0, 0));
    // Messages stay with the organization, without the link to the user.
    assert_eq!(
        db.count("SELECT count(*) FROM messages", &[]),
        messages_before
    );
    assert_eq!(db.count("SELECT count(*) FROM messages WHERE body LIKE 'agent says%' AND sender_user_id IS NULL", &[]), 2);
    assert_eq!(
        db.count("SELECT count(*) FROM users WHERE id = $1", &[&user]),
        0
    );
    // Kept audit rows: timestamp and action stay, the personal fields are gone.
    assert_eq!(
        db.count("SELECT count(*) FROM audit_logs WHERE action IN ('login', 'export') AND actor_user_id IS NULL AND ip_address IS NULL AND details IS NULL AND at > now() - interval '1 year'", &[]),
        2
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM erasure.ledger l JOIN audit_logs a ON a.id = l.row_key
              WHERE l.table_name = 'audit_logs' AND l.action = 'anonymized' AND l.until = date_trunc('second', a.at + interval '12 months')
                AND l.module_sha256 = $1 AND l.basis <> ''",
            &[&report["modules"]["retention"].as_str().unwrap()]
        ),
        2
    );
    assert!(db.tables_containing("erin@crm.example").is_empty());
    assert!(db.tables_containing("tok-erin").is_empty());
    assert!(db.tables_containing("Erin Agent").is_empty());
}

#[test]
fn meta_subject_erases_connections_it_authorised_and_its_user() {
    let mut db = TestDb::new("meta");
    let c = &mut db.client;
    let user: i64 = c
        .query_one("INSERT INTO users (org_id, email, full_name, meta_user_id) VALUES (2, 'gina@crm.example', 'Gina', 'MU-778899') RETURNING id", &[])
        .unwrap()
        .get(0);
    let other: i64 = c
        .query_one("SELECT min(id) FROM users WHERE org_id = 1", &[])
        .unwrap()
        .get(0);
    c.execute(
        "INSERT INTO team_memberships (org_id, user_id, role) VALUES (2, $1, 'admin')",
        &[&user],
    )
    .unwrap();
    c.execute("INSERT INTO channel_connections (org_id, user_id, provider, meta_user_id, access_token) VALUES (2, $1, 'meta', 'MU-778899', 'tok-a'), (2, $1, 'telegram', NULL, 'tok-b')", &[&user]).unwrap();
    // Authorised by the same Meta user, but connected under another platform account.
    c.execute("INSERT INTO channel_connections (org_id, user_id, provider, meta_user_id, access_token) VALUES (1, $1, 'instagram', 'MU-778899', 'tok-c')", &[&other]).unwrap();
    let other_before = db.count(
        "SELECT count(*) FROM channel_connections WHERE user_id = $1",
        &[&other],
    );
    let report = erase(&mut db, "meta:MU-778899");
    assert_counts(&report, "users", (1, 0, 0, 0));
    assert_counts(&report, "team_memberships", (1, 0, 0, 0));
    assert_counts(&report, "channel_connections", (3, 0, 0, 0));
    assert_eq!(
        db.count(
            "SELECT count(*) FROM channel_connections WHERE meta_user_id = 'MU-778899'",
            &[]
        ),
        0
    );
    assert_eq!(
        db.count("SELECT count(*) FROM users WHERE id = $1", &[&other]),
        1
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM channel_connections WHERE user_id = $1",
            &[&other]
        ),
        other_before - 1
    );
    assert!(db.tables_containing("MU-778899").is_empty());
}

#[test]
fn organization_erasure_keeps_invoices_and_recent_audit_only() {
    let mut db = TestDb::new("org");
    let sizes_org1_before = org_sizes(&mut db, 1);
    let invoices_recent = db.count(
        "SELECT count(*) FROM invoices WHERE org_id = 2 AND issued_at + interval '7 years' > now()",
        &[],
    );
    let invoices_old =
        db.count("SELECT count(*) FROM invoices WHERE org_id = 2", &[]) - invoices_recent;
    let audit_recent = db.count(
        "SELECT count(*) FROM audit_logs WHERE org_id = 2 AND at + interval '12 months' > now()",
        &[],
    );
    let audit_old =
        db.count("SELECT count(*) FROM audit_logs WHERE org_id = 2", &[]) - audit_recent;
    assert!(
        invoices_recent > 0 && invoices_old > 0 && audit_recent > 0,
        "generator spreads dates"
    );
    let org2 = org_sizes(&mut db, 2);
    // The modules get each invoice's date in UTC, as PostgreSQL writes a UTC timestamp's
    // fraction, whatever the session's time zone.
    let mut issued_utc: Vec<String> = db
        .client
        .query(
            "SELECT (to_json(issued_at AT TIME ZONE 'UTC') #>> '{}') || 'Z' FROM invoices WHERE org_id = 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();

    // Small decision batches: the per-row tables are read and decided page by page. A session
    // time zone other than UTC changes nothing a module sees.
    db.client
        .batch_execute("SET erasure.decision_batch_rows = 7; SET TimeZone = 'Asia/Kolkata'")
        .unwrap();
    let report = erase(&mut db, "org:2");
    // The checks below count periods in UTC, as the modules do.
    db.client.batch_execute("RESET TimeZone").unwrap();
    let log = db.json(
        "SELECT convert_from(decision_log, 'UTF8')::json FROM erasure.requests WHERE id = $1",
        &[&report["request_id"].as_i64().unwrap()],
    );
    let mut issued_seen: Vec<String> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["record"]["table"] == "invoices")
        .map(|e| {
            e["record"]["attrs"]["issued_at"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    issued_utc.sort();
    issued_seen.sort();
    assert!(
        issued_utc.iter().any(|t| t.contains('.')),
        "dates have fractions"
    );
    assert_eq!(issued_seen, issued_utc);
    assert_counts(&report, "invoices", (invoices_old, 0, invoices_recent, 0));
    assert_counts(&report, "audit_logs", (audit_old, audit_recent, 0, 0));
    // The organization row is still referenced by the kept rows: anonymised, kept as long.
    assert_counts(&report, "organizations", (0, 1, 0, 0));
    for (t, n) in &org2 {
        if !["invoices", "audit_logs", "organizations"].contains(&t.as_str()) {
            assert_counts(&report, t, (*n, 0, 0, 0));
        }
    }
    let left = org_sizes(&mut db, 2);
    for (t, n) in left {
        let expected = match t.as_str() {
            "invoices" => invoices_recent,
            "audit_logs" => audit_recent,
            "organizations" => 1,
            _ => 0,
        };
        assert_eq!(n, expected, "{t} of org 2 after erasure");
    }
    assert_eq!(
        org_sizes(&mut db, 1),
        sizes_org1_before,
        "bystander organization untouched"
    );
    // The ledger names exactly the kept rows, with their dates and bases.
    assert_eq!(
        db.count("SELECT count(*) FROM erasure.ledger l JOIN invoices i ON i.id = l.row_key WHERE l.table_name = 'invoices' AND l.action = 'retained' AND l.until = date_trunc('second', i.issued_at + interval '7 years') AND l.basis ILIKE '%tax%'", &[]),
        invoices_recent
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM erasure.ledger WHERE table_name = 'audit_logs'",
            &[]
        ),
        audit_recent
    );
    assert_eq!(
        db.count("SELECT count(*) FROM erasure.ledger l WHERE table_name = 'organizations' AND until = (SELECT date_trunc('second', max(issued_at) + interval '7 years') FROM invoices WHERE org_id = 2)", &[]),
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM erasure.ledger", &[]),
        invoices_recent + audit_recent + 1
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM organizations WHERE id = 2 AND name = 'erased organization'",
            &[]
        ),
        1
    );
}

fn org_sizes(db: &mut TestDb, org: i64) -> Vec<(String, i64)> {
    let tables: Vec<String> = db
        .client
        .query(
            "SELECT table_name::text FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'org_id' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out: Vec<(String, i64)> = tables
        .into_iter()
        .map(|t| {
            let n = db.count(
                &format!("SELECT count(*) FROM public.{t} WHERE org_id = $1"),
                &[&org],
            );
            (t, n)
        })
        .collect();
    out.push((
        "organizations".into(),
        db.count("SELECT count(*) FROM organizations WHERE id = $1", &[&org]),
    ));
    out
}

#[test]
fn purge_due_deletes_what_is_due_and_nothing_else() {
    let mut db = TestDb::new("purge");
    erase(&mut db, "org:2");
    let kept = db.count("SELECT count(*) FROM erasure.ledger", &[]);
    // Nothing is due yet.
    let purge = db.json("SELECT erasure.purge_due()", &[]);
    assert_eq!(purge["purged"], 0);
    assert_eq!(db.count("SELECT count(*) FROM erasure.ledger", &[]), kept);
    // Time passes for the audit rows.
    db.client.execute("UPDATE erasure.ledger_chunks SET until = now() - interval '1 second' WHERE table_name = 'audit_logs'", &[]).unwrap();
    let due = db.count(
        "SELECT count(*) FROM erasure.ledger WHERE table_name = 'audit_logs'",
        &[],
    );
    let purge = db.json("SELECT erasure.purge_due()", &[]);
    assert_eq!(purge["purged"], due);
    assert_eq!(purge["tables"]["audit_logs"]["purged"], due);
    assert_eq!(
        db.count("SELECT count(*) FROM audit_logs WHERE org_id = 2", &[]),
        0
    );
    assert_eq!(
        db.count("SELECT count(*) FROM erasure.ledger", &[]),
        kept - due
    );
}

#[test]
fn purge_walks_due_rows_in_batches_and_commits_between_them() {
    let mut db = TestDb::new("purge_batches");
    erase(&mut db, "org:2");
    let kept = db.count("SELECT count(*) FROM erasure.ledger", &[]);
    db.client.execute("UPDATE erasure.ledger_chunks SET until = now() - interval '1 second' WHERE table_name IN ('audit_logs', 'invoices')", &[]).unwrap();
    let due = db.count(
        "SELECT count(*) FROM erasure.ledger WHERE table_name IN ('audit_logs', 'invoices')",
        &[],
    );
    assert!(due > 6, "the fixture needs several batches: {due} due rows");
    db.client
        .batch_execute("SET erasure.purge_batch_rows = 2")
        .unwrap();
    // A limited call stops after its batches and says it is not complete.
    let first = db.json("SELECT erasure.purge_due(2)", &[]);
    assert_eq!(first["batches"], 2, "{first:#}");
    assert_eq!(first["purged"], 4, "{first:#}");
    assert_eq!(first["complete"], false, "{first:#}");
    // The procedure commits after each batch and finishes the rest.
    db.client
        .batch_execute("CALL erasure.purge_due_in_batches()")
        .unwrap();
    assert_eq!(
        db.count("SELECT count(*) FROM erasure.ledger", &[]),
        kept - due
    );
    for table in ["invoices", "audit_logs"] {
        let sql = format!("SELECT count(*) FROM {table} WHERE org_id = 2");
        assert_eq!(db.count(&sql, &[]), 0, "{table}");
    }
    // Nothing left: one call, complete.
    let last = db.json("SELECT erasure.purge_due()", &[]);
    assert_eq!(last["purged"], 0);
    assert_eq!(last["complete"], true);
    let err = db
        .client
        .query_one("SELECT erasure.purge_due(0)", &[])
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("22023"));
}

#[test]
fn a_database_can_be_dropped_right_after_a_failed_request() {
    // The failed-request recorder starts as the failing transaction ends and connects to its
    // database; a DROP DATABASE at that moment must not wait for it forever.
    for round in 0..3 {
        let mut db = TestDb::new(&format!("drop_after_failure_{round}"));
        assert!(db
            .client
            .query_one("SELECT erasure.request_erasure('contact:abc')", &[])
            .is_err());
        let mut admin = connect("postgres");
        admin
            .batch_execute("SET statement_timeout = '60s'")
            .unwrap();
        admin
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", db.name))
            .unwrap_or_else(|e| panic!("round {round}: DROP DATABASE: {e}"));
    }
}

#[test]
fn a_change_made_in_another_session_reaches_a_backend_with_a_cached_context() {
    let mut db = TestDb::new("context_cache");
    let first = make_contact(&mut db, 1, "kim", "+4915177777777");
    let second = make_contact(&mut db, 1, "lou", "+4915166666666");
    // This backend caches its context (no hold active) on its first request.
    let report = erase(&mut db, &format!("contact:{}", first.contact));
    assert_eq!(report["totals"]["held"], 0);
    // Another session places a hold and activates another retention module.
    let mut other = connect(&db.name);
    other
        .query_one(
            "SELECT erasure.place_hold($1, 'CASE-CACHE')",
            &[&format!("contact:{}", second.contact)],
        )
        .unwrap();
    other
        .batch_execute("SELECT erasure.install_default_modules('us-ccpa')")
        .unwrap();
    let active: String = other
        .query_one(
            "SELECT sha256 FROM erasure.modules WHERE slot = 'retention' AND active",
            &[],
        )
        .unwrap()
        .get(0);
    // The first backend sees both at once.
    let report = erase(&mut db, &format!("contact:{}", second.contact));
    assert!(report["totals"]["held"].as_i64().unwrap() > 0, "{report:#}");
    assert_eq!(report["totals"]["erased"], 0, "{report:#}");
    assert_eq!(report["modules"]["retention"], active.as_str());
}

#[test]
fn legal_hold_keeps_the_subject_data() {
    let mut db = TestDb::new("hold");
    let p = make_contact(&mut db, 1, "hank", "+4915188888888");
    let hold: i64 = db
        .client
        .query_one(
            "SELECT erasure.place_hold($1, 'CASE-2026-17')",
            &[&format!("contact:{}", p.contact)],
        )
        .unwrap()
        .get(0);
    let report = erase(&mut db, &format!("contact:{}", p.contact));
    assert_counts(&report, "messages", (0, 0, 0, 3));
    assert_counts(&report, "contacts", (0, 0, 0, 1));
    assert_eq!(report["totals"]["erased"], 0);
    assert_eq!(residual_rows(&mut db, p.contact), 15);
    assert_eq!(db.count("SELECT count(*) FROM erasure.ledger WHERE action = 'held' AND case_ref = 'CASE-2026-17'", &[]), 19);
    // Released: the held rows become due and purge_due erases them.
    db.client
        .execute("SELECT erasure.release_hold($1)", &[&hold])
        .unwrap();
    let purge = db.json("SELECT erasure.purge_due()", &[]);
    assert_eq!(purge["purged"], 19, "{purge:#}");
    assert_eq!(residual_rows(&mut db, p.contact), 0);
}

#[test]
fn preview_changes_nothing_and_matches_the_request() {
    let mut db = TestDb::new("preview");
    let p = make_contact(&mut db, 1, "ivy", "+4915199999999");
    let before = db.fingerprint();
    let preview = db.json(
        "SELECT erasure.preview_erasure($1)",
        &[&format!("contact:{}", p.contact)],
    );
    assert_eq!(db.fingerprint(), before, "preview changed the database");
    assert_eq!(preview["status"], "preview");
    assert_person_erased(&Value::Object({
        let mut m = preview.as_object().unwrap().clone();
        m.insert("status".into(), "completed".into());
        m
    }));
    let org_preview = db.json("SELECT erasure.preview_erasure('org:1')", &[]);
    assert_eq!(db.fingerprint(), before, "org preview changed the database");
    let report = erase(&mut db, "org:1");
    assert_eq!(org_preview["tables"], report["tables"]);
}

/// An application that calls `request_erasure` inside its own transaction and rolls it back
/// gets nothing done and nothing recorded; the same session's next request works in full
/// (the backend's cached context, plans and modules survive the rollback).
#[test]
fn a_request_rolled_back_by_its_caller_leaves_nothing_and_the_next_one_works() {
    let mut db = TestDb::new("caller_rollback");
    let p = make_contact(&mut db, 1, "jo", "+4915100000001");
    let q = make_contact(&mut db, 1, "kim", "+4915100000002");
    let before = db.fingerprint();
    for _ in 0..3 {
        let mut tx = db.client.transaction().unwrap();
        let report: Value = tx
            .query_one(
                "SELECT erasure.request_erasure($1)",
                &[&format!("contact:{}", p.contact)],
            )
            .unwrap()
            .get(0);
        assert_person_erased(&report);
        tx.rollback().unwrap();
    }
    assert_eq!(
        db.fingerprint(),
        before,
        "a rolled-back request left a trace"
    );
    assert_eq!(residual_rows(&mut db, p.contact), 15);
    let report = erase(&mut db, &format!("contact:{}", q.contact));
    assert_person_erased(&report);
    assert_eq!(residual_rows(&mut db, q.contact), 0);
    assert_eq!(residual_rows(&mut db, p.contact), 15);
    let code = report["confirmation_code"].as_str().unwrap().to_owned();
    assert_eq!(
        db.json("SELECT erasure.request_status($1)", &[&code])["status"],
        "completed"
    );
}

#[test]
fn malformed_subjects_are_refused_with_22023_and_recorded() {
    let mut db = TestDb::new("malformed");
    let before = db.fingerprint();
    for bad in [
        "contact:abc",
        "phone:98765",
        "email:nobody-here",
        "person:1",
        "",
        "contact:0",
        "phone:+49 151 77",
    ] {
        let msg = assert_sqlstate(
            db.client
                .query("SELECT erasure.request_erasure($1)", &[&bad]),
            "22023",
        );
        assert!(msg.contains("accepted forms"), "{msg}");
        let value = bad.split_once(':').map_or("", |(_, v)| v);
        if value.len() >= 5 {
            assert!(!msg.contains(value), "message echoes the value: {msg}");
        }
    }
    let id = last_request_id(&mut db);
    let recorded = wait_for_failed_request(&mut db, id).expect("failed request recorded");
    assert_eq!(recorded, ("failed".to_owned(), "22023".to_owned()));
    // Nothing of the CRM changed (the failed-request rows are the extension's own).
    let after = db.fingerprint();
    for ((t, a), (_, b)) in before.iter().zip(after.iter()) {
        if t.starts_with("public.") {
            assert_eq!(a, b, "{t} changed");
        }
    }
    assert_sqlstate(
        db.client.query(
            "SELECT erasure.request_erasure('contact:1', NULL, 'Bad Source!')",
            &[],
        ),
        "22023",
    );
    // NULL is refused like any other malformed subject or source.
    for sql in [
        "SELECT erasure.request_erasure(NULL)",
        "SELECT erasure.preview_erasure(NULL)",
        "SELECT erasure.request_erasure('contact:1', NULL, NULL)",
    ] {
        assert_sqlstate(db.client.query(sql, &[]), "22023");
    }
}

#[test]
fn subject_without_data_completes_with_zero_counts() {
    let mut db = TestDb::new("nodata");
    let report = erase(&mut db, "contact:987654321");
    assert_eq!(report["status"], "completed");
    assert_eq!(report["totals"]["erased"], 0);
    assert_eq!(report["root_rows"], 0);
    assert!(report["tables"]["messages"].is_object());
}

#[test]
fn explain_plan_shows_the_statements_an_erasure_runs() {
    let mut db = TestDb::new("explain");
    let contact = db.json("SELECT erasure.explain_plan('contact')", &[]);
    let steps: Vec<&str> = contact["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["table"].as_str().unwrap())
        .collect();
    // Nothing of a contact is kept by default, so its steps run parents first.
    assert_eq!(contact["order"], "parents first", "{contact:#}");
    assert_eq!(steps.first(), Some(&"contacts"), "{contact:#}");
    assert!(steps.contains(&"messages") && steps.contains(&"media"));
    // Each step shows the statement that erases its rows; the media keys go to the outbox.
    let sql = |table: &str| -> String {
        contact["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["table"] == table)
            .and_then(|s| s["sql"].as_str())
            .unwrap()
            .to_owned()
    };
    assert!(sql("contacts").starts_with("DELETE FROM \"public\".\"contacts\""));
    assert!(sql("media").contains("INSERT INTO erasure.storage_outbox"));
    // A parent's delete returns its keys; the foreign keys into it are checked once, after the
    // last step, by the plan's delete_check.
    assert!(sql("conversations").ends_with("RETURNING t.\"id\""));
    let checked = contact["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["table"] == "conversations")
        .map(|s| s["checked_foreign_keys"].clone())
        .unwrap();
    assert_eq!(
        checked,
        serde_json::json!([
            "ai_logs_conversation_id_fkey",
            "messages_conversation_id_fkey"
        ])
    );
    let check = contact["delete_check"].as_str().unwrap();
    assert!(
        check.starts_with("SELECT CASE WHEN (SELECT count(*)"),
        "{check}"
    );
    // An organization's deleted keys go to a temporary table, which its check reads.
    let org = db.json("SELECT erasure.explain_plan('org')", &[]);
    assert_eq!(org["order"], "children first", "{org:#}");
    let check = org["delete_check"].as_str().unwrap();
    assert!(
        check.contains("FROM pg_temp.erasure_deleted_keys k"),
        "{check}"
    );
    let err = db
        .client
        .query_one("SELECT erasure.explain_plan('person')", &[])
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("22023"));
}

#[test]
fn roles_and_privileges() {
    let mut db = TestDb::new("roles");
    let public_exec = db.count(
        "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = 'erasure' AND has_function_privilege('public', p.oid, 'EXECUTE')",
        &[],
    );
    assert_eq!(
        public_exec, 0,
        "no erasure function is executable by PUBLIC"
    );
    let not_definer = db.count(
        "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = 'erasure' AND p.proname <> 'reference_data_map' AND p.prokind = 'f'
            AND NOT (p.prosecdef AND array_to_string(p.proconfig, ',') LIKE 'search_path=%')",
        &[],
    );
    assert_eq!(
        not_definer, 0,
        "every function is SECURITY DEFINER with a fixed search_path"
    );
    // The one procedure commits between batches, which PostgreSQL allows only without
    // SECURITY DEFINER or SET: it runs as its caller, who needs EXECUTE on purge_due.
    let procedures: Vec<String> = db
        .client
        .query(
            "SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'erasure' AND p.prokind = 'p' AND NOT p.prosecdef AND p.proconfig IS NULL",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(procedures, vec!["purge_due_in_batches".to_owned()]);
    let undocumented = db.count(
        "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = 'erasure' AND obj_description(p.oid, 'pg_proc') IS NULL",
        &[],
    );
    assert_eq!(undocumented, 0);
    let undocumented_tables = db.count(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'erasure'
           AND obj_description(format('erasure.%I', tablename)::regclass, 'pg_class') IS NULL",
        &[],
    );
    assert_eq!(undocumented_tables, 0);
    // The application role can file requests but not install modules.
    db.client
        .batch_execute("CREATE ROLE erasure_test_app LOGIN IN ROLE erasure_app")
        .ok();
    db.client.batch_execute("SET ROLE erasure_app").unwrap();
    let report = db.json("SELECT erasure.request_erasure('contact:987654321')", &[]);
    assert_eq!(report["status"], "completed");
    assert_sqlstate(
        db.client
            .query("SELECT erasure.install_default_modules()", &[]),
        "42501",
    );
    assert_sqlstate(
        db.client.query("SELECT count(*) FROM erasure.ledger", &[]),
        "42501",
    );
    db.client.batch_execute("RESET ROLE").unwrap();
}

#[test]
fn bad_data_maps_are_refused_at_load_and_the_active_map_stays() {
    let mut db = TestDb::new("datamap");
    let active = db.count("SELECT id FROM erasure.data_map WHERE active", &[]);
    let good: Value = db.json("SELECT erasure.reference_data_map()", &[]);
    let mut unknown_table = good.clone();
    unknown_table["tables"]["ghosts"] = serde_json::json!({"key": "id", "category": "ghost"});
    let mut unknown_column = good.clone();
    unknown_column["tables"]["contacts"]["anonymize"]["nickname"] = Value::Null;
    let mut no_join = good.clone();
    no_join["tables"]["media"]["links"][1]["parent"] = "contacts".into();
    let mut missing_link = good.clone();
    let links = missing_link["tables"]["ai_logs"]["links"]
        .as_array_mut()
        .unwrap();
    links.retain(|l| l["column"] != "conversation_id");
    for (map, needle) in [
        (unknown_table, "table ghosts does not exist"),
        (unknown_column, "contacts.nickname does not exist"),
        (no_join, "does not join"),
        (missing_link, "not among the table's links"),
    ] {
        let msg = assert_sqlstate(
            db.client.query("SELECT erasure.load_data_map($1)", &[&map]),
            "22023",
        );
        assert!(msg.contains(needle), "{msg} lacks {needle}");
    }
    assert_eq!(
        db.count("SELECT id FROM erasure.data_map WHERE active", &[]),
        active
    );
    // A valid map loads and becomes the active one.
    db.client
        .execute("SELECT erasure.load_data_map($1)", &[&good])
        .unwrap();
    assert!(db.count("SELECT id FROM erasure.data_map WHERE active", &[]) > active);
}
