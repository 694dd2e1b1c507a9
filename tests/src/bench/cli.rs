//! Command-line options of the bench binary.

use std::path::PathBuf;

/// Everything a run needs to know; defaults give a 2–5 minute run on a 2-core machine.
#[derive(Clone, Debug)]
pub struct Config {
    pub db: String,
    pub out: PathBuf,
    pub orgs: i32,
    pub contacts_per_org: i32,
    pub messages_per_conversation: i32,
    /// Measured subjects per group (A: floor, cascade, limit; B: pg_erasure), per run.
    pub subjects: usize,
    /// Warm-up subjects per variant and run, excluded from the figures.
    pub warmup: usize,
    /// Contacts of each of the two organizations erased whole (engine vs hand-written).
    pub org_contacts: i32,
    /// Contacts of each of the two organizations used for the purge comparison.
    pub purge_org_contacts: i32,
    /// Erasures per concurrency level (split over the clients).
    pub concurrency_erasures: usize,
    /// Records per rule-module call.
    pub rule_batch: usize,
    /// Timed rule-module calls per measurement.
    pub rule_calls: usize,
    /// Repetitions of each module-load measurement.
    pub load_reps: usize,
    /// Keep the database afterwards (it is dropped by default).
    pub keep_db: bool,
    pub smoke: bool,
}

impl Config {
    fn full() -> Config {
        Config {
            db: "erasure_bench".into(),
            out: PathBuf::from("target/bench"),
            orgs: 100,
            contacts_per_org: 250,
            messages_per_conversation: 20,
            subjects: 150,
            warmup: 5,
            org_contacts: 8400,
            purge_org_contacts: 4200,
            concurrency_erasures: 600,
            rule_batch: 5000,
            rule_calls: 100,
            load_reps: 5,
            keep_db: false,
            smoke: false,
        }
    }

    fn smoke() -> Config {
        Config {
            db: "erasure_bench_smoke".into(),
            out: PathBuf::from("target/bench-smoke"),
            orgs: 3,
            contacts_per_org: 40,
            messages_per_conversation: 8,
            subjects: 5,
            warmup: 1,
            org_contacts: 40,
            purge_org_contacts: 30,
            concurrency_erasures: 4,
            rule_batch: 5000,
            rule_calls: 3,
            load_reps: 1,
            keep_db: false,
            smoke: true,
        }
    }
}

pub const USAGE: &str = "\
usage: bench [--smoke] [options]

  --smoke                         tiny preset (database erasure_bench_smoke, out target/bench-smoke)
  --db NAME                       database to (re)create            [erasure_bench]
  --out DIR                       results.json and latency.svg go here [target/bench]
  --orgs N                        organizations of the base CRM     [100]
  --contacts-per-org M            contacts per organization         [250]
  --messages-per-conversation K   messages per conversation (+-25%) [20]
  --subjects S                    measured subjects per group       [150]
  --warmup W                      warm-up subjects per variant      [5]
  --org-contacts C                contacts of each org erased whole [8400, about 510 000 rows]
  --purge-org-contacts C          contacts of each purge org        [4200, about 210 000 kept rows]
  --concurrency-erasures N        erasures per concurrency level    [600]
  --rule-batch N                  records per rule-module call      [5000]
  --rule-calls N                  timed rule-module calls           [100]
  --load-reps N                   repetitions of module loads       [5; 0 skips timing the compile]
  --keep                          keep the database afterwards
";

pub fn parse(args: impl Iterator<Item = String>) -> Result<Config, String> {
    let args: Vec<String> = args.collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return Err(USAGE.to_owned());
    }
    let mut cfg = if args.iter().any(|a| a == "--smoke") {
        Config::smoke()
    } else {
        Config::full()
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        if flag == "--smoke" {
            continue;
        }
        if flag == "--keep" {
            cfg.keep_db = true;
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n\n{USAGE}"))?;
        let num = |v: &str| -> Result<i64, String> {
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| format!("{flag}: not a non-negative number: {v}"))
        };
        match flag.as_str() {
            "--db" => {
                if value.is_empty()
                    || !value
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    return Err("--db: use lower-case letters, digits and _".into());
                }
                if value == "erasure_test_template" || value.starts_with("erasure_t_") {
                    return Err("--db: that name belongs to the integration tests".into());
                }
                cfg.db = value;
            }
            "--out" => cfg.out = PathBuf::from(value),
            "--orgs" => cfg.orgs = num(&value)? as i32,
            "--contacts-per-org" => cfg.contacts_per_org = num(&value)? as i32,
            "--messages-per-conversation" => cfg.messages_per_conversation = num(&value)? as i32,
            "--subjects" => cfg.subjects = num(&value)? as usize,
            "--warmup" => cfg.warmup = num(&value)? as usize,
            "--org-contacts" => cfg.org_contacts = num(&value)? as i32,
            "--purge-org-contacts" => cfg.purge_org_contacts = num(&value)? as i32,
            "--concurrency-erasures" => cfg.concurrency_erasures = num(&value)? as usize,
            "--rule-batch" => cfg.rule_batch = num(&value)? as usize,
            "--rule-calls" => cfg.rule_calls = num(&value)? as usize,
            "--load-reps" => cfg.load_reps = num(&value)? as usize,
            _ => return Err(format!("unknown option {flag}\n\n{USAGE}")),
        }
    }
    if cfg.orgs < 2 || cfg.contacts_per_org < 1 || cfg.messages_per_conversation < 1 {
        return Err(
            "need at least 2 orgs, 1 contact per org and 1 message per conversation".into(),
        );
    }
    if cfg.subjects < 1 || cfg.org_contacts < 1 || cfg.purge_org_contacts < 1 {
        return Err(
            "--subjects, --org-contacts and --purge-org-contacts must be at least 1".into(),
        );
    }
    if cfg.rule_batch < 1 || cfg.rule_calls < 1 {
        return Err("--rule-batch and --rule-calls must be at least 1".into());
    }
    Ok(cfg)
}
