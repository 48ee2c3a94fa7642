//! One progress-and-cancel handle for every long call.
//!
//! A workflow (scan, ingest, synthesis, training, prediction) takes a `&Progress`, names its stages,
//! counts its work and checks for cancellation between units of work. The CLI draws a progress bar
//! from it (an observer); the service reports a job's progress and cancels it through the same
//! handle from another thread.
//!
//! ```
//! use discus_core::progress::{Cancelled, Progress};
//! let p = Progress::new();
//! p.stage("scanning", 3);
//! p.inc(2);
//! assert_eq!(p.snapshot().done, 2);
//! let other = p.clone(); // e.g. held by a job table
//! other.cancel();
//! assert_eq!(p.check(), Err(Cancelled));
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A long call stopped because its [`Progress`] was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// Where a long call stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// The current stage's name.
    pub stage: String,
    /// Units done in this stage.
    pub done: u64,
    /// Units in this stage (0 when unknown).
    pub total: u64,
    /// Whether cancellation was asked for.
    pub cancelled: bool,
}

type Observer = Arc<dyn Fn(&Snapshot) + Send + Sync>;

#[derive(Default)]
struct Inner {
    stage: Mutex<String>,
    done: AtomicU64,
    total: AtomicU64,
    cancelled: AtomicBool,
    observer: Option<Observer>,
}

/// A progress-and-cancel handle; clones share the same state.
#[derive(Clone, Default)]
pub struct Progress {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Progress").field(&self.snapshot()).finish()
    }
}

impl Progress {
    /// A handle nobody watches (cancellation still works).
    pub fn new() -> Progress {
        Progress::default()
    }

    /// A handle whose every change is passed to `observer` (e.g. to move a progress bar).
    pub fn with_observer(observer: impl Fn(&Snapshot) + Send + Sync + 'static) -> Progress {
        Progress {
            inner: Arc::new(Inner {
                observer: Some(Arc::new(observer)),
                ..Inner::default()
            }),
        }
    }

    fn notify(&self) {
        if let Some(o) = &self.inner.observer {
            o(&self.snapshot());
        }
    }

    /// Starts a stage of `total` units (0 when unknown); the count restarts at 0.
    pub fn stage(&self, name: &str, total: u64) {
        *self.inner.stage.lock().unwrap_or_else(|e| e.into_inner()) = name.to_string();
        self.inner.total.store(total, Ordering::Relaxed);
        self.inner.done.store(0, Ordering::Relaxed);
        self.notify();
    }

    /// Changes the current stage's total.
    pub fn set_total(&self, total: u64) {
        self.inner.total.store(total, Ordering::Relaxed);
        self.notify();
    }

    /// Counts `n` more units done.
    pub fn inc(&self, n: u64) {
        self.inner.done.fetch_add(n, Ordering::Relaxed);
        self.notify();
    }

    /// Sets the count of units done.
    pub fn set_done(&self, done: u64) {
        self.inner.done.store(done, Ordering::Relaxed);
        self.notify();
    }

    /// Asks the call to stop at its next check.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::Relaxed);
        self.notify();
    }

    /// Whether cancellation was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once cancellation was asked for: long calls check between units of work.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }

    /// The current state.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            stage: self
                .inner
                .stage
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            done: self.inner.done.load(Ordering::Relaxed),
            total: self.inner.total.load(Ordering::Relaxed),
            cancelled: self.is_cancelled(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observer_sees_every_change_and_clones_share_state() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let p = Progress::with_observer(move |s| s2.lock().unwrap().push(s.clone()));
        p.stage("a", 2);
        p.inc(1);
        let q = p.clone();
        q.inc(1);
        assert_eq!(p.snapshot().done, 2);
        assert!(p.check().is_ok());
        q.cancel();
        assert!(p.is_cancelled());
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[2].done, 2);
        assert!(seen[3].cancelled);
    }
}
