//! A cancellation flag the capture thread's owner fires to end a source promptly.
//!
//! Sources block inside `next_frame` (a camera starting up, a child restarting with
//! backoff, a quiet pipe). Every such wait is bounded by [`Stop::slice`] or sleeps
//! through [`Stop::sleep`], which wakes at once when the flag fires, so a shutdown never
//! waits more than a fraction of a second on a source.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Longest a source blocks between two looks at the flag.
pub const POLL: Duration = Duration::from_millis(100);

/// A cloneable, one-way stop flag: once fired it stays fired.
#[derive(Clone, Debug, Default)]
pub struct Stop(Arc<(Mutex<bool>, Condvar)>);

impl Stop {
    /// A flag not yet fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the flag and wakes every [`Stop::sleep`] (idempotent).
    pub fn fire(&self) {
        let (lock, wake) = &*self.0;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
    }

    /// Has the flag fired?
    pub fn is_fired(&self) -> bool {
        *self.0 .0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps `duration`, or less if the flag fires; true when it has fired.
    pub fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let (lock, wake) = &*self.0;
        let mut fired = lock.lock().unwrap_or_else(PoisonError::into_inner);
        while !*fired {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            fired = wake
                .wait_timeout(fired, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *fired
    }

    /// The part of a wait of `left` to block for before looking at the flag again.
    pub fn slice(left: Duration) -> Duration {
        left.min(POLL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_ends_at_once_when_fired_from_another_thread() {
        let stop = Stop::new();
        assert!(!stop.sleep(Duration::from_millis(1)));
        let other = stop.clone();
        let firing = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            other.fire();
        });
        let begun = Instant::now();
        assert!(stop.sleep(Duration::from_secs(30)));
        assert!(
            begun.elapsed() < Duration::from_secs(5),
            "{:?}",
            begun.elapsed()
        );
        assert!(stop.is_fired());
        // Fired stays fired: later sleeps return at once.
        assert!(stop.sleep(Duration::from_secs(30)));
        firing.join().unwrap();
    }
}
