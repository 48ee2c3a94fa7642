//! The node's state in one SQLite file (`<data_dir>/serve.sqlite`): received instances, studies
//! waiting to become stable, jobs and result deliveries. It survives a restart; a job that was
//! running when the process died is queued again once ([`Store::recover`]).
//!
//! Schema (created on open):
//! - `instances(sop_uid PK, study_uid, series_uid, path, bytes, received)`: one row per kept
//!   instance; `path` is relative to `data_dir`; a re-sent SOP Instance UID replaces its row.
//! - `studies(study_uid PK, last_received, dirty)`: `dirty` = received something since the last
//!   trigger check.
//! - `jobs(id PK, study_uid, content_hash, model_version, instances, state, outcome, created,
//!   started, finished, runs, last_instance)`, unique on (study_uid, content_hash, model_version):
//!   the job key, so the same content never runs twice.
//! - `deliveries(job_id, destination, state, attempts, last_error)`: state `pending`, `delivered`
//!   or `dead` (the dead-letter list).

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A store error (SQLite or file system), naming what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("job store {}: {source}", path.display())]
    Sql {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
}

/// Seconds since the Unix epoch, as a float.
pub fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for the worker.
    Queued,
    /// Running.
    Running,
    /// Finished with a result.
    Done,
    /// Finished without a result: no series the model can use (see `outcome`).
    NoUsableSeries,
    /// Failed (see `outcome`).
    Failed,
    /// Cancelled through the API.
    Cancelled,
}

impl JobState {
    /// The name stored in SQLite and shown in `/jobs`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::NoUsableSeries => "no_usable_series",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> JobState {
        match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "no_usable_series" => JobState::NoUsableSeries,
            "cancelled" => JobState::Cancelled,
            _ => JobState::Failed,
        }
    }

    /// Whether the job has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// One delivery of a job's result to one destination.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    /// The destination's name.
    pub destination: String,
    /// `pending`, `delivered` or `dead` (dead-letter: every attempt failed).
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

/// A job as `/jobs` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// The job id.
    pub id: i64,
    /// The study's id (discus id of its Study Instance UID).
    pub study_id: u64,
    /// The Study Instance UID.
    pub study_uid: String,
    /// SHA-256 (hex) of the sorted SOP Instance UIDs of the study's kept instances.
    pub content_hash: String,
    /// The model version (hash of the model folder's card and weights).
    pub model_version: String,
    /// Instances in the job.
    pub instances: i64,
    /// The state.
    pub state: JobState,
    /// What happened, in words (the result file, or why there is none).
    pub outcome: Option<String>,
    /// When the job was created (Unix seconds).
    pub created: f64,
    /// When the current run started.
    pub started: Option<f64>,
    /// When it finished.
    pub finished: Option<f64>,
    /// How many times it was started (2 after a restart during a run).
    pub runs: i64,
    /// When the study's last instance arrived (for latency figures).
    pub last_instance: f64,
    /// Deliveries of its result.
    pub deliveries: Vec<Delivery>,
}

/// The SQLite store (one connection behind a mutex: every statement is short).
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

