//! `discus reads qualify` (a reader against a reference round's consensus, pass or fail) and
//! `discus reads simulate` (how many reads the labelling assistant saves).

use anyhow::{bail, Context, Result};
use clap::Args;
use discus_core::agreement::Weights;
use discus_core::fsio::atomic_write;
use discus_reads::geometry::{DatasetSlices, SliceLookup};
use discus_reads::qualify::{qualify, QualifyConfig, CONFIG_FILE};
use discus_reads::simulate::{simulate, SimConfig};
use discus_reads::store::ReadsStore;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::reads_cmd::Common;

/// The exit status of `discus reads qualify` when the reader fails the thresholds.
pub const EXIT_FAIL: u8 = 3;

macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum WeightsArg {
    /// Unweighted (exact agreement only).
    Identity,
    /// Linear weights.
    Linear,
    /// Quadratic weights.
    Quadratic,
}

/// Measure a reader against the consensus of a reference round and pass or fail them.
///
/// The reference is the consensus (rule from the config, default adjudicated) of the blinded reads
/// of --against, leaving the reader's own reads out. The reader's reads are their blinded reads
/// of --round (default: every blinded round but --against). Reported: Cohen's weighted kappa,
/// reader against consensus, overall and per condition group with a bootstrap interval over
/// studies, and the median and p90 distance in mm between the reader's and the consensus points
/// (needs --dataset for the geometry).
///
/// Thresholds come from the [qualify] table of the config file (--config, else ./discus.toml when
/// it exists, else built-in defaults: quadratic kappa >= 0.6, median distance <= 5 mm, at least 30
/// findings); flags override them. Exit status: 0 pass, 3 fail, 1 error.
#[derive(Debug, Args)]
pub struct QualifyArgs {
    /// The reader to qualify.
    #[arg(long)]
    pub reader: String,
    /// The reference round whose consensus the reader is measured against.
    #[arg(long)]
    pub against: String,
    /// Only the reader's reads of this round (e.g. their training round).
    #[arg(long)]
    pub round: Option<String>,
    /// The project configuration file with a [qualify] table [default: ./discus.toml if present].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Smallest overall kappa that passes (overrides the config).
    #[arg(long)]
    pub threshold_kappa: Option<f64>,
    /// Largest median point distance in mm that passes (overrides the config).
    #[arg(long)]
    pub threshold_mm: Option<f64>,
    /// Judge grades only, not points (overrides the config).
    #[arg(long, conflicts_with = "threshold_mm")]
    pub grades_only: bool,
    /// The kappa's weights (overrides the config).
    #[arg(long, value_enum)]
    pub weights: Option<WeightsArg>,
    /// Fewest findings for a verdict (overrides the config).
    #[arg(long)]
    pub min_findings: Option<usize>,
    /// Bootstrap resamples (overrides the config).
    #[arg(long)]
    pub resamples: Option<usize>,
}

/// Simulate unassisted against assisted reading on a synthetic cohort with simulated readers.
///
/// Reports, per protocol, the study reads needed to reach the consensus error of the unassisted
/// protocol with --readers readers per study, and the share of reads saved. See the discus_reads
/// simulate module for the model.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Studies per cohort.
    #[arg(long, default_value_t = 200)]
    pub studies: usize,
    /// Readers per study in the baseline.
    #[arg(long, default_value_t = 3)]
    pub readers: usize,
    /// Replicate cohorts (seeds --seed, --seed + 1, ...).
    #[arg(long, default_value_t = 5)]
    pub replicates: usize,
    /// Seed of the first cohort.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The model's base noise on the degree scale (the simulated readers' is 0.06 to 0.09).
    #[arg(long, default_value_t = 0.1)]
    pub model_sigma: f64,
    /// A reader accepts a proposal within this many of their noise SDs of their own reading.
    #[arg(long, default_value_t = 1.0)]
    pub accept_within_sd: f64,
    /// Also write the full report as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn store_path(c: &Common) -> PathBuf {
    c.store.clone().unwrap_or_else(|| {
        discus_reads::store::default_store_path(c.dataset.as_deref().unwrap_or(Path::new(".")))
    })
}

