//! Planner and data-map validation, without PostgreSQL: a synthetic catalog is derived from the
//! map itself, then broken in targeted ways.

use erasure_core::attrs::AttrColumns;
use erasure_core::catalog::{Catalog, ColumnFacts, ForeignKey, TableFacts};
use erasure_core::datamap::{qualified, DataMap, DataMapDoc};
use erasure_core::plan::{DeletedKeys, Plan, RootStyle, StepAction};
use erasure_core::statements::{build, describe, StatementKind};
use erasure_core::subject::SubjectKind;
use erasure_core::CoreError;
use serde_json::json;

fn small_map() -> serde_json::Value {
    json!({
      "version": 1,
      "tenant_column": "org_id",
      "subjects": {
        "contact": [{"table": "contacts", "column": "id"}],
        "email": [{"table": "contacts", "column": "email", "case_insensitive": true}],
        "user": [{"table": "users", "column": "id"}],
        "meta": [{"table": "users", "column": "meta_user_id"}, {"table": "channel_connections", "column": "meta_user_id"}],
        "org": [{"table": "organizations", "column": "id"}]
      },
      "tables": {
        "organizations": {"key": "id", "category": "organization", "anonymize": {"name": "erased"}},
        "users": {"key": "id", "category": "account", "links": [{"column": "org_id", "parent": "organizations"}],
                  "anonymize": {"email": null}},
        "contacts": {"key": "id", "category": "contact", "links": [{"column": "org_id", "parent": "organizations"}],
                     "anonymize": {"email": null, "name": "erased contact"}},
        "conversations": {"key": "id", "category": "conversation", "links": [
            {"column": "org_id", "parent": "organizations"},
            {"column": "contact_id", "parent": "contacts"},
            {"column": "assigned_user_id", "parent": "users", "mode": "detach"}]},
        "messages": {"key": "id", "category": "message", "links": [
            {"column": "org_id", "parent": "organizations"},
            {"column": "conversation_id", "parent": "conversations"},
            {"column": "sender_user_id", "parent": "users", "mode": "detach"}]},
        "media": {"key": "id", "category": "media", "outbox": "storage_key", "links": [
            {"column": "org_id", "parent": "organizations"},
            {"column": "message_id", "parent": "messages"}]},
        "ai_logs": {"key": "id", "category": "ai_log", "links": [
            {"column": "org_id", "parent": "organizations"},
            {"column": "contact_id", "parent": "contacts"},
            {"column": "conversation_id", "parent": "conversations"}]},
        "channel_connections": {"key": "id", "category": "channel_connection", "links": [
            {"column": "org_id", "parent": "organizations"},
            {"column": "user_id", "parent": "users"}]},
        "audit_logs": {"key": "id", "category": "audit", "attrs": ["at"], "links": [
            {"column": "org_id", "parent": "organizations"},
            {"column": "actor_user_id", "parent": "users"}],
            "anonymize": {"actor_user_id": null, "ip_address": null}},
        "invoices": {"key": "id", "category": "invoice", "attrs": ["issued_at"], "links": [
            {"column": "org_id", "parent": "organizations"}]}
      }
    })
}

/// A catalog that agrees with the map: every named column exists (nullable unless a key), every
/// link is a real foreign key.
fn catalog_for(doc: &DataMapDoc) -> Catalog {
    let mut cat = Catalog::default();
    for (name, spec) in &doc.tables {
        let mut t = TableFacts {
            primary_key: vec![spec.key.clone()],
            ..Default::default()
        };
        let mut add = |c: &str, ty: &str, not_null: bool| {
            t.columns.insert(
                c.to_owned(),
                ColumnFacts {
                    type_name: ty.to_owned(),
                    not_null,
                },
            );
        };
        add(&spec.key, "bigint", true);
        for l in &spec.links {
            add(&l.column, "bigint", l.column == "org_id");
        }
        for a in &spec.attrs {
            add(a, "timestamp with time zone", true);
        }
        for c in spec.anonymize.keys() {
            if !spec.links.iter().any(|l| &l.column == c) {
                add(c, "text", false);
            }
        }
        for c in spec.personal_data.iter().chain(spec.outbox.iter()) {
            add(c, "text", false);
        }
        cat.tables.insert(qualified(name), t);
        for l in &spec.links {
            let Some(parent) = doc.tables.get(&l.parent) else {
                continue;
            };
            cat.foreign_keys.push(ForeignKey {
                name: format!("{name}_{}_fkey", l.column),
                child: qualified(name),
                child_columns: vec![l.column.clone()],
                parent: qualified(&l.parent),
                parent_columns: vec![parent.key.clone()],
                oid: 1000 + cat.foreign_keys.len() as u32,
                delete_check_only: true,
            });
        }
    }
    for roots in doc.subjects.values() {
        for r in roots {
            cat.tables
                .get_mut(&qualified(&r.table))
                .unwrap()
                .columns
                .entry(r.column.clone())
                .or_insert(ColumnFacts {
                    type_name: "text".into(),
                    not_null: false,
                });
        }
    }
    cat
}

