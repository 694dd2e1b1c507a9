//! Peak memory of a backend while it works, from /proc/<pid>/status (the bench runs on the
//! database host as root). VmHWM is reset first (`echo 5 > /proc/<pid>/clear_refs`), so the
//! figure after the statement is that statement's peak. VmHWM counts the shared buffers the
//! backend touched too (RssShmem), which grows with the rows read whatever the code does, so
//! a sampler thread also records the peak of RssAnon, the backend's private memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

fn status(pid: i32) -> Option<HashMap<String, i64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut m = HashMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(':') {
            if let Some(kb) = v.trim().strip_suffix(" kB") {
                if let Ok(n) = kb.trim().parse::<i64>() {
                    m.insert(k.to_owned(), n);
                }
            }
        }
    }
    Some(m)
}

fn get(m: &Option<HashMap<String, i64>>, k: &str) -> Option<i64> {
    m.as_ref().and_then(|m| m.get(k).copied())
}

/// A running measurement of one backend.
pub struct Watch {
    pid: i32,
    hwm_reset: bool,
    before: Option<HashMap<String, i64>>,
    stop: Arc<AtomicBool>,
    sampler: JoinHandle<(i64, i64, usize)>,
}

/// Resets the peak of backend `pid` and starts sampling it every 5 ms.
pub fn start(pid: i32) -> Watch {
    let hwm_reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let before = status(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let sampler = std::thread::spawn(move || {
        let (mut rss, mut anon, mut n) = (0i64, 0i64, 0usize);
        while !flag.load(Ordering::Relaxed) {
            let s = status(pid);
            rss = rss.max(get(&s, "VmRSS").unwrap_or(0));
            anon = anon.max(get(&s, "RssAnon").unwrap_or(0));
            n += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        (rss, anon, n)
    });
    Watch {
        pid,
        hwm_reset,
        before,
        stop,
        sampler,
    }
}

impl Watch {
    /// Stops sampling; the figures in kB.
    pub fn finish(self, label: &str, rows: i64) -> Value {
        self.stop.store(true, Ordering::Relaxed);
        let (peak_rss, peak_anon, samples) = self.sampler.join().unwrap_or((0, 0, 0));
        let after = status(self.pid);
        if self.before.is_none() || after.is_none() {
            return json!({"label": label, "rows": rows, "available": false,
                          "why": "cannot read /proc/<backend pid>/status (not on the database host, or not root)"});
        }
        let b = |k| get(&self.before, k).unwrap_or(0);
        let a = |k| get(&after, k).unwrap_or(0);
        let hwm_after = a("VmHWM").max(peak_rss);
        let peak_anon = peak_anon.max(a("RssAnon"));
        json!({
            "label": label,
            "rows": rows,
            "available": true,
            "hwm_reset": self.hwm_reset,
            "vm_rss_before_kb": b("VmRSS"),
            "vm_hwm_before_kb": b("VmHWM"),
            "vm_hwm_after_kb": hwm_after,
            "vm_hwm_growth_kb": hwm_after - b("VmRSS"),
            "rss_anon_before_kb": b("RssAnon"),
            "rss_anon_peak_kb": peak_anon,
            "rss_anon_growth_kb": peak_anon - b("RssAnon"),
            "rss_shmem_after_kb": a("RssShmem"),
            "samples": samples,
        })
    }
}
