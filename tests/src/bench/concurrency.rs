//! Throughput of pg_erasure with 1, 2 and 4 concurrent clients, each a thread with its own
//! connection, erasing distinct contacts; a fixed number of erasures per level. Three references
//! are measured the same way, level by level: the floor's hand-written deletes, the same
//! deletes in one server-side call (as CPU-bound as an erasure, and touching the same rows),
//! and a CPU-only statement as long as one erasure (no table, no lock, no WAL). The last two
//! show how far this machine's cores let a CPU-bound call scale at the time. Each level's
//! calls are split over rounds, every round going through all the levels, so a burst of load
//! from the machine's neighbours falls on one round of each level rather than on the whole of
//! one level.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant;

use postgres::{Client, Statement};
use serde_json::{json, Value};

use super::contact::{engine_counts, Engine, Floor, FloorOneCall};
use super::subjects::{total, Contact};
use super::util::{ensure, progress, ratio, round3, session, summarize, Table, R};

pub const LEVELS: [usize; 3] = [1, 2, 4];

/// Rolled-back calls each new connection makes before the clock starts: past PostgreSQL's
/// five custom plans of a prepared statement, and past a new backend's slower first requests
/// (about 25, 3 and 1.4 ms against 1.0 ms for pg_erasure's first, second and third).
const REHEARSALS: usize = 6;

/// Rounds each level's erasures are split over (fewer when a level has fewer erasures).
pub const ROUNDS: usize = 3;

/// The variants, in the order each round runs them at a level.
const VARIANTS: [Variant; 4] = [
    Variant::Engine,
    Variant::Floor,
    Variant::FloorOneCall,
    Variant::Reference,
];

/// The variants that erase contacts, each its own `per_level` of them at every level.
pub const ERASING: usize = Variant::FloorOneCall.pool_slot() + 1;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// `erasure.request_erasure`.
    Engine,
    /// The floor's hand-written deletes, one transaction per contact.
    Floor,
    /// The floor's deletes in one server-side call per contact.
    FloorOneCall,
    /// The CPU-only reference statement.
    Reference,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Engine => "pg_erasure",
            Variant::Floor => "floor",
            Variant::FloorOneCall => "floor_one_call",
            Variant::Reference => REFERENCE,
        }
    }

    /// Where this variant's contacts start in a level's share of the pool (the reference's
    /// calls are counted by pg_erasure's contacts, already erased: it ignores them).
    const fn pool_slot(self) -> usize {
        match self {
            Variant::Engine | Variant::Reference => 0,
            Variant::Floor => 1,
            Variant::FloorOneCall => 2,
        }
    }
}

/// The CPU-only reference's name in the table and the JSON.
const REFERENCE: &str = "cpu_reference";

/// The reference: a sum over a series produced in the target list (streamed, never
/// materialised), so a call only computes: no table, no lock, no WAL, no memory that grows.
const REFERENCE_SQL: &str = "SELECT sum(g) FROM (SELECT generate_series(1, $1::int) AS g) s";

pub struct Level {
    variant: Variant,
    pub clients: usize,
    /// Erasures (for the reference: calls of its statement).
    pub erasures: usize,
    pub wall_s: f64,
    pub per_s: f64,
    pub latency_median_ms: f64,
    pub latency_p95_ms: f64,
}

/// One round of one level: its wall time and every erasure's latency (ms).
struct Round {
    wall_s: f64,
    latencies: Vec<f64>,
}

