//! Small shared pieces: errors, connections, statistics, psql-like tables.

use std::time::Instant;

use postgres::Client;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type R<T> = Result<T, Error>;

/// A failed correctness check: the run aborts, loudly.
pub fn fail<T>(msg: impl Into<String>) -> R<T> {
    Err(format!("CHECK FAILED: {}", msg.into()).into())
}

/// `fail` unless `cond`.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> R<()> {
    if cond {
        Ok(())
    } else {
        fail(msg())
    }
}

/// Progress on stderr, so stdout keeps only the result tables.
pub fn progress(msg: &str) {
    eprintln!("[bench {:>7.1}s] {msg}", crate::bench::elapsed_s());
}

/// A connection of its own for one role of the bench, labelled in pg_stat_activity.
/// `sync`: `synchronous_commit` on/off; `None` leaves the server default.
pub fn session(db: &str, label: &str, sync: Option<bool>) -> R<Client> {
    let mut c = erasure_tests::connect(db);
    c.batch_execute(&format!(
        "SET application_name = 'pg_erasure_bench:{label}'"
    ))?;
    if let Some(on) = sync {
        c.batch_execute(if on {
            "SET synchronous_commit = on"
        } else {
            "SET synchronous_commit = off"
        })?;
    }
    Ok(c)
}

/// CHECKPOINT, untimed, before every timed write-heavy step: each then starts with no dirty
/// buffers of an earlier step to evict, no checkpoint of them running underneath, and pays its
/// own full-page writes.
pub fn checkpoint(c: &mut Client) -> R<()> {
    c.batch_execute("CHECKPOINT")?;
    Ok(())
}

pub fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

/// Order statistics of a sample (milliseconds or any unit).
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub p95: f64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

pub fn summarize(xs: &[f64]) -> Summary {
    if xs.is_empty() {
        return Summary::default();
    }
    let mut s = xs.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    let median = if !n.is_multiple_of(2) {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    // Nearest rank.
    let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
    Summary {
        n,
        median,
        p95: s[rank - 1],
        mean: s.iter().sum::<f64>() / n as f64,
        min: s[0],
        max: s[n - 1],
    }
}

impl Summary {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "n": self.n, "median": round3(self.median), "p95": round3(self.p95),
            "mean": round3(self.mean), "min": round3(self.min), "max": round3(self.max),
        })
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        round3(a / b)
    } else {
        f64::NAN
    }
}

/// A table printed like psql's aligned output.
pub struct Table {
    title: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    notes: Vec<String>,
}

impl Table {
    pub fn new(title: &str, headers: &[&str]) -> Table {
        Table {
            title: title.to_owned(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    pub fn render(&self) -> String {
        let cols = self.headers.len();
        let mut width: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(cols) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let total: usize = width.iter().sum::<usize>() + 3 * cols.saturating_sub(1) + 2;
        let mut out = String::new();
        let pad = total.saturating_sub(self.title.chars().count()) / 2;
        out.push_str(&" ".repeat(pad));
        out.push_str(&self.title);
        out.push('\n');
        // Like psql: numeric columns right-aligned, text left-aligned.
        let numeric: Vec<bool> = (0..cols)
            .map(|i| {
                let mut cells = self
                    .rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .filter(|c| !c.is_empty() && c.as_str() != "-" && c.as_str() != "n/a")
                    .peekable();
                cells.peek().is_some()
                    && cells.all(|c| {
                        c.trim_end_matches('x')
                            .replace(',', "")
                            .parse::<f64>()
                            .is_ok()
                    })
            })
            .collect();
        let cell = |i: usize, s: &str, header: bool| -> String {
            let w = width[i];
            let len = s.chars().count();
            if header {
                let left = (w - len) / 2;
                format!("{}{}{}", " ".repeat(left), s, " ".repeat(w - len - left))
            } else if numeric[i] {
                format!("{}{s}", " ".repeat(w - len))
            } else {
                format!("{s}{}", " ".repeat(w - len))
            }
        };
        let line = |cells: Vec<String>| format!(" {} \n", cells.join(" | "));
        out.push_str(&line(
            self.headers
                .iter()
                .enumerate()
                .map(|(i, h)| cell(i, h, true))
                .collect(),
        ));
        out.push_str(
            &width
                .iter()
                .map(|w| "-".repeat(w + 2))
                .collect::<Vec<_>>()
                .join("+"),
        );
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(
                (0..cols)
                    .map(|i| cell(i, r.get(i).map(String::as_str).unwrap_or(""), false))
                    .collect(),
            ));
        }
        out.push_str(&format!(
            "({} row{})\n",
            self.rows.len(),
            if self.rows.len() == 1 { "" } else { "s" }
        ));
        for n in &self.notes {
            out.push_str(&format!("  {n}\n"));
        }
        out
    }
}

pub fn f2(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "-".into()
    }
}

pub fn f3(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "-".into()
    }
}

/// Thousands separated by a thin space-free comma, for row counts.
pub fn int(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}