fn load(v: serde_json::Value) -> Result<DataMap, CoreError> {
    let doc = DataMapDoc::from_json(&v)?;
    let cat = catalog_for(&doc);
    DataMap::validate(doc, &cat)
}

fn position(order: &[String], t: &str) -> usize {
    order.iter().position(|x| x == t).unwrap()
}

#[test]
fn delete_order_puts_children_first() {
    let map = load(small_map()).unwrap();
    let o = &map.delete_order;
    assert!(position(o, "media") < position(o, "messages"));
    assert!(position(o, "messages") < position(o, "conversations"));
    assert!(position(o, "ai_logs") < position(o, "conversations"));
    assert!(position(o, "conversations") < position(o, "contacts"));
    assert!(position(o, "contacts") < position(o, "organizations"));
    assert_eq!(o.last().unwrap(), "organizations");
}

#[test]
fn contact_plan_reaches_own_children_only() {
    let map = load(small_map()).unwrap();
    let plan = Plan::build(&map, SubjectKind::Contact, RootStyle::Array).unwrap();
    assert_eq!(plan.roots.len(), 1);
    assert!(plan.roots[0].sql.contains("FOR UPDATE"));
    assert!(plan.roots[0].sql.contains("$2"), "org narrowing");
    let tables = plan.tables();
    let at = |t: &str| tables.iter().position(|x| *x == t).unwrap();
    assert!(at("media") < at("messages") && at("messages") < at("conversations"));
    assert!(at("ai_logs") < at("conversations") && at("conversations") < at("contacts"));
    for t in ["media", "messages", "conversations", "contacts", "ai_logs"] {
        assert!(tables.contains(&t), "{t} missing from {tables:?}");
    }
    for t in ["users", "invoices", "audit_logs", "organizations"] {
        assert!(!tables.contains(&t), "{t} must not be in a contact plan");
    }
    let step = |t: &str| plan.steps.iter().find(|s| s.table == t).unwrap();
    assert_eq!(step("contacts").scope, "t.\"id\" = ANY($1)");
    assert_eq!(step("conversations").scope, "t.\"contact_id\" = ANY($1)");
    assert!(step("media")
        .scope
        .contains("IN (SELECT s1.\"id\" FROM \"public\".\"messages\" s1"));
    // ai_logs: directly by contact, and through conversations: both paths kept.
    let ai = &step("ai_logs").scope;
    assert!(ai.contains("UNION"), "{ai}");
    assert!(
        ai.contains("\"contact_id\" = ANY($1)") && ai.contains("\"conversation_id\" IN"),
        "{ai}"
    );
}

#[test]
fn user_plan_detaches_organization_rows() {
    let map = load(small_map()).unwrap();
    let plan = Plan::build(&map, SubjectKind::User, RootStyle::Array).unwrap();
    let detached: Vec<(&str, &str)> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            StepAction::Detach { column, .. } => Some((s.table.as_str(), column.as_str())),
            StepAction::Own => None,
        })
        .collect();
    assert!(detached.contains(&("messages", "sender_user_id")));
    assert!(detached.contains(&("conversations", "assigned_user_id")));
    let own: Vec<&str> = plan
        .steps
        .iter()
        .filter(|s| s.action == StepAction::Own)
        .map(|s| s.table.as_str())
        .collect();
    assert_eq!(own.len(), 3, "{own:?}");
    for t in ["users", "channel_connections", "audit_logs"] {
        assert!(own.contains(&t));
    }
    let users = plan.steps.iter().find(|s| s.table == "users").unwrap();
    assert!(users
        .children
        .contains(&("audit_logs".into(), "actor_user_id".into())));
}