/// One round of one level: `clients` threads take the next of `subjects` from one shared
/// queue until none is left (the reference: as many calls of its statement over `rows` as
/// there are subjects). A shared queue, not a fixed share per thread, so every client stays
/// busy until the round's last calls: with fixed shares the round lasted until the slowest
/// thread finished, and its tail, with fewer clients running than the level counts, was up to
/// a tenth of a short round. Each connection first rehearses (see [`Caller::rehearse`]).
fn round(
    db: &str,
    sync: bool,
    variant: Variant,
    clients: usize,
    subjects: &[Contact],
    rows: i32,
) -> R<Round> {
    let barrier = Arc::new(Barrier::new(clients));
    let queue: Arc<[Contact]> = subjects.into();
    let next = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for k in 0..clients {
        let db = db.to_owned();
        let barrier = barrier.clone();
        let queue = queue.clone();
        let next = next.clone();
        handles.push(std::thread::spawn(
            move || -> Result<(Instant, Instant, Vec<f64>), String> {
                let run = || -> R<(Instant, Instant, Vec<f64>)> {
                    let label = format!("concurrency:{}:{clients}:{k}", variant.name());
                    let caller = session(&db, &label, Some(sync))
                        .and_then(|client| Caller::new(variant, client))
                        .and_then(|mut caller| {
                            if let Some(first) = queue.get(k) {
                                caller.rehearse(first, rows)?;
                            }
                            Ok(caller)
                        });
                    // Every thread reaches the barrier, ready or not: one that failed would
                    // otherwise leave the others waiting forever.
                    barrier.wait();
                    let mut caller = caller?;
                    let start = Instant::now();
                    let mut lat = Vec::new();
                    while let Some(c) = queue.get(next.fetch_add(1, Ordering::Relaxed)) {
                        lat.push(caller.call(c, rows)?);
                    }
                    Ok((start, Instant::now(), lat))
                };
                run().map_err(|e| e.to_string())
            },
        ));
    }
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    let mut lat = Vec::new();
    for h in handles {
        let (s, e, l) = h.join().map_err(|_| "concurrency thread panicked")??;
        starts.push(s);
        ends.push(e);
        lat.extend(l);
    }
    let wall = ends
        .iter()
        .max()
        .unwrap()
        .duration_since(*starts.iter().min().unwrap());
    Ok(Round {
        wall_s: wall.as_secs_f64(),
        latencies: lat,
    })
}

/// One client's connection, ready for its variant's calls.
enum Caller {
    Engine(Engine),
    Floor(Floor),
    FloorOneCall(FloorOneCall),
    Reference(Client, Statement),
}

impl Caller {
    fn new(variant: Variant, client: Client) -> R<Caller> {
        Ok(match variant {
            Variant::Engine => Caller::Engine(Engine::new(client)?),
            Variant::Floor => Caller::Floor(Floor::new(client, "public")?),
            Variant::FloorOneCall => Caller::FloorOneCall(FloorOneCall::new(client)?),
            Variant::Reference => {
                let mut client = client;
                let statement = client.prepare(REFERENCE_SQL)?;
                Caller::Reference(client, statement)
            }
        })
    }

    /// Warms a new connection up as a long-lived one is: [`REHEARSALS`] calls for `subject`,
    /// each rolled back (the reference's are plain calls). Every variant gets the same, so
    /// none of them pays its first calls' extra (loading, planning) inside the clock, where
    /// four clients would pay it four times over.
    fn rehearse(&mut self, subject: &Contact, rows: i32) -> R<()> {
        for _ in 0..REHEARSALS {
            match self {
                Caller::Engine(e) => e.rehearse(&format!("contact:{}", subject.id))?,
                Caller::Floor(f) => f.rehearse(subject.id)?,
                Caller::FloorOneCall(f) => f.rehearse(subject.id)?,
                Caller::Reference(client, statement) => {
                    drop(client.query_one(&*statement, &[&rows])?)
                }
            }
        }
        Ok(())
    }

    /// One call for `subject` (the reference's ignores it) and its latency in ms, the commit
    /// included; an erasure is then checked to have deleted every row the subject had.
    fn call(&mut self, subject: &Contact, rows: i32) -> R<f64> {
        let t0 = Instant::now();
        let ms = || t0.elapsed().as_secs_f64() * 1e3;
        let (latency, erased) = match self {
            Caller::Engine(e) => {
                let report = e.erase(&format!("contact:{}", subject.id))?;
                (ms(), engine_counts(&report, subject.id)?)
            }
            Caller::Floor(f) => f.erase(subject.id).map(|n| (ms(), n))?,
            Caller::FloorOneCall(f) => f.erase(subject.id).map(|n| (ms(), n))?,
            Caller::Reference(client, statement) => {
                client.query_one(&*statement, &[&rows])?;
                return Ok(ms());
            }
        };
        ensure(total(&erased) == subject.total(), || {
            format!(
                "concurrency: contact {} erased {} rows, had {}",
                subject.id,
                total(&erased),
                subject.total()
            )
        })?;
        Ok(latency)
    }
}