pub fn qualify_cmd(c: &Common, a: QualifyArgs) -> Result<ExitCode> {
    let (mut cfg, source) = match &a.config {
        Some(p) => (QualifyConfig::load(p)?, p.display().to_string()),
        None if Path::new(CONFIG_FILE).is_file() => (
            QualifyConfig::load(Path::new(CONFIG_FILE))?,
            CONFIG_FILE.to_string(),
        ),
        None => (QualifyConfig::default(), "built-in defaults".to_string()),
    };
    if let Some(k) = a.threshold_kappa {
        cfg.min_kappa = k;
    }
    if let Some(m) = a.threshold_mm {
        if !(m.is_finite() && m > 0.0) {
            bail!("--threshold-mm must be a positive number of mm");
        }
        cfg.max_median_mm = Some(m);
    }
    if a.grades_only {
        cfg.max_median_mm = None;
    }
    if let Some(w) = a.weights {
        cfg.weights = match w {
            WeightsArg::Identity => Weights::Identity,
            WeightsArg::Linear => Weights::Linear,
            WeightsArg::Quadratic => Weights::Quadratic,
        };
    }
    if let Some(n) = a.min_findings {
        cfg.min_findings = n;
    }
    if let Some(r) = a.resamples {
        cfg.resamples = r;
    }
    let path = store_path(c);
    if !path.is_file() {
        bail!("no reads store at {}", path.display());
    }
    let store = ReadsStore::open(&path)?;
    for r in [Some(&a.against), a.round.as_ref()].into_iter().flatten() {
        if store.find_round(r)?.is_none() {
            bail!("no round {r:?} in {}", path.display());
        }
    }
    if store.find_reader(&a.reader)?.is_none() {
        bail!("no reader {:?} in {}", a.reader, path.display());
    }
    let reads = store.current_reads(None)?;
    let slices = c
        .dataset
        .as_deref()
        .map(|root| crate::eval::open_dataset(root).map(DatasetSlices::new))
        .transpose()?;
    let q = qualify(
        &reads,
        &a.reader,
        &a.against,
        a.round.as_deref(),
        slices.as_ref().map(|s| s as &dyn SliceLookup),
        &cfg,
    )?;
    if c.json {
        say!("{}", serde_json::to_string_pretty(&q.to_json(&source))?);
    } else {
        let _ = q.write_text(&source, &mut std::io::stdout());
    }
    Ok(if q.pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAIL)
    })
}

pub fn simulate_cmd(c: &Common, a: SimulateArgs) -> Result<ExitCode> {
    let cfg = SimConfig {
        studies: a.studies,
        readers: a.readers,
        seed: a.seed,
        replicates: a.replicates,
        model_sigma: a.model_sigma,
        accept_within_sd: a.accept_within_sd,
    };
    let rep = simulate(&cfg)?;
    if let Some(out) = &a.out {
        atomic_write(out, serde_json::to_string_pretty(&rep)?.as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if c.json {
        say!("{}", serde_json::to_string_pretty(&rep)?);
        return Ok(ExitCode::SUCCESS);
    }
    let _ = rep.write_text(&mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Write the annotation protocol's example images: one small PNG per condition group and grade.
///
/// For each condition group (spinal, foraminal, subarticular) and grade (Normal/Mild, Moderate,
/// Severe), the first labelled finding of the dataset (by study id, then label column) with that
/// grade and a point is cropped around its point (a third of the image's smaller side), windowed
/// between its 1st and 99.5th percentiles, resampled to 128 x 128 and marked with a red cross at
/// the point. Files: `<OUT>/<group>_<grade>.png`, and `<OUT>/sources.json` naming each image's study,
/// series, instance, condition and level.
#[derive(Debug, Args)]
pub struct ProtocolImagesArgs {
    /// The output folder.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn protocol_images_cmd(c: &Common, a: ProtocolImagesArgs) -> Result<ExitCode> {
    let Some(root) = c.dataset.as_deref() else {
        bail!("protocol-images needs --dataset (a LumbarDISC-layout dataset, e.g. from `discus synth`)");
    };
    let ds = crate::eval::open_dataset(root)?;
    let examples = discus_reads::protocol::example_images(&ds)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    for m in &examples.missing {
        say!("{m}: no labelled example in the dataset");
    }
    let mut sources = Vec::new();
    for e in &examples.images {
        let out = a.out.join(&e.file);
        atomic_write(&out, &e.png).with_context(|| format!("writing {}", out.display()))?;
        say!(
            "{} ({} bytes): study {} series {} instance {}, {} {}",
            out.display(),
            e.png.len(),
            e.study_id,
            e.series_id,
            e.instance_number,
            e.condition.key(),
            e.level.key()
        );
        sources.push(serde_json::json!({
            "file": e.file,
            "group": e.group.as_str(), "grade": e.grade.as_str(),
            "study_id": e.study_id, "series_id": e.series_id, "instance_number": e.instance_number,
            "condition": e.condition.key(), "level": e.level.key(), "x": e.x, "y": e.y,
        }));
    }
    let idx = a.out.join("sources.json");
    atomic_write(&idx, serde_json::to_string_pretty(&sources)?.as_bytes())
        .with_context(|| format!("writing {}", idx.display()))?;
    Ok(ExitCode::SUCCESS)
}
