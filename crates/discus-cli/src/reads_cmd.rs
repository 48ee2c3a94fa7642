//! `discus reads ...`: the multi-reader protocol (import, agreement, disagreements, adjudicate,
//! consensus, export) on the reads store.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use discus_core::fsio::atomic_write;
use discus_core::governance::{check_sources, Use};
use discus_core::{SeriesId, Severity};
use discus_reads::analysis::{
    agreement_report, disagreements, parse_decisions, worklist_csv, AgreementOptions,
    ConsensusRule, DisagreementRule,
};
use discus_reads::geometry::{DatasetSlices, SliceLookup};
use discus_reads::import::{parse_row_id, Catalog};
use discus_reads::report::write_report;
use discus_reads::store::{Point, ReadEvent, ReadsStore, RoundKind};
use discus_reads::workflow::{
    self, consensus_labels, write_agreement_text, write_disagreements_text, AdjudicateRequest,
    ConsensusRequest, ExportRequest, ImportBatchRequest, ImportSources,
};
use std::path::{Path, PathBuf};

/// Prints a line to stdout, ignoring a closed pipe (`discus reads disagreements | head`).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
use std::process::ExitCode;

/// The multi-reader protocol: readers' reads in a store, their agreement, adjudication, consensus.
///
/// Reads live in an append-only SQLite store (default `<DATASET>/.discus/reads.sqlite`): nothing is
/// ever overwritten, so the history of every label is kept. A typical session:
/// `import` each reader's blinded reads, `agreement`, `disagreements --out worklist.csv`,
/// `adjudicate --decisions worklist.csv`, `consensus --rule adjudicated --out labels/`.
#[derive(Debug, Args)]
pub struct ReadsArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: ReadsCommand,
}

#[derive(Debug, Args)]
pub struct Common {
    /// The dataset (LumbarDISC layout): its series descriptions and DICOM headers are used to check
    /// reads and to place points in patient space (mm).
    #[arg(long, global = true)]
    pub dataset: Option<PathBuf>,
    /// The reads store (default: `<DATASET>/.discus/reads.sqlite`, or `./.discus/reads.sqlite`).
    #[arg(long, global = true)]
    pub store: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ReadsCommand {
    /// Import readers' reads (a train.csv and a train_label_coordinates.csv per reader).
    ///
    /// Each file pair is imported all or nothing: any bad line (unknown study or level, a grade
    /// that is not Normal/Mild, Moderate or Severe, a point off the image) rejects that reader's
    /// files with every bad line named, and nothing of them is stored. With --readers-dir, a
    /// rejected reader is reported and the other readers are imported. Importing the same files
    /// again records nothing.
    Import(ImportArgs),
    /// Export one reader's current reads of a round as train.csv and train_label_coordinates.csv.
    Export(ExportArgs),
    /// Agreement report: per reader pair, condition, level and overall, with bootstrap intervals
    /// over studies, and point distances in mm (report.json and index.html with a heat map).
    Agreement(AgreementArgs),
    /// List the findings that need another look, Severe and spinal canal first.
    Disagreements(DisagreementsArgs),
    /// Record an adjudicator's decisions (from a CSV, or one from flags).
    Adjudicate(AdjudicateArgs),
    /// Final labels under a rule, with provenance per finding, as LumbarDISC CSVs.
    Consensus(ConsensusArgs),
    /// Measure a reader against a reference round's consensus: pass (exit 0) or fail (exit 3).
    Qualify(crate::reads_qualify_cmd::QualifyArgs),
    /// Simulate how many reads the labelling assistant saves, on a synthetic cohort.
    Simulate(crate::reads_qualify_cmd::SimulateArgs),
    /// Write the annotation protocol's example images (one small PNG per condition group and grade).
    ProtocolImages(crate::reads_qualify_cmd::ProtocolImagesArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// Independent reads, each reader blind to the others.
    Blinded,
    /// Decisions on disagreements.
    Adjudication,
}

impl From<KindArg> for RoundKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Blinded => RoundKind::Blinded,
            KindArg::Adjudication => RoundKind::Adjudication,
        }
    }
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The reader's name (with --train or --predictions; for a model, e.g. `ai:<model name>`).
    #[arg(long)]
    pub reader: Option<String>,
    /// The reader's grades, in train.csv shape. A `discus predict` output (its folder, or its
    /// submission.csv) is detected and imported as with --predictions.
    #[arg(long, requires = "reader", conflicts_with = "readers_dir")]
    pub train: Option<PathBuf>,
    /// A model's predictions as a reader (an "AI reader"): the output folder of `discus predict`.
    /// Grades are each row's most probable class in submission.csv, points come from
    /// `<study>/findings.json`. Agreement then compares the model with the readers like a reader.
    #[arg(long, requires = "reader", conflicts_with_all = ["train", "readers_dir", "coordinates"])]
    pub predictions: Option<PathBuf>,
    /// The reader's points, in train_label_coordinates.csv shape.
    #[arg(long, requires = "train")]
    pub coordinates: Option<PathBuf>,
    /// A folder with one sub-folder per reader (named for the reader), each holding train.csv and
    /// (optionally) train_label_coordinates.csv.
    #[arg(long)]
    pub readers_dir: Option<PathBuf>,
    /// The reading round.
    #[arg(long, default_value = "first")]
    pub round: String,
    /// What the round is for.
    #[arg(long, value_enum, default_value = "blinded")]
    pub kind: KindArg,
    /// Skip the checks against the dataset (studies, series, points inside the image).
    #[arg(long)]
    pub no_check: bool,
    /// Time to record, seconds since the Unix epoch [default: now].
    #[arg(long)]
    pub at: Option<i64>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long)]
    pub reader: String,
    #[arg(long, default_value = "first")]
    pub round: String,
    /// Output folder (train.csv, train_label_coordinates.csv).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct Selection {
    /// Only this blinded round [default: every blinded round; a reader's latest read counts].
    #[arg(long)]
    pub round: Option<String>,
    /// Only these readers (comma-separated) [default: all].
    #[arg(long, value_delimiter = ',')]
    pub readers: Option<Vec<String>>,
}