/// Rows of the reference statement for calls of about `target_ms` each on this machine now
/// (one connection, the median of a few calls, scaled linearly).
fn reference_rows_for(db: &str, sync: bool, target_ms: f64) -> R<i32> {
    const PROBE_ROWS: i32 = 50_000;
    let mut client = session(db, "concurrency:reference:calibrate", Some(sync))?;
    let statement = client.prepare(REFERENCE_SQL)?;
    let mut times = Vec::new();
    for _ in 0..7 {
        let t0 = Instant::now();
        client.query_one(&statement, &[&PROBE_ROWS])?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let per_call = summarize(&times).median.max(1e-3);
    let rows = f64::from(PROBE_ROWS) * target_ms / per_call;
    Ok(rows.clamp(1_000.0, 50_000_000.0) as i32)
}

/// Every level for one `synchronous_commit` setting: every variant in turn at each level;
/// `pool` holds at least `ERASING * LEVELS.len() * per_level` contacts.
/// Afterwards none of them has a row left.
pub fn measure(db: &str, sync: bool, pool: &[Contact], per_level: usize) -> R<Run> {
    let rounds = ROUNDS.min(per_level).max(1);
    FloorOneCall::install(&mut session(db, "concurrency:setup", None)?)?;
    // Per (variant, level): total wall time and every latency, over the rounds.
    let mut walls = [[0.0f64; LEVELS.len()]; VARIANTS.len()];
    let mut latencies: [[Vec<f64>; LEVELS.len()]; VARIANTS.len()] = Default::default();
    // Sized once pg_erasure's first single-client round has run: its calls then take about
    // as long as an erasure.
    let mut reference_rows = None;
    for r in 0..rounds {
        for (i, clients) in LEVELS.iter().enumerate() {
            for (j, variant) in VARIANTS.into_iter().enumerate() {
                let at = (ERASING * i + variant.pool_slot()) * per_level;
                let part = &pool[at + per_level * r / rounds..at + per_level * (r + 1) / rounds];
                let rows = match (variant, reference_rows) {
                    (Variant::Reference, None) => {
                        // pg_erasure (VARIANTS[0]) at one client (LEVELS[0]).
                        let target = summarize(&latencies[0][0]).median;
                        *reference_rows.insert(reference_rows_for(db, sync, target)?)
                    }
                    (_, rows) => rows.unwrap_or(0),
                };
                let done = round(db, sync, variant, *clients, part, rows)?;
                walls[j][i] += done.wall_s;
                latencies[j][i].extend(done.latencies);
            }
        }
    }
    let mut levels = Vec::new();
    for (j, variant) in VARIANTS.into_iter().enumerate() {
        for (i, clients) in LEVELS.iter().enumerate() {
            let s = summarize(&latencies[j][i]);
            let l = Level {
                variant,
                clients: *clients,
                erasures: per_level,
                wall_s: walls[j][i],
                per_s: per_level as f64 / walls[j][i],
                latency_median_ms: s.median,
                latency_p95_ms: s.p95,
            };
            progress(&format!(
                "concurrency synchronous_commit={}: {} {clients} client(s), {} calls in {:.2} s ({rounds} rounds)",
                if sync { "on" } else { "off" },
                l.variant.name(),
                l.erasures,
                l.wall_s
            ));
            levels.push(l);
        }
    }
    let ids: Vec<i64> = pool[..ERASING * LEVELS.len() * per_level]
        .iter()
        .map(|c| c.id)
        .collect();
    let mut c = session(db, "concurrency:check", None)?;
    // The per-subject count query, over all of them at once.
    let sql = super::subjects::count_sql("public").replace("= $1", "= ANY($1)");
    let left = total(&super::subjects::row_counts(&c.query_one(&sql, &[&ids])?));
    ensure(left == 0, || {
        format!("concurrency: {left} rows of erased contacts remain")
    })?;
    Ok(Run {
        sync,
        levels,
        reference_rows: reference_rows.unwrap_or(0),
    })
}

/// One `synchronous_commit` setting's levels.
pub struct Run {
    pub sync: bool,
    pub levels: Vec<Level>,
    /// The series length of the reference statement.
    pub reference_rows: i32,
}

/// Contact erasures done (and checked) over `runs`: the reference's calls not counted.
pub fn erasures(runs: &[Run]) -> usize {
    runs.iter()
        .flat_map(|run| &run.levels)
        .filter(|l| l.variant != Variant::Reference)
        .map(|l| l.erasures)
        .sum()
}

/// Erasures per second of `variant` at `clients`, and its scaling over one client.
fn scaling(levels: &[Level], variant: Variant, clients: usize) -> (f64, f64) {
    let of = |n: usize| {
        levels
            .iter()
            .find(|l| l.variant == variant && l.clients == n)
            .map(|l| l.per_s)
            .unwrap_or(f64::NAN)
    };
    (of(clients), of(clients) / of(1))
}

pub fn json(run: &Run) -> Value {
    let levels = &run.levels;
    let scale = |variant: Variant, clients: usize| ratio(scaling(levels, variant, clients).1, 1.0);
    let four = |variant: Variant| scaling(levels, variant, 4).1;
    json!({
        "synchronous_commit": if run.sync { "on" } else { "off" },
        "levels": levels.iter().map(|l| {
            // The reference erases nothing: its count is of calls.
            let count = if l.variant == Variant::Reference { "calls" } else { "erasures" };
            json!({
                "variant": l.variant.name(), "clients": l.clients, count: l.erasures, "wall_s": round3(l.wall_s),
                format!("{count}_per_s"): round3(l.per_s),
                "latency_median_ms": round3(l.latency_median_ms), "latency_p95_ms": round3(l.latency_p95_ms),
            })
        }).collect::<Vec<_>>(),
        "scaling_2_over_1": scale(Variant::Engine, 2),
        "scaling_4_over_1": scale(Variant::Engine, 4),
        "floor_scaling_2_over_1": scale(Variant::Floor, 2),
        "floor_scaling_4_over_1": scale(Variant::Floor, 4),
        "floor_one_call_scaling_2_over_1": scale(Variant::FloorOneCall, 2),
        "floor_one_call_scaling_4_over_1": scale(Variant::FloorOneCall, 4),
        "reference_sql": REFERENCE_SQL,
        "reference_rows": run.reference_rows,
        "reference_sizing": "the series length that made one call take pg_erasure's median single-client latency of the first round, measured on one connection just before",
        "reference_scaling_2_over_1": scale(Variant::Reference, 2),
        "reference_scaling_4_over_1": scale(Variant::Reference, 4),
        "scaling_4_over_1_of_reference": ratio(four(Variant::Engine), four(Variant::Reference)),
        "scaling_4_over_1_of_floor_one_call": ratio(four(Variant::Engine), four(Variant::FloorOneCall)),
    })
}

pub fn table(runs: &[Run]) -> Table {
    let mut t = Table::new(
        "Contact erasures, concurrent clients (pg_erasure; the floor, the floor in one call and a CPU-only statement as references)",
        &[
            "synchronous_commit",
            "variant",
            "clients",
            "calls",
            "wall s",
            "calls/s",
            "scaling vs 1",
            "median ms",
            "p95 ms",
        ],
    );
    for run in runs {
        let levels = &run.levels;
        for l in levels {
            t.row(vec![
                if run.sync { "on" } else { "off" }.into(),
                l.variant.name().into(),
                l.clients.to_string(),
                l.erasures.to_string(),
                format!("{:.2}", l.wall_s),
                format!("{:.1}", l.per_s),
                format!("{:.2}", scaling(levels, l.variant, l.clients).1),
                format!("{:.2}", l.latency_median_ms),
                format!("{:.2}", l.latency_p95_ms),
            ]);
        }
    }
    t.note(format!(
        "{} CPU core(s) on this machine, shared by the clients and the server",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    ));
    t.note(format!(
        "{REFERENCE}: `{REFERENCE_SQL}` over {} rows, sized to pg_erasure's single-client median: \
         computing only (no table, lock or WAL), it shows how far the cores let a CPU-bound call scale",
        runs.iter()
            .map(|r| r.reference_rows.to_string())
            .collect::<Vec<_>>()
            .join(" / ")
    ));
    for run in runs {
        let of = |variant: Variant| scaling(&run.levels, variant, 4).1;
        t.note(format!(
            "synchronous_commit {}: 4 clients / 1: pg_erasure {:.2}, floor_one_call {:.2}, {REFERENCE} {:.2}, floor {:.2}",
            if run.sync { "on" } else { "off" },
            of(Variant::Engine),
            of(Variant::FloorOneCall),
            of(Variant::Reference),
            of(Variant::Floor),
        ));
    }
    t
}
