//! One shutdown signal for the whole process: Ctrl-C, SIGTERM, `--duration`, or a stage
//! that ended. Every loop watches it; nothing is killed mid-write.

use std::time::Duration;

use tokio::sync::watch;

/// Sender half: anyone may trigger shutdown.
#[derive(Clone)]
pub struct Trigger(std::sync::Arc<watch::Sender<bool>>);

/// Creates the signal.
pub fn channel() -> (Trigger, watch::Receiver<bool>) {
    let (tx, rx) = watch::channel(false);
    (Trigger(std::sync::Arc::new(tx)), rx)
}

impl Trigger {
    /// Starts shutdown (idempotent).
    pub fn fire(&self) {
        self.0.send_replace(true);
    }

    /// Has shutdown started?
    pub fn fired(&self) -> bool {
        *self.0.borrow()
    }
}

/// Fires `trigger` on Ctrl-C, SIGTERM or after `duration`. Runs until one happens.
pub async fn watch_signals(trigger: Trigger, duration: Option<f64>) {
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
    }
    trigger.fire();
}