#[test]
fn scalar_style_passes_one_key_per_root() {
    let map = load(small_map()).unwrap();
    let plan = Plan::build(&map, SubjectKind::Contact, RootStyle::Scalar).unwrap();
    let step = |t: &str| plan.steps.iter().find(|s| s.table == t).unwrap();
    assert_eq!(step("contacts").scope, "t.\"id\" = $1");
    assert!(
        step("media").scope.ends_with("s2.\"contact_id\" = $1))"),
        "{}",
        step("media").scope
    );
    assert!(plan.steps.iter().all(|s| !s.scope.contains("ANY(")));
}

#[test]
fn meta_plan_has_two_roots() {
    let map = load(small_map()).unwrap();
    let plan = Plan::build(&map, SubjectKind::Meta, RootStyle::Array).unwrap();
    assert_eq!(plan.roots.len(), 2);
    let cc = plan
        .steps
        .iter()
        .find(|s| s.table == "channel_connections")
        .unwrap();
    assert!(
        cc.scope.contains("ANY($1)") && cc.scope.contains("ANY($2)"),
        "{}",
        cc.scope
    );
}

#[test]
fn org_plan_uses_the_tenant_column() {
    let map = load(small_map()).unwrap();
    let plan = Plan::build(&map, SubjectKind::Org, RootStyle::Array).unwrap();
    let own: Vec<&str> = plan
        .steps
        .iter()
        .filter(|s| s.action == StepAction::Own)
        .map(|s| s.table.as_str())
        .collect();
    assert_eq!(own.len(), map.doc.tables.len());
    for s in plan
        .steps
        .iter()
        .filter(|s| s.action == StepAction::Own && s.table != "organizations")
    {
        assert_eq!(s.scope, "t.\"org_id\" = ANY($1)", "{}", s.table);
    }
    let org = plan
        .steps
        .iter()
        .find(|s| s.table == "organizations")
        .unwrap();
    assert!(org.children.len() >= 9);
}

#[test]
fn statements_quote_and_parameterise() {
    let map = load(small_map()).unwrap();
    let plan = Plan::build(&map, SubjectKind::Contact, RootStyle::Array).unwrap();
    let media = plan.steps.iter().find(|s| s.table == "media").unwrap();
    let erase = build(&map, &plan, media, StatementKind::Erase);
    assert!(
        erase.contains("erasure.storage_outbox") && erase.contains("RETURNING t.\"storage_key\"")
    );
    let contacts = plan.steps.iter().find(|s| s.table == "contacts").unwrap();
    let anon = build(&map, &plan, contacts, StatementKind::AnonymizeKeep);
    assert!(anon.contains("\"email\" = NULL"), "{anon}");
    assert!(anon.contains("\"name\" = $9::text"), "{anon}");
    assert!(
        !anon.contains("erased contact"),
        "values are parameters: {anon}"
    );
}

/// `timestamptz` attributes are selected as columns of their own (the engine writes them in
/// UTC); any other attribute inside one `jsonb` object, which is left out when there is none.
#[test]
fn attributes_are_selected_as_the_engine_reads_them() {
    let mut doc = small_map();
    doc["tables"]["audit_logs"]["attrs"] = json!(["at", "action's kind", "seen_at"]);
    let doc = DataMapDoc::from_json(&doc).unwrap();
    let mut cat = catalog_for(&doc);
    let audit = cat.tables.get_mut("public.audit_logs").unwrap();
    audit.columns.get_mut("action's kind").unwrap().type_name = "text".into();
    let map = DataMap::validate(doc, &cat).unwrap();

    let columns = AttrColumns::of(&map, "audit_logs");
    assert_eq!(columns.json, ["action's kind"]);
    assert_eq!(columns.utc, ["at", "seen_at"]);
    assert_eq!(columns.first_utc_column(), 3);
    let plan = Plan::build(&map, SubjectKind::User, RootStyle::Array).unwrap();
    let step = plan.steps.iter().find(|s| s.table == "audit_logs").unwrap();
    let sql = build(&map, &plan, step, StatementKind::SelectAttrs);
    assert!(
        sql.starts_with(
            "SELECT t.\"id\", jsonb_build_object('action''s kind', t.\"action's kind\"), \
             t.\"at\", t.\"seen_at\" FROM "
        ),
        "{sql}"
    );

    let columns = AttrColumns::of(&map, "invoices");
    assert!(columns.json.is_empty());
    assert_eq!(columns.first_utc_column(), 2);
    let plan = Plan::build(&map, SubjectKind::Org, RootStyle::Array).unwrap();
    let step = plan.steps.iter().find(|s| s.table == "invoices").unwrap();
    let sql = build(&map, &plan, step, StatementKind::SelectAttrs);
    assert!(
        sql.starts_with("SELECT t.\"id\", t.\"issued_at\" FROM "),
        "{sql}"
    );
}

