//! Purge batch sizes that keep each batch near a time budget: a batch holds its row locks
//! until it commits, and how many rows fit in, say, 100 ms differs from table to table (a
//! parent's deletes also run one foreign-key check per row for each referencing table).

/// Sizes the batches of one table from the rows per millisecond its earlier batches achieved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchSizer {
    /// Rows per millisecond, smoothed; `None` before the first batch.
    rate: Option<f64>,
}

/// Rows of a table's first batch, before its rate is known.
pub const FIRST_BATCH_ROWS: i64 = 1_000;
/// Fewest rows of a batch (a batch that small is quick whatever the table).
pub const MIN_BATCH_ROWS: i64 = 100;

impl BatchSizer {
    pub const fn new() -> BatchSizer {
        BatchSizer { rate: None }
    }

    /// Rows for the next batch: what the known rate fits in `budget_ms`, within
    /// `[MIN_BATCH_ROWS, max_rows]` (and never more than `max_rows`).
    pub fn next(&self, budget_ms: f64, max_rows: i64) -> i64 {
        let max_rows = max_rows.max(1);
        let rows = match self.rate {
            None => FIRST_BATCH_ROWS,
            Some(rate) => (rate * budget_ms).floor() as i64,
        };
        rows.clamp(MIN_BATCH_ROWS.min(max_rows), max_rows)
    }

    /// Records a batch of `rows` rows that took `ms` milliseconds. A slower batch lowers the
    /// rate at once (the next batch must not overrun the budget); a faster one raises it by
    /// half the difference (one quick batch may be luck).
    pub fn observe(&mut self, rows: i64, ms: f64) {
        if rows <= 0 || !ms.is_finite() || ms <= 0.0 {
            return;
        }
        let measured = rows as f64 / ms;
        self.rate = Some(match self.rate {
            None => measured,
            Some(old) => measured.min((old + measured) / 2.0),
        });
    }
}

impl Default for BatchSizer {
    fn default() -> Self {
        BatchSizer::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_batch_is_modest_and_capped() {
        let s = BatchSizer::new();
        assert_eq!(s.next(100.0, 10_000), FIRST_BATCH_ROWS);
        assert_eq!(s.next(100.0, 2), 2);
    }

    #[test]
    fn later_batches_fit_the_budget_at_the_measured_rate() {
        let mut s = BatchSizer::new();
        // 1000 rows in 20 ms: 50 rows/ms, so 100 ms fit 5000.
        s.observe(1_000, 20.0);
        assert_eq!(s.next(100.0, 10_000), 5_000);
        // Capped by the largest batch allowed.
        assert_eq!(s.next(1_000.0, 10_000), 10_000);
    }

    #[test]
    fn a_slow_table_gets_small_batches_but_not_tiny_ones() {
        let mut s = BatchSizer::new();
        s.observe(1_000, 500.0); // 2 rows/ms
        assert_eq!(s.next(100.0, 10_000), 200);
        s.observe(200, 2_000.0); // 0.1 rows/ms, taken at once
        assert_eq!(s.next(100.0, 10_000), MIN_BATCH_ROWS);
    }

    #[test]
    fn a_faster_batch_raises_the_rate_by_half_the_difference() {
        let mut s = BatchSizer::new();
        s.observe(1_000, 100.0); // 10 rows/ms
        s.observe(3_000, 100.0); // 30 rows/ms
        assert_eq!(s.next(100.0, 100_000), 2_000);
    }

    #[test]
    fn the_rate_follows_a_change_within_a_few_batches() {
        let mut s = BatchSizer::new();
        s.observe(1_000, 10.0); // 100 rows/ms
        for _ in 0..4 {
            s.observe(1_000, 100.0); // now 10 rows/ms
        }
        let next = s.next(100.0, 100_000);
        assert!((1_000..1_700).contains(&next), "{next}");
    }

    #[test]
    fn empty_or_unmeasurable_batches_change_nothing() {
        let mut s = BatchSizer::new();
        s.observe(0, 10.0);
        s.observe(10, 0.0);
        s.observe(10, f64::NAN);
        assert_eq!(s, BatchSizer::new());
    }
}
