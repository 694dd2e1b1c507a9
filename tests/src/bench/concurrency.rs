//! Throughput of pg_erasure with 1, 2 and 4 concurrent clients, each a thread with its own
//! connection, erasing distinct contacts; a fixed number of erasures per level. The floor's
//! hand-written deletes are measured the same way, level by level, as the reference for what
//! this machine's cores allow.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use serde_json::{json, Value};

use super::contact::{engine_counts, Engine, Floor};
use super::subjects::{total, Contact};
use super::util::{ensure, progress, ratio, round3, session, summarize, Table, R};

pub const LEVELS: [usize; 3] = [1, 2, 4];

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

/// One level: `subjects` split round-robin over `clients` threads. Each connection first runs
/// a `preview_erasure` (which rolls back) so the extension and its modules are loaded before
/// the clock starts.
fn level(db: &str, sync: bool, floor: bool, clients: usize, subjects: &[Contact]) -> R<Level> {
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
    let s = summarize(&lat);
    Ok(Level {
        variant: variant(floor),
        clients,
        erasures: subjects.len(),
        wall_s: wall.as_secs_f64(),
        per_s: subjects.len() as f64 / wall.as_secs_f64(),
        latency_median_ms: s.median,
        latency_p95_ms: s.p95,
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
    let mut engine = Vec::new();
    let mut floor = Vec::new();
    for (i, clients) in LEVELS.iter().enumerate() {
        for (j, hand) in [false, true].into_iter().enumerate() {
            let at = (2 * i + j) * per_level;
            let l = level(db, sync, hand, *clients, &pool[at..at + per_level])?;
            progress(&format!(
                "concurrency synchronous_commit={}: {} {clients} client(s), {} erasures in {:.2} s",
                if sync { "on" } else { "off" },
                l.variant,
                l.erasures,
                l.wall_s
            ));
            if hand {
                floor.push(l);
            } else {
                engine.push(l);
            }
        }
    }
    let mut out = engine;
    out.extend(floor);
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
