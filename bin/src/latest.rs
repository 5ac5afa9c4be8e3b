//! The decode-to-display hand-off: a slot of capacity one where the newest picture
//! replaces an unshown one, so a slow display never builds a queue.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Capacity-one channel with overwrite.
pub struct Latest<T> {
    slot: Mutex<Slot<T>>,
    ready: Condvar,
}

struct Slot<T> {
    value: Option<T>,
    replaced: u64,
    closed: bool,
}

/// What a wait on the slot gave.
pub enum Taken<T> {
    /// The newest value.
    Value(T),
    /// Nothing arrived within the timeout.
    Empty,
    /// The producer has gone and the slot is empty.
    Closed,
}

impl<T> Latest<T> {
    /// An empty slot.
    pub fn new() -> Self {
        Self {
            slot: Mutex::new(Slot {
                value: None,
                replaced: 0,
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slot<T>> {
        // A panic elsewhere while holding the lock cannot leave the slot inconsistent
        // (every update is a single assignment), so a poisoned lock is still usable.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a value in, replacing (and counting) an unshown one.
    pub fn put(&self, value: T) {
        let mut slot = self.lock();
        if slot.value.replace(value).is_some() {
            slot.replaced += 1;
        }
        self.ready.notify_one();
    }

    /// Marks the producer as gone.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Values replaced before anyone took them.
    pub fn replaced(&self) -> u64 {
        self.lock().replaced
    }

    /// Waits up to `timeout` for a value.
    pub fn take(&self, timeout: Duration) -> Taken<T> {
        let slot = self.lock();
        let (mut slot, _) = self
            .ready
            .wait_timeout_while(slot, timeout, |s| s.value.is_none() && !s.closed)
            .unwrap_or_else(|e| e.into_inner());
        match slot.value.take() {
            Some(v) => Taken::Value(v),
            None if slot.closed => Taken::Closed,
            None => Taken::Empty,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_wins_and_the_slot_never_holds_more_than_one() {
        let latest = Latest::new();
        for i in 0..1000 {
            latest.put(i);
        }
        assert!(matches!(latest.take(Duration::ZERO), Taken::Value(999)));
        assert_eq!(latest.replaced(), 999);
        assert!(matches!(
            latest.take(Duration::from_millis(1)),
            Taken::Empty
        ));
        latest.close();
        assert!(matches!(latest.take(Duration::from_secs(5)), Taken::Closed));
    }
}
