//! Reader qualification and training rounds.
//!
//! # Qualification
//! [`qualify`] measures one reader against the *consensus* of a reference round: the consensus
//! labels ([`crate::analysis::consensus`], under [`QualifyConfig::rule`]) of the blinded reads of
//! the reference round, leaving the reader's own reads (and decisions) out. The reader's reads are
//! their blinded reads of one round (or of every blinded round but the reference round; a later
//! round replaces an earlier one, as in [`blinded_findings`]). On the findings both graded it
//! reports Cohen's weighted kappa (reader against consensus, [`QualifyConfig::weights`]) overall and
//! per condition group, each with a percentile interval from a bootstrap over studies, and the
//! distance in mm (patient space) between the reader's and the consensus point (median, p90).
//!
//! The verdict passes when all of these hold:
//! - at least [`QualifyConfig::min_findings`] findings were compared;
//! - the overall kappa (its interval's lower end with [`QualifyConfig::use_lower_bound`]) is at
//!   least [`QualifyConfig::min_kappa`];
//! - with [`QualifyConfig::max_median_mm`] set, the median point distance was measured (it needs
//!   the dataset's geometry) and is at most that.
//!
//! The thresholds come from the `[qualify]` table of the project's configuration file
//! (`discus.toml`, see [`QualifyConfig::load`]); every key is optional:
//!
//! ```toml
//! [qualify]
//! weights = "quadratic"      # "identity", "linear" or "quadratic"
//! min_kappa = 0.6
//! use_lower_bound = false    # compare the interval's lower end instead of the estimate
//! max_median_mm = 5.0        # leave out to judge grades only
//! min_findings = 30
//! rule = "adjudicated"       # consensus rule of the reference round
//! resamples = 1000
//! seed = 20240601
//! ```
//!
//! # Training rounds
//! A training round ([`Training`]) is a blinded round of the reads store registered with a
//! reference round whose consensus is known. A trainee reads a study in it as in any round; after
//! they *submit* the study ([`Training::submit`]) the library gives feedback per finding: their
//! grade against the consensus grade and the distance between their point and the consensus point.
//! No feedback is given on a study before it is submitted. The registration and the submissions
//! live in two tables of the reads store file, beside the store's own:
//!
//! | table | columns |
//! |---|---|
//! | `training_rounds` | `round_id` PK (a round of the store), `reference_round` (name), `created_at` |
//! | `training_submissions` | `round_id`, `reader_id`, `study_id`, `submitted_at`; PK (`round_id`, `reader_id`, `study_id`) |

use crate::analysis::{adjudications, blinded_findings, consensus, ConsensusLabel, ConsensusRule};
use crate::geometry::SliceLookup;
use crate::import::row_id;
use crate::store::{Point, ReaderId, ReadsStore, RoundId, RoundKind, StoreError, StoredRead};
use discus_core::agreement::{bootstrap, Estimate, Ratings, Statistic, Weights};
use discus_core::RowId;
use discus_core::{Condition, ConditionGroup, Level, Severity, StudyId};
use discus_data::sqlite::{self, Durability, SqliteError, SqliteOptions};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file name of the project configuration read by `discus reads qualify` by default.
pub const CONFIG_FILE: &str = "discus.toml";

