//! `discus train` and `discus predict`: thin wrappers over `discus_model`.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use discus_core::formats::{write_submission, LineEnding};
use discus_core::governance::{check_sources, Use};
use discus_core::layout::Split;
use discus_core::LabelColumn;
use discus_core::StudyId;
use discus_model::explain::{
    explain_study_with, point_overlays_with, write_overlay_png, ExplainOptions, Sources,
};
use discus_model::page::{index_page, study_page, write_page, IndexEntry};
use discus_model::predict::{predict_study_with, Finding, StudyPrediction};
use discus_model::stability::{stability_study_with, StabilityOptions};
use discus_model::{train, Model, TrainProgress, TrainRequest};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Train a localise-then-grade model on a labelled dataset and write the model folder
/// (weights.safetensors + model.toml). Checkpoints each epoch under `<out>/checkpoint/`; running the
/// same command again resumes after the last finished epoch.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training dataset (LumbarDISC layout with train.csv and train_label_coordinates.csv).
    #[arg(long, required = true)]
    pub dataset: Vec<PathBuf>,
    /// Split studies into this many folds by study id and hold one out (metrics per epoch, the
    /// best epoch, the graders' temperatures); 0 or 1 trains on every study.
    #[arg(long, default_value_t = 0)]
    pub folds: usize,
    /// The fold held out (study id modulo --folds): models for an ensemble can each hold out
    /// another.
    #[arg(long, default_value_t = 0)]
    pub held_fold: usize,
    /// Seed of initialisation and shuffling (same seed, same model).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Adam learning rate (the start of the cosine schedule) [default: 0.003, or 0.0003 with
    /// --init: fine-tuning starts a tenth as fast, so a few studies of a new site adjust the
    /// model rather than overwrite it]
    #[arg(long)]
    pub lr: Option<f64>,
    /// Studies per optimiser step (the canal localiser sees one image per study, so small batches
    /// give it more steps).
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    /// Learning-rate schedule: cosine (from --lr down to 5 % of it over --epochs) or constant.
    #[arg(long, default_value = "cosine", value_parser = ["cosine", "constant"])]
    pub schedule: String,
    /// Largest shift, in localiser grid cells per axis, of the canal localiser's training input
    /// (seeded, per study and epoch; 0: no augmentation).
    #[arg(long, default_value_t = 6)]
    pub shift: usize,
    /// Largest shift, in crop cells per axis (1.5 mm by default), of each grader training crop
    /// (seeded, per crop and epoch, with a gain of 0.9-1.1; 0: no augmentation): the graders learn
    /// to grade crops a few mm off the point, as the localisers' points are at prediction.
    #[arg(long, default_value_t = 3)]
    pub crop_shift: usize,
    /// Fine-tune from this model folder (its architecture and preprocessing; nothing frozen
    /// unless --graders-only).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// With --init: train the three graders only, on the crops at the labelled points; the
    /// localisers keep the initial model's weights and are not run, so an epoch costs what the
    /// graders cost (about a fifth of a full one). Best with --cache.
    #[arg(long, requires = "init")]
    pub graders_only: bool,
    /// Train the localisers only (canal, foraminal and subarticular points), with or without
    /// --init: the graders keep their initial (or untrained) weights, and the training studies'
    /// grader crops are not run. The first stage of the benchmark's recipe, whose graders are then
    /// trained afresh (--init M --graders-only --fresh-graders).
    #[arg(long, conflicts_with = "graders_only")]
    pub localisers_only: bool,
    /// The graders' head: softmax (three free logits) or ordinal (one severity score per crop
    /// and two learned cut points, see `discus_model::net::ordinal_logits`). Default: the initial
    /// model's with --init, else softmax. With --init, a head other than the initial model's
    /// starts the three graders afresh on its localisers.
    #[arg(long, value_name = "softmax|ordinal", value_parser = ["softmax", "ordinal"])]
    pub grader_head: Option<String>,
    /// With --init: start the three graders afresh (seeded by --seed) on the initial model's
    /// localisers, keeping the head. With --graders-only this is the second stage of the
    /// benchmark: the jointly trained graders learn more slowly than new ones.
    #[arg(long, requires = "init")]
    pub fresh_graders: bool,
    /// Weight of the any-severe term in the spinal grader's loss (a weighted binary cross-entropy
    /// of each study's largest Severe probability, as the competition scores it), against the
    /// weighted cross-entropy of its grades; 0 leaves it out.
    #[arg(long, default_value_t = 1.0)]
    pub any_severe_weight: f64,
    /// The model folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// The burn backend: cpu (pure-Rust flex, the default), wgpu (a binary built with
    /// `--features wgpu`), libtorch or libtorch-cuda (`--features tch`). Default: $DISCUS_DEVICE, else cpu.
    #[arg(long, value_name = "cpu|wgpu|libtorch|libtorch-cuda")]
    pub device: Option<String>,
    /// Crop cache folder: crops are cut once into it (an interrupted cut resumes; a changed
    /// parameter or source recuts) and later runs read them from it.
    #[arg(long)]
    pub cache: Option<PathBuf>,
}

