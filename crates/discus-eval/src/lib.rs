//! # discus-eval
//!
//! Everything that turns a submission into numbers people can trust, beyond the bare competition
//! metric of [`discus_core::metric`]:
//!
//! * [`prior`]: the constant baselines every model must beat (uniform 1/3, and the loss-optimal
//!   constant per label column, p proportional to count x weight);
//! * [`stats`]: bootstrap intervals over studies (seeded, parallel), weighted log loss, confusion
//!   matrices, one-vs-rest AUC and expected calibration error per condition, level and
//!   condition x level;
//! * [`sites`]: per-study scanner metadata (institution, manufacturer, field strength) read from one
//!   DICOM header per study, so scores can be broken down by site and scanner;
//! * [`report`]: the evaluation report, as `report.json` and a self-contained `index.html` with SVG plots;
//! * [`split`]: study-level K-fold splits stratified by site and by the presence of severe disease;
//! * [`compare`]: representativeness of one dataset against another (vendors, field strengths,
//!   matrices, slice thickness, series kinds, label distributions), with divergences and flags.
//!
//! ```
//! use discus_core::formats::StudyLabels;
//! use discus_core::metric::{score, Semantics};
//! use discus_core::{Severity, StudyId};
//! use discus_eval::prior::{prior_probs, prior_submission, PriorKind};
//!
//! let mut a = StudyLabels::empty(StudyId(1));
//! a.grades = [Some(Severity::NormalMild); 25];
//! let mut b = StudyLabels::empty(StudyId(2));
//! b.grades = [Some(Severity::Severe); 25];
//! let labels = [a, b];
//! let studies = [StudyId(1), StudyId(2)];
//! let uniform = prior_submission(&prior_probs(&labels, PriorKind::Uniform), &studies);
//! let optimal = prior_submission(&prior_probs(&labels, PriorKind::Optimal), &studies);
//! let u = score(&labels, &uniform, Semantics::Renormalize).unwrap();
//! let o = score(&labels, &optimal, Semantics::Renormalize).unwrap();
//! assert!((u.spinal - 3f64.ln()).abs() < 1e-12);
//! assert!(o.score < u.score);
//! ```

pub mod compare;
pub mod prior;
pub mod report;
pub mod sites;
pub mod split;
pub mod stats;
pub mod workflow;

use std::path::PathBuf;

/// What can go wrong while evaluating; every variant names the file (and line where there is one).
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line of an input file is wrong.
    #[error("{path}: line {line}: {message}")]
    Line {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// An input file as a whole is wrong (e.g. no usable header).
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A DICOM file could not be read.
    #[error(transparent)]
    Dicom(#[from] discus_data::dicom::DicomError),
    /// A CSV file could not be read (unreadable or wrong header).
    #[error(transparent)]
    Format(#[from] discus_core::formats::FormatError),
    /// The submission cannot be scored against the labels.
    #[error("{path}: {source}")]
    Metric {
        /// The submission file.
        path: PathBuf,
        /// Why it cannot be scored.
        #[source]
        source: discus_core::metric::MetricError,
    },
    /// A report could not be written.
    #[error(transparent)]
    Report(#[from] discus_report::ReportError),
    /// The dataset index could not be read.
    #[error(transparent)]
    Index(#[from] discus_data::index::IndexError),
    /// An argument is unusable (e.g. fewer than 2 folds); the message says why.
    #[error("{0}")]
    Invalid(String),
}