/// Errors of qualification and training rounds.
#[derive(Debug, thiserror::Error)]
pub enum QualifyError {
    /// The configuration file could not be read.
    #[error("qualification config {path}: {source}")]
    ConfigIo {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML or its `[qualify]` table is invalid.
    #[error("qualification config {path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The reference round has no blinded reads by other readers.
    #[error("round {round:?} has no blinded reads by readers other than {reader:?}")]
    NoReference {
        /// The reference round's name.
        round: String,
        /// The reader being qualified.
        reader: String,
    },
    /// The reader has no blinded reads outside the reference round (or in the round asked for).
    #[error("reader {reader:?} has no blinded reads {scope}")]
    NoReads {
        /// The reader.
        reader: String,
        /// Where they were looked for.
        scope: String,
    },
    /// A request names something that does not exist or is of the wrong kind.
    #[error("{0}")]
    Invalid(String),
    /// Feedback was asked for a study the reader has not submitted.
    #[error("reader {reader} has not submitted study {study} in training round {round}: no feedback before submission")]
    NotSubmitted {
        /// The round's id.
        round: i64,
        /// The reader's id.
        reader: i64,
        /// The study.
        study: StudyId,
    },
    /// The reads store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Qualification thresholds and options: the `[qualify]` table of `discus.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualifyConfig {
    /// The kappa's agreement weights.
    pub weights: Weights,
    /// The smallest overall kappa that passes.
    pub min_kappa: f64,
    /// Compare the lower end of the kappa's 95% interval instead of the estimate.
    pub use_lower_bound: bool,
    /// The largest median point distance (mm) that passes; `None` judges grades only.
    pub max_median_mm: Option<f64>,
    /// The fewest findings compared for a verdict; fewer fails.
    pub min_findings: usize,
    /// The consensus rule of the reference round.
    pub rule: ConsensusRule,
    /// Bootstrap resamples per interval.
    pub resamples: usize,
    /// Bootstrap seed.
    pub seed: u64,
}

impl Default for QualifyConfig {
    fn default() -> Self {
        QualifyConfig {
            weights: Weights::Quadratic,
            min_kappa: 0.6,
            use_lower_bound: false,
            max_median_mm: Some(5.0),
            min_findings: 30,
            rule: ConsensusRule::Adjudicated,
            resamples: 1000,
            seed: 20240601,
        }
    }
}

impl QualifyConfig {
    /// Reads the `[qualify]` table of a TOML file (other tables are left to other tools); a file
    /// without the table gives the defaults.
    pub fn load(path: &Path) -> Result<QualifyConfig, QualifyError> {
        let text = std::fs::read_to_string(path).map_err(|source| QualifyError::ConfigIo {
            path: path.to_path_buf(),
            source,
        })?;
        QualifyConfig::parse(&text).map_err(|message| QualifyError::Config {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses the `[qualify]` table of a TOML document.
    pub fn parse(text: &str) -> Result<QualifyConfig, String> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        let cfg: QualifyConfig = match table.get("qualify") {
            None => QualifyConfig::default(),
            Some(v) => v
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| format!("[qualify]: {e}"))?,
        };
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), String> {
        if !(self.min_kappa.is_finite() && self.min_kappa <= 1.0) {
            return Err(format!(
                "[qualify] min_kappa must be at most 1 (got {})",
                self.min_kappa
            ));
        }
        if self
            .max_median_mm
            .is_some_and(|m| !(m.is_finite() && m > 0.0))
        {
            return Err("[qualify] max_median_mm must be a positive number of mm".into());
        }
        if self.use_lower_bound && self.resamples == 0 {
            return Err("[qualify] use_lower_bound needs resamples > 0".into());
        }
        Ok(())
    }
}

/// Kappa over one subset of the compared findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupKappa {
    /// `overall`, or the condition group (`spinal`, `foraminal`, `subarticular`).
    pub group: String,
    /// Findings compared.
    pub findings: usize,
    /// Findings on which the reader's grade equals the consensus grade.
    pub exact: usize,
    /// Cohen's weighted kappa, reader against consensus, with its bootstrap interval.
    pub kappa: Estimate,
}

/// Distances between the reader's and the consensus points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointDistances {
    /// Findings where both the reader and the consensus placed a point.
    pub both_placed: usize,
    /// Of those, the ones measured in patient space.
    pub measured: usize,
    /// Median distance, mm.
    pub median_mm: Option<f64>,
    /// 90th percentile of the distance, mm.
    pub p90_mm: Option<f64>,
}

/// A reader's qualification against a reference round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Qualification {
    /// The reader qualified.
    pub reader: String,
    /// The reference round.
    pub against: String,
    /// The rounds the reader's reads were taken from.
    pub reader_rounds: Vec<String>,
    /// The thresholds and options applied.
    pub config: QualifyConfig,
    /// Reference findings with a consensus grade.
    pub consensus_labels: usize,
    /// Reference findings the consensus leaves unresolved (not compared).
    pub consensus_unresolved: usize,
    /// Consensus findings the reader did not grade.
    pub not_graded: usize,
    /// Overall kappa.
    pub overall: GroupKappa,
    /// Kappa per condition group (groups without findings are left out).
    pub by_group: Vec<GroupKappa>,
    /// Point distances; `None` without geometry.
    pub points: Option<PointDistances>,
    /// The verdict.
    pub pass: bool,
    /// Why the verdict failed (empty when it passed).
    pub reasons: Vec<String>,
}

/// The consensus of `against`'s blinded reads, leaving out `exclude`'s reads and decisions.
pub fn reference_consensus(
    reads: &[StoredRead],
    against: &str,
    exclude: &str,
    rule: ConsensusRule,
    slices: Option<&dyn SliceLookup>,
) -> Result<Vec<ConsensusLabel>, QualifyError> {
    let others: Vec<StoredRead> = reads
        .iter()
        .filter(|r| r.reader_name != exclude)
        .cloned()
        .collect();
    let findings = blinded_findings(&others, Some(against), None);
    if findings.is_empty() {
        return Err(QualifyError::NoReference {
            round: against.into(),
            reader: exclude.into(),
        });
    }
    let keys: std::collections::BTreeSet<RowId> = findings.iter().map(|f| f.key).collect();
    let adj: std::collections::HashMap<RowId, StoredRead> = adjudications(&others)
        .into_iter()
        .filter(|(k, _)| keys.contains(k))
        .collect();
    Ok(consensus(&findings, &adj, rule, slices))
}