/// Predict all 25 findings of every study of a dataset (or of one study folder): a submission CSV
/// in the LumbarDISC shape and findings.json per study (probabilities, grade, point, series used,
/// fallbacks).
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The model folder. Given more than once (`--model A --model B`), the models form an
    /// ensemble: each finding's probabilities are the mean of the models' (each model's are kept in
    /// findings.json as `members`); points, fallbacks, explanations and findings pages are the
    /// first model's. Every model's licence must permit the use.
    #[arg(long, required = true)]
    pub model: Vec<PathBuf>,
    /// A dataset folder, or one study folder (`<dataset>/train_images/<study_id>`).
    pub input: PathBuf,
    /// Output folder: submission.csv and <study_id>/findings.json.
    #[arg(long)]
    pub out: PathBuf,
    /// The intended use; refused (nothing written) when the licence of the model's training data
    /// or of the input dataset does not permit it.
    #[arg(long = "use", value_name = "USE", default_value = "research")]
    pub use_: Use,
    /// Explain every finding: the localiser's heat map (canal findings) and the grader's occlusion
    /// map, as PNG overlays on the source slice's own pixel grid (`<study>/heatmap_*.png` and
    /// `<study>/explain_*.png`, referenced from findings.json as `heatmap` and `explanation`). Off by
    /// default: the occlusion map costs about 50 grader passes per finding.
    #[arg(long)]
    pub explain: bool,
    /// Grade each finding N more times under small random perturbations (intensity ±10 %, noise,
    /// ±1 slice, ±3°, ±2 mm) and write the spread of its probabilities as `stability` in
    /// findings.json (0: off; one model only).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub stability: usize,
    /// Do not write the HTML findings pages (`<study>/index.html` with slice thumbnails, and the
    /// index.html of the output folder).
    #[arg(long)]
    pub no_pages: bool,
    /// Also write <study_id>/findings.sr.dcm: a DICOM Comprehensive SR (TID 1500, one measurement
    /// group per finding) in a new series of the study, patient and study attributes copied from
    /// the study's source DICOM headers.
    #[arg(long)]
    pub sr: bool,
    /// The burn backend: cpu (pure-Rust flex, the default; its networks run on discus's fused CPU
    /// kernels unless DISCUS_FUSED=0), wgpu (a binary built with `--features wgpu`), libtorch or
    /// libtorch-cuda (`--features tch`). Default: $DISCUS_DEVICE, else cpu.
    #[arg(long, value_name = "cpu|wgpu|libtorch|libtorch-cuda")]
    pub device: Option<String>,
}

/// Model tools.
#[derive(Debug, Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    pub command: ModelCommand,
}

/// `discus model ...`
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Export a model's networks to ONNX (one .onnx per network: canal, foraminal and
    /// subarticular localisers, spinal, foraminal and subarticular graders; opset 18, batch axis
    /// symbolic), with the model card (model.toml, the training data's licence) and onnx.toml
    /// (inputs, outputs, their meaning) beside them.
    Export(ExportArgs),
    /// Rescan agreement: predict both scans of every patient scanned twice (`discus synth
    /// --rescan`: the pairs are read from the dataset's truth.json; real rescans: `--pairs`) and
    /// report how far the predictions agree: quadratic weighted kappa of the grades per condition
    /// group, mean absolute probability difference, grade flip rate, and point distances in mm per
    /// level, each point written in its own scan's canal frame.
    Rescan(RescanArgs),
    /// Refit a model's temperatures (one per condition group) on its own predictions of labelled
    /// studies, e.g. a site's: the whole pipeline runs, localisers included, so the probabilities
    /// are calibrated where prediction grades. Grades do not change. Writes a model folder whose
    /// card lists the calibration data (its licence applies) beside the model's own provenance.
    Calibrate(CalibrateArgs),
}

