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
/// the point. Files: <OUT>/<group>_<grade>.png, and <OUT>/sources.json naming each image's study,
/// series, instance, condition and level.
#[derive(Debug, Args)]
pub struct ProtocolImagesArgs {
    /// The output folder.
    #[arg(long)]
    pub out: PathBuf,
}

const THUMB: usize = 128;

fn thumbnail(path: &Path, x: f64, y: f64) -> Result<Vec<u8>> {
    let px = discus_data::dicom::decode_pixels(path)?;
    let (rows, cols) = (px.rows as usize, px.columns as usize);
    let side = (rows.min(cols) / 3).max(8) as f64;
    let (x0, y0) = (x - side / 2.0, y - side / 2.0);
    let at = |r: i64, c: i64| -> Option<f64> {
        (r >= 0 && c >= 0 && (r as usize) < rows && (c as usize) < cols).then(|| {
            px.values
                .get_i64(r as usize * cols + c as usize)
                .unwrap_or(0) as f64
        })
    };
    let mut vals = vec![f64::NAN; THUMB * THUMB];
    for ty in 0..THUMB {
        for tx in 0..THUMB {
            let sx = x0 + (tx as f64 + 0.5) * side / THUMB as f64;
            let sy = y0 + (ty as f64 + 0.5) * side / THUMB as f64;
            if let Some(v) = at(sy.floor() as i64, sx.floor() as i64) {
                vals[ty * THUMB + tx] = v;
            }
        }
    }
    let mut sorted: Vec<f64> = vals.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        bail!("{}: the point lies off the image", path.display());
    }
    let lo = sorted[sorted.len() / 100];
    let hi = sorted[sorted.len() * 995 / 1000].max(lo + 1.0);
    let mut rgb = vec![0u8; THUMB * THUMB * 3];
    for (i, v) in vals.iter().enumerate() {
        let g = if v.is_finite() {
            (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0).round() as u8
        } else {
            0
        };
        rgb[i * 3..i * 3 + 3].copy_from_slice(&[g, g, g]);
    }
    // The point is the thumbnail's centre: a red cross with a gap in the middle.
    let c = (THUMB / 2) as i64;
    for d in 4..11i64 {
        for (px_, py_) in [(c + d, c), (c - d, c), (c, c + d), (c, c - d)] {
            let i = (py_ as usize * THUMB + px_ as usize) * 3;
            rgb[i..i + 3].copy_from_slice(&[230, 40, 40]);
        }
    }
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, THUMB as u32, THUMB as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Best);
        let mut w = enc.write_header()?;
        w.write_image_data(&rgb)?;
    }
    Ok(bytes)
}

pub fn protocol_images_cmd(c: &Common, a: ProtocolImagesArgs) -> Result<ExitCode> {
    use discus_core::{ConditionGroup, LabelColumn, Severity};
    let Some(root) = c.dataset.as_deref() else {
        bail!("protocol-images needs --dataset (a LumbarDISC-layout dataset, e.g. from `discus synth`)");
    };
    let ds = crate::eval::open_dataset(root)?;
    let layout = discus_core::layout::Layout::new(root);
    let mut labels = ds.labels()?;
    labels.sort_by_key(|r| r.study);
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut sources = Vec::new();
    for group in ConditionGroup::ALL {
        for grade in Severity::ALL {
            let slug = match grade {
                Severity::NormalMild => "normal_mild",
                Severity::Moderate => "moderate",
                Severity::Severe => "severe",
            };
            let mut found = None;
            'studies: for row in &labels {
                let points = ds.points(row.study)?;
                for col in LabelColumn::all() {
                    if col.condition.group() != group || row.grades[col.index()] != Some(grade) {
                        continue;
                    }
                    if let Some(p) = points
                        .iter()
                        .find(|p| p.condition == col.condition && p.level == col.level)
                    {
                        found = Some(p.clone());
                        break 'studies;
                    }
                }
            }
            let Some(p) = found else {
                say!(
                    "{} {}: no labelled example in the dataset",
                    group.as_str(),
                    grade.as_str()
                );
                continue;
            };
            let (split, _) = layout
                .find_study(p.study)
                .with_context(|| format!("study {} has no image folder", p.study))?;
            let file = layout.instance(split, p.study, p.series, i64::from(p.instance));
            let png = thumbnail(&file, p.x, p.y)?;
            let out = a.out.join(format!("{}_{slug}.png", group.as_str()));
            atomic_write(&out, &png).with_context(|| format!("writing {}", out.display()))?;
            say!(
                "{} ({} bytes): study {} series {} instance {}, {} {}",
                out.display(),
                png.len(),
                p.study,
                p.series,
                p.instance,
                p.condition.key(),
                p.level.key()
            );
            sources.push(serde_json::json!({
                "file": out.file_name().and_then(|f| f.to_str()),
                "group": group.as_str(), "grade": grade.as_str(),
                "study_id": p.study, "series_id": p.series, "instance_number": p.instance,
                "condition": p.condition.key(), "level": p.level.key(), "x": p.x, "y": p.y,
            }));
        }
    }
    let idx = a.out.join("sources.json");
    atomic_write(&idx, serde_json::to_string_pretty(&sources)?.as_bytes())
        .with_context(|| format!("writing {}", idx.display()))?;
    Ok(ExitCode::SUCCESS)
}
