//! The reading room: the browser viewer at `/reader/` and its API at `/reader/api/`, on the
//! dataset on disk and the reads store (`discus reads`).
//!
//! | route | what |
//! |---|---|
//! | `GET /reader/`, `/reader/{file}` | the embedded viewer bundle ([`assets`]), no token needed |
//! | `GET /reader/api/session` | the reader, their rounds |
//! | `GET /reader/api/next?round=R` | the reader's next study of the round and its three series |
//! | `GET /reader/api/studies/{st}/series/{se}/instances/{n}` | WADO: the instance as `application/dicom` |
//! | `GET /reader/api/studies/{st}/refline?from_series&from_instance&onto_series&onto_instance` | the reference line of one slice on another, in the second's pixels |
//! | `GET /reader/api/studies/{st}/reads?round=R` | the reader's reads; others' (and AI) reads only when allowed |
//! | `POST /reader/api/reads` | saves one read |
//! | `POST /reader/api/studies/{st}/submit` | the reader is done with the study in the round |
//! | `GET /reader/api/adjudication?round=R` | adjudicators: the round's disagreements, with every reader's point and grade |
//! | `POST /reader/api/adjudication` | adjudicators: a decision, answered with the finding's consensus label |
//!
//! Every API route needs `Authorization: Bearer <reader token>` (tokens per reader in
//! `[reader]` of serve.toml). **Blinding is the server's**: until a reader has submitted a study
//! in a round, no route gives that reader another reader's reads of it, nor the AI readers' reads
//! unless the round is AI-assisted; a reader reaches only the rounds listed for them.

pub mod api;
pub mod assets;

use discus_core::StudyId;
use discus_data::dataset::Dataset;
use discus_data::geometry::{dot, SliceGeometry};
use discus_reads::geometry::DatasetSlices;
use discus_reads::store::{ReaderId, ReadsStore, RoundId, RoundKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// `[reader]` in serve.toml.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReaderConfig {
    /// The dataset root (LumbarDISC layout) read from.
    pub dataset: PathBuf,
    /// The reads store (default: the dataset's, as `discus reads` uses it).
    #[serde(default)]
    pub store: Option<PathBuf>,
    /// Names of the AI readers in the store (model pre-reads imported by `discus reads
    /// import-predictions`): shown only in AI-assisted rounds or after submission.
    #[serde(default)]
    pub ai_readers: Vec<String>,
    /// The blinded reading rounds.
    pub rounds: Vec<RoundConfig>,
    /// The adjudication round decisions are recorded in.
    #[serde(default = "default_adjudication_round")]
    pub adjudication_round: String,
    /// Who may read.
    pub readers: Vec<ReaderAccount>,
}

fn default_adjudication_round() -> String {
    "adjudication".into()
}

/// One blinded reading round.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundConfig {
    /// The round's name in the reads store.
    pub name: String,
    /// Whether the AI readers' reads are shown while reading (recorded on every read).
    #[serde(default)]
    pub ai_assisted: bool,
}

/// One reader's account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReaderAccount {
    /// The reader's name in the reads store.
    pub name: String,
    /// Their bearer token.
    pub token: String,
    /// The rounds they read in.
    #[serde(default)]
    pub rounds: Vec<String>,
    /// Whether they may adjudicate.
    #[serde(default)]
    pub adjudicator: bool,
}