/// Arguments of `discus model calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// The model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// Labelled datasets to predict (LumbarDISC layout with train.csv).
    #[arg(long = "dataset", required = true)]
    pub datasets: Vec<PathBuf>,
    /// With --fold: only the studies of that fold (`study_id % folds == fold`), e.g. the fold a
    /// model was not trained on.
    #[arg(long, default_value_t = 1)]
    pub folds: usize,
    /// The fold to use (0-based, below --folds).
    #[arg(long, default_value_t = 0)]
    pub fold: usize,
    /// The model folder to write (the same folder rewrites the card in place).
    #[arg(long)]
    pub out: PathBuf,
    /// Print the fit as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// The burn backend: cpu (default), wgpu (a binary built with `--features wgpu`), libtorch or
    /// libtorch-cuda (`--features tch`).
    #[arg(long, value_name = "cpu|wgpu|libtorch|libtorch-cuda")]
    pub device: Option<String>,
}

/// Arguments of `discus model rescan`.
#[derive(Debug, Args)]
pub struct RescanArgs {
    /// The model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// The dataset holding both scans of each patient.
    pub dataset: PathBuf,
    /// A CSV of rescan pairs (header `first,second`, one pair of study ids per line); default: the
    /// `rescan_of` links of the dataset's truth.json (`discus synth --rescan`).
    #[arg(long)]
    pub pairs: Option<PathBuf>,
    /// Report folder: report.json (every figure and every compared finding) and index.html.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the report as JSON on stdout instead of the text summary.
    #[arg(long)]
    pub json: bool,
    /// The intended use; refused when the licence of the model's training data or of the dataset
    /// does not permit it.
    #[arg(long = "use", value_name = "USE", default_value = "research")]
    pub use_: Use,
    /// The burn backend: cpu (default), wgpu (a binary built with `--features wgpu`), libtorch or
    /// libtorch-cuda (`--features tch`).
    #[arg(long, value_name = "cpu|wgpu|libtorch|libtorch-cuda")]
    pub device: Option<String>,
}

/// Arguments of `discus model export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The model folder to export to ONNX.
    #[arg(long, value_name = "MODEL")]
    pub onnx: PathBuf,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
}

/// Selects the burn backend from `--device` (else $DISCUS_DEVICE, else cpu); an unknown name or a
/// backend this binary was built without is an error, not a silent fallback.
fn select_device(flag: Option<&str>) -> Result<()> {
    let env = std::env::var(discus_model::backend::DEVICE_ENV).ok();
    let Some(name) = flag.or(env.as_deref()) else {
        return Ok(());
    };
    let b: discus_model::backend::Backend = name.parse()?;
    discus_model::backend::select(b)?;
    Ok(())
}