#[derive(Debug, Args)]
pub struct AgreementArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Report folder: report.json and index.html.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Points closer than this in patient space agree on where (mm).
    #[arg(long, default_value_t = 5.0)]
    pub tolerance_mm: f64,
    /// Bootstrap resamples per interval.
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 20240601)]
    pub seed: u64,
    /// The statistic of the heat map.
    #[arg(long, default_value = "cohen_kappa_quadratic")]
    pub heat_statistic: discus_core::agreement::Statistic,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RuleArg {
    /// Any two readers' grades differ.
    GradesDiffer,
    /// Grades two steps apart (Normal/Mild against Severe).
    TwoSteps,
    /// Points further apart than --tolerance-mm in patient space.
    PointsApart,
}

#[derive(Debug, Args)]
pub struct DisagreementsArgs {
    #[command(flatten)]
    pub selection: Selection,
    #[arg(long, value_enum, default_value = "grades-differ")]
    pub rule: RuleArg,
    /// Tolerance for --rule points-apart (mm).
    #[arg(long, default_value_t = 10.0)]
    pub tolerance_mm: f64,
    /// Also write a worklist CSV for adjudicators (row_id, grade to fill in, reason, reads).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AdjudicateArgs {
    /// The adjudicator (a reader name).
    #[arg(long)]
    pub adjudicator: String,
    /// The round to record in.
    #[arg(long, default_value = "adjudication")]
    pub round: String,
    /// Record as a further blinded read instead of an adjudication decision.
    #[arg(long)]
    pub blinded: bool,
    /// Decisions: a CSV with row_id and grade (optionally series_id, instance_number, x, y, note),
    /// e.g. the worklist from `disagreements --out` filled in. Rows with no grade are skipped.
    #[arg(long, conflicts_with = "row_id")]
    pub decisions: Option<PathBuf>,
    /// One decision: the finding (`<study>_<condition>_<level>`).
    #[arg(long, requires = "grade")]
    pub row_id: Option<String>,
    /// One decision: the grade (Normal/Mild, Moderate, Severe).
    #[arg(long, requires = "row_id")]
    pub grade: Option<String>,
    /// One decision: the point, as SERIES,INSTANCE,X,Y.
    #[arg(long, requires = "row_id", value_delimiter = ',', num_args = 4)]
    pub point: Option<Vec<f64>>,
    /// A note to keep with the decision.
    #[arg(long)]
    pub note: Option<String>,
    /// Time to record, seconds since the Unix epoch [default: now].
    #[arg(long)]
    pub at: Option<i64>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ConsensusArg {
    /// All readers who graded agree; otherwise unresolved.
    Unanimous,
    /// More than half agree; otherwise unresolved.
    Majority,
    /// The adjudicator's decision, else the unanimous grade; otherwise unresolved.
    Adjudicated,
    /// The median grade (lower median for an even count).
    Median,
}

#[derive(Debug, Args)]
pub struct ConsensusArgs {
    #[command(flatten)]
    pub selection: Selection,
    #[arg(long, value_enum, default_value = "adjudicated")]
    pub rule: ConsensusArg,
    /// Output folder: train.csv, train_label_coordinates.csv, provenance.json (how each label was
    /// decided) and dataset_provenance.json (the dataset cards the labels came from).
    #[arg(long)]
    pub out: PathBuf,
    /// What the labels are for: research, education, commercial, clinical or redistribution.
    /// Checked against the licence in `<DATASET>/dataset.toml` before anything is written: a use the
    /// licence does not permit is refused with the reason (exit 1, nothing written).
    #[arg(long = "use", value_name = "USE", default_value = "research")]
    pub use_: Use,
}

fn store_path(c: &Common) -> PathBuf {
    c.store.clone().unwrap_or_else(|| {
        discus_reads::store::default_store_path(c.dataset.as_deref().unwrap_or(Path::new(".")))
    })
}

fn open_store(c: &Common) -> Result<ReadsStore> {
    Ok(ReadsStore::open(&store_path(c))?)
}

/// Slice geometry from the dataset's index, when a dataset is given.
fn slices(c: &Common) -> Result<Option<DatasetSlices>> {
    c.dataset
        .as_deref()
        .map(|root| crate::eval::open_dataset(root).map(DatasetSlices::new))
        .transpose()
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    say!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub fn run(args: ReadsArgs) -> Result<ExitCode> {
    let c = &args.common;
    match args.command {
        ReadsCommand::Import(a) => import(c, a),
        ReadsCommand::Export(a) => export(c, a),
        ReadsCommand::Agreement(a) => agreement(c, a),
        ReadsCommand::Disagreements(a) => disagreements_cmd(c, a),
        ReadsCommand::Adjudicate(a) => adjudicate(c, a),
        ReadsCommand::Consensus(a) => consensus_cmd(c, a),
        ReadsCommand::Qualify(a) => crate::reads_qualify_cmd::qualify_cmd(c, a),
        ReadsCommand::Simulate(a) => crate::reads_qualify_cmd::simulate_cmd(c, a),
        ReadsCommand::ProtocolImages(a) => crate::reads_qualify_cmd::protocol_images_cmd(c, a),
    }
}

fn import(c: &Common, a: ImportArgs) -> Result<ExitCode> {
    let catalog = match (&c.dataset, a.no_check) {
        (Some(root), false) => Some(
            Catalog::from_dataset(root)
                .with_context(|| format!("reading the dataset at {}", root.display()))?,
        ),
        _ => None,
    };
    let Some(sources) = ImportSources::from_options(
        a.reader.as_deref(),
        a.train.as_deref(),
        a.coordinates.as_deref(),
        a.predictions.as_deref(),
        a.readers_dir.as_deref(),
    )?
    else {
        eprintln!("error: give --reader with --train, or --readers-dir");
        return Ok(ExitCode::from(2));
    };
    let mut store = open_store(c)?;
    let req = ImportBatchRequest {
        sources,
        round: a.round,
        round_kind: a.kind.into(),
        at: a.at,
    };
    let mut batch = workflow::import(
        &mut store,
        catalog.as_ref(),
        &req,
        &discus_core::progress::Progress::new(),
    );
    if !c.json {
        let _ = batch.write_text(&mut std::io::stdout());
    }
    let _ = batch.write_refusals(&mut std::io::stderr());
    if let Some((reader, e)) = batch.take_fatal() {
        return Err(e).with_context(|| match &req.sources {
            ImportSources::Predictions { dir, .. } => {
                format!("importing the predictions in {}", dir.display())
            }
            ImportSources::Readers(_) => format!("importing reader {reader}"),
        });
    }
    if c.json {
        if let Some(v) = batch.to_json() {
            print_json(&v)?;
        }
    }
    Ok(if batch.refused() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn export(c: &Common, a: ExportArgs) -> Result<ExitCode> {
    let store = open_store(c)?;
    let r = workflow::export(
        &store,
        &ExportRequest {
            reader: a.reader,
            round: a.round,
            out: a.out,
        },
    )?;
    if c.json {
        // Through a JSON map: the keys print sorted, as they always did.
        print_json(&serde_json::to_value(&r)?)?;
    } else {
        let _ = r.write_text(&mut std::io::stdout());
    }
    Ok(ExitCode::SUCCESS)
}

fn selected(
    store: &ReadsStore,
    s: &Selection,
) -> Result<(
    Vec<discus_reads::store::StoredRead>,
    Vec<discus_reads::analysis::FindingReads>,
)> {
    Ok(workflow::select(store, &s.to_request())?)
}

impl Selection {
    fn to_request(&self) -> workflow::Selection {
        workflow::Selection {
            round: self.round.clone(),
            readers: self.readers.clone(),
        }
    }
}

fn agreement(c: &Common, a: AgreementArgs) -> Result<ExitCode> {
    let store = open_store(c)?;
    let (_, findings) = selected(&store, &a.selection)?;
    if findings.is_empty() {
        bail!("no blinded reads in {}", store.path().display());
    }
    let opts = AgreementOptions {
        resamples: a.resamples,
        seed: a.seed,
        tolerance_mm: a.tolerance_mm,
    };
    let sl = slices(c)?;
    let bar = indicatif::ProgressBar::new_spinner().with_message(format!(
        "agreement over {} findings ({} bootstrap resamples per estimate)",
        findings.len(),
        a.resamples
    ));
    if !c.json {
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
    }
    let report = agreement_report(&findings, sl.as_ref().map(|s| s as &dyn SliceLookup), &opts);
    bar.finish_and_clear();
    if let Some(out) = &a.out {
        write_report(out, &report, a.heat_statistic)?;
    }
    if c.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let _ = write_agreement_text(&report, a.out.as_deref(), &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

fn disagreements_cmd(c: &Common, a: DisagreementsArgs) -> Result<ExitCode> {
    let store = open_store(c)?;
    let (_, findings) = selected(&store, &a.selection)?;
    let rule = match a.rule {
        RuleArg::GradesDiffer => DisagreementRule::GradesDiffer,
        RuleArg::TwoSteps => DisagreementRule::TwoSteps,
        RuleArg::PointsApart => DisagreementRule::PointsApart {
            tolerance_mm: a.tolerance_mm,
        },
    };
    let sl = slices(c)?;
    if matches!(rule, DisagreementRule::PointsApart { .. }) && sl.is_none() {
        eprintln!(
            "error: --rule points-apart needs --dataset (the DICOM headers place the points)"
        );
        return Ok(ExitCode::from(2));
    }
    let items = disagreements(&findings, rule, sl.as_ref().map(|s| s as &dyn SliceLookup));
    if let Some(out) = &a.out {
        atomic_write(out, &worklist_csv(&items))
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if c.json {
        print_json(&items)?;
    } else {
        let _ = write_disagreements_text(&items, findings.len(), &mut std::io::stdout());
    }
    Ok(ExitCode::SUCCESS)
}

fn adjudicate(c: &Common, a: AdjudicateArgs) -> Result<ExitCode> {
    let events: Vec<ReadEvent> = if let Some(path) = &a.decisions {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        match parse_decisions(&bytes, path) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    } else if let (Some(id), Some(g)) = (&a.row_id, &a.grade) {
        let key = parse_row_id(id).map_err(anyhow::Error::msg)?;
        let grade: Severity = g.parse()?;
        let mut ev = ReadEvent::new(key.study, key.condition(), key.level()).grade(grade);
        if let Some(p) = &a.point {
            if p[0] < 0.0 || p[0].fract() != 0.0 || p[1] < 0.0 || p[1].fract() != 0.0 {
                bail!("--point: series and instance must be whole non-negative numbers");
            }
            ev.point = Some(Point {
                series: SeriesId(p[0] as u64),
                instance: p[1] as u32,
                x: p[2],
                y: p[3],
            });
        }
        ev.note = a.note.clone();
        vec![ev]
    } else {
        eprintln!("error: give --decisions FILE, or --row-id and --grade");
        return Ok(ExitCode::from(2));
    };
    let mut store = open_store(c)?;
    let r = workflow::adjudicate(
        &mut store,
        &AdjudicateRequest {
            adjudicator: a.adjudicator,
            round: a.round,
            blinded: a.blinded,
            events,
            at: a.at,
        },
    )?;
    if c.json {
        print_json(&r.to_json())?;
    } else {
        let _ = r.write_text(&mut std::io::stdout());
    }
    Ok(ExitCode::SUCCESS)
}

fn consensus_cmd(c: &Common, a: ConsensusArgs) -> Result<ExitCode> {
    let rule = match a.rule {
        ConsensusArg::Unanimous => ConsensusRule::Unanimous,
        ConsensusArg::Majority => ConsensusRule::Majority,
        ConsensusArg::Adjudicated => ConsensusRule::Adjudicated,
        ConsensusArg::Median => ConsensusRule::Median,
    };
    let req = ConsensusRequest {
        store: store_path(c),
        dataset: c.dataset.clone(),
        selection: a.selection.to_request(),
        rule,
        out: a.out,
        use_: a.use_,
        made_by: format!("discus {} reads consensus", env!("CARGO_PKG_VERSION")),
    };
    // The licence is checked before the dataset's index is opened (a refused use writes nothing);
    // consensus_labels checks it again before it writes.
    let roots: Vec<&Path> = c.dataset.as_deref().into_iter().collect();
    check_sources(&req.made_by, &roots, req.use_, false)?;
    let sl = slices(c)?;
    let r = consensus_labels(&req, sl.as_ref().map(|s| s as &dyn SliceLookup))?;
    if c.json {
        print_json(&r.to_json())?;
    } else {
        let _ = r.write_text(&mut std::io::stdout());
    }
    Ok(ExitCode::SUCCESS)
}
