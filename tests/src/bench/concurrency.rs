//! Throughput of pg_erasure with 1, 2 and 4 concurrent clients, each a thread with its own
//! connection, erasing distinct contacts; a fixed number of erasures per level. The floor's
//! hand-written deletes are measured the same way, level by level, as the reference for what
//! this machine's cores allow. Each level's erasures are split over rounds, every round going
//! through all the levels, so a burst of load from the machine's neighbours falls on one round
//! of each level rather than on the whole of one level.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use serde_json::{json, Value};

use super::contact::{engine_counts, Engine, Floor};
use super::subjects::{total, Contact};
use super::util::{ensure, progress, ratio, round3, session, summarize, Table, R};

pub const LEVELS: [usize; 3] = [1, 2, 4];

/// Rounds each level's erasures are split over (fewer when a level has fewer erasures).
pub const ROUNDS: usize = 3;

pub struct Level {
    /// `pg_erasure` or `floor`.
    pub variant: &'static str,
    pub clients: usize,
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

/// One round of a level: `subjects` split round-robin over `clients` threads. Each connection
/// first runs a `preview_erasure` (which rolls back) so the extension and its modules are
/// loaded before the clock starts.
fn round(db: &str, sync: bool, floor: bool, clients: usize, subjects: &[Contact]) -> R<Round> {
    let barrier = Arc::new(Barrier::new(clients));
    let mut handles = Vec::new();
    for k in 0..clients {
        let mine: Vec<Contact> = subjects.iter().skip(k).step_by(clients).cloned().collect();
        let db = db.to_owned();
        let barrier = barrier.clone();
        handles.push(std::thread::spawn(
            move || -> Result<(Instant, Instant, Vec<f64>), String> {
                let run = || -> R<(Instant, Instant, Vec<f64>)> {
                    let label = format!("concurrency:{}:{clients}:{k}", variant(floor));
                    let client = session(&db, &label, Some(sync))?;
                    let mut engine = None;
                    let mut hand = None;
                    if floor {
                        hand = Some(Floor::new(client, "public")?);
                    } else {
                        let mut e = Engine::new(client)?;
                        if let Some(first) = mine.first() {
                            e.client.query_one(
                                "SELECT erasure.preview_erasure($1)",
                                &[&format!("contact:{}", first.id)],
                            )?;
                        }
                        engine = Some(e);
                    }
                    barrier.wait();
                    let start = Instant::now();
                    let mut lat = Vec::new();
                    for c in &mine {
                        let t0 = Instant::now();
                        let n = match (&mut engine, &mut hand) {
                            (Some(e), _) => {
                                let report = e.erase(&format!("contact:{}", c.id))?;
                                lat.push(t0.elapsed().as_secs_f64() * 1e3);
                                engine_counts(&report, c.id)?
                            }
                            (None, Some(f)) => {
                                let n = f.erase(c.id)?;
                                lat.push(t0.elapsed().as_secs_f64() * 1e3);
                                n
                            }
                            (None, None) => unreachable!("one eraser per thread"),
                        };
                        ensure(total(&n) == c.total(), || {
                            format!(
                                "concurrency: contact {} erased {} rows, had {}",
                                c.id,
                                total(&n),
                                c.total()
                            )
                        })?;
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

fn variant(floor: bool) -> &'static str {
    if floor {
        "floor"
    } else {
        "pg_erasure"
    }
}

/// Every level for one `synchronous_commit` setting, pg_erasure and the floor alternating
/// level by level; `pool` holds at least `2 * LEVELS.len() * per_level` contacts. Afterwards
/// none of them has a row left. Returns pg_erasure's levels, then the floor's.
pub fn measure(db: &str, sync: bool, pool: &[Contact], per_level: usize) -> R<Vec<Level>> {
    let rounds = ROUNDS.min(per_level).max(1);
    // Per (variant, level): total wall time and every latency, over the rounds.
    let mut walls = [[0.0f64; LEVELS.len()]; 2];
    let mut latencies: [[Vec<f64>; LEVELS.len()]; 2] = Default::default();
    for r in 0..rounds {
        for (i, clients) in LEVELS.iter().enumerate() {
            for (j, hand) in [false, true].into_iter().enumerate() {
                let at = (2 * i + j) * per_level;
                let part = &pool[at + per_level * r / rounds..at + per_level * (r + 1) / rounds];
                let done = round(db, sync, hand, *clients, part)?;
                walls[j][i] += done.wall_s;
                latencies[j][i].extend(done.latencies);
            }
        }
    }
    let mut out = Vec::new();
    for (j, hand) in [false, true].into_iter().enumerate() {
        for (i, clients) in LEVELS.iter().enumerate() {
            let s = summarize(&latencies[j][i]);
            let l = Level {
                variant: variant(hand),
                clients: *clients,
                erasures: per_level,
                wall_s: walls[j][i],
                per_s: per_level as f64 / walls[j][i],
                latency_median_ms: s.median,
                latency_p95_ms: s.p95,
            };
            progress(&format!(
                "concurrency synchronous_commit={}: {} {clients} client(s), {} erasures in {:.2} s ({rounds} rounds)",
                if sync { "on" } else { "off" },
                l.variant,
                l.erasures,
                l.wall_s
            ));
            out.push(l);
        }
    }
    let ids: Vec<i64> = pool[..2 * LEVELS.len() * per_level]
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
    Ok(out)
}

/// Erasures per second of `variant` at `clients`, and its scaling over one client.
fn scaling(levels: &[Level], variant: &str, clients: usize) -> (f64, f64) {
    let of = |n: usize| {
        levels
            .iter()
            .find(|l| l.variant == variant && l.clients == n)
            .map(|l| l.per_s)
            .unwrap_or(f64::NAN)
    };
    (of(clients), of(clients) / of(1))
}

pub fn json(levels: &[Level], sync: bool) -> Value {
    json!({
        "synchronous_commit": if sync { "on" } else { "off" },
        "levels": levels.iter().map(|l| json!({
            "variant": l.variant, "clients": l.clients, "erasures": l.erasures, "wall_s": round3(l.wall_s),
            "erasures_per_s": round3(l.per_s),
            "latency_median_ms": round3(l.latency_median_ms), "latency_p95_ms": round3(l.latency_p95_ms),
        })).collect::<Vec<_>>(),
        "scaling_2_over_1": ratio(scaling(levels, "pg_erasure", 2).1, 1.0),
        "scaling_4_over_1": ratio(scaling(levels, "pg_erasure", 4).1, 1.0),
        "floor_scaling_2_over_1": ratio(scaling(levels, "floor", 2).1, 1.0),
        "floor_scaling_4_over_1": ratio(scaling(levels, "floor", 4).1, 1.0),
    })
}

pub fn table(runs: &[(bool, Vec<Level>)]) -> Table {
    let mut t = Table::new(
        "Contact erasures, concurrent clients (pg_erasure, and the floor as the machine's reference)",
        &[
            "synchronous_commit",
            "variant",
            "clients",
            "erasures",
            "wall s",
            "erasures/s",
            "scaling vs 1",
            "median ms",
            "p95 ms",
        ],
    );
    for (sync, levels) in runs {
        for l in levels {
            t.row(vec![
                if *sync { "on" } else { "off" }.into(),
                l.variant.into(),
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
    t
}