/// Why the reading room cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    /// The configuration is inconsistent.
    #[error("[reader]: {0}")]
    Config(String),
    /// The dataset cannot be opened.
    #[error("[reader] dataset: {0}")]
    Dataset(#[from] discus_data::dataset::DatasetError),
    /// The reads store cannot be opened or written.
    #[error("[reader] store: {0}")]
    Store(#[from] discus_reads::store::StoreError),
    /// The submissions table cannot be used.
    #[error("[reader] {}: {source}", path.display())]
    Sql {
        /// The store file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
}

impl ReaderConfig {
    /// Checks the configuration and makes relative paths relative to `base`.
    pub fn resolve(&mut self, base: &Path) -> Result<(), String> {
        if self.dataset.is_relative() {
            self.dataset = base.join(&self.dataset);
        }
        if let Some(s) = &mut self.store {
            if s.is_relative() {
                *s = base.join(&*s);
            }
        }
        let mut tokens = BTreeSet::new();
        for r in &self.readers {
            if r.token.len() < 8 {
                return Err(format!(
                    "reader {}: token must have at least 8 characters",
                    r.name
                ));
            }
            if !tokens.insert(r.token.clone()) {
                return Err(format!("reader {}: token used twice", r.name));
            }
            for round in &r.rounds {
                if !self.rounds.iter().any(|x| &x.name == round) {
                    return Err(format!("reader {}: unknown round {round}", r.name));
                }
            }
        }
        Ok(())
    }
}

/// A signed-in reader.
#[derive(Debug, Clone)]
pub struct Account {
    /// The configured account.
    pub config: ReaderAccount,
    /// Their id in the store.
    pub id: ReaderId,
}

/// The reading room's shared state.
pub struct ReaderState {
    /// The configuration.
    pub config: ReaderConfig,
    /// The dataset (pixels and geometry).
    pub dataset: Mutex<Dataset>,
    /// Slice geometry for point distances.
    pub slices: DatasetSlices,
    /// The reads store.
    pub store: Mutex<ReadsStore>,
    /// The accounts, with their store ids.
    pub accounts: Vec<Account>,
    /// The round ids by configured round name (blinded rounds).
    pub rounds: Vec<(RoundConfig, RoundId)>,
    /// The adjudication round.
    pub adjudication_round: RoundId,
    submissions: Mutex<rusqlite::Connection>,
    store_path: PathBuf,
}

impl ReaderState {
    /// Opens the dataset and the reads store, creating the configured readers and rounds.
    pub fn open(config: ReaderConfig) -> Result<Arc<ReaderState>, ReaderError> {
        let dataset = Dataset::open(&config.dataset)?;
        let slices = DatasetSlices::new(Dataset::open(&config.dataset)?);
        let store_path = config
            .store
            .clone()
            .unwrap_or_else(|| discus_reads::store::default_store_path(&config.dataset));
        let mut store = ReadsStore::open(&store_path)?;
        let mut accounts = Vec::new();
        for r in &config.readers {
            accounts.push(Account {
                id: store.reader(&r.name)?,
                config: r.clone(),
            });
        }
        let mut rounds = Vec::new();
        for r in &config.rounds {
            rounds.push((r.clone(), store.round(&r.name, RoundKind::Blinded)?));
        }
        let adjudication_round =
            store.round(&config.adjudication_round, RoundKind::Adjudication)?;
        let sql = |source| ReaderError::Sql {
            path: store_path.clone(),
            source,
        };
        let conn = rusqlite::Connection::open(&store_path).map_err(sql)?;
        conn.busy_timeout(discus_reads::store::BUSY_TIMEOUT)
            .map_err(sql)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS reader_submissions (
                reader_id INTEGER NOT NULL, round_id INTEGER NOT NULL, study_id INTEGER NOT NULL,
                submitted_at INTEGER NOT NULL, PRIMARY KEY (reader_id, round_id, study_id));",
        )
        .map_err(sql)?;
        Ok(Arc::new(ReaderState {
            config,
            dataset: Mutex::new(dataset),
            slices,
            store: Mutex::new(store),
            accounts,
            rounds,
            adjudication_round,
            submissions: Mutex::new(conn),
            store_path,
        }))
    }

    /// Whether `reader` has submitted `study` in `round`.
    pub fn submitted(
        &self,
        reader: ReaderId,
        round: RoundId,
        study: StudyId,
    ) -> Result<bool, ReaderError> {
        let c = self.submissions.lock().unwrap_or_else(|e| e.into_inner());
        c.query_row(
            "SELECT COUNT(*) FROM reader_submissions WHERE reader_id=?1 AND round_id=?2 AND study_id=?3",
            rusqlite::params![reader.0, round.0, study.0 as i64],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(|source| self.sql(source))
    }

    /// The studies `reader` has submitted in `round`.
    pub fn submitted_studies(
        &self,
        reader: ReaderId,
        round: RoundId,
    ) -> Result<BTreeSet<StudyId>, ReaderError> {
        let c = self.submissions.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = c
            .prepare("SELECT study_id FROM reader_submissions WHERE reader_id=?1 AND round_id=?2")
            .map_err(|source| self.sql(source))?;
        let rows = st
            .query_map(rusqlite::params![reader.0, round.0], |r| r.get::<_, i64>(0))
            .map_err(|source| self.sql(source))?;
        let mut out = BTreeSet::new();
        for r in rows {
            out.insert(StudyId(r.map_err(|source| self.sql(source))? as u64));
        }
        Ok(out)
    }

    /// Records that `reader` is done with `study` in `round` (again: no change).
    pub fn submit(
        &self,
        reader: ReaderId,
        round: RoundId,
        study: StudyId,
    ) -> Result<(), ReaderError> {
        let c = self.submissions.lock().unwrap_or_else(|e| e.into_inner());
        c.execute(
            "INSERT OR IGNORE INTO reader_submissions VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![
                reader.0,
                round.0,
                study.0 as i64,
                discus_reads::store::now_unix()
            ],
        )
        .map(|_| ())
        .map_err(|source| self.sql(source))
    }

    fn sql(&self, source: rusqlite::Error) -> ReaderError {
        ReaderError::Sql {
            path: self.store_path.clone(),
            source,
        }
    }
}

/// The next study for a reader: the first study (by id) of the dataset they have not submitted in
/// the round. One small function, so another queue (by model uncertainty or disagreement) can take
/// its place.
pub fn next_study(studies: &[StudyId], submitted: &BTreeSet<StudyId>) -> Option<StudyId> {
    let mut s: Vec<StudyId> = studies.to_vec();
    s.sort();
    s.into_iter().find(|x| !submitted.contains(x))
}

/// The reference line of slice `from` on slice `onto`: where `from`'s plane cuts `onto`'s image
/// rectangle (pixel edges, `-0.5` to `size - 0.5`), as two end points in `onto`'s pixel
/// coordinates `(column, row)`. `None` when the planes are parallel or the cut misses the image.
pub fn reference_line(from: &SliceGeometry, onto: &SliceGeometry) -> Option<[[f64; 2]; 2]> {
    let n = from.normal();
    let (w, h) = (onto.columns as f64 - 0.5, onto.rows as f64 - 0.5);
    let corners = [[-0.5, -0.5], [w, -0.5], [w, h], [-0.5, h]];
    let dist = |c: [f64; 2]| {
        let p = onto.pixel_to_patient(c[0], c[1]);
        dot(
            [
                p[0] - from.position[0],
                p[1] - from.position[1],
                p[2] - from.position[2],
            ],
            n,
        )
    };
    let d: Vec<f64> = corners.iter().map(|&c| dist(c)).collect();
    let mut pts: Vec<[f64; 2]> = Vec::new();
    for i in 0..4 {
        let (a, b) = (corners[i], corners[(i + 1) % 4]);
        let (da, db) = (d[i], d[(i + 1) % 4]);
        if (da > 0.0) == (db > 0.0) || da == db {
            continue;
        }
        let t = da / (da - db);
        let p = [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])];
        if !pts
            .iter()
            .any(|q| (q[0] - p[0]).abs() < 1e-9 && (q[1] - p[1]).abs() < 1e-9)
        {
            pts.push(p);
        }
    }
    (pts.len() >= 2).then(|| [pts[0], pts[1]])
}

