//! Latency samples from many client tasks into a few shared histograms.

use std::sync::Mutex;

use hdrhistogram::Histogram;

use crate::report::histogram;

const SHARDS: usize = 16;
const BATCH: usize = 256;

/// Sharded histograms of microseconds; clients record through a [`Recorder`].
pub struct Collector {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Default for Collector {
    fn default() -> Self {
        Collector {
            shards: (0..SHARDS).map(|_| Mutex::new(histogram())).collect(),
        }
    }
}

impl Collector {
    pub fn recorder(&self, client: usize) -> Recorder<'_> {
        Recorder {
            shard: &self.shards[client % SHARDS],
            batch: Vec::with_capacity(BATCH),
        }
    }

    /// All samples merged.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = histogram();
        for s in &self.shards {
            let _ = all.add(&*s.lock().expect("histogram lock"));
        }
        all
    }
}

/// A client's buffer of samples, flushed into its shard in batches and on drop.
pub struct Recorder<'a> {
    shard: &'a Mutex<Histogram<u64>>,
    batch: Vec<u64>,
}

impl Recorder<'_> {
    pub fn record(&mut self, us: u64) {
        self.batch.push(us.max(1));
        if self.batch.len() == BATCH {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut h = self.shard.lock().expect("histogram lock");
        for v in self.batch.drain(..) {
            h.saturating_record(v);
        }
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}