/// The stored path of an instance: `instances/<study hash>/<sop hash>.dcm` (no UIDs or patient
/// data in names).
pub fn instance_rel_path(study_uid: &str, sop_uid: &str) -> PathBuf {
    let h = |s: &str| {
        let d = Sha256::digest(s.as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    PathBuf::from("instances")
        .join(&h(study_uid)[..20])
        .join(format!("{}.dcm", &h(sop_uid)[..32]))
}

/// SHA-256 (hex) of sorted UIDs, one per line.
pub fn content_hash(uids: &mut [String]) -> String {
    uids.sort();
    let mut h = Sha256::new();
    for u in uids.iter() {
        h.update(u.as_bytes());
        h.update(b"\n");
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS instances (
  sop_uid TEXT PRIMARY KEY, study_uid TEXT NOT NULL, series_uid TEXT NOT NULL,
  path TEXT NOT NULL, bytes INTEGER NOT NULL, received REAL NOT NULL);
CREATE INDEX IF NOT EXISTS instances_study ON instances(study_uid);
CREATE TABLE IF NOT EXISTS studies (
  study_uid TEXT PRIMARY KEY, last_received REAL NOT NULL, dirty INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY, study_uid TEXT NOT NULL, content_hash TEXT NOT NULL,
  model_version TEXT NOT NULL, instances INTEGER NOT NULL, state TEXT NOT NULL, outcome TEXT,
  created REAL NOT NULL, started REAL, finished REAL, runs INTEGER NOT NULL DEFAULT 0,
  last_instance REAL NOT NULL,
  UNIQUE(study_uid, content_hash, model_version));
CREATE TABLE IF NOT EXISTS deliveries (
  job_id INTEGER NOT NULL, destination TEXT NOT NULL, state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, PRIMARY KEY (job_id, destination));
";

/// A new instance's row.
#[derive(Debug, Clone)]
pub struct NewInstance<'a> {
    /// SOP Instance UID.
    pub sop_uid: &'a str,
    /// Study Instance UID.
    pub study_uid: &'a str,
    /// Series Instance UID.
    pub series_uid: &'a str,
    /// Path relative to the data folder.
    pub path: &'a Path,
    /// File size.
    pub bytes: u64,
}

impl Store {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let err = |source| StoreError::Sql {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Store {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut c = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut c).map_err(|source| StoreError::Sql {
            path: self.path.clone(),
            source,
        })
    }

    /// Instances kept for `study_uid`.
    pub fn study_instance_count(&self, study_uid: &str) -> Result<usize, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM instances WHERE study_uid = ?1",
                [study_uid],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| n as usize)
    }

    /// Whether `sop_uid` is already kept.
    pub fn has_instance(&self, sop_uid: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT 1 FROM instances WHERE sop_uid = ?1",
                [sop_uid],
                |_| Ok(()),
            )
            .optional()
        })
        .map(|o| o.is_some())
    }

    /// Bytes of kept instances.
    pub fn disk_bytes(&self) -> Result<u64, StoreError> {
        self.with(|c| {
            c.query_row("SELECT COALESCE(SUM(bytes), 0) FROM instances", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map(|n| n as u64)
    }

    /// Records a kept instance and marks its study as changed now.
    pub fn add_instance(&self, i: &NewInstance) -> Result<(), StoreError> {
        let now = now_s();
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT OR REPLACE INTO instances (sop_uid, study_uid, series_uid, path, bytes, received)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    i.sop_uid,
                    i.study_uid,
                    i.series_uid,
                    i.path.to_string_lossy(),
                    i.bytes as i64,
                    now
                ],
            )?;
            tx.execute(
                "INSERT INTO studies (study_uid, last_received, dirty) VALUES (?1, ?2, 1)
                 ON CONFLICT(study_uid) DO UPDATE SET last_received = ?2, dirty = 1",
                params![i.study_uid, now],
            )?;
            tx.commit()
        })
    }

    /// Studies changed since their last check whose last instance is older than `stable_age_s`.
    pub fn stable_studies(&self, stable_age_s: f64) -> Result<Vec<(String, f64)>, StoreError> {
        let cutoff = now_s() - stable_age_s;
        self.with(|c| {
            let mut s = c.prepare(
                "SELECT study_uid, last_received FROM studies WHERE dirty = 1 AND last_received <= ?1
                 ORDER BY last_received",
            )?;
            let rows = s
                .query_map([cutoff], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Creates the job of a stable study unless one with the same key exists; clears the study's
    /// changed flag (only if nothing arrived since `last_received`). Returns the new job's id.
    pub fn create_job(
        &self,
        study_uid: &str,
        last_received: f64,
        model_version: &str,
    ) -> Result<Option<i64>, StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let mut uids: Vec<String> = {
                let mut s = tx.prepare("SELECT sop_uid FROM instances WHERE study_uid = ?1")?;
                let v = s
                    .query_map([study_uid], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                v
            };
            let n = uids.len() as i64;
            let hash = content_hash(&mut uids);
            let changed = tx.execute(
                "INSERT OR IGNORE INTO jobs (study_uid, content_hash, model_version, instances, state,
                 created, last_instance) VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6)",
                params![study_uid, hash, model_version, n, now_s(), last_received],
            )?;
            let id = (changed == 1).then(|| tx.last_insert_rowid());
            tx.execute(
                "UPDATE studies SET dirty = 0 WHERE study_uid = ?1 AND last_received = ?2",
                params![study_uid, last_received],
            )?;
            tx.commit()?;
            Ok(id)
        })
    }

    /// Jobs that were running when the process stopped go back to the queue (each is redone once:
    /// a job started twice already is failed instead, so a study that kills the process cannot
    /// loop). Returns how many were requeued.
    pub fn recover(&self) -> Result<usize, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET state = 'failed', finished = ?1,
                 outcome = 'interrupted twice (the process stopped during both runs); not retried'
                 WHERE state = 'running' AND runs >= 2",
                [now_s()],
            )?;
            c.execute(
                "UPDATE jobs SET state = 'queued' WHERE state = 'running'",
                [],
            )
        })
    }

    /// The oldest queued job, marked running (its run count incremented).
    pub fn next_job(&self) -> Result<Option<Job>, StoreError> {
        let id: Option<i64> = self.with(|c| {
            let tx = c.transaction()?;
            let id: Option<i64> = tx
                .query_row(
                    "SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = id {
                tx.execute(
                    "UPDATE jobs SET state = 'running', started = ?2, runs = runs + 1 WHERE id = ?1",
                    params![id, now_s()],
                )?;
            }
            tx.commit()?;
            Ok(id)
        })?;
        match id {
            Some(id) => self.job(id),
            None => Ok(None),
        }
    }

    /// Ends a job.
    pub fn finish_job(&self, id: i64, state: JobState, outcome: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET state = ?2, outcome = ?3, finished = ?4 WHERE id = ?1",
                params![id, state.as_str(), outcome, now_s()],
            )
            .map(|_| ())
        })
    }

    /// Cancels a queued job at once; returns its state afterwards (`None`: no such job).
    pub fn cancel_queued(&self, id: i64) -> Result<Option<JobState>, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET state = 'cancelled', finished = ?2, outcome = 'cancelled before it ran'
                 WHERE id = ?1 AND state = 'queued'",
                params![id, now_s()],
            )?;
            c.query_row("SELECT state FROM jobs WHERE id = ?1", [id], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map(|o| o.map(|s| JobState::parse(&s)))
        })
    }

    /// The instance files of a study (paths relative to the data folder), in SOP UID order.
    pub fn study_files(&self, study_uid: &str) -> Result<Vec<(String, PathBuf)>, StoreError> {
        self.with(|c| {
            let mut s = c.prepare(
                "SELECT sop_uid, path FROM instances WHERE study_uid = ?1 ORDER BY sop_uid",
            )?;
            let v = s
                .query_map([study_uid], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        PathBuf::from(r.get::<_, String>(1)?),
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(v)
        })
    }

    /// Adds pending deliveries of a job (kept as they are when they exist: a redone job does not
    /// send again what was delivered).
    pub fn add_deliveries(&self, job: i64, destinations: &[String]) -> Result<(), StoreError> {
        self.with(|c| {
            for d in destinations {
                c.execute(
                    "INSERT OR IGNORE INTO deliveries (job_id, destination, state) VALUES (?1, ?2, 'pending')",
                    params![job, d],
                )?;
            }
            Ok(())
        })
    }

    /// Records a delivery attempt.
    pub fn record_delivery(
        &self,
        job: i64,
        destination: &str,
        state: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE deliveries SET state = ?3, attempts = attempts + 1, last_error = ?4
                 WHERE job_id = ?1 AND destination = ?2",
                params![job, destination, state, error],
            )
            .map(|_| ())
        })
    }

    fn deliveries(c: &Connection, job: i64) -> rusqlite::Result<Vec<Delivery>> {
        let mut s = c.prepare(
            "SELECT destination, state, attempts, last_error FROM deliveries WHERE job_id = ?1
             ORDER BY destination",
        )?;
        let v = s
            .query_map([job], |r| {
                Ok(Delivery {
                    destination: r.get(0)?,
                    state: r.get(1)?,
                    attempts: r.get::<_, i64>(2)? as u32,
                    last_error: r.get(3)?,
                })
            })?
            .collect();
        v
    }

    const JOB_COLUMNS: &str = "id, study_uid, content_hash, model_version, instances, state,
        outcome, created, started, finished, runs, last_instance";

    fn job_row(r: &rusqlite::Row) -> rusqlite::Result<Job> {
        let study_uid: String = r.get(1)?;
        Ok(Job {
            id: r.get(0)?,
            study_id: discus_core::ids::id_from_uid(&study_uid),
            study_uid,
            content_hash: r.get(2)?,
            model_version: r.get(3)?,
            instances: r.get(4)?,
            state: JobState::parse(&r.get::<_, String>(5)?),
            outcome: r.get(6)?,
            created: r.get(7)?,
            started: r.get(8)?,
            finished: r.get(9)?,
            runs: r.get(10)?,
            last_instance: r.get(11)?,
            deliveries: Vec::new(),
        })
    }

    /// One job.
    pub fn job(&self, id: i64) -> Result<Option<Job>, StoreError> {
        self.with(|c| {
            let j = c
                .query_row(
                    &format!("SELECT {} FROM jobs WHERE id = ?1", Self::JOB_COLUMNS),
                    [id],
                    Self::job_row,
                )
                .optional()?;
            match j {
                Some(mut j) => {
                    j.deliveries = Self::deliveries(c, id)?;
                    Ok(Some(j))
                }
                None => Ok(None),
            }
        })
    }

    /// Every job, newest first.
    pub fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.with(|c| {
            let mut s = c.prepare(&format!(
                "SELECT {} FROM jobs ORDER BY id DESC",
                Self::JOB_COLUMNS
            ))?;
            let mut v = s
                .query_map([], Self::job_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for j in &mut v {
                j.deliveries = Self::deliveries(c, j.id)?;
            }
            Ok(v)
        })
    }

    /// Jobs per state (for `/metrics`).
    pub fn job_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.with(|c| {
            let mut s =
                c.prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state")?;
            let v = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect();
            v
        })
    }

    /// Deliveries in the dead-letter list.
    pub fn dead_letters(&self) -> Result<i64, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM deliveries WHERE state = 'dead'",
                [],
                |r| r.get(0),
            )
        })
    }
}
