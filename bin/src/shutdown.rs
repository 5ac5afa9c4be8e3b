//! One shutdown signal for the whole process: Ctrl-C, SIGTERM, `--duration`, a closed
//! window, or a stage that ended. Every loop watches it; nothing is killed mid-write.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// The process's shutdown handle: cloned into every stage; anyone may fire it, and
/// everyone sees it. It speaks each stage's language: a `watch::Receiver<bool>` for the
/// transport drivers, a [`capture::Stop`] for sources blocked in `next_frame`.
#[derive(Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
    /// Never read here, only cloned: a clone of a receiver that has seen nothing reports
    /// a change that happened before it was made, so a late subscriber never misses the
    /// shutdown (`watch::Sender::subscribe` would).
    rx: watch::Receiver<bool>,
    capture: capture::Stop,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A handle not yet fired.
    pub fn new() -> Self {
        let (tx, rx) = watch::channel(false);
        Self {
            tx: Arc::new(tx),
            rx,
            capture: capture::Stop::new(),
        }
    }

    /// Starts shutdown (idempotent).
    pub fn fire(&self) {
        self.tx.send_replace(true);
        self.capture.fire();
    }

    /// Has shutdown started?
    pub fn fired(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once shutdown has started (at once if it already has).
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        // Err: every sender is gone, which cannot happen while `self` holds one.
        let _ = rx.wait_for(|fired| *fired).await;
    }

    /// The signal as the transport drivers take it (`shutdown` of their hooks).
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }

    /// The signal as capture sources take it (`Source::set_stop`).
    pub fn capture_stop(&self) -> capture::Stop {
        self.capture.clone()
    }
}

/// Fires `shutdown` on Ctrl-C, SIGTERM or after `duration`. Runs until one happens (or
/// until something else fires it).
pub async fn watch_signals(shutdown: Shutdown, duration: Option<f64>) {
    let timer = async {
        match duration {
            Some(secs) if secs.is_finite() && secs >= 0.0 => {
                tokio::time::sleep(Duration::from_secs_f64(secs)).await
            }
            _ => std::future::pending().await,
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = timer => tracing::debug!("duration reached"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
        _ = term => tracing::info!("terminated"),
        _ = shutdown.wait() => return,
    }
    shutdown.fire();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_view_of_the_handle_sees_one_fire() {
        let shutdown = Shutdown::new();
        let early = shutdown.watch();
        let stop = shutdown.capture_stop();
        assert!(!shutdown.fired() && !stop.is_fired());
        shutdown.clone().fire();
        assert!(shutdown.fired() && stop.is_fired());
        // Receivers made before and after the fire both report it.
        let late = shutdown.watch();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let bounded = Duration::from_secs(5);
            for mut rx in [early, late] {
                tokio::time::timeout(bounded, rx.changed())
                    .await
                    .expect("change seen")
                    .unwrap();
                assert!(*rx.borrow());
            }
            tokio::time::timeout(bounded, shutdown.wait())
                .await
                .expect("wait ends");
        });
    }
}