fn expect_invalid(v: serde_json::Value, needle: &str) {
    match load(v) {
        Err(CoreError::InvalidDataMap(m)) => assert!(m.contains(needle), "{m} lacks {needle}"),
        other => panic!("expected invalid map ({needle}), got {other:?}"),
    }
}

#[test]
fn refuses_bad_maps() {
    let mut v = small_map();
    v["tables"]["messages"]["links"][1]["parent"] = json!("nowhere");
    expect_invalid(v, "not in the data map");

    let mut v = small_map();
    v["version"] = json!(2);
    expect_invalid(v, "version 2");

    let mut v = small_map();
    v["subjects"]["person"] = json!([{"table": "contacts", "column": "id"}]);
    expect_invalid(v, "unknown subject kind");

    let mut v = small_map();
    v["tables"]["media"]["links"] = json!([{"column": "org_id", "parent": "organizations"}, {"column": "message_id", "parent": "messages"}, {"column": "message_id", "parent": "messages"}]);
    expect_invalid(v, "listed twice");

    let mut v = small_map();
    v["tables"]["organizations"]["links"] = json!([{"column": "owner_id", "parent": "users"}]);
    // users links to organizations and organizations to users: a cycle.
    expect_invalid(v, "cycle");

    assert!(matches!(
        load(json!({"version": 1, "subjects": {}, "tables": {}, "extra": 1})),
        Err(CoreError::InvalidDataMap(_))
    ));
}

#[test]
fn refuses_maps_that_disagree_with_the_catalog() {
    let doc = DataMapDoc::from_json(&small_map()).unwrap();
    let good = catalog_for(&doc);

    let mut cat = good.clone();
    cat.tables.remove("public.invoices");
    let err = DataMap::validate(doc.clone(), &cat).unwrap_err();
    assert!(
        err.to_string().contains("table invoices does not exist"),
        "{err}"
    );

    let mut cat = good.clone();
    cat.foreign_keys
        .retain(|fk| !(fk.child == "public.media" && fk.child_columns == ["message_id"]));
    let err = DataMap::validate(doc.clone(), &cat).unwrap_err();
    assert!(err.to_string().contains("does not join"), "{err}");

    let mut cat = good.clone();
    cat.foreign_keys.push(ForeignKey {
        name: "notes_contact_fkey".into(),
        child: "public.notes".into(),
        child_columns: vec!["contact_id".into()],
        parent: "public.contacts".into(),
        parent_columns: vec!["id".into()],
        oid: 0,
        delete_check_only: true,
    });
    let err = DataMap::validate(doc.clone(), &cat).unwrap_err();
    assert!(
        err.to_string()
            .contains("public.notes references mapped table"),
        "{err}"
    );

    let mut cat = good.clone();
    cat.tables
        .get_mut("public.users")
        .unwrap()
        .columns
        .get_mut("email")
        .unwrap()
        .not_null = true;
    let err = DataMap::validate(doc.clone(), &cat).unwrap_err();
    assert!(err.to_string().contains("NOT NULL"), "{err}");

    let mut cat = good;
    cat.tables
        .get_mut("public.contacts")
        .unwrap()
        .columns
        .get_mut("id")
        .unwrap()
        .type_name = "uuid".into();
    let err = DataMap::validate(doc, &cat).unwrap_err();
    assert!(err.to_string().contains("bigint primary key"), "{err}");
}

#[test]
fn describe_shows_each_step_with_the_statement_it_runs() {
    let map = load(small_map()).unwrap();
    let contact = Plan::build(&map, SubjectKind::Contact, RootStyle::Scalar).unwrap();
    let d = describe(&map, &contact);
    let steps = d["steps"].as_array().unwrap();
    assert_eq!(steps.len(), contact.steps.len());
    // A contact's plan runs parents first when nothing is kept.
    assert_eq!(d["order"], "parents first");
    for (json, step) in steps.iter().zip(contact.steps.iter().rev()) {
        assert_eq!(
            json["sql"].as_str().unwrap(),
            build(&map, &contact, step, StatementKind::EraseUnderParents)
        );
    }
    let media = steps.iter().find(|s| s["table"] == "media").unwrap();
    assert!(
        media["sql"]
            .as_str()
            .unwrap()
            .contains("INSERT INTO erasure.storage_outbox"),
        "media keys queued: {media}"
    );
    // A user's conversations are detached, not erased: the step shows its UPDATE.
    let user = Plan::build(&map, SubjectKind::User, RootStyle::Scalar).unwrap();
    let d = describe(&map, &user);
    assert!(d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["sql"].as_str().unwrap().starts_with("UPDATE ")));
}