pub fn run_model(a: ModelArgs) -> Result<ExitCode> {
    match a.command {
        ModelCommand::Rescan(r) => run_rescan(r),
        ModelCommand::Calibrate(c) => run_calibrate(c),
        ModelCommand::Export(e) => {
            let m = discus_model::export::export_onnx(&e.onnx, &e.out)
                .with_context(|| format!("exporting {} to ONNX", e.onnx.display()))?;
            m.write_text(&e.out, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_calibrate(a: CalibrateArgs) -> Result<ExitCode> {
    select_device(a.device.as_deref())?;
    if a.folds == 0 || a.fold >= a.folds {
        anyhow::bail!(
            "--fold {} is not one of the {} folds (0 to {})",
            a.fold,
            a.folds,
            a.folds.max(1) - 1
        );
    }
    let mut model =
        Model::load(&a.model).with_context(|| format!("loading {}", a.model.display()))?;
    let (folds, fold) = (a.folds as u64, a.fold as u64);
    let pb = bar(0, "predicting");
    let fit = discus_model::calibrate::recalibrate(
        &mut model,
        &a.datasets,
        &|s: StudyId| s.0 % folds == fold,
        &|done, total| {
            pb.set_length(total as u64);
            pb.set_position(done as u64);
        },
    )
    .with_context(|| format!("calibrating {}", a.model.display()))?;
    pb.finish_and_clear();
    for (study, why) in &fit.skipped {
        eprintln!("warning: study {study} left out: {why}");
    }
    model
        .save(&a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&fit)?);
    } else {
        for (g, f) in &fit.groups {
            println!(
                "{g}: temperature {:.3} -> {:.3}, weighted NLL {:.4} -> {:.4} ({} findings)",
                f.before, f.after, f.nll_before, f.nll_after, f.findings
            );
        }
        println!(
            "fitted on {} studies' predictions; model written to {}",
            fit.studies,
            a.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run_rescan(a: RescanArgs) -> Result<ExitCode> {
    use discus_model::rescan::{agreement, pairs_from_csv, pairs_from_truth, report_page};
    select_device(a.device.as_deref())?;
    if let Some(out) = &a.out {
        discus_report::check_report_dir(out)?;
    }
    let model = Model::load(&a.model).with_context(|| format!("loading {}", a.model.display()))?;
    if let Err(e) = model.card.provenance.check_use(a.use_) {
        bail!(
            "refusing {} use of model {}: its training data's licence does not permit it: {}",
            a.use_.as_str(),
            a.model.display(),
            e.reason
        );
    }
    check_sources(
        &format!("discus {} model rescan", env!("CARGO_PKG_VERSION")),
        &[a.dataset.as_path()],
        a.use_,
        false,
    )?;
    let pairs = match &a.pairs {
        Some(p) => pairs_from_csv(p)?,
        None => {
            let t = a.dataset.join("truth.json");
            if !t.is_file() {
                bail!(
                    "{}: no truth.json to read the rescan pairs from (a `discus synth --rescan` cohort has one); give them with --pairs",
                    a.dataset.display()
                );
            }
            pairs_from_truth(&t)?
        }
    };
    if pairs.is_empty() {
        bail!(
            "{}: no rescan pairs (make the cohort with `discus synth --rescan`, or give --pairs)",
            a.dataset.display()
        );
    }
    let ds = crate::eval::open_dataset(&a.dataset)?;
    let pb = bar(pairs.len() as u64, "predicting both scans");
    // Pairs in parallel, each worker with its own connection to the index.
    let results: Vec<Result<(StudyPrediction, StudyPrediction)>> = {
        use rayon::prelude::*;
        pairs
            .par_iter()
            .map_init(
                || discus_data::dataset::Dataset::open_indexed(&a.dataset),
                |wds, p| {
                    let wds = wds.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
                    let one = |s: StudyId| {
                        discus_model::predict::predict_study(&model, wds, s)
                            .with_context(|| format!("study {s}"))
                    };
                    let r = one(p.first).and_then(|x| one(p.second).map(|y| (x, y)));
                    pb.inc(1);
                    r
                },
            )
            .collect()
    };
    pb.finish_and_clear();
    drop(ds);
    let mut done = Vec::new();
    let mut failed = 0usize;
    for (p, r) in pairs.iter().zip(results) {
        match r {
            Ok(x) => done.push(x),
            Err(e) => {
                failed += 1;
                eprintln!("error: pair {} / {}: {e:#} (left out)", p.first, p.second);
            }
        }
    }
    if done.is_empty() {
        bail!("no pair could be predicted");
    }
    let r = agreement(&done);
    if let Some(out) = &a.out {
        let cards: Vec<&discus_core::governance::DatasetCard> =
            model.card.provenance.sources.iter().collect();
        let files =
            discus_report::write_report(out, &report_page(&r, &model_name(&a.model), &cards), &r)?;
        eprintln!("report: {}", files.html.display());
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "{} patients scanned twice ({} pair(s) left out)",
            r.pairs, failed
        );
        println!(
            "{:<13} {:>8} {:>7} {:>9} {:>7} {:>11} {:>9}",
            "group", "findings", "kappa", "mean|dp|", "flips", "median mm", "mean mm"
        );
        let f = |v: Option<f64>, d: usize| v.map_or("n/a".to_string(), |v| format!("{v:.d$}"));
        for g in &r.groups {
            println!(
                "{:<13} {:>8} {:>7} {:>9.4} {:>6.1}% {:>11} {:>9}",
                g.group,
                g.findings,
                f(g.kappa_quadratic, 3),
                g.mean_abs_probability_difference,
                100.0 * g.grade_flip_rate,
                f(g.distance.median_mm, 1),
                f(g.distance.mean_mm, 1)
            );
        }
        for g in &r.groups {
            let lv: Vec<String> = g
                .distance_by_level
                .iter()
                .map(|(l, d)| format!("{} {}", l.words(), f(d.median_mm, 1)))
                .collect();
            println!("{} median mm per level: {}", g.group, lv.join(", "));
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({eta})")
            .expect("a valid template"),
    );
    pb.set_message(what.to_string());
    pb
}

/// `discus train`'s learning rate for a fresh model.
const TRAIN_LR: f64 = 3e-3;
/// `discus train --init`'s learning rate (a tenth of [`TRAIN_LR`]).
const FINE_TUNE_LR: f64 = 3e-4;

pub fn run_train(a: TrainArgs) -> Result<ExitCode> {
    select_device(a.device.as_deref())?;
    let mut req = TrainRequest::new(a.dataset.clone(), a.out.clone());
    req.folds = a.folds;
    req.held_fold = a.held_fold;
    req.seed = a.seed;
    req.epochs = a.epochs;
    req.learning_rate = a.lr.unwrap_or(if a.init.is_some() {
        FINE_TUNE_LR
    } else {
        TRAIN_LR
    });
    req.batch_studies = a.batch;
    req.cosine_epochs = if a.schedule == "cosine" { a.epochs } else { 0 };
    req.localiser_shift_cells = a.shift;
    req.crop_shift_cells = a.crop_shift;
    req.init = a.init.clone();
    req.graders_only = a.graders_only;
    req.localisers_only = a.localisers_only;
    req.grader_ordinal = a.grader_head.as_deref().map(|h| h == "ordinal");
    req.fresh_graders = a.fresh_graders;
    req.any_severe_weight = a.any_severe_weight;
    req.cache = a.cache.clone();
    let pb = bar(0, "preparing");
    let r = train(&req, &|p| match p {
        TrainProgress::Preparing { done, total } => {
            pb.set_length(total as u64);
            pb.set_position(done as u64);
        }
        TrainProgress::Calibrating { done, total } => {
            if done == 1 {
                pb.set_message("temperatures on the held-out predictions");
                pb.set_length(total as u64);
            }
            pb.set_position(done as u64);
        }
        TrainProgress::Resumed { epochs_done } => {
            pb.println(format!("resuming after epoch {epochs_done}"));
        }
        TrainProgress::Step { epoch, step, steps } => {
            if step == 1 {
                pb.set_message(format!("epoch {epoch}"));
                pb.set_length(steps as u64);
            }
            pb.set_position(step as u64);
        }
        TrainProgress::Epoch(m) => {
            let held = match (m.held_out_grader_loss, m.held_out_canal_error_mm) {
                (Some(l), Some(e)) => format!(", held out: grader {l:.4}, canal error {e:.1} mm"),
                (Some(l), None) => format!(", held out: grader {l:.4}"),
                _ => String::new(),
            };
            let points = match (
                m.held_out_foraminal_error_mm,
                m.held_out_subarticular_error_mm,
            ) {
                (Some(f), Some(s)) => {
                    format!(", foraminal error {f:.1} mm, subarticular error {s:.1} mm")
                }
                _ => String::new(),
            };
            pb.println(format!(
                "epoch {}: localiser {:.4}, points {:.4}, grader {:.4}{held}{points}",
                m.epoch, m.localiser_loss, m.point_loss, m.grader_loss
            ));
        }
    })
    .with_context(|| format!("training {}", a.out.display()))?;
    pb.finish_and_clear();
    r.write_warnings(&mut std::io::stderr().lock())?;
    r.write_text(&a.out, &mut std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

/// The algorithm of the reports of `model` (name, version, licence of its training data).
fn sr_algorithm(models: &[Model]) -> discus_sr::Algorithm {
    // Each training dataset once, over the models of an ensemble.
    let mut data: Vec<String> = Vec::new();
    for c in models.iter().flat_map(|m| m.card.provenance.all_cards()) {
        let line = format!(
            "{} ({}; permitted uses: {})",
            c.name,
            c.licence.name,
            c.licence.permitted_uses_text()
        );
        if !data.contains(&line) {
            data.push(line);
        }
    }
    let card = &models[0].card;
    discus_sr::Algorithm {
        name: if models.len() > 1 {
            format!("discus localise-then-grade (ensemble of {})", models.len())
        } else {
            "discus localise-then-grade".into()
        },
        version: format!(
            "{} (trained {})",
            card.discus_version, card.training.finished_unix
        ),
        licence: if data.is_empty() {
            "no training data card recorded".into()
        } else {
            format!("trained on: {}", data.join("; "))
        },
        manufacturer: "discus".into(),
    }
}

/// The SR of one study's prediction, its points resolved to the source slices through `ds`.
fn study_sr(
    ds: &discus_data::dataset::Dataset,
    models: &[Model],
    p: &discus_model::predict::StudyPrediction,
) -> Result<discus_sr::SrDocument, discus_sr::SrError> {
    let study = discus_sr::source::study_context(ds, p.study)?;
    let findings = p
        .findings
        .iter()
        .map(|f| {
            let point = f
                .point
                .as_ref()
                .map(|pt| {
                    discus_sr::source::source_point(
                        ds,
                        p.study,
                        pt.series,
                        pt.instance,
                        [pt.x, pt.y],
                    )
                })
                .transpose()?;
            Ok(discus_sr::SrFinding {
                condition: f.condition,
                level: f.level,
                probabilities: f.probabilities,
                grade: f.grade,
                point,
                tracking_key: f.row_id.clone(),
            })
        })
        .collect::<Result<Vec<_>, discus_sr::SrError>>()?;
    Ok(discus_sr::SrDocument {
        study,
        algorithm: sr_algorithm(models),
        findings,
        series_number: 990,
        instance_number: 1,
        sop_instance_uid: None,
        content_date_time: None,
    })
}

/// The dataset root and, for a study folder, the study.
fn input_of(p: &Path) -> Result<(PathBuf, Option<StudyId>)> {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let parent = p
        .parent()
        .and_then(|q| q.file_name())
        .and_then(|n| n.to_str());
    if let (Ok(id), Some(split)) = (name.parse::<u64>(), parent) {
        if Split::from_folder(split).is_some() {
            let root = p
                .parent()
                .and_then(|q| q.parent())
                .unwrap_or(Path::new("."));
            return Ok((root.to_path_buf(), Some(StudyId(id))));
        }
    }
    Ok((p.to_path_buf(), None))
}

fn model_name(dir: &Path) -> String {
    let d = discus_core::fsio::absolute(dir);
    d.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| d.display().to_string())
}

/// Predicts one study and writes its files: findings.json, and the PNG overlays and findings page
/// as asked.
fn predict_one(
    models: &[Model],
    ds: &discus_data::dataset::Dataset,
    study: StudyId,
    a: &PredictArgs,
    model_name: &str,
    cards: &[&discus_core::governance::DatasetCard],
) -> Result<StudyPrediction> {
    // One decode of each series for the prediction (by every model of an ensemble), explanations,
    // stability and thumbnails.
    let mut src = Sources::new(ds, study);
    let model = &models[0];
    let members = models
        .iter()
        .map(|m| predict_study_with(m, &mut src))
        .collect::<Result<Vec<_>, _>>()?;
    let mut p = discus_model::predict::ensemble(members)?;
    let dir = a.out.join(study.to_string());
    let file = |f: &Finding, what: &str| {
        let col = LabelColumn {
            condition: f.condition,
            level: f.level,
        };
        format!("{what}_{}.png", col.name())
    };
    if a.explain {
        let ex = explain_study_with(model, &mut src, &p, &ExplainOptions::default())?;
        for (f, e) in p.findings.iter_mut().zip(ex) {
            debug_assert_eq!(f.row_id, e.row_id);
            if let Some(o) = &e.heatmap {
                let name = file(f, "heatmap");
                write_overlay_png(&dir.join(&name), o)?;
                f.heatmap = Some(name);
            }
            if let Some(o) = &e.occlusion {
                let name = file(f, "explain");
                write_overlay_png(&dir.join(&name), o)?;
                f.explanation = Some(name);
            }
        }
    }
    if a.stability > 0 {
        let st = stability_study_with(model, &mut src, &p, &StabilityOptions::new(a.stability))?;
        for f in &mut p.findings {
            f.stability = st.get(&f.row_id).cloned();
        }
    }
    let path = dir.join("findings.json");
    let json = serde_json::to_vec_pretty(&p)?;
    discus_core::fsio::atomic_write(&path, &json)
        .with_context(|| format!("writing {}", path.display()))?;
    if !a.no_pages {
        let mut thumbs = BTreeMap::new();
        let overlays = point_overlays_with(model, &mut src, &p)?;
        for f in &p.findings {
            if let Some(o) = overlays.get(&f.row_id) {
                let name = file(f, "slice");
                write_overlay_png(&dir.join(&name), o)?;
                thumbs.insert(f.row_id.clone(), name);
            }
        }
        write_page(
            &dir.join("index.html"),
            &study_page(&p, model_name, &thumbs, cards),
        )?;
    }
    Ok(p)
}

pub fn run_predict(a: PredictArgs) -> Result<ExitCode> {
    select_device(a.device.as_deref())?;
    if a.stability > 0 && a.model.len() > 1 {
        bail!(
            "--stability measures one model: it cannot be combined with an ensemble of {} models",
            a.model.len()
        );
    }
    let mut models = Vec::with_capacity(a.model.len());
    for path in &a.model {
        let model = Model::load(path).with_context(|| format!("loading {}", path.display()))?;
        if let Err(e) = model.card.provenance.check_use(a.use_) {
            bail!(
                "refusing to predict for {} use with model {}: it was trained on data whose licence does not permit it: {}",
                a.use_.as_str(),
                path.display(),
                e.reason
            );
        }
        models.push(model);
    }
    let (root, one) = input_of(&a.input)?;
    check_sources(
        &format!("discus {} predict", env!("CARGO_PKG_VERSION")),
        &[root.as_path()],
        a.use_,
        false,
    )?;
    let ds = crate::eval::open_dataset(&root)?;
    let studies: Vec<StudyId> = match one {
        Some(s) => vec![s],
        None => ds.studies()?.iter().map(|s| s.study).collect(),
    };
    if studies.is_empty() {
        bail!("{}: no study to predict", root.display());
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let pb = bar(studies.len() as u64, "predicting");
    let mut rows = Vec::new();
    let mut failed = 0usize;
    let mut entries = Vec::new();
    let model_name = a
        .model
        .iter()
        .map(|m| model_name(m))
        .collect::<Vec<_>>()
        .join(" + ");
    // Each training dataset once, in the models' order.
    let mut cards: Vec<&discus_core::governance::DatasetCard> = Vec::new();
    for c in models.iter().flat_map(|m| &m.card.provenance.sources) {
        if !cards.contains(&c) {
            cards.push(c);
        }
    }
    let mut sr_failed = 0usize;
    let t0 = std::time::Instant::now();
    // Studies in parallel on rayon's threads (RAYON_NUM_THREADS=1: one at a time), each worker
    // with its own connection to the index (a connection is not shared between threads); the
    // results are then taken in study order.
    let results: Vec<Result<StudyPrediction>> = {
        use rayon::prelude::*;
        studies
            .par_iter()
            .map_init(
                || discus_data::dataset::Dataset::open_indexed(&root),
                |wds, study| {
                    let wds = wds.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
                    let p = predict_one(&models, wds, *study, &a, &model_name, &cards);
                    pb.inc(1);
                    p
                },
            )
            .collect()
    };
    for (study, result) in studies.iter().zip(results) {
        match result {
            Ok(p) => {
                rows.extend(p.submission_rows());
                entries.push(IndexEntry::of(&p, format!("{study}/index.html")));
                if a.sr {
                    let sr = a.out.join(study.to_string()).join("findings.sr.dcm");
                    if let Err(e) = study_sr(&ds, &models, &p).and_then(|d| d.write(&sr)) {
                        sr_failed += 1;
                        pb.println(format!("error: study {study}: SR not written: {e}"));
                    }
                }
            }
            Err(e) => {
                failed += 1;
                pb.println(format!("error: study {study}: {e:#}"));
                entries.push(IndexEntry {
                    study: *study,
                    href: None,
                    severe: 0,
                    moderate: 0,
                    fallbacks: 0,
                    error: Some(format!("{e:#}")),
                });
            }
        }
    }
    pb.finish_and_clear();
    if !a.no_pages {
        let index = a.out.join("index.html");
        write_page(&index, &index_page(&entries, &model_name, &cards))?;
        println!("findings pages: {}", index.display());
    }
    let secs = t0.elapsed().as_secs_f64();
    let sub = a.out.join("submission.csv");
    write_submission(&sub, &rows, LineEnding::Lf)?;
    println!(
        "predicted {} of {} studies in {:.2} s ({:.3} s per study); wrote {} and findings.json{} per study",
        studies.len() - failed,
        studies.len(),
        secs,
        secs / studies.len() as f64,
        sub.display(),
        if a.sr { " and findings.sr.dcm" } else { "" }
    );
    if sr_failed > 0 {
        eprintln!("{sr_failed} SR report(s) not written (see the errors above)");
    }
    Ok(if failed > 0 || sr_failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
