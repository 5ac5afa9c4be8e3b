//! Latency samples and their percentiles.

/// Percentile summary in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Largest.
    pub max: f64,
}

/// A bounded set of samples (the newest `cap` are kept).
#[derive(Debug)]
pub struct Samples {
    values: Vec<f64>,
    cap: usize,
    next: usize,
}

impl Samples {
    /// Keeps at most `cap` samples.
    pub fn new(cap: usize) -> Self {
        Self {
            values: Vec::new(),
            cap: cap.max(1),
            next: 0,
        }
    }

    /// Adds one sample, overwriting the oldest when full.
    pub fn push(&mut self, ms: f64) {
        if self.values.len() < self.cap {
            self.values.push(ms);
        } else {
            self.values[self.next] = ms;
            self.next = (self.next + 1) % self.cap;
        }
    }

    /// Forgets every sample.
    pub fn clear(&mut self) {
        self.values.clear();
        self.next = 0;
    }

    /// Number of samples held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// p50/p95/max, or `None` without samples (nearest-rank percentiles).
    pub fn summary(&self) -> Option<Summary> {
        if self.values.is_empty() {
            return None;
        }
        let mut sorted = self.values.clone();
        sorted.sort_by(f64::total_cmp);
        let rank =
            |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        Some(Summary {
            p50: rank(0.50),
            p95: rank(0.95),
            max: sorted[sorted.len() - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = Samples::new(1000);
        assert_eq!(s.summary(), None);
        for v in 1..=100 {
            s.push(v as f64);
        }
        assert_eq!(
            s.summary(),
            Some(Summary {
                p50: 50.0,
                p95: 95.0,
                max: 100.0
            })
        );
    }

    #[test]
    fn stays_bounded() {
        let mut s = Samples::new(10);
        for v in 0..1000 {
            s.push(v as f64);
        }
        assert_eq!(s.len(), 10);
        assert_eq!(s.summary().unwrap().max, 999.0);
        assert_eq!(s.summary().unwrap().p50, 994.0);
    }
}