/// The reading room's routes (under `/reader/`), to merge into the node's router.
pub fn router(state: Arc<ReaderState>) -> axum::Router {
    api::router(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(pos: [f64; 3], iop: [f64; 6], n: u32) -> SliceGeometry {
        SliceGeometry::new(pos, iop, [1.0, 1.0], n, n).unwrap()
    }

    #[test]
    fn axial_plane_cuts_a_sagittal_image_along_a_row() {
        // Sagittal: columns along -y (anterior to posterior is +y in LPS), rows along -z.
        let sag = geom([0.0, -50.0, 50.0], [0.0, 1.0, 0.0, 0.0, 0.0, -1.0], 100);
        // Axial at z = 20: row 30 of the sagittal image (z = 50 - row).
        let ax = geom([-50.0, -50.0, 20.0], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], 100);
        let l = reference_line(&ax, &sag).unwrap();
        let mut xs = [l[0][0], l[1][0]];
        xs.sort_by(f64::total_cmp);
        assert!((xs[0] + 0.5).abs() < 1e-9 && (xs[1] - 99.5).abs() < 1e-9);
        assert!((l[0][1] - 30.0).abs() < 1e-9 && (l[1][1] - 30.0).abs() < 1e-9);
        // Parallel planes: no line; a plane above the image: no line.
        assert!(reference_line(&sag, &sag).is_none());
        let high = geom([-50.0, -50.0, 500.0], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], 100);
        assert!(reference_line(&high, &sag).is_none());
    }

    #[test]
    fn next_study_skips_submitted_ones() {
        let all = [StudyId(9), StudyId(3), StudyId(5)];
        let done: BTreeSet<StudyId> = [StudyId(3)].into_iter().collect();
        assert_eq!(next_study(&all, &done), Some(StudyId(5)));
        let done: BTreeSet<StudyId> = all.into_iter().collect();
        assert_eq!(next_study(&all, &done), None);
    }
}
