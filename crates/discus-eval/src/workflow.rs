//! `discus evaluate` and `discus split` as library calls: a typed request in, a typed outcome out,
//! progress and cancellation through one [`Progress`] handle. The CLI (and the service) only parse
//! arguments and print; everything else, the dataset opening, the use check against the dataset
//! cards, the site metadata, the report folder, happens here.
//!
//! ```no_run
//! use discus_core::progress::Progress;
//! use discus_eval::workflow::{evaluate_dataset, EvaluateRequest};
//! let req = EvaluateRequest::new("/data/rsna".into(), "oof.csv".into(), "report".into());
//! let out = evaluate_dataset(&req, &Progress::new()).unwrap();
//! println!("score {:.4} -> {}", out.report.overall.score.score, out.files.html.display());
//! ```

use crate::report::{evaluate, write_report, EvalOptions, Report};
use crate::sites::{studies_meta, Facet, StudyMeta};
use crate::split::{has_severe, stratified_folds};
use crate::EvalError;
use discus_core::formats::{parse_submission, read_train, StudyLabels, SubmissionRow};
use discus_core::governance::{check_sources, Use};
use discus_core::layout::Layout;
use discus_core::metric::{submission_lines, MetricScore, Semantics};
use discus_core::progress::Progress;
use discus_core::StudyId;
use discus_data::dataset::{Dataset, Freshness};
use discus_report::ReportFiles;
use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What `discus evaluate` is asked to do.
#[derive(Debug, Clone)]
pub struct EvaluateRequest {
    /// The dataset root (its index gives the site metadata; its card the licence).
    pub dataset: PathBuf,
    /// The labels; `None` means the dataset's train.csv.
    pub labels: Option<PathBuf>,
    /// The submission to evaluate.
    pub submission: PathBuf,
    /// The report folder to write.
    pub out: PathBuf,
    /// Metric semantics, resamples and seed.
    pub options: EvalOptions,
    /// The use the evaluation is for, checked against the dataset card's licence.
    pub use_: Use,
    /// Who made the report (recorded in its provenance), e.g. `discus 0.1.0 evaluate`.
    pub made_by: String,
}

