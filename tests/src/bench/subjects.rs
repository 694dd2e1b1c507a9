//! Contact subjects of the same shape, in pairs: one for group A (floor, cascade, limit — the
//! latter two on their copies), one for group B (pg_erasure), so every variant erases the same
//! amount of data per subject.

use postgres::Client;
use serde_json::{json, Value};

use super::util::{fail, R};

/// The tables a contact erasure touches, leaf first (the order the hand-written SQL deletes in):
/// the first twelve of every CRM table's leaf-first order.
pub const CONTACT_TABLES: [&str; 12] = {
    let mut t = [""; 12];
    let mut i = 0;
    while i < t.len() {
        t[i] = super::orgs::ORG_TABLES[i];
        i += 1;
    }
    t
};

pub type Counts = [i64; 12];

pub fn total(c: &Counts) -> i64 {
    c.iter().sum()
}

/// One query per schema: the rows of contact `$1` in every table, in `CONTACT_TABLES` order.
/// The same rows the engine's plan reaches (ai_logs by contact or by one of its conversations).
pub fn count_sql(s: &str) -> String {
    let conv = format!("SELECT v.id FROM {s}.conversations v WHERE v.contact_id = $1");
    format!(
        "SELECT
          (SELECT count(*) FROM {s}.media d WHERE d.message_id IN
              (SELECT m.id FROM {s}.messages m WHERE m.conversation_id IN ({conv}))),
          (SELECT count(*) FROM {s}.messages m WHERE m.conversation_id IN ({conv})),
          (SELECT count(*) FROM {s}.ai_logs a WHERE a.contact_id = $1 OR a.conversation_id IN ({conv})),
          (SELECT count(*) FROM {s}.ai_prompt_cache WHERE contact_id = $1),
          (SELECT count(*) FROM {s}.order_items i WHERE i.order_id IN
              (SELECT o.id FROM {s}.orders o WHERE o.contact_id = $1)),
          (SELECT count(*) FROM {s}.orders WHERE contact_id = $1),
          (SELECT count(*) FROM {s}.reorder_cycles WHERE contact_id = $1),
          (SELECT count(*) FROM {s}.lifecycle_events WHERE contact_id = $1),
          (SELECT count(*) FROM {s}.contact_labels WHERE contact_id = $1),
          (SELECT count(*) FROM {s}.segment_members WHERE contact_id = $1),
          (SELECT count(*) FROM {s}.conversations WHERE contact_id = $1),
          (SELECT count(*) FROM {s}.contacts WHERE id = $1)"
    )
}

pub fn row_counts(row: &postgres::Row) -> Counts {
    let mut c = [0i64; 12];
    for (i, v) in c.iter_mut().enumerate() {
        *v = row.get(i);
    }
    c
}

/// The same counts for every contact at once (set-based), to choose subjects.
const SHAPES_SQL: &str = "
WITH conv AS (SELECT contact_id, count(*) n FROM conversations GROUP BY 1),
msg AS (SELECT v.contact_id, count(*) n FROM messages m JOIN conversations v ON v.id = m.conversation_id GROUP BY 1),
med AS (SELECT v.contact_id, count(*) n FROM media d JOIN messages m ON m.id = d.message_id
          JOIN conversations v ON v.id = m.conversation_id GROUP BY 1),
ai AS (SELECT cid AS contact_id, count(*) n FROM
        (SELECT id, contact_id AS cid FROM ai_logs
          UNION SELECT a.id, v.contact_id FROM ai_logs a JOIN conversations v ON v.id = a.conversation_id) x
        GROUP BY 1),
pc AS (SELECT contact_id, count(*) n FROM ai_prompt_cache GROUP BY 1),
oi AS (SELECT o.contact_id, count(*) n FROM order_items i JOIN orders o ON o.id = i.order_id GROUP BY 1),
ord AS (SELECT contact_id, count(*) n FROM orders GROUP BY 1),
ro AS (SELECT contact_id, count(*) n FROM reorder_cycles GROUP BY 1),
life AS (SELECT contact_id, count(*) n FROM lifecycle_events GROUP BY 1),
lab AS (SELECT contact_id, count(*) n FROM contact_labels GROUP BY 1),
seg AS (SELECT contact_id, count(*) n FROM segment_members GROUP BY 1)
SELECT c.id, c.org_id,
       coalesce(med.n, 0), coalesce(msg.n, 0), coalesce(ai.n, 0), coalesce(pc.n, 0),
       coalesce(oi.n, 0), coalesce(ord.n, 0), coalesce(ro.n, 0), coalesce(life.n, 0),
       coalesce(lab.n, 0), coalesce(seg.n, 0), coalesce(conv.n, 0), 1::bigint
  FROM contacts c
  LEFT JOIN conv ON conv.contact_id = c.id LEFT JOIN msg ON msg.contact_id = c.id
  LEFT JOIN med ON med.contact_id = c.id LEFT JOIN ai ON ai.contact_id = c.id
  LEFT JOIN pc ON pc.contact_id = c.id LEFT JOIN oi ON oi.contact_id = c.id
  LEFT JOIN ord ON ord.contact_id = c.id LEFT JOIN ro ON ro.contact_id = c.id
  LEFT JOIN life ON life.contact_id = c.id LEFT JOIN lab ON lab.contact_id = c.id
  LEFT JOIN seg ON seg.contact_id = c.id
 ORDER BY c.id";

#[derive(Clone, Debug)]
pub struct Contact {
    pub id: i64,
    pub org: i64,
    pub counts: Counts,
}

