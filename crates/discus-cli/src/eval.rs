//! `discus score`, `discus baseline`, `discus evaluate`, `discus split`: the competition metric,
//! constant baselines, the evaluation report and cross-validation folds.

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use discus_core::formats::{
    parse_submission, read_train, write_submission, LineEnding, StudyLabels, SubmissionRow,
};
use discus_core::governance::Use;
use discus_core::metric::{score_with_lines, submission_lines, Semantics};
use discus_core::progress::Progress;
use discus_eval::prior::{prior_probs, prior_submission, read_study_ids, PriorKind};
use discus_eval::report::EvalOptions;
use discus_eval::split::{folds_csv, write_folds};
use discus_eval::workflow::{
    evaluate_dataset, split_dataset, write_score_json, write_score_text, EvaluateRequest,
    SplitRequest,
};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SemanticsArg {
    /// Clip to [eps, 1-eps] and renormalise each row (scikit-learn < 1.5; what the competition used).
    Renormalize,
    /// Clip to [eps, 1-eps] only (scikit-learn >= 1.5).
    ClipOnly,
}

impl From<SemanticsArg> for Semantics {
    fn from(s: SemanticsArg) -> Self {
        match s {
            SemanticsArg::Renormalize => Semantics::Renormalize,
            SemanticsArg::ClipOnly => Semantics::ClipOnly,
        }
    }
}

/// Score a submission with the competition metric (lower is better).
///
/// Joins on row_id. Refuses a submission that misses any of the 25 rows of a labelled study,
/// repeats a row, names a study not in the labels, or holds a negative or non-finite value; the
/// message names the row and its line. Rows whose label is empty are not scored. Prints the four
/// terms (spinal, foraminal, subarticular, any_severe_spinal) and the score, their mean.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Labels: train.csv or a file of the same shape.
    #[arg(long)]
    pub labels: PathBuf,
    /// The submission: row_id,normal_mild,moderate,severe.
    #[arg(long)]
    pub submission: PathBuf,
    /// How a row's values become probabilities.
    #[arg(long, value_enum, default_value = "renormalize")]
    pub semantics: SemanticsArg,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Constant baselines: the floor every model must beat.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    #[command(subcommand)]
    pub command: BaselineCommand,
}

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Write a constant-prediction submission for the listed studies.
    ///
    /// `optimal` (the default) predicts, for each of the 25 label columns, the constant that
    /// minimises the weighted log loss on the labels: p proportional to count x weight of each
    /// grade in that column. `uniform` predicts 1/3 everywhere.
    Prior(PriorArgs),
    /// Write the Bayes-optimal submission of a synthetic dataset (`discus synth`'s truth.json):
    /// each row the designated reader's label probabilities given the finding's true degree.
    /// Scored on the dataset's labels (`discus score`), it is the Bayes limit realised on those
    /// studies, the floor no model can beat on them (truth.json's `bayes_limit` is its
    /// expectation over the whole cohort).
    Bayes(BayesArgs),
}

#[derive(Debug, Args)]
pub struct BayesArgs {
    /// The synthetic dataset's truth.json.
    #[arg(long)]
    pub truth: PathBuf,
    /// Where to write the submission.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct PriorArgs {
    /// Labels the optimal constants are fitted on (train.csv).
    #[arg(long)]
    pub labels: PathBuf,
    /// The studies to predict: any CSV with a study_id column (train.csv,
    /// test_series_descriptions.csv, ...).
    #[arg(long)]
    pub studies: PathBuf,
    /// Where to write the submission.
    #[arg(long)]
    pub out: PathBuf,
    /// Which constant.
    #[arg(long, value_enum, default_value = "optimal")]
    pub kind: KindArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// The loss-optimal constant per column (p proportional to count x weight).
    Optimal,
    /// 1/3 for every grade.
    Uniform,
}

/// Evaluate a submission: the score with a bootstrap 95% interval, per condition / level /
/// condition x level statistics (weighted log loss, confusion matrix, AUC, calibration), and the
/// score per site, vendor and field strength. Writes report.json and a self-contained index.html.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The dataset folder (train.csv, `train_images/<study>/<series>/<n>.dcm`).
    #[arg(long)]
    pub dataset: PathBuf,
    /// The submission to evaluate.
    #[arg(long)]
    pub submission: PathBuf,
    /// The report folder (created if needed).
    #[arg(long)]
    pub out: PathBuf,
    /// Labels to evaluate against (default: `<dataset>/train.csv`).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "renormalize")]
    pub semantics: SemanticsArg,
    /// Bootstrap resamples over studies.
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the report's summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// What the report is for: research, education, commercial, clinical or redistribution.
    /// Checked against the licence in `<dataset>/dataset.toml` before anything is written: a use
    /// the licence does not permit is refused with the reason (exit 1, nothing written). The
    /// dataset's card is recorded in report.json ("provenance").
    #[arg(long = "use", value_name = "USE", default_value = "research")]
    pub use_: Use,
}

