//! Shadow evaluation of a candidate rule module: side by side with the active one for a
//! subject, and replayed over past requests, changing nothing.

use erasure_tests::*;
use serde_json::Value;

/// Installs (not activates) the shipped retention module with invoices kept 1 year, not 7.
fn install_one_year_candidate(db: &mut TestDb) -> String {
    let mut config: Value = db.json(
        "SELECT config FROM erasure.modules WHERE slot = 'retention' AND active",
        &[],
    );
    config["categories"]["invoice"]["period"] = "P1Y".into();
    db.client
        .query_one(
            "SELECT erasure.install_module('retention', (SELECT wasm FROM erasure.modules WHERE slot = 'retention' AND active), $1)",
            &[&config],
        )
        .unwrap()
        .get(0)
}

#[test]
fn evaluate_module_shows_the_difference_and_changes_nothing() {
    let mut db = TestDb::new("shadow_eval");
    let candidate = install_one_year_candidate(&mut db);
    let before = db.fingerprint();
    let shadow = db.json("SELECT erasure.evaluate_module($1, 'org:2')", &[&candidate]);
    assert_eq!(
        db.fingerprint(),
        before,
        "shadow evaluation changed the database"
    );
    assert_eq!(shadow["differs"], true, "{shadow:#}");
    assert_eq!(shadow["changed_tables"], serde_json::json!(["invoices"]));
    let within_1y = db.count(
        "SELECT count(*) FROM invoices WHERE org_id = 2 AND issued_at > now() - interval '1 year'",
        &[],
    );
    let within_7y = db.count(
        "SELECT count(*) FROM invoices WHERE org_id = 2 AND issued_at + interval '7 years' > now()",
        &[],
    );
    assert_eq!(
        shadow["tables"]["invoices"]["active"]["retained"],
        within_7y
    );
    assert_eq!(
        shadow["tables"]["invoices"]["candidate"]["retained"],
        within_1y
    );
    assert_eq!(shadow["candidate_module"], candidate.as_str());
    // The same module as the active one: no difference.
    let active: String = db
        .client
        .query_one(
            "SELECT sha256 FROM erasure.modules WHERE slot = 'retention' AND active",
            &[],
        )
        .unwrap()
        .get(0);
    let same = db.json("SELECT erasure.evaluate_module($1, 'org:2')", &[&active]);
    assert_eq!(same["differs"], false);
    assert_sqlstate(
        db.client
            .query("SELECT erasure.evaluate_module('0000', 'org:2')", &[]),
        "P0002",
    );
    assert_sqlstate(
        db.client
            .query("SELECT erasure.evaluate_module($1, 'org:x')", &[&candidate]),
        "22023",
    );
}

#[test]
fn replay_module_counts_changed_verdicts_of_past_requests() {
    let mut db = TestDb::new("shadow_replay");
    let contact: i64 = db.count("SELECT min(id) FROM contacts", &[]);
    db.json(
        "SELECT erasure.request_erasure($1)",
        &[&format!("contact:{contact}")],
    );
    db.json("SELECT erasure.request_erasure('org:2')", &[]);
    let candidate = install_one_year_candidate(&mut db);
    let before = db.fingerprint();
    let replay = db.json("SELECT erasure.replay_module($1, 10)", &[&candidate]);
    assert_eq!(db.fingerprint(), before, "replay changed the database");
    assert_eq!(replay["requests"], 2, "{replay:#}");
    // Invoices issued between 1 and 7 years ago were retained and would now be erased.
    let moved = db.count(
        "SELECT count(*) FROM erasure.ledger l JOIN invoices i ON i.id = l.row_key
          WHERE l.table_name = 'invoices' AND i.issued_at <= now() - interval '1 year'",
        &[],
    );
    assert!(moved > 0);
    let org = replay["by_request"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["changes"]["invoices"].is_object())
        .unwrap();
    assert_eq!(
        org["changes"]["invoices"]["retained -> erased"], moved,
        "{replay:#}"
    );
    let contact_request = &replay["by_request"][1];
    assert_eq!(contact_request["differing"], 0, "{replay:#}");
}
