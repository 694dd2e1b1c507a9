//! Throughput of pg_erasure with 1, 2 and 4 concurrent clients, each a thread with its own
//! connection, erasing distinct contacts; a fixed number of erasures per level.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use serde_json::{json, Value};

use super::contact::{engine_counts, Engine};
use super::subjects::{total, Contact};
use super::util::{ensure, progress, ratio, round3, session, summarize, Table, R};

pub const LEVELS: [usize; 3] = [1, 2, 4];

pub struct Level {
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
fn level(db: &str, sync: bool, clients: usize, subjects: &[Contact]) -> R<Level> {
    let barrier = Arc::new(Barrier::new(clients));
    let mut handles = Vec::new();
    for k in 0..clients {
        let mine: Vec<Contact> = subjects.iter().skip(k).step_by(clients).cloned().collect();
        let db = db.to_owned();
        let barrier = barrier.clone();
        handles.push(std::thread::spawn(
            move || -> Result<(Instant, Instant, Vec<f64>), String> {
                let run = || -> R<(Instant, Instant, Vec<f64>)> {
                    let label = format!("concurrency:{clients}:{k}");
                    let mut e = Engine::new(session(&db, &label, Some(sync))?)?;
                    if let Some(first) = mine.first() {
                        e.client.query_one(
                            "SELECT erasure.preview_erasure($1)",
                            &[&format!("contact:{}", first.id)],
                        )?;
                    }
                    barrier.wait();
                    let start = Instant::now();
                    let mut lat = Vec::new();
                    for c in &mine {
                        let t0 = Instant::now();
                        let report = e.erase(&format!("contact:{}", c.id))?;
                        lat.push(t0.elapsed().as_secs_f64() * 1e3);
                        let n = engine_counts(&report, c.id)?;
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
        clients,
        erasures: subjects.len(),
        wall_s: wall.as_secs_f64(),
        per_s: subjects.len() as f64 / wall.as_secs_f64(),
        latency_median_ms: s.median,
        latency_p95_ms: s.p95,
    })
}

/// Every level for one `synchronous_commit` setting; `pool` holds at least
/// `LEVELS.len() * per_level` contacts. Afterwards none of them has a row left.
pub fn measure(db: &str, sync: bool, pool: &[Contact], per_level: usize) -> R<Vec<Level>> {
    let mut out = Vec::new();
    for (i, clients) in LEVELS.iter().enumerate() {
        let subjects = &pool[i * per_level..(i + 1) * per_level];
        let l = level(db, sync, *clients, subjects)?;
        progress(&format!(
            "concurrency synchronous_commit={}: {clients} client(s), {} erasures in {:.2} s",
            if sync { "on" } else { "off" },
            l.erasures,
            l.wall_s
        ));
        out.push(l);
    }
    let ids: Vec<i64> = pool[..LEVELS.len() * per_level]
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

pub fn json(levels: &[Level], sync: bool) -> Value {
    let base = levels[0].per_s;
    json!({
        "synchronous_commit": if sync { "on" } else { "off" },
        "levels": levels.iter().map(|l| json!({
            "clients": l.clients, "erasures": l.erasures, "wall_s": round3(l.wall_s),
            "erasures_per_s": round3(l.per_s),
            "latency_median_ms": round3(l.latency_median_ms), "latency_p95_ms": round3(l.latency_p95_ms),
        })).collect::<Vec<_>>(),
        "scaling_2_over_1": ratio(levels[1].per_s, base),
        "scaling_4_over_1": ratio(levels[2].per_s, base),
    })
}

pub fn table(runs: &[(bool, Vec<Level>)]) -> Table {
    let mut t = Table::new(
        "pg_erasure contact erasures, concurrent clients",
        &[
            "synchronous_commit",
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
                l.clients.to_string(),
                l.erasures.to_string(),
                format!("{:.2}", l.wall_s),
                format!("{:.1}", l.per_s),
                format!("{:.2}", l.per_s / levels[0].per_s),
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