/// Write a study-level K-fold split (study_id,fold), stratified by site and by the presence of a
/// Severe grade, reproducible for a seed; no study is in two folds.
#[derive(Debug, Args)]
pub struct SplitArgs {
    /// The dataset folder (train.csv, train_images/...).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Number of folds.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Seed of the shuffle.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where to write study_id,fold (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Labels (default: `<dataset>/train.csv`).
    #[arg(long)]
    pub labels: Option<PathBuf>,
}

fn labels(path: &Path) -> Result<Vec<StudyLabels>> {
    Ok(read_train(path)?.strict()?)
}

fn submission(path: &Path) -> Result<(Vec<SubmissionRow>, Vec<u64>)> {
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    let rows = parse_submission(&bytes, path)?.strict()?;
    Ok((rows, submission_lines(&bytes)))
}

pub fn run_score(a: ScoreArgs) -> Result<ExitCode> {
    let labels = labels(&a.labels)?;
    let (rows, lines) = submission(&a.submission)?;
    let sem: Semantics = a.semantics.into();
    let s = score_with_lines(&labels, &rows, Some(&lines), sem)
        .with_context(|| format!("{}", a.submission.display()))?;
    let mut out = std::io::stdout().lock();
    if a.json {
        write_score_json(&s, sem, &mut out)?;
    } else {
        write_score_text(&s, sem, &mut out)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_baseline(a: BaselineArgs) -> Result<ExitCode> {
    let p = match a.command {
        BaselineCommand::Prior(p) => p,
        BaselineCommand::Bayes(b) => return run_bayes(b),
    };
    let labels = labels(&p.labels)?;
    let studies = read_study_ids(&p.studies)?;
    let kind = match p.kind {
        KindArg::Optimal => PriorKind::Optimal,
        KindArg::Uniform => PriorKind::Uniform,
    };
    let rows = prior_submission(&prior_probs(&labels, kind), &studies);
    write_submission(&p.out, &rows, LineEnding::Lf)?;
    eprintln!(
        "wrote {} rows for {} studies to {}",
        rows.len(),
        studies.len(),
        p.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_bayes(a: BayesArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&a.truth)
        .with_context(|| format!("reading {}", a.truth.display()))?;
    let truth: discus_synth::truth::Truth = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a discus synth truth.json (the Bayes-optimal submission needs the true \
             degrees of a synthetic cohort)",
            a.truth.display()
        )
    })?;
    let rows = truth.bayes_submission().with_context(|| {
        format!(
            "{}: the designated reader {} is not among its {} readers",
            a.truth.display(),
            truth.designated_reader,
            truth.readers.len()
        )
    })?;
    write_submission(&a.out, &rows, LineEnding::Lf)?;
    eprintln!(
        "wrote {} rows for {} studies to {}",
        rows.len(),
        truth.studies.len(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A progress handle drawn as a bar on stderr (stage name, count, eta).
fn progress_bar() -> (Progress, ProgressBar) {
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({eta})")
            .expect("a valid template"),
    );
    let bar = pb.clone();
    let p = Progress::with_observer(move |s| {
        bar.set_message(s.stage.clone());
        bar.set_length(s.total);
        bar.set_position(s.done);
    });
    (p, pb)
}

/// Opens the dataset through its index (scanning first when the index is missing or stale), with a
/// progress bar for the scan.
pub(crate) fn open_dataset(root: &Path) -> Result<discus_data::dataset::Dataset> {
    let (progress, pb) = progress_bar();
    let ds = discus_eval::workflow::open_dataset(root, &progress)?;
    pb.finish_and_clear();
    Ok(ds)
}

pub fn run_evaluate(a: EvaluateArgs) -> Result<ExitCode> {
    let mut req = EvaluateRequest::new(a.dataset.clone(), a.submission.clone(), a.out.clone());
    req.labels = a.labels.clone();
    req.use_ = a.use_;
    req.options = EvalOptions {
        semantics: a.semantics.into(),
        resamples: a.resamples,
        seed: a.seed,
    };
    let (progress, pb) = progress_bar();
    let out = evaluate_dataset(&req, &progress)
        .with_context(|| format!("evaluating {}", a.submission.display()))?;
    pb.finish_and_clear();
    for e in &out.warnings {
        eprintln!("warning: {e}");
    }
    let mut stdout = std::io::stdout().lock();
    if a.json {
        out.write_json(&mut stdout)?;
    } else {
        out.write_text(a.resamples, &mut stdout)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_split(a: SplitArgs) -> Result<ExitCode> {
    let req = SplitRequest {
        dataset: a.dataset.clone(),
        labels: a.labels.clone(),
        folds: a.folds,
        seed: a.seed,
    };
    let (progress, pb) = progress_bar();
    let out = split_dataset(&req, &progress)?;
    pb.finish_and_clear();
    for e in &out.warnings {
        eprintln!("warning: {e}");
    }
    match &a.out {
        Some(path) => {
            write_folds(path, &out.folds)?;
            eprintln!(
                "wrote {} studies in {} folds (sizes {:?}) to {}",
                out.folds.len(),
                a.folds,
                out.sizes,
                path.display()
            );
        }
        None => print!("{}", folds_csv(&out.folds)),
    }
    Ok(ExitCode::SUCCESS)
}