/// The names of the foreign keys a step checks itself.
fn checked(plan: &Plan, table: &str) -> Vec<String> {
    let step = plan
        .steps
        .iter()
        .find(|s| s.table == table && s.action == StepAction::Own)
        .unwrap();
    step.checked_links
        .iter()
        .map(|l| l.check.name.clone())
        .collect()
}

#[test]
fn person_plans_check_the_links_their_earlier_steps_clear() {
    let map = load(small_map()).unwrap();
    let plan = Plan::build(&map, SubjectKind::Contact, RootStyle::Scalar).unwrap();
    assert_eq!(
        checked(&plan, "contacts"),
        ["ai_logs_contact_id_fkey", "conversations_contact_id_fkey"]
    );
    assert_eq!(
        checked(&plan, "conversations"),
        [
            "ai_logs_conversation_id_fkey",
            "messages_conversation_id_fkey"
        ]
    );
    assert_eq!(checked(&plan, "messages"), ["media_message_id_fkey"]);
    assert!(
        checked(&plan, "media").is_empty(),
        "nothing references media"
    );

    // Detach links are checked too: their rows are unlinked by a step before the parent's.
    let plan = Plan::build(&map, SubjectKind::User, RootStyle::Scalar).unwrap();
    let users = checked(&plan, "users");
    for fk in [
        "conversations_assigned_user_id_fkey",
        "messages_sender_user_id_fkey",
        "channel_connections_user_id_fkey",
        "audit_logs_actor_user_id_fkey",
    ] {
        assert!(users.contains(&fk.to_owned()), "{fk} not in {users:?}");
    }
    // The parent's delete returns its keys for the check; a leaf's stays as it was.
    let step = |t: &str| plan.steps.iter().find(|s| s.table == t).unwrap();
    let users_sql = build(&map, &plan, step("users"), StatementKind::Erase);
    assert!(users_sql.ends_with("RETURNING t.\"id\""), "{users_sql}");
    let leaf = build(
        &map,
        &plan,
        step("channel_connections"),
        StatementKind::Erase,
    );
    assert!(!leaf.contains("RETURNING"), "{leaf}");
}

#[test]
fn delete_check_numbers_links_by_checking_step() {
    let map = load(small_map()).unwrap();
    let plan = Plan::build(&map, SubjectKind::Contact, RootStyle::Scalar).unwrap();
    let steps: Vec<&str> = plan
        .checking_steps()
        .into_iter()
        .map(|i| plan.steps[i].table.as_str())
        .collect();
    assert_eq!(steps, ["messages", "conversations", "contacts"]);
    let sql = erasure_core::statements::delete_check(&plan).unwrap();
    assert_eq!(
        sql,
        "SELECT CASE \
         WHEN (SELECT count(*) FROM ONLY \"public\".\"media\" c WHERE c.\"message_id\" = ANY($1)) > 0 THEN 1 \
         WHEN (SELECT count(*) FROM ONLY \"public\".\"ai_logs\" c WHERE c.\"conversation_id\" = ANY($2)) > 0 THEN 2 \
         WHEN (SELECT count(*) FROM ONLY \"public\".\"messages\" c WHERE c.\"conversation_id\" = ANY($2)) > 0 THEN 3 \
         WHEN (SELECT count(*) FROM ONLY \"public\".\"ai_logs\" c WHERE c.\"contact_id\" = ANY($3)) > 0 THEN 4 \
         WHEN (SELECT count(*) FROM ONLY \"public\".\"conversations\" c WHERE c.\"contact_id\" = ANY($3)) > 0 THEN 5 \
         ELSE 0 END"
    );
}