impl Contact {
    /// (conversations, messages, media, orders, ai_logs): the shape subjects are matched on.
    fn key5(&self) -> [i64; 5] {
        let c = &self.counts;
        [c[10], c[1], c[0], c[5], c[2]]
    }
    pub fn total(&self) -> i64 {
        total(&self.counts)
    }
}

/// Two contacts of one shape: `a` for floor/cascade/limit, `b` for pg_erasure.
#[derive(Clone, Debug)]
pub struct Pair {
    pub a: Contact,
    pub b: Contact,
    /// Same (conversations, messages, media, orders, ai_logs) and the same total row count.
    pub exact: bool,
}

pub struct Selection {
    /// Per run: warm-up pairs first, then measured pairs.
    pub runs: Vec<Vec<Pair>>,
    /// Further contacts (closest shapes first) for the concurrency measurements.
    pub pool: Vec<Contact>,
    pub info: Value,
}

fn median(mut v: Vec<i64>) -> i64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Picks `runs` × (`warmup` + `subjects`) pairs around the typical contact and `pool_size` more
/// contacts. The typical shape is the component-wise median of (conversations, messages, media,
/// orders, ai_logs); contacts are grouped by that shape plus their total row count, pairs are
/// taken inside a group (exact), closest groups first; only if that runs short (tiny scales) are
/// the remaining closest contacts paired inexactly.
pub fn select(
    c: &mut Client,
    runs: usize,
    warmup: usize,
    subjects: usize,
    pool_size: usize,
) -> R<Selection> {
    let all: Vec<Contact> = c
        .query(SHAPES_SQL, &[])?
        .iter()
        .map(|r| {
            let mut counts = [0i64; 12];
            for (i, v) in counts.iter_mut().enumerate() {
                *v = r.get(i + 2);
            }
            Contact {
                id: r.get(0),
                org: r.get(1),
                counts,
            }
        })
        .collect();
    let per_run = warmup + subjects;
    let need_pairs = runs * per_run;
    if all.len() < 2 * need_pairs + pool_size {
        return fail(format!(
            "{} contacts, but the bench needs {} (2 × {need_pairs} paired subjects + {pool_size} for concurrency); raise --contacts-per-org or --orgs, or lower --subjects",
            all.len(),
            2 * need_pairs + pool_size
        ));
    }
    let target: [i64; 5] =
        std::array::from_fn(|k| median(all.iter().map(|x| x.key5()[k]).collect()));
    let target_total = median(all.iter().map(Contact::total).collect());
    let dist = |x: &Contact| -> i64 {
        x.key5()
            .iter()
            .zip(target)
            .map(|(a, b)| (a - b).abs())
            .sum::<i64>()
            + (x.total() - target_total).abs()
    };
    // Exact groups, closest first.
    let mut groups: std::collections::BTreeMap<(i64, [i64; 5], i64), Vec<Contact>> =
        Default::default();
    for x in &all {
        groups
            .entry((dist(x), x.key5(), x.total()))
            .or_default()
            .push(x.clone());
    }
    let mut pairs = Vec::new();
    let mut leftovers = Vec::new();
    for (_, members) in groups {
        let mut it = members.into_iter();
        loop {
            match (it.next(), it.next()) {
                (Some(x), Some(y)) if pairs.len() < need_pairs => {
                    // Alternate which of the two (lower or higher id) goes to group A.
                    let (a, b) = if pairs.len() % 2 == 0 { (x, y) } else { (y, x) };
                    pairs.push(Pair { a, b, exact: true });
                }
                (Some(x), Some(y)) => {
                    leftovers.push(x);
                    leftovers.push(y);
                }
                (Some(x), None) => {
                    leftovers.push(x);
                    break;
                }
                _ => break,
            }
        }
    }
    let exact_pairs = pairs.len();
    leftovers.sort_by_key(|x| (dist(x), x.key5(), x.total(), x.id));
    let mut rest = leftovers.into_iter();
    while pairs.len() < need_pairs {
        let (Some(a), Some(b)) = (rest.next(), rest.next()) else {
            return fail("not enough contacts to pair");
        };
        let exact = a.key5() == b.key5() && a.total() == b.total();
        pairs.push(Pair { a, b, exact });
    }
    let pool: Vec<Contact> = rest.take(pool_size).collect();
    if pool.len() < pool_size {
        return fail("not enough contacts left for the concurrency measurements");
    }
    // Pair i goes to run i % runs: both runs get the same mix of distances.
    let mut by_run: Vec<Vec<Pair>> = vec![Vec::new(); runs];
    for (i, p) in pairs.into_iter().enumerate() {
        by_run[i % runs].push(p);
    }
    let chosen: Vec<&Pair> = by_run.iter().flatten().collect();
    let totals: Vec<i64> = chosen
        .iter()
        .flat_map(|p| [p.a.total(), p.b.total()])
        .collect();
    let info = json!({
        "contacts_available": all.len(),
        "typical_shape": {"conversations": target[0], "messages": target[1], "media": target[2],
                          "orders": target[3], "ai_logs": target[4], "total_rows": target_total},
        "pairs": need_pairs,
        "exact_pairs": exact_pairs.min(need_pairs),
        "rows_per_subject_min": totals.iter().min(),
        "rows_per_subject_max": totals.iter().max(),
        "rows_per_subject_mean": totals.iter().sum::<i64>() as f64 / totals.len() as f64,
        "pool_for_concurrency": pool.len(),
        "orgs_spanned": chosen.iter().flat_map(|p| [p.a.org, p.b.org])
            .collect::<std::collections::BTreeSet<_>>().len(),
    });
    Ok(Selection {
        runs: by_run,
        pool,
        info,
    })
}
