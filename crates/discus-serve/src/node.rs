//! The state shared by the listeners and the worker: configuration, store, counters, the progress
//! handles of running jobs.

use crate::config::ServeConfig;
use crate::receive::{Refused, Taken};
use crate::store::Store;
use discus_core::progress::Progress;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Counters for `/metrics` (Prometheus text format).
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<String, u64>>,
    /// Associations open now.
    pub associations_open: AtomicUsize,
    /// Seconds spent in finished job runs, summed (with `job_runs`).
    pub job_seconds_milli: AtomicU64,
    /// Finished job runs.
    pub job_runs: AtomicU64,
}

impl Metrics {
    /// Adds one to the counter `name` (with its labels, e.g. `x{reason="y"}`).
    pub fn inc(&self, name: &str) {
        *self
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_insert(0) += 1;
    }

    /// Counts one received instance by its outcome.
    pub fn count_instance(&self, r: &Result<Taken, Refused>) {
        let name = match r {
            Ok(t) if t.ignored.is_some() => "discus_instances_ignored_total",
            Ok(_) => "discus_instances_stored_total",
            Err(Refused::NotDicom(_)) => "discus_instances_refused_total{reason=\"not_dicom\"}",
            Err(Refused::OtherStudy { .. }) => {
                "discus_instances_refused_total{reason=\"other_study\"}"
            }
            Err(Refused::Limit { .. }) => "discus_instances_refused_total{reason=\"limit\"}",
            Err(Refused::Io(_)) => "discus_instances_refused_total{reason=\"io\"}",
        };
        self.inc(name);
    }

    /// The counters in Prometheus text format (one `# TYPE` line per metric name).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut last = String::new();
        for (k, v) in self
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let base = k.split('{').next().unwrap_or(k).to_string();
            if base != last {
                out.push_str(&format!("# TYPE {base} counter\n"));
                last = base;
            }
            out.push_str(&format!("{k} {v}\n"));
        }
        out
    }
}

/// Everything the node's threads share.
pub struct Node {
    /// The configuration.
    pub config: ServeConfig,
    /// The data folder.
    pub data_dir: PathBuf,
    /// The job store.
    pub store: Store,
    /// Counters.
    pub metrics: Metrics,
    /// The model version (job key part).
    pub model_version: String,
    /// The HTTP bearer token.
    pub token: Option<String>,
    /// Progress handles of running jobs, by job id.
    pub running: Mutex<HashMap<i64, Progress>>,
    /// Set when the node is stopping.
    pub stopping: std::sync::atomic::AtomicBool,
}

impl Node {
    /// A temporary file name under `<data_dir>/tmp` for a body or instance being received.
    pub fn tmp_file(&self) -> std::io::Result<tempfile::NamedTempFile> {
        let dir = self.data_dir.join("tmp");
        std::fs::create_dir_all(&dir)?;
        tempfile::Builder::new()
            .prefix("recv-")
            .suffix(".part")
            .tempfile_in(dir)
    }

    /// Whether the node is stopping.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// A log line (stderr). Callers pass study ids, never UIDs or patient data.
    pub fn log(&self, msg: impl std::fmt::Display) {
        eprintln!("discus serve: {msg}");
    }
}