fn ratings_of(pairs: &[(StudyId, Severity, Severity)]) -> Ratings {
    let mut r = Ratings::new(3, 2).expect("3 categories, 2 raters");
    for (study, a, b) in pairs {
        r.push_in(study.0, &[Some(a.index()), Some(b.index())])
            .expect("grades are below 3");
    }
    r
}

fn group_kappa(
    group: &str,
    pairs: &[(StudyId, Severity, Severity)],
    cfg: &QualifyConfig,
) -> GroupKappa {
    let r = ratings_of(pairs);
    GroupKappa {
        group: group.into(),
        findings: pairs.len(),
        exact: pairs.iter().filter(|(_, a, b)| a == b).count(),
        kappa: bootstrap(
            &r,
            Statistic::CohenKappa {
                weights: cfg.weights,
            },
            cfg.resamples,
            cfg.seed,
        ),
    }
}

/// Qualifies `reader` against the consensus of round `against` (see the module docs). `reads` are
/// the store's current reads of every round; `reader_round` restricts the reader's reads to one
/// round; `slices` measures point distances.
pub fn qualify(
    reads: &[StoredRead],
    reader: &str,
    against: &str,
    reader_round: Option<&str>,
    slices: Option<&dyn SliceLookup>,
    cfg: &QualifyConfig,
) -> Result<Qualification, QualifyError> {
    if reader_round == Some(against) {
        return Err(QualifyError::Invalid(format!(
            "the reader's round and the reference round are both {against:?}"
        )));
    }
    let labels = reference_consensus(reads, against, reader, cfg.rule, slices)?;
    let mine: Vec<StoredRead> = reads
        .iter()
        .filter(|r| r.reader_name == reader && r.round_name != against)
        .cloned()
        .collect();
    let names = [reader.to_string()];
    let findings = blinded_findings(&mine, reader_round, Some(&names));
    if findings.is_empty() {
        return Err(QualifyError::NoReads {
            reader: reader.into(),
            scope: match reader_round {
                Some(r) => format!("in round {r:?}"),
                None => format!("outside round {against:?}"),
            },
        });
    }
    let by_key: BTreeMap<RowId, &StoredRead> =
        findings.iter().map(|f| (f.key, &f.reads[0])).collect();
    let reader_rounds: Vec<String> = findings
        .iter()
        .map(|f| f.reads[0].round_name.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut pairs = Vec::new();
    let mut not_graded = 0;
    let mut unresolved = 0;
    let mut both_placed = 0;
    let mut dists = Vec::new();
    for l in &labels {
        let Some(cg) = l.grade else {
            unresolved += 1;
            continue;
        };
        let mine = by_key.get(&l.key);
        match mine.and_then(|r| r.grade) {
            Some(g) => pairs.push((l.key, g, cg)),
            None => not_graded += 1,
        }
        if let (Some(pm), Some(pc)) = (mine.and_then(|r| r.point), l.point) {
            both_placed += 1;
            if let Some(s) = slices {
                if let Ok(Some(d)) = s.distance_mm(l.key.study, &pm, &pc) {
                    dists.push(d);
                }
            }
        }
    }
    let all: Vec<(StudyId, Severity, Severity)> =
        pairs.iter().map(|(k, a, b)| (k.study, *a, *b)).collect();
    let overall = group_kappa("overall", &all, cfg);
    let by_group: Vec<GroupKappa> = ConditionGroup::ALL
        .iter()
        .filter_map(|g| {
            let sub: Vec<(StudyId, Severity, Severity)> = pairs
                .iter()
                .filter(|(k, _, _)| k.condition().group() == *g)
                .map(|(k, a, b)| (k.study, *a, *b))
                .collect();
            (!sub.is_empty()).then(|| group_kappa(g.as_str(), &sub, cfg))
        })
        .collect();
    let points = slices.map(|_| PointDistances {
        both_placed,
        measured: dists.len(),
        median_mm: discus_core::stats::quantile(&dists, 0.5),
        p90_mm: discus_core::stats::quantile(&dists, 0.9),
    });
    let mut reasons = Vec::new();
    if overall.findings < cfg.min_findings {
        reasons.push(format!(
            "{} findings compared, fewer than the {} required",
            overall.findings, cfg.min_findings
        ));
    }
    let (judged, what) = if cfg.use_lower_bound {
        (overall.kappa.ci_low, "kappa interval's lower end")
    } else {
        (overall.kappa.value, "kappa")
    };
    match judged {
        Some(k) if k >= cfg.min_kappa => {}
        Some(k) => reasons.push(format!(
            "{what} {k:.3} is below the {:.3} required",
            cfg.min_kappa
        )),
        None => reasons.push(format!("{what} is undefined on these findings")),
    }
    if let Some(max) = cfg.max_median_mm {
        match points.as_ref().and_then(|p| p.median_mm) {
            Some(m) if m <= max => {}
            Some(m) => reasons.push(format!(
                "median point distance {m:.1} mm is above the {max:.1} mm allowed"
            )),
            None => reasons
                .push("no point distance was measured (points need the dataset's geometry)".into()),
        }
    }
    Ok(Qualification {
        reader: reader.into(),
        against: against.into(),
        reader_rounds,
        config: cfg.clone(),
        consensus_labels: labels.len() - unresolved,
        consensus_unresolved: unresolved,
        not_graded,
        overall,
        by_group,
        points,
        pass: reasons.is_empty(),
        reasons,
    })
}

/// Opens a second connection on the reads store file for the workflow tables (training rounds,
/// the labelling queue), with the store's durability and busy timeout.
pub(crate) fn open_workflow(path: &Path, schema: &str) -> Result<Connection, StoreError> {
    // Make sure the store's own schema exists first (the workflow tables reference it).
    drop(ReadsStore::open(path)?);
    let options = SqliteOptions {
        foreign_keys: true,
        busy_timeout: crate::store::BUSY_TIMEOUT,
        ..SqliteOptions::writable(Durability::Full)
    };
    let conn = sqlite::open(path, &options).map_err(|e| match e {
        SqliteError::Io { path, source } => StoreError::Io { path, source },
        SqliteError::Sql { path, source } => StoreError::Sql { path, source },
    })?;
    conn.execute_batch(schema)
        .map_err(|source| StoreError::Sql {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(conn)
}

const TRAINING_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS training_rounds (
    round_id INTEGER PRIMARY KEY REFERENCES rounds(id), reference_round TEXT NOT NULL,
    created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS training_submissions (
    round_id INTEGER NOT NULL REFERENCES training_rounds(round_id),
    reader_id INTEGER NOT NULL REFERENCES readers(id), study_id INTEGER NOT NULL,
    submitted_at INTEGER NOT NULL, PRIMARY KEY (round_id, reader_id, study_id));
";

/// Feedback on one finding of a submitted training study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingFeedback {
    /// The submission-style row id.
    pub row_id: String,
    /// The condition.
    pub condition: Condition,
    /// The level.
    pub level: Level,
    /// The trainee's grade; `None` when not graded.
    pub grade: Option<Severity>,
    /// The consensus grade; `None` when the consensus is unresolved.
    pub consensus_grade: Option<Severity>,
    /// Trainee's grade minus consensus grade, in steps (+1: one grade too severe); `None` when
    /// either is missing.
    pub steps: Option<i32>,
    /// The trainee's point.
    pub point: Option<Point>,
    /// The consensus point.
    pub consensus_point: Option<Point>,
    /// Distance between the two points in patient space (mm), when both exist and geometry is
    /// known.
    pub distance_mm: Option<f64>,
}

/// Feedback on a submitted training study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyFeedback {
    /// The study.
    pub study: StudyId,
    /// The training round's reference round.
    pub reference_round: String,
    /// Findings the trainee graded with a consensus grade to compare with.
    pub compared: usize,
    /// Of those, the ones with the consensus grade.
    pub agreeing: usize,
    /// Consensus findings the trainee did not grade.
    pub missed: usize,
    /// Median point distance (mm) over the measured findings.
    pub median_mm: Option<f64>,
    /// Per finding, in finding order: every consensus finding of the study and every finding the
    /// trainee read.
    pub findings: Vec<FindingFeedback>,
}

/// Training rounds: registration, submissions and feedback (see the module docs).
pub struct Training {
    conn: Connection,
    path: PathBuf,
}

impl Training {
    /// Opens the training tables of the reads store at `path` (creating them if needed).
    pub fn open(path: &Path) -> Result<Training, QualifyError> {
        Ok(Training {
            conn: open_workflow(path, TRAINING_SCHEMA)?,
            path: path.to_path_buf(),
        })
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> QualifyError + '_ {
        move |source| {
            QualifyError::Store(StoreError::Sql {
                path: self.path.clone(),
                source,
            })
        }
    }

    /// Creates (or finds) the blinded round `name` in `store` and registers it as a training round
    /// over the consensus of `reference_round`. Registering an existing training round again with
    /// the same reference is a no-op; with another reference it is an error.
    pub fn create(
        &mut self,
        store: &mut ReadsStore,
        name: &str,
        reference_round: &str,
        at: Option<i64>,
    ) -> Result<RoundId, QualifyError> {
        if name == reference_round {
            return Err(QualifyError::Invalid(format!(
                "a training round cannot be its own reference ({name:?})"
            )));
        }
        match store.find_round(reference_round)? {
            Some(r) if r.kind == RoundKind::Blinded => {}
            Some(_) => {
                return Err(QualifyError::Invalid(format!(
                    "reference round {reference_round:?} is not a blinded round"
                )))
            }
            None => {
                return Err(QualifyError::Invalid(format!(
                    "reference round {reference_round:?} does not exist"
                )))
            }
        }
        let round = store.round(name, RoundKind::Blinded)?;
        if let Some(existing) = self.reference_of(round)? {
            if existing != reference_round {
                return Err(QualifyError::Invalid(format!(
                    "round {name:?} is already a training round over {existing:?}"
                )));
            }
            return Ok(round);
        }
        self.conn
            .execute(
                "INSERT INTO training_rounds (round_id, reference_round, created_at) VALUES (?1, ?2, ?3)",
                params![round.0, reference_round, at.unwrap_or_else(crate::store::now_unix)],
            )
            .map_err(self.sql())?;
        Ok(round)
    }

    /// The reference round of a training round; `None` when `round` is not a training round.
    pub fn reference_of(&self, round: RoundId) -> Result<Option<String>, QualifyError> {
        self.conn
            .query_row(
                "SELECT reference_round FROM training_rounds WHERE round_id = ?1",
                [round.0],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql())
    }

    /// Whether `reader` has submitted `study` in `round`.
    pub fn submitted(
        &self,
        round: RoundId,
        reader: ReaderId,
        study: StudyId,
    ) -> Result<bool, QualifyError> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM training_submissions WHERE round_id = ?1 AND reader_id = ?2 AND study_id = ?3",
                params![round.0, reader.0, study.0 as i64],
                |r| r.get(0),
            )
            .map_err(self.sql())?;
        Ok(n > 0)
    }

    /// Records that `reader` submitted `study` in the training round `round` and returns the
    /// feedback. `reads` are the store's current reads (every round). Submitting again returns the
    /// feedback on the reads as they are now (the first submission time is kept).
    #[allow(clippy::too_many_arguments)]
    pub fn submit(
        &mut self,
        reads: &[StoredRead],
        round: RoundId,
        reader: ReaderId,
        study: StudyId,
        rule: ConsensusRule,
        slices: Option<&dyn SliceLookup>,
        at: Option<i64>,
    ) -> Result<StudyFeedback, QualifyError> {
        if self.reference_of(round)?.is_none() {
            return Err(QualifyError::Invalid(format!(
                "round {} is not a training round",
                round.0
            )));
        }
        self.conn
            .execute(
                "INSERT OR IGNORE INTO training_submissions (round_id, reader_id, study_id, submitted_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![round.0, reader.0, study.0 as i64, at.unwrap_or_else(crate::store::now_unix)],
            )
            .map_err(self.sql())?;
        self.feedback(reads, round, reader, study, rule, slices)
    }

    /// The feedback on a submitted study (an error before submission).
    pub fn feedback(
        &self,
        reads: &[StoredRead],
        round: RoundId,
        reader: ReaderId,
        study: StudyId,
        rule: ConsensusRule,
        slices: Option<&dyn SliceLookup>,
    ) -> Result<StudyFeedback, QualifyError> {
        let reference = self.reference_of(round)?.ok_or_else(|| {
            QualifyError::Invalid(format!("round {} is not a training round", round.0))
        })?;
        if !self.submitted(round, reader, study)? {
            return Err(QualifyError::NotSubmitted {
                round: round.0,
                reader: reader.0,
                study,
            });
        }
        let in_study: Vec<StoredRead> = reads
            .iter()
            .filter(|r| r.key.study == study)
            .cloned()
            .collect();
        // The trainee's name, to leave them out of the reference (they might have read it too).
        let name = reads
            .iter()
            .find(|r| r.reader == reader)
            .map(|r| r.reader_name.clone())
            .unwrap_or_default();
        let labels = match reference_consensus(&in_study, &reference, &name, rule, slices) {
            Ok(l) => l,
            Err(QualifyError::NoReference { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mine: BTreeMap<RowId, &StoredRead> = in_study
            .iter()
            .filter(|r| r.reader == reader && r.round == round)
            .map(|r| (r.key, r))
            .collect();
        let mut keys: std::collections::BTreeSet<RowId> = labels.iter().map(|l| l.key).collect();
        keys.extend(mine.keys().copied());
        let by_label: BTreeMap<RowId, &ConsensusLabel> =
            labels.iter().map(|l| (l.key, l)).collect();
        let mut findings = Vec::new();
        let (mut compared, mut agreeing, mut missed) = (0, 0, 0);
        let mut dists = Vec::new();
        for key in keys {
            let m = mine.get(&key);
            let l = by_label.get(&key);
            let grade = m.and_then(|r| r.grade);
            let cg = l.and_then(|l| l.grade);
            let point = m.and_then(|r| r.point);
            let cp = l.and_then(|l| l.point);
            match (grade, cg) {
                (Some(g), Some(c)) => {
                    compared += 1;
                    agreeing += usize::from(g == c);
                }
                (None, Some(_)) => missed += 1,
                _ => {}
            }
            let distance_mm = match (point, cp, slices) {
                (Some(a), Some(b), Some(s)) => s.distance_mm(study, &a, &b).ok().flatten(),
                _ => None,
            };
            dists.extend(distance_mm);
            findings.push(FindingFeedback {
                row_id: row_id(key),
                condition: key.condition(),
                level: key.level(),
                grade,
                consensus_grade: cg,
                steps: grade
                    .zip(cg)
                    .map(|(g, c)| g.index() as i32 - c.index() as i32),
                point,
                consensus_point: cp,
                distance_mm,
            });
        }
        Ok(StudyFeedback {
            study,
            reference_round: reference,
            compared,
            agreeing,
            missed,
            median_mm: discus_core::stats::median(&dists),
            findings,
        })
    }
}

impl Qualification {
    /// The `--json` output: the qualification with `config_source` (where the thresholds came
    /// from).
    pub fn to_json(&self, config_source: &str) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["config_source"] = serde_json::Value::String(config_source.to_string());
        v
    }

    /// Writes the report `discus reads qualify` prints: what was compared, the kappa overall and
    /// per condition group with its interval, the point distances, and pass or fail with the
    /// reasons. `config_source` says where the thresholds came from.
    pub fn write_text(
        &self,
        config_source: &str,
        w: &mut impl std::io::Write,
    ) -> std::io::Result<()> {
        writeln!(
            w,
            "reader {} against the {} consensus of round {} (reader's rounds: {}; thresholds from {})",
            self.reader,
            self.config.rule.as_str(),
            self.against,
            self.reader_rounds.join(", "),
            config_source
        )?;
        writeln!(
            w,
            "  {} findings compared ({} consensus labels, {} unresolved, {} not graded by the reader); {} kappa",
            self.overall.findings,
            self.consensus_labels,
            self.consensus_unresolved,
            self.not_graded,
            self.config.weights.as_str()
        )?;
        for g in std::iter::once(&self.overall).chain(&self.by_group) {
            let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
            writeln!(
                w,
                "  {:<13} kappa {} [{}, {}]  exact {}/{}",
                g.group,
                f(g.kappa.value),
                f(g.kappa.ci_low),
                f(g.kappa.ci_high),
                g.exact,
                g.findings
            )?;
        }
        match &self.points {
            Some(p) => writeln!(
                w,
                "  points: median {} mm, p90 {} mm ({} measured of {} placed by both)",
                p.median_mm.map_or("-".into(), |v| format!("{v:.1}")),
                p.p90_mm.map_or("-".into(), |v| format!("{v:.1}")),
                p.measured,
                p.both_placed
            )?,
            None => writeln!(
                w,
                "  points: not measured (give --dataset for the geometry)"
            )?,
        }
        if self.pass {
            writeln!(w, "pass")
        } else {
            writeln!(w, "fail: {}", self.reasons.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::KnownSlices;
    use crate::store::ReadEvent;
    use discus_core::SeriesId;
    use discus_data::geometry::SliceGeometry;

    const N: Severity = Severity::NormalMild;
    const M: Severity = Severity::Moderate;
    const S: Severity = Severity::Severe;

    fn ev(study: u64, c: Condition, l: Level, g: Severity, x: f64) -> ReadEvent {
        ReadEvent::new(StudyId(study), c, l).grade(g).point(Point {
            series: SeriesId(1),
            instance: 1,
            x,
            y: 10.0,
        })
    }

    /// One slice per study, 0.5 mm pixels: 2 px apart is 1 mm.
    fn slices(studies: &[u64]) -> KnownSlices {
        let mut k = KnownSlices::default();
        for s in studies {
            k.insert(
                StudyId(*s),
                1,
                1,
                SliceGeometry::new(
                    [0.0; 3],
                    [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
                    [0.5, 0.5],
                    512,
                    512,
                )
                .unwrap(),
            );
        }
        k
    }

    #[test]
    fn config_reads_the_qualify_table_only() {
        let c = QualifyConfig::parse(
            "[other]\nx = 1\n[qualify]\nmin_kappa = 0.7\nweights = \"linear\"\nrule = \"majority\"\n",
        )
        .unwrap();
        assert_eq!(c.min_kappa, 0.7);
        assert_eq!(c.weights, Weights::Linear);
        assert_eq!(c.rule, ConsensusRule::Majority);
        assert_eq!(c.max_median_mm, Some(5.0));
        assert_eq!(QualifyConfig::parse("").unwrap(), QualifyConfig::default());
        let e = QualifyConfig::parse("[qualify]\nmin_kapa = 0.7\n").unwrap_err();
        assert!(e.contains("min_kapa"), "{e}");
        assert!(QualifyConfig::parse("[qualify]\nmax_median_mm = -1\n").is_err());
    }

    /// Two experts agree on every finding; the trainee differs on chosen ones. Kappa by hand:
    /// trainee vs consensus over 6 findings, grades consensus (N,N,M,M,S,S), trainee (N,M,M,M,S,M).
    /// Quadratic weights q=3: disagreement weights (k-l)^2/4. Observed disagreement: two findings
    /// one step apart: 2 * 0.25 / 6 = 1/12. Margins: trainee (1/6, 4/6, 1/6), consensus (2/6, 2/6,
    /// 2/6). Expected disagreement: sum_kl p_k q_l (k-l)^2/4 = (1/6)(2/6)(0+0.25+1) +
    /// (4/6)(2/6)(0.25+0+0.25) + (1/6)(2/6)(1+0.25+0) = (1.25+2+1.25)/36*... computed below.
    #[test]
    fn qualification_against_consensus_with_points() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ReadsStore::open(&dir.path().join("r.sqlite")).unwrap();
        let ref_round = s.round("ref", RoundKind::Blinded).unwrap();
        let exam = s.round("exam", RoundKind::Blinded).unwrap();
        let c = Condition::SpinalCanalStenosis;
        let f = Condition::LeftNeuralForaminalNarrowing;
        let cons = [
            (1, c, Level::L1L2, N),
            (1, c, Level::L2L3, N),
            (1, c, Level::L3L4, M),
            (2, f, Level::L1L2, M),
            (2, f, Level::L2L3, S),
            (2, f, Level::L3L4, S),
        ];
        let trainee = [N, M, M, M, S, M];
        for e in ["e1", "e2"] {
            let id = s.reader(e).unwrap();
            let evs: Vec<ReadEvent> = cons
                .iter()
                .map(|&(st, c, l, g)| ev(st, c, l, g, 100.0))
                .collect();
            s.record(id, ref_round, &evs, Some(1)).unwrap();
        }
        // A third expert disagrees on one finding: unanimous consensus leaves it unresolved.
        let e3 = s.reader("e3").unwrap();
        s.record(e3, ref_round, &[ev(9, c, Level::L5S1, S, 100.0)], Some(1))
            .unwrap();
        let e4 = s.reader("e4").unwrap();
        s.record(e4, ref_round, &[ev(9, c, Level::L5S1, N, 100.0)], Some(1))
            .unwrap();
        let t = s.reader("trainee").unwrap();
        let evs: Vec<ReadEvent> = cons
            .iter()
            .zip(trainee)
            .enumerate()
            // Points 2, 4, ..., 12 px to the right: 1..6 mm away.
            .map(|(i, (&(st, c, l, _), g))| ev(st, c, l, g, 100.0 + 2.0 * (i + 1) as f64))
            .collect();
        s.record(t, exam, &evs, Some(2)).unwrap();
        let reads = s.current_reads(None).unwrap();
        let geo = slices(&[1, 2, 9]);
        let cfg = QualifyConfig {
            min_findings: 6,
            resamples: 200,
            ..QualifyConfig::default()
        };
        let q = qualify(&reads, "trainee", "ref", None, Some(&geo), &cfg).unwrap();
        assert_eq!(q.overall.findings, 6);
        assert_eq!(q.consensus_unresolved, 1);
        assert_eq!(q.overall.exact, 4);
        // By hand: p_o(disagreement) = 2 * 1/4 / 6 = 1/12; expected disagreement
        // = sum_k sum_l t_k c_l (k-l)^2 / 4 with t = (1,4,1)/6, c = (2,2,2)/6:
        // row 0: 1*2*(0 + 1/4 + 1) = 2.5; row 1: 4*2*(1/4 + 0 + 1/4) = 4; row 2: 1*2*(1 + 1/4 + 0) = 2.5
        // total 9 / 36 = 1/4. kappa = 1 - (1/12) / (1/4) = 2/3.
        let k = q.overall.kappa.value.unwrap();
        assert!((k - 2.0 / 3.0).abs() < 1e-12, "{k}");
        assert!(q.overall.kappa.ci_low.unwrap() <= k && k <= q.overall.kappa.ci_high.unwrap());
        assert_eq!(q.by_group.len(), 2);
        let p = q.points.as_ref().unwrap();
        assert_eq!(p.measured, 6);
        // Distances 1..6 mm: median 3.5, p90 (numpy linear) 5.5.
        assert!((p.median_mm.unwrap() - 3.5).abs() < 1e-9);
        assert!((p.p90_mm.unwrap() - 5.5).abs() < 1e-9);
        assert!(q.pass, "{:?}", q.reasons);
        // Stricter thresholds fail, naming why.
        let strict = QualifyConfig {
            min_kappa: 0.8,
            max_median_mm: Some(3.0),
            ..cfg.clone()
        };
        let q2 = qualify(&reads, "trainee", "ref", None, Some(&geo), &strict).unwrap();
        assert!(!q2.pass);
        assert_eq!(q2.reasons.len(), 2, "{:?}", q2.reasons);
        // Without geometry the point criterion cannot be judged: fail.
        let q3 = qualify(&reads, "trainee", "ref", None, None, &cfg).unwrap();
        assert!(!q3.pass && q3.reasons[0].contains("geometry"));
        // Unknown round, reader without reads.
        assert!(matches!(
            qualify(&reads, "trainee", "nope", None, None, &cfg),
            Err(QualifyError::NoReference { .. })
        ));
        assert!(matches!(
            qualify(&reads, "e1", "ref", None, None, &cfg),
            Err(QualifyError::NoReads { .. })
        ));
    }

    #[test]
    fn training_feedback_only_after_submission() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite");
        let mut s = ReadsStore::open(&path).unwrap();
        let mut tr = Training::open(&path).unwrap();
        let c = Condition::SpinalCanalStenosis;
        assert!(tr.create(&mut s, "train", "ref", None).is_err());
        let r = s.round("ref", RoundKind::Blinded).unwrap();
        let e = s.reader("expert").unwrap();
        s.record(
            e,
            r,
            &[
                ev(5, c, Level::L4L5, S, 50.0),
                ev(5, c, Level::L5S1, M, 50.0),
            ],
            Some(1),
        )
        .unwrap();
        let round = tr.create(&mut s, "train", "ref", Some(2)).unwrap();
        assert_eq!(tr.create(&mut s, "train", "ref", None).unwrap(), round);
        assert_eq!(tr.reference_of(round).unwrap().as_deref(), Some("ref"));
        assert!(tr.reference_of(r).unwrap().is_none());
        let t = s.reader("trainee").unwrap();
        s.record(t, round, &[ev(5, c, Level::L4L5, M, 60.0)], Some(3))
            .unwrap();
        let reads = s.current_reads(None).unwrap();
        let geo = slices(&[5]);
        let rule = ConsensusRule::Adjudicated;
        let e = tr
            .feedback(&reads, round, t, StudyId(5), rule, Some(&geo))
            .unwrap_err();
        assert!(matches!(e, QualifyError::NotSubmitted { .. }));
        let fb = tr
            .submit(&reads, round, t, StudyId(5), rule, Some(&geo), Some(4))
            .unwrap();
        assert!(tr.submitted(round, t, StudyId(5)).unwrap());
        assert_eq!((fb.compared, fb.agreeing, fb.missed), (1, 0, 1));
        let l45 = &fb.findings[0];
        assert_eq!(l45.level, Level::L4L5);
        assert_eq!((l45.grade, l45.consensus_grade), (Some(M), Some(S)));
        assert_eq!(l45.steps, Some(-1));
        // 10 px at 0.5 mm: 5 mm.
        assert!((l45.distance_mm.unwrap() - 5.0).abs() < 1e-9);
        assert_eq!(fb.findings[1].grade, None);
        assert_eq!(fb.findings[1].consensus_grade, Some(M));
        // The training round is still a blinded round; another reader's feedback is not given.
        let other = s.reader("other").unwrap();
        assert!(tr
            .feedback(&reads, round, other, StudyId(5), rule, None)
            .is_err());
    }
}