impl EvaluateRequest {
    /// A request with the defaults: the dataset's train.csv, default options, research use.
    pub fn new(dataset: PathBuf, submission: PathBuf, out: PathBuf) -> EvaluateRequest {
        EvaluateRequest {
            dataset,
            labels: None,
            submission,
            out,
            options: EvalOptions::default(),
            use_: Use::Research,
            made_by: format!("discus {} evaluate", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// What `discus evaluate` produced.
#[derive(Debug)]
pub struct EvaluateOutcome {
    /// Every number of the report.
    pub report: Report,
    /// Where the report folder's files are.
    pub files: ReportFiles,
    /// Studies whose metadata could not be read (named, with the cause); they count as "unknown".
    pub warnings: Vec<String>,
}

impl EvaluateOutcome {
    /// Writes the lines `discus evaluate` prints: the score with its 95% interval, and where the
    /// report is. `resamples` is the bootstrap's count, as requested.
    pub fn write_text(&self, resamples: usize, w: &mut impl Write) -> io::Result<()> {
        let o = &self.report.overall;
        writeln!(
            w,
            "score {:.4}  95% interval [{:.4}, {:.4}]  ({} studies, {} resamples)",
            o.score.score, o.interval.score[0], o.interval.score[1], self.report.studies, resamples
        )?;
        writeln!(w, "report: {}", self.files.html.display())
    }

    /// Writes what `discus evaluate --json` prints: the score, its interval and the report's
    /// files.
    pub fn write_json(&self, w: &mut impl Write) -> io::Result<()> {
        let o = &self.report.overall;
        let v = serde_json::json!({
            "score": o.score,
            "interval": o.interval,
            "report": self.files.json,
            "html": self.files.html,
        });
        let s = serde_json::to_string_pretty(&v).map_err(io::Error::other)?;
        writeln!(w, "{s}")
    }
}

/// Writes a score as `discus score` prints it: the four terms, the score, and what was scored.
pub fn write_score_text(
    s: &MetricScore,
    semantics: Semantics,
    w: &mut impl Write,
) -> io::Result<()> {
    writeln!(w, "spinal             {:.6}", s.spinal)?;
    writeln!(w, "foraminal          {:.6}", s.foraminal)?;
    writeln!(w, "subarticular       {:.6}", s.subarticular)?;
    writeln!(w, "any_severe_spinal  {:.6}", s.any_severe)?;
    writeln!(w, "score              {:.6}", s.score)?;
    writeln!(
        w,
        "({} studies; {} + {} + {} scored rows; semantics {semantics})",
        s.studies, s.rows[0], s.rows[1], s.rows[2]
    )
}

/// Writes a score as `discus score --json` prints it: the score's fields and `semantics`.
pub fn write_score_json(
    s: &MetricScore,
    semantics: Semantics,
    w: &mut impl Write,
) -> io::Result<()> {
    let mut v = serde_json::to_value(s).map_err(io::Error::other)?;
    v["semantics"] = semantics.as_str().into();
    let s = serde_json::to_string_pretty(&v).map_err(io::Error::other)?;
    writeln!(w, "{s}")
}

/// Opens a dataset through its index, scanning first when the index is missing or stale; the scan
/// reports through `progress` (stage `indexing`).
pub fn open_dataset(root: &Path, progress: &Progress) -> Result<Dataset, EvalError> {
    progress.stage("indexing", 0);
    Dataset::open_with(root, Freshness::IfStale, &|p| {
        progress.set_total(p.files_total);
        progress.set_done(p.files_done);
    })
    .map_err(|e| EvalError::Invalid(format!("{}: {e}", root.display())))
}

fn labels_of(path: &Path) -> Result<Vec<StudyLabels>, EvalError> {
    Ok(read_train(path)?.strict()?)
}

fn submission_of(path: &Path) -> Result<(Vec<SubmissionRow>, Vec<u64>), EvalError> {
    let bytes = std::fs::read(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let rows = parse_submission(&bytes, path)?.strict()?;
    Ok((rows, submission_lines(&bytes)))
}

/// Site metadata of `studies` from the dataset's index (stage `reading scanner metadata`).
fn meta_of(
    ds: &Dataset,
    studies: &[StudyId],
    progress: &Progress,
) -> Result<(HashMap<StudyId, StudyMeta>, Vec<String>), EvalError> {
    progress.stage("reading scanner metadata", studies.len() as u64);
    let (meta, errors) = studies_meta(ds, studies, &|| progress.inc(1));
    progress
        .check()
        .map_err(|_| EvalError::Invalid("cancelled".into()))?;
    Ok((meta, errors))
}

/// Evaluates a submission against a dataset's labels and writes the report folder. Refuses, before
/// anything is written, a use that the dataset card's licence forbids.
pub fn evaluate_dataset(
    req: &EvaluateRequest,
    progress: &Progress,
) -> Result<EvaluateOutcome, EvalError> {
    let provenance = check_sources(&req.made_by, &[req.dataset.as_path()], req.use_, false)
        .map_err(|e| EvalError::Invalid(e.to_string()))?;
    let labels_path = req
        .labels
        .clone()
        .unwrap_or_else(|| Layout::new(&req.dataset).train_csv());
    let labels = labels_of(&labels_path)?;
    let (rows, lines) = submission_of(&req.submission)?;
    let studies: Vec<StudyId> = labels.iter().map(|l| l.study).collect();
    let ds = open_dataset(&req.dataset, progress)?;
    let (meta, warnings) = meta_of(&ds, &studies, progress)?;
    progress.stage("scoring", 0);
    let mut report = evaluate(
        &labels,
        &rows,
        Some(&lines),
        &meta,
        warnings.clone(),
        req.options,
    )
    .map_err(|source| EvalError::Metric {
        path: req.submission.clone(),
        source,
    })?;
    report.provenance = Some(provenance);
    let files = write_report(&req.out, &report)?;
    Ok(EvaluateOutcome {
        report,
        files,
        warnings,
    })
}

/// What `discus split` is asked to do.
#[derive(Debug, Clone)]
pub struct SplitRequest {
    /// The dataset root (its index gives the sites).
    pub dataset: PathBuf,
    /// The labels; `None` means the dataset's train.csv.
    pub labels: Option<PathBuf>,
    /// Number of folds (at least 2).
    pub folds: usize,
    /// Seed of the assignment.
    pub seed: u64,
}

/// Study-level folds and what could not be read on the way.
#[derive(Debug, Clone)]
pub struct SplitOutcome {
    /// `(study, fold)`, by study id.
    pub folds: Vec<(StudyId, usize)>,
    /// Studies per fold.
    pub sizes: Vec<usize>,
    /// Studies whose metadata could not be read (their site counts as "unknown").
    pub warnings: Vec<String>,
}

/// The stratum of a study in [`split_dataset`]: its site (InstitutionName) and whether it has a
/// Severe grade anywhere.
pub fn stratum(labels: &StudyLabels, meta: Option<&StudyMeta>) -> String {
    format!("{}|severe={}", Facet::Site.group(meta), has_severe(labels))
}

/// Study-level K-fold assignment stratified by site and severe disease ([`stratum`]).
pub fn split_dataset(req: &SplitRequest, progress: &Progress) -> Result<SplitOutcome, EvalError> {
    let labels_path = req
        .labels
        .clone()
        .unwrap_or_else(|| Layout::new(&req.dataset).train_csv());
    let labels = labels_of(&labels_path)?;
    let studies: Vec<StudyId> = labels.iter().map(|l| l.study).collect();
    let ds = open_dataset(&req.dataset, progress)?;
    let (meta, warnings) = meta_of(&ds, &studies, progress)?;
    let keyed: Vec<(StudyId, String)> = labels
        .iter()
        .map(|l| (l.study, stratum(l, meta.get(&l.study))))
        .collect();
    let folds = stratified_folds(&keyed, req.folds, req.seed)?;
    let mut sizes = vec![0usize; req.folds];
    for (_, f) in &folds {
        sizes[*f] += 1;
    }
    Ok(SplitOutcome {
        folds,
        sizes,
        warnings,
    })
}
