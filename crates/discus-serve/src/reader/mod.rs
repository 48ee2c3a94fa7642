//! The reading room: the browser viewer at `/reader/` and its API at `/reader/api/`, on the
//! dataset on disk and the reads store (`discus reads`).
//!
//! | route | what |
//! |---|---|
//! | `GET /reader/`, `/reader/{file}` | the embedded viewer bundle ([`assets`]), no token needed |
//! | `GET /reader/api/session` | the reader, their rounds |
//! | `GET /reader/protocol` | the annotation protocol (docs/annotation-protocol.md, embedded), no token needed for the text |
//! | `GET /reader/api/protocol-images`, `.../{file}` | its example images, cut from the served dataset on first request ([`discus_reads::protocol`]) |
//! | `GET /reader/api/next?round=R` | the reader's next study of the round from the labelling queue ([`discus_reads::queue`]: leased to them, in the round's order) and its three series |
//! | `GET /reader/api/studies/{st}/series/{se}/instances/{n}` | WADO: the instance as `application/dicom` |
//! | `GET /reader/api/studies/{st}/refline?from_series&from_instance&onto_series&onto_instance` | the reference line of one slice on another, in the second's pixels |
//! | `GET /reader/api/studies/{st}/reads?round=R` | the reader's reads; others' (and AI) reads only when allowed |
//! | `POST /reader/api/reads?round=R` | saves one read (in an AI-assisted round, with the proposal it answers) |
//! | `GET /reader/api/studies/{st}/proposals?round=R` | AI-assisted rounds only: the AI reader's pre-reads of the study |
//! | `POST /reader/api/proposals/accept?round=R` | AI-assisted rounds only: the finding's proposal becomes the reader's read |
//! | `POST /reader/api/studies/{st}/submit?round=R` | the reader is done with the study in the round (ends the lease; in a training round, answered with the feedback) |
//! | `GET /reader/api/studies/{st}/feedback?round=R` | training rounds: the feedback on a submitted study (409 before submission) |
//! | `GET /reader/api/adjudication?round=R` | adjudicators: the round's disagreements, with every reader's point and grade |
//! | `POST /reader/api/adjudication` | adjudicators: a decision, answered with the finding's consensus label |
//!
//! Every API route needs `Authorization: Bearer <reader token>` (tokens per reader in
//! `[reader]` of serve.toml). **Blinding is the server's**: until a reader has submitted a study
//! in a round, no route gives that reader another reader's reads of it, nor the AI readers' reads
//! unless the round is AI-assisted; a reader reaches only the rounds listed for them. A blinded
//! round never answers with AI proposals, and a training round's feedback (the reference round's
//! consensus) comes only after submission.
//!
//! **Next study**: the labelling queue hands each reader the highest-priority study of the round
//! that no other reader of the round holds, which they have not read and which fewer than
//! `readers_per_study` readers completed, leased for `lease_secs` (renewed when they ask again,
//! released on submission or expiry). The priority is the round's `order`: `dataset` (study id),
//! `uncertainty` (the sum of the entropies of the model's predicted grades, from the round's
//! `predictions` folder) or `disagreement` (the readers' grade spread so far in the round).

pub mod api;
pub mod assets;

use discus_core::StudyId;
use discus_data::dataset::Dataset;
use discus_data::geometry::{dot, SliceGeometry};
use discus_reads::analysis::ConsensusRule;
use discus_reads::geometry::DatasetSlices;
use discus_reads::protocol::Examples;
use discus_reads::qualify::{StudyFeedback, Training};
use discus_reads::queue::{disagreement_priority, uncertainty_priority, Queue, QueueRequest};
use discus_reads::store::{now_unix, ReaderId, ReadsStore, RoundId, RoundKind};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The consensus rule of a training round's reference round (as `discus reads qualify` by default).
pub const TRAINING_RULE: ConsensusRule = ConsensusRule::Adjudicated;

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
    /// How long a study stays leased to the reader it was handed to, seconds.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: i64,
}

fn default_adjudication_round() -> String {
    "adjudication".into()
}

