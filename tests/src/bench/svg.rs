//! `latency.svg`: per-subject latencies of the contact variants, sorted, one panel per
//! `synchronous_commit` setting. A point at x = 40% is the latency 40% of the subjects beat.

use std::fmt::Write;

use super::contact::{RunResult, VARIANTS};

const COLORS: [&str; VARIANTS.len()] = [
    "#2563eb", "#16a34a", "#dc2626", "#6b7280", "#d97706", "#7c3aed",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" axis maximum and step for values up to `max`.
fn axis(max: f64) -> (f64, f64) {
    let raw = (max / 5.0).max(1e-6);
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

pub fn render(runs: &[RunResult], title: &str) -> String {
    let (pw, ph) = (440.0, 300.0);
    let (ml, mt, gap) = (60.0, 84.0, 90.0);
    let width = ml + runs.len() as f64 * (pw + gap);
    let height = mt + ph + 80.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" font-size="16" text-anchor="middle">{}</text>"#,
        width / 2.0,
        esc(title)
    );
    for (k, v) in VARIANTS.iter().enumerate() {
        let x = ml + k as f64 * 130.0;
        let _ = writeln!(
            s,
            r#"<line x1="{x}" y1="44" x2="{}" y2="44" stroke="{}" stroke-width="3"/><text x="{}" y="48">{}</text>"#,
            x + 24.0,
            COLORS[k],
            x + 30.0,
            v.name()
        );
    }
    for (p, run) in runs.iter().enumerate() {
        let x0 = ml + p as f64 * (pw + gap);
        let y0 = mt;
        // Clip at the largest p99 so one outlier does not flatten every curve; noted below.
        let p99 = |xs: &Vec<f64>| {
            let mut v = xs.clone();
            v.sort_by(|a, b| a.total_cmp(b));
            if v.is_empty() {
                0.0
            } else {
                v[((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1]
            }
        };
        let top = run
            .latencies
            .iter()
            .map(|(_, xs)| p99(xs))
            .fold(0.0, f64::max);
        let (ymax, step) = axis(top * 1.05);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" font-size="14" text-anchor="middle">synchronous_commit = {}</text>"#,
            x0 + pw / 2.0,
            y0 - 8.0,
            if run.sync { "on" } else { "off" }
        );
        let mut y = 0.0;
        while y <= ymax + step / 2.0 {
            let py = y0 + ph - y / ymax * ph;
            let _ = writeln!(
                s,
                r##"<line x1="{x0}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#e5e7eb"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                x0 + pw,
                x0 - 6.0,
                py + 4.0,
                if step < 1.0 {
                    format!("{y:.1}")
                } else {
                    format!("{y:.0}")
                }
            );
            y += step;
        }
        let p95x = x0 + 0.95 * pw;
        let _ = writeln!(
            s,
            r##"<line x1="{p95x:.1}" y1="{y0}" x2="{p95x:.1}" y2="{}" stroke="#9ca3af" stroke-dasharray="4 3"/><text x="{:.1}" y="{}" text-anchor="end" fill="#6b7280">p95</text>"##,
            y0 + ph,
            p95x - 3.0,
            y0 + 14.0
        );
        for q in [0, 25, 50, 75, 100] {
            let px = x0 + q as f64 / 100.0 * pw;
            let _ = writeln!(
                s,
                r##"<line x1="{px:.1}" y1="{y0}" x2="{px:.1}" y2="{}" stroke="#e5e7eb"/><text x="{px:.1}" y="{}" text-anchor="middle">{q}%</text>"##,
                y0 + ph,
                y0 + ph + 16.0
            );
        }
        let _ = writeln!(
            s,
            r##"<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#9ca3af"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">subjects, sorted by latency</text>"#,
            x0 + pw / 2.0,
            y0 + ph + 34.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle" transform="rotate(-90 {} {})">ms per erasure (transaction incl. COMMIT)</text>"#,
            x0 - 42.0,
            y0 + ph / 2.0,
            x0 - 42.0,
            y0 + ph / 2.0
        );
        for (k, (_, xs)) in run.latencies.iter().enumerate() {
            let mut v = xs.clone();
            v.sort_by(|a, b| a.total_cmp(b));
            let n = v.len().max(1);
            let pts: Vec<String> = v
                .iter()
                .enumerate()
                .map(|(i, ms)| {
                    let px = x0 + (i as f64 + 0.5) / n as f64 * pw;
                    let py = y0 + ph - ms.min(ymax) / ymax * ph;
                    format!("{px:.1},{py:.1}")
                })
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
                pts.join(" "),
                COLORS[k]
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#6b7280">values above {ymax} ms drawn at the top edge</text>"##,
            x0 + pw / 2.0,
            y0 + ph + 52.0
        );
    }
    s.push_str("</svg>\n");
    s
}