#[test]
fn an_organization_records_its_deleted_keys_for_the_check() {
    let map = load(small_map()).unwrap();
    // An organization's tables are scoped by the tenant column alone, so a row of another
    // organization may reference its rows: the check finds it through the deleted keys,
    // which go to a temporary table in chunks instead of back to the backend.
    let plan = Plan::build(&map, SubjectKind::Org, RootStyle::Scalar).unwrap();
    assert_eq!(plan.deleted_keys, DeletedKeys::Recorded);
    assert!(!plan.parents_first);
    assert_eq!(
        checked(&plan, "messages"),
        ["media_message_id_fkey"],
        "{:?}",
        plan.steps
    );
    let messages = plan.steps.iter().find(|s| s.table == "messages").unwrap();
    let sql = build(&map, &plan, messages, StatementKind::Erase);
    assert_eq!(
        sql,
        "WITH d AS (DELETE FROM \"public\".\"messages\" t WHERE t.\"org_id\" = $1 RETURNING t.\"id\"), \
         k AS (INSERT INTO pg_temp.erasure_deleted_keys (table_name, keys) \
         SELECT 'messages', array_agg(n.key) FROM (SELECT d.\"id\" AS key, \
         (row_number() OVER ()) / 10000 AS chunk FROM d) n GROUP BY n.chunk) \
         SELECT count(*) FROM d"
    );
    let check = erasure_core::statements::delete_check(&plan).unwrap();
    assert!(
        check.contains(
            "WHEN (SELECT count(*) FROM pg_temp.erasure_deleted_keys k, ONLY \"public\".\"media\" c \
             WHERE k.table_name = 'messages' AND c.\"message_id\" = ANY(k.keys)) > 0 THEN 1"
        ),
        "{check}"
    );
    assert!(!check.contains('$'), "takes no parameters: {check}");

    // A foreign key that does more than check (ON DELETE CASCADE, deferrable, partitioned) is
    // left to PostgreSQL.
    let doc = DataMapDoc::from_json(&small_map()).unwrap();
    let mut cat = catalog_for(&doc);
    for fk in &mut cat.foreign_keys {
        if fk.child == "public.media" {
            fk.delete_check_only = false;
        }
    }
    let map = DataMap::validate(doc, &cat).unwrap();
    let plan = Plan::build(&map, SubjectKind::Contact, RootStyle::Scalar).unwrap();
    assert!(checked(&plan, "messages").is_empty());
    assert!(!plan.checking_steps().is_empty());
}

#[test]
fn a_persons_plan_can_run_parents_first_by_the_keys_its_parents_deleted() {
    let map = load(small_map()).unwrap();
    let plan = Plan::build(&map, SubjectKind::Contact, RootStyle::Scalar).unwrap();
    assert!(plan.parents_first);
    let step = |t: &str| plan.steps.iter().find(|s| s.table == t).unwrap();
    let table = |i: &usize| plan.steps[*i].table.as_str();
    let parents = |t: &str| step(t).parent_keys.iter().map(table).collect::<Vec<_>>();
    assert_eq!(step("contacts").keyed_scope, "t.\"id\" = $1");
    assert!(step("contacts").parent_keys.is_empty());
    assert_eq!(
        step("messages").keyed_scope,
        "t.\"conversation_id\" = ANY($2)"
    );
    assert_eq!(parents("messages"), ["conversations"]);
    // The root's children test the root key itself, as children first does.
    assert_eq!(step("conversations").keyed_scope, "t.\"contact_id\" = $1");
    assert!(step("conversations").parent_keys.is_empty());
    // Two parents, joined by OR (no UNION of subqueries).
    assert_eq!(
        step("ai_logs").keyed_scope,
        "(t.\"contact_id\" = $1 OR t.\"conversation_id\" = ANY($2))"
    );
    assert_eq!(parents("ai_logs"), ["conversations"]);
    // Every parent's step comes after its children's in `steps`, so before them reversed.
    for (i, s) in plan.steps.iter().enumerate() {
        assert!(s.parent_keys.iter().all(|p| *p > i), "{}", s.table);
    }
    // The media step's outbox parameters follow its parent's keys.
    let media = build(&map, &plan, step("media"), StatementKind::EraseUnderParents);
    assert!(
        media.contains("t.\"message_id\" = ANY($2)") && media.contains("SELECT $3, $4"),
        "{media}"
    );

    // A user's plan detaches rows (a conversation keeps its link until the step unlinks it):
    // children first only; so is an organization's (PostgreSQL checks its foreign keys).
    for kind in [SubjectKind::User, SubjectKind::Org] {
        let plan = Plan::build(&map, kind, RootStyle::Scalar).unwrap();
        assert!(!plan.parents_first, "{kind:?}");
        assert_eq!(describe(&map, &plan)["order"], "children first");
    }
}