fn default_lease_secs() -> i64 {
    1800
}

/// The order the labelling queue hands out a round's studies in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueOrder {
    /// By study id.
    #[default]
    Dataset,
    /// The most uncertain first: the sum of the entropies of the model's predicted grades
    /// ([`discus_reads::queue::uncertainty_priority`] on the round's `predictions`).
    Uncertainty,
    /// The most disputed first ([`discus_reads::queue::disagreement_priority`] on the round's
    /// reads so far).
    Disagreement,
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
    /// The order studies are handed out in.
    #[serde(default)]
    pub order: QueueOrder,
    /// How many readers of the round read each study (default: every reader of the round).
    #[serde(default)]
    pub readers_per_study: Option<usize>,
    /// The `discus predict` folder whose probabilities give the `uncertainty` order.
    #[serde(default)]
    pub predictions: Option<PathBuf>,
    /// The AI reader whose reads are the proposals of an AI-assisted round (default: the first of
    /// `ai_readers`).
    #[serde(default)]
    pub ai_reader: Option<String>,
    /// Makes the round a training round ([`discus_reads::qualify::Training`]) over the consensus
    /// of this (blinded) round: feedback after each submitted study.
    #[serde(default)]
    pub training_reference: Option<String>,
}

impl RoundConfig {
    /// A round with the defaults: blinded, not AI-assisted, dataset order, every reader.
    pub fn new(name: &str) -> RoundConfig {
        RoundConfig {
            name: name.into(),
            ai_assisted: false,
            order: QueueOrder::Dataset,
            readers_per_study: None,
            predictions: None,
            ai_reader: None,
            training_reference: None,
        }
    }
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
    /// The labelling queue failed.
    #[error("[reader] queue: {0}")]
    Queue(#[from] discus_reads::queue::QueueError),
    /// The training rounds failed.
    #[error("[reader] training: {0}")]
    Training(#[from] discus_reads::qualify::QualifyError),
    /// The protocol's example images cannot be made.
    #[error("[reader] protocol images: {0}")]
    Protocol(#[from] discus_reads::protocol::ProtocolError),
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
        if self.lease_secs <= 0 {
            return Err("lease_secs must be at least 1".into());
        }
        for r in &mut self.rounds {
            if let Some(p) = &mut r.predictions {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
            if r.order == QueueOrder::Uncertainty && r.predictions.is_none() {
                return Err(format!(
                    "round {}: order = \"uncertainty\" needs predictions (a `discus predict` folder)",
                    r.name
                ));
            }
            if r.readers_per_study == Some(0) {
                return Err(format!(
                    "round {}: readers_per_study must be at least 1",
                    r.name
                ));
            }
            if r.ai_assisted && r.ai_reader.is_none() && self.ai_readers.is_empty() {
                return Err(format!(
                    "round {}: AI-assisted needs ai_reader (or ai_readers)",
                    r.name
                ));
            }
            if let Some(a) = &r.ai_reader {
                if !self.ai_readers.contains(a) {
                    return Err(format!(
                        "round {}: ai_reader {a} is not listed in ai_readers",
                        r.name
                    ));
                }
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
    /// The configured (blinded) rounds.
    pub rounds: Vec<OpenRound>,
    /// The adjudication round.
    pub adjudication_round: RoundId,
    /// The labelling queue (leases and completions in the store file).
    pub queue: Mutex<Queue>,
    /// The training rounds (registration, submissions, feedback).
    pub training: Mutex<Training>,
    protocol_images: Mutex<Option<Arc<Examples>>>,
    submissions: Mutex<rusqlite::Connection>,
    store_path: PathBuf,
}

/// A configured round, opened in the store.
#[derive(Debug, Clone)]
pub struct OpenRound {
    /// Its configuration.
    pub config: RoundConfig,
    /// Its id in the store.
    pub id: RoundId,
    /// How many readers read each study.
    pub readers_per_study: usize,
    /// The AI reader whose reads are proposals (AI-assisted rounds).
    pub ai_reader: Option<String>,
    /// The model uncertainty per study (`uncertainty` order), read at start-up.
    pub uncertainty: BTreeMap<StudyId, f64>,
    /// The reference round, when it is a training round.
    pub training_reference: Option<String>,
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
        let mut ids = Vec::new();
        for r in &config.rounds {
            ids.push(store.round(&r.name, RoundKind::Blinded)?);
        }
        let mut training = Training::open(&store_path)?;
        let mut rounds = Vec::new();
        for (r, id) in config.rounds.iter().zip(ids) {
            if let Some(reference) = &r.training_reference {
                training.create(&mut store, &r.name, reference, None)?;
            }
            let uncertainty = match (&r.order, &r.predictions) {
                (QueueOrder::Uncertainty, Some(p)) => uncertainty_priority(p)?,
                _ => BTreeMap::new(),
            };
            let readers = config
                .readers
                .iter()
                .filter(|a| a.rounds.contains(&r.name))
                .count();
            rounds.push(OpenRound {
                readers_per_study: r.readers_per_study.unwrap_or(readers.max(1)),
                ai_reader: r
                    .ai_reader
                    .clone()
                    .or_else(|| config.ai_readers.first().cloned()),
                uncertainty,
                training_reference: training.reference_of(id)?,
                config: r.clone(),
                id,
            });
        }
        let queue = Queue::open(&store_path)?;
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
            queue: Mutex::new(queue),
            training: Mutex::new(training),
            protocol_images: Mutex::new(None),
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

    /// The reader's next study of `round` from the labelling queue (see the module docs): their
    /// live lease renewed, or a new lease on the round's highest-priority free study; `None`
    /// when the round has nothing left for them.
    pub fn next_study(
        &self,
        reader: ReaderId,
        round: &OpenRound,
    ) -> Result<Option<StudyId>, ReaderError> {
        let studies: Vec<StudyId> = self
            .dataset
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .studies()?
            .into_iter()
            .map(|r| r.study)
            .collect();
        let disagreement;
        let priority = match round.config.order {
            QueueOrder::Dataset | QueueOrder::Uncertainty => &round.uncertainty,
            QueueOrder::Disagreement => {
                let reads = self
                    .store
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .current_reads(Some(round.id))?;
                disagreement = disagreement_priority(&reads, &round.config.name);
                &disagreement
            }
        };
        let lease = self
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next(&QueueRequest {
                round: round.id,
                reader,
                studies: &studies,
                priority,
                readers_per_study: round.readers_per_study,
                now: now_unix(),
                lease_secs: self.config.lease_secs,
            })?;
        Ok(lease.map(|l| l.study))
    }

    /// Records that `reader` is done with `study` in `round`: the submission (blinding), the
    /// queue's completion (ends the lease) and, in a training round, the training submission,
    /// answered with its feedback.
    pub fn submit_study(
        &self,
        reader: ReaderId,
        round: &OpenRound,
        study: StudyId,
    ) -> Result<Option<StudyFeedback>, ReaderError> {
        self.submit(reader, round.id, study)?;
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .complete(round.id, reader, study, now_unix())?;
        if round.training_reference.is_none() {
            return Ok(None);
        }
        let reads = self
            .store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .current_reads(None)?;
        let fb = self
            .training
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .submit(
                &reads,
                round.id,
                reader,
                study,
                TRAINING_RULE,
                Some(&self.slices),
                None,
            )?;
        Ok(Some(fb))
    }

    /// The protocol's example images, cut from the served dataset on the first call and kept.
    pub fn protocol_images(&self) -> Result<Arc<Examples>, ReaderError> {
        let mut cached = self
            .protocol_images
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(e) = cached.as_ref() {
            return Ok(e.clone());
        }
        let ds = self.dataset.lock().unwrap_or_else(|e| e.into_inner());
        let made = Arc::new(discus_reads::protocol::example_images(&ds)?);
        *cached = Some(made.clone());
        Ok(made)
    }

    fn sql(&self, source: rusqlite::Error) -> ReaderError {
        ReaderError::Sql {
            path: self.store_path.clone(),
            source,
        }
    }
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
}
