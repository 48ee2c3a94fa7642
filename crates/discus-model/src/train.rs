//! Training: samples from a dataset, the losses, epochs with checkpoints, resume, the model folder.
//!
//! - **Deterministic under a seed**: initialisation is seeded (under a process-wide lock, as burn's
//!   generator is global), and each epoch's study order comes from ChaCha seeded with
//!   `seed + epoch`; the same request on the same machine and thread count gives the same weights.
//! - **Checkpoints**: after each epoch `<out>/checkpoint/` holds the weights, Adam's state
//!   (burnpack) and `state.json` (epochs done, metrics, the request's fingerprint). A run whose
//!   `<out>` has a checkpoint of the same request resumes after its last epoch; one of a different
//!   request is refused (choose another `--out`). Known limit: a resumed run is close to, not
//!   bit-identical with, an uninterrupted one (0.3 % apart in the next epoch's loss in the tests).
//! - **Learning rate**: Adam; constant, or (`cosine_epochs` > 0, what `discus train` asks for)
//!   decayed along a half cosine from the given rate to 5 % of it over that many epochs (step by
//!   step; later epochs stay at 5 %). The schedule length is not part of the request's fingerprint,
//!   so a run extended with more epochs resumes (with the longer schedule from there on).
//! - **Augmentation** (`localiser_shift_cells`): each epoch, each study's canal-localiser input is
//!   moved by a seeded whole-cell shift (up to that many cells per axis, zero fill, never pushing a
//!   target point off the grid) and its intensities scaled by a factor in [0.9, 1.1]; the targets
//!   move with it. With few studies this is what keeps the localiser from learning positions by
//!   heart.
//! - **Augmentation** (`crop_shift_cells`): each epoch, each grader crop is moved by its own seeded
//!   whole-cell shift (up to that many crop cells per axis, zero fill) and scaled by a gain in
//!   [0.9, 1.1]. The graders are trained on crops at the labelled points but grade crops at the
//!   localised ones; the shift teaches them to grade a crop a few mm off centre.
//! - **Best epoch** (with a held-out fold): after each epoch the held-out losses (canal localiser +
//!   graders + point localisers) are computed; the final model is the epoch with the lowest sum
//!   (early stopping without stopping: its weights are kept in the checkpoint as `best.safetensors`),
//!   recorded in `model.toml` as `training.best_epoch`.
//! - **Fine-tuning** (`init`): starts from an existing model's weights, architecture and
//!   preprocessing; nothing is frozen, the schedule has the same shape as for a fresh model
//!   (`discus train --init` starts it at a tenth of the fresh rate, 3e-4 against 3e-3), and the
//!   model card lists the initial model's provenance as an input (its licence still applies);
//!   without a held-out fold it keeps the initial model's temperatures. `grader_ordinal` naming
//!   another head than the initial model's, or `fresh_graders`, starts the three graders afresh
//!   (seeded) on its localisers.
//! - **One part only**: `graders_only` (needs `init`) trains the three graders and leaves the
//!   localisers out of the loss; `localisers_only` (with or without `init`) trains the canal and
//!   point localisers and leaves the training studies' grader crops out.
//! - **Held-out fold**: with `folds >= 2`, studies whose id falls in fold `held_fold` (0 by default;
//!   `id % folds == held_fold`) are
//!   not trained on; each epoch reports their grader loss and median canal, foraminal and
//!   subarticular point errors in mm; after the last epoch the graders' temperatures are fitted
//!   on them ([`crate::calibrate`]).
//! - **Point localisers**: trained on crops around each labelled foraminal (sagittal T1) and
//!   subarticular (axial T2) point, the crop centre shifted by a seeded jitter
//!   ([`Preprocessing::point_jitter_mm`], and for foraminal points the candidate window by up to
//!   `foraminal_candidates` slices) so they learn to find the point away from the centre and to
//!   choose the slice; loss: spatial cross-entropy over all candidate slices together.

use crate::heatmap::{decode_levels, decode_over_slices, gaussian_target};
use crate::net::{Architecture, Net};
use crate::prep::{study_sample, PointExample, Preprocessing, StudySample};
use crate::{
    backend_name, io_err, load_weights, save_folder, weights_bytes, EpochMetrics, ModelCard,
    ModelError, TrainingInfo, FORMAT, FORMAT_VERSION,
};
use burn::module::Module;
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use discus_core::governance::{load_card, Provenance};
use discus_core::{Condition, ConditionGroup, LabelColumn, Level, Severity, StudyId};
use discus_data::dataset::Dataset;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRequest {
    /// Training datasets (LumbarDISC layout with train.csv and label points).
    pub datasets: Vec<PathBuf>,
    /// The model folder to write (checkpoints go to `<out>/checkpoint/`).
    pub out: PathBuf,
    /// Seed of initialisation and shuffling.
    pub seed: u64,
    /// Epochs.
    pub epochs: usize,
    /// Folds; fold `held_fold` is held out when `folds >= 2`.
    pub folds: usize,
    /// The fold held out (`id % folds == held_fold`; 0 by default). Two models trained on other
    /// held-out folds together see every study, and an ensemble of them (`discus predict --model A
    /// --model B`) averages graders whose best epochs and temperatures were chosen on different
    /// studies.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub held_fold: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Studies per optimiser step.
    pub batch_studies: usize,
    /// A model to fine-tune from.
    pub init: Option<PathBuf>,
    /// Network sizes (ignored with `init`: the initial model's are used).
    pub architecture: Architecture,
    /// Preprocessing (ignored with `init`).
    pub preprocessing: Preprocessing,
    /// A crop cache folder ([`crate::cache`]): the samples are cut once into it (resuming an
    /// interrupted cut, recutting when a parameter or source changed) and read from it.
    #[serde(default)]
    pub cache: Option<PathBuf>,
    /// Epochs of the cosine learning-rate decay (0: constant rate). Not part of the fingerprint.
    #[serde(default)]
    pub cosine_epochs: usize,
    /// Largest whole-cell shift (per axis) of the canal localiser's training input (0: none).
    #[serde(default)]
    pub localiser_shift_cells: usize,
    /// Largest whole-cell shift (per axis, crop cells of [`Preprocessing::crop`]) of each grader
    /// training crop, drawn per crop and epoch, with a gain in [0.9, 1.1] (0: neither).
    #[serde(default)]
    pub crop_shift_cells: usize,
    /// Train the three graders only (needs `init`): the localisers keep the initial model's
    /// weights and take no part in the loss, so an epoch costs what the graders cost.
    #[serde(default)]
    pub graders_only: bool,
    /// Train the localisers only (the canal, foraminal and subarticular point localisers): the
    /// training studies' grader crops are left out of the loss, so the graders keep their initial
    /// (or seeded) weights. The first stage of a recipe whose graders are then trained afresh
    /// (`graders_only` with `fresh_graders`) spends nothing on graders it throws away. The held-out
    /// fold still reports the graders' loss (and fits their temperatures).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub localisers_only: bool,
    /// The graders' head ([`Architecture::grader_ordinal`]): `Some(true)` ordinal, `Some(false)`
    /// three free logits, `None` the architecture's (or the initial model's). With `init`, a head
    /// other than the initial model's re-initialises the three graders (seeded) and keeps its
    /// localisers: with `graders_only` that trains new graders on a trained model's points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grader_ordinal: Option<bool>,
    /// With `init`: start the three graders afresh (seeded) on the initial model's localisers,
    /// whatever the head. Graders that a joint run has left in a poor state learn more slowly
    /// from there than new ones do (see the README's benchmark).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh_graders: bool,
    /// Weight of the any-severe term (a weighted binary cross-entropy of each study's largest
    /// spinal Severe probability) against the spinal grader's weighted cross-entropy (1: equal).
    #[serde(default = "unit_weight", skip_serializing_if = "is_unit_weight")]
    pub any_severe_weight: f64,
}

fn unit_weight() -> f64 {
    1.0
}

fn is_unit_weight(w: &f64) -> bool {
    *w == 1.0
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

impl TrainRequest {
    /// A request with the default settings.
    pub fn new(datasets: Vec<PathBuf>, out: PathBuf) -> TrainRequest {
        TrainRequest {
            datasets,
            out,
            seed: 1,
            epochs: 10,
            folds: 0,
            held_fold: 0,
            learning_rate: 1e-3,
            batch_studies: 4,
            init: None,
            architecture: Architecture::default(),
            preprocessing: Preprocessing::default(),
            cache: None,
            cosine_epochs: 0,
            localiser_shift_cells: 6,
            crop_shift_cells: 3,
            graders_only: false,
            localisers_only: false,
            grader_ordinal: None,
            fresh_graders: false,
            any_severe_weight: 1.0,
        }
    }

    fn fingerprint(&self) -> String {
        // Everything but the number of epochs (a run may be extended), the output folder and the
        // crop cache (the same samples either way). Paths are canonical, so the same dataset or
        // initial model named another way (relative, through a link) is the same request.
        let mut r = self.clone();
        let canonical = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        r.datasets = r.datasets.iter().map(canonical).collect();
        r.init = r.init.as_ref().map(canonical);
        r.epochs = 0;
        r.cosine_epochs = 0;
        r.out = PathBuf::new();
        r.cache = None;
        serde_json::to_string(&r).expect("request serialises")
    }
}

/// Progress reports of [`train`].
#[derive(Debug, Clone, PartialEq)]
pub enum TrainProgress {
    /// Reading studies and cutting crops.
    Preparing {
        /// Studies done.
        done: usize,
        /// Studies in all.
        total: usize,
    },
    /// Resuming after this many epochs.
    Resumed {
        /// Epochs already done.
        epochs_done: usize,
    },
    /// One optimiser step done.
    Step {
        /// Epoch (1-based).
        epoch: usize,
        /// Steps done in this epoch.
        step: usize,
        /// Steps per epoch.
        steps: usize,
    },
    /// An epoch finished (and was checkpointed).
    Epoch(EpochMetrics),
    /// Predicting the held-out studies to fit the temperatures
    /// ([`crate::calibrate::fit_on_predictions`]).
    Calibrating {
        /// Studies done.
        done: usize,
        /// Studies in all.
        total: usize,
    },
}

/// What [`train`] produced.
#[derive(Debug, Clone)]
pub struct TrainResult {
    /// The model card written to `<out>/model.toml`.
    pub card: ModelCard,
    /// Epochs already done when this call started (resumed), 0 for a fresh run.
    pub resumed_after: usize,
    /// Studies left out, with the reason (one bad study is reported and skipped).
    pub skipped: Vec<(StudyId, String)>,
    /// Training images per second (localiser inputs plus grader crops, forward and backward).
    pub images_per_second: f64,
}

impl TrainResult {
    /// Writes one `warning: study S skipped: why` line per study left out (what `discus train`
    /// prints on stderr).
    pub fn write_warnings(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        for (study, why) in &self.skipped {
            writeln!(w, "warning: study {study} skipped: {why}")?;
        }
        Ok(())
    }

    /// Writes the summary `discus train` prints: the fitted temperatures, then the studies, time
    /// and speed, and `out`, the model folder.
    pub fn write_text(&self, out: &Path, w: &mut impl std::io::Write) -> std::io::Result<()> {
        if !self.card.temperatures.is_empty() {
            let t: Vec<String> = self
                .card
                .temperatures
                .iter()
                .map(|(g, t)| format!("{g} {t:.3}"))
                .collect();
            writeln!(
                w,
                "temperatures (fitted on the held-out fold): {}",
                t.join(", ")
            )?;
        }
        writeln!(
            w,
            "trained on {} studies ({} held out) in {:.1} s, {:.1} images/s; model written to {}",
            self.card.training.train_studies,
            self.card.training.held_out_studies,
            self.card.training.seconds,
            self.images_per_second,
            out.display()
        )
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointState {
    fingerprint: String,
    epochs_done: usize,
    metrics: Vec<EpochMetrics>,
    seconds: f64,
    /// The epoch with the lowest held-out loss so far and that loss (weights in `best.safetensors`).
    #[serde(default)]
    best: Option<(usize, f64)>,
}

const CHECKPOINT_DIR: &str = "checkpoint";
const STATE_FILE: &str = "state.json";
const OPTIMIZER_FILE: &str = "optimizer.bpk";
const BEST_FILE: &str = "best.safetensors";

/// The learning rate at `step` of `steps_per_epoch * cosine_epochs` (a half cosine from `lr` to
/// 5 % of it; constant when `cosine_epochs` is 0, 5 % after the schedule's end).
pub fn scheduled_rate(lr: f64, cosine_epochs: usize, steps_per_epoch: usize, step: usize) -> f64 {
    if cosine_epochs == 0 {
        return lr;
    }
    let total = (cosine_epochs * steps_per_epoch.max(1)) as f64;
    let t = (step as f64 / total).min(1.0);
    let floor = 0.05;
    lr * (floor + (1.0 - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

/// `slices` planes of `rows x columns` values moved by a whole-cell shift `(dr, dc)` (zero fill)
/// and scaled by `gain`.
pub fn shifted_planes(
    input: &[f32],
    slices: usize,
    (rows, columns): (usize, usize),
    (dr, dc): (i64, i64),
    gain: f32,
) -> Vec<f32> {
    let mut out = vec![0f32; input.len()];
    let (ri, ci) = (rows as i64, columns as i64);
    let plane = rows * columns;
    for s in 0..slices {
        for r in 0..ri {
            let rs = r - dr;
            if rs < 0 || rs >= ri {
                continue;
            }
            for c in 0..ci {
                let cs = c - dc;
                if cs < 0 || cs >= ci {
                    continue;
                }
                out[s * plane + (r * ci + c) as usize] =
                    input[s * plane + (rs * ci + cs) as usize] * gain;
            }
        }
    }
    out
}

/// The canal-localiser input of a sample moved by a whole-cell shift `(dr, dc)` (zero fill) and
/// scaled by `gain`, with its targets moved alike.
pub fn shifted_localiser(
    input: &[f32],
    targets: &[(f64, f64); 5],
    slices: usize,
    g: usize,
    d: (i64, i64),
    gain: f32,
) -> crate::prep::LocaliserTarget {
    let out = shifted_planes(input, slices, (g, g), d, gain);
    let t = targets.map(|(r, c)| (r + d.0 as f64, c + d.1 as f64));
    (out, t)
}

/// A seeded whole-cell shift (each axis in `-max..=max`) and gain in [0.9, 1.1] for grader crop
/// `index` of `group` in a study, at an epoch.
fn crop_shift(
    max: usize,
    seed: u64,
    epoch: usize,
    study: StudyId,
    group: ConditionGroup,
    index: usize,
) -> ((i64, i64), f32) {
    use rand::Rng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
        seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
            ^ study.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ ((epoch as u64) << 32)
            ^ ((group as u64) << 24)
            ^ (index as u64).wrapping_add(101),
    );
    let m = max as i64;
    let d = (rng.gen_range(-m..=m), rng.gen_range(-m..=m));
    (d, rng.gen_range(0.9f32..=1.1))
}

/// A training copy of a study's grader crops, each moved by its seeded shift and gain
/// ([`crop_shift`]); the shift stands in for the localiser's error, which the graders meet at
/// prediction (they are trained on crops at the labelled points).
fn shifted_crops(
    s: &StudySample,
    pre: &Preprocessing,
    max: usize,
    seed: u64,
    epoch: usize,
) -> BTreeMap<ConditionGroup, Vec<crate::prep::CropExample>> {
    let c = &pre.crop;
    s.crops
        .iter()
        .map(|(group, ex)| {
            let moved = ex
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let (d, gain) = crop_shift(max, seed, epoch, s.study, *group, i);
                    crate::prep::CropExample {
                        data: shifted_planes(&e.data, c.slices, (c.rows, c.columns), d, gain),
                        ..e.clone()
                    }
                })
                .collect();
            (*group, moved)
        })
        .collect()
}

/// A seeded shift for one study and epoch that keeps every target at least one cell inside the
/// grid, and an intensity gain in [0.9, 1.1].
fn localiser_shift(
    targets: &[(f64, f64); 5],
    g: usize,
    max: usize,
    seed: u64,
    epoch: usize,
    study: StudyId,
) -> ((i64, i64), f32) {
    use rand::Rng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
        seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
            ^ study.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (epoch as u64).wrapping_add(17),
    );
    let hi = g as f64 - 2.0;
    let range = |v: &dyn Fn(&(f64, f64)) -> f64| {
        let lo_v = targets.iter().map(v).fold(f64::INFINITY, f64::min);
        let hi_v = targets.iter().map(v).fold(f64::NEG_INFINITY, f64::max);
        let a = (-(max as f64)).max((1.0 - lo_v).ceil()) as i64;
        let b = (max as f64).min((hi - hi_v).floor()) as i64;
        if a <= b {
            (a, b)
        } else {
            (0, 0)
        }
    };
    let (r0, r1) = range(&|t| t.0);
    let (c0, c1) = range(&|t| t.1);
    let dr = rng.gen_range(r0..=r1);
    let dc = rng.gen_range(c0..=c1);
    let gain = rng.gen_range(0.9f32..=1.1);
    ((dr, dc), gain)
}

static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Draws every parameter's initial values now: burn initialises a parameter lazily, when it is
/// first read.
struct Materialise;

impl burn::module::ModuleVisitor for Materialise {
    fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
        let _ = p.val();
    }
}

/// A freshly initialised network, seeded (burn's generator is global: the lock keeps concurrent
/// initialisations from interleaving).
///
/// Every parameter is drawn here, under the lock and in the network's field order. Left lazy,
/// each would be drawn when a forward pass first read it: in whatever order the training used the
/// networks (a localisers-only run would give its point localisers other initial weights than a
/// joint run from the same seed), and outside the lock, where another thread seeding or drawing
/// from the same generator could interleave.
///
/// The values are drawn by the CPU backend (flex) whatever `device` is, then copied onto it, so a
/// seed gives the same initial network on every backend. Each backend has its own generator:
/// drawn on libtorch, fresh graders for the seed-20261206 benchmark's training studies started
/// elsewhere and learned far more slowly than flex's from the same seed, while from the same
/// weights the two backends' training tracked each other (README, "Backends").
pub fn seeded_net(a: &Architecture, seed: u64, device: &Device) -> Net {
    let _g = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if crate::backend_name(device) == "flex" {
        device.seed(seed);
        let net = Net::new(a, device);
        net.visit(&mut Materialise);
        return net;
    }
    let cpu = Device::flex();
    cpu.seed(seed);
    let drawn = Net::new(a, &cpu);
    drawn.visit(&mut Materialise);
    let bytes = crate::weights_bytes(&drawn).expect("a network in memory serialises");
    crate::weights_from_bytes(bytes, a, device)
        .expect("a network loads the weights of its own architecture")
}

/// Severity weights of the competition metric.
fn weight(grade: usize) -> f32 {
    Severity::from_index(grade)
        .map(|s| s.weight() as f32)
        .unwrap_or(1.0)
}

/// Spatial cross-entropy of a point localiser over examples of equal candidate count: the logits of
/// each output channel over all candidate slices form one softmax; targets are Gaussians on the
/// labelled candidate. Returns the mean loss over the labelled channels and the images read.
fn point_loss(
    loc: &crate::net::Localiser,
    examples: &[&PointExample],
    pre: &Preprocessing,
    device: &Device,
) -> Option<(Tensor<1>, usize)> {
    let first = examples.first()?;
    let (cand, outs) = (first.candidates, first.targets.len());
    let spec = pre.point_spec();
    let g = spec.rows;
    let n = examples.len();
    let mut x = Vec::with_capacity(n * cand * spec.len());
    let mut t = vec![0f32; n * outs * cand * g * g];
    let mut labelled = 0usize;
    for (i, e) in examples.iter().enumerate() {
        x.extend_from_slice(&e.data);
        for (o, tg) in e.targets.iter().enumerate() {
            let Some((k, r, c)) = tg else { continue };
            let gt = gaussian_target(g, g, *r, *c, pre.heat_sigma);
            let at = (i * outs + o) * cand * g * g + k * g * g;
            t[at..at + g * g].copy_from_slice(&gt);
            labelled += 1;
        }
    }
    if labelled == 0 {
        return None;
    }
    let xt = Tensor::<4>::from_data(TensorData::new(x, [n * cand, spec.slices, g, g]), device);
    let logits = loc
        .forward(xt)
        .reshape([n, cand, outs, g * g])
        .swap_dims(1, 2)
        .reshape([n * outs, cand * g * g]);
    let tt = Tensor::<2>::from_data(TensorData::new(t, [n * outs, cand * g * g]), device);
    Some((
        (tt * log_softmax(logits, 1)).sum().neg() / labelled as f64,
        n * cand,
    ))
}

/// The losses of one batch of studies: `(total, localiser, grader, images, point localisers)`;
/// parts with no data are absent from the total and report 0.
pub(crate) fn batch_loss(
    net: &Net,
    batch: &[&StudySample],
    pre: &Preprocessing,
    device: &Device,
    any_severe_weight: f64,
) -> (Option<Tensor<1>>, f64, f64, usize, f64) {
    let mut total: Option<Tensor<1>> = None;
    let mut images = 0usize;
    let add = |t: &mut Option<Tensor<1>>, x: Tensor<1>| {
        *t = Some(match t.take() {
            Some(a) => a + x,
            None => x,
        })
    };
    // Localiser: spatial softmax cross-entropy against normalised Gaussians.
    let g = pre.localiser_grid;
    let s = pre.localiser_slices;
    let loc: Vec<&crate::prep::LocaliserTarget> =
        batch.iter().filter_map(|b| b.localiser.as_ref()).collect();
    let mut loc_loss = 0.0;
    if !loc.is_empty() {
        let b = loc.len();
        images += b;
        let x: Vec<f32> = loc.iter().flat_map(|(v, _)| v.iter().copied()).collect();
        let t: Vec<f32> = loc
            .iter()
            .flat_map(|(_, pts)| {
                pts.iter()
                    .flat_map(|(r, c)| gaussian_target(g, g, *r, *c, pre.heat_sigma))
            })
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(x, [b, s, g, g]), device);
        let t = Tensor::<2>::from_data(TensorData::new(t, [b * 5, g * g]), device);
        let logits = net.localiser.forward(x).reshape([b * 5, g * g]);
        let l = (t * log_softmax(logits, 1)).sum().neg() / (b * 5) as f64;
        loc_loss = l.clone().into_scalar::<f32>() as f64;
        add(&mut total, l);
    }
    // Graders: weighted cross-entropy per group, plus any-severe over each study's spinal levels.
    let c = &pre.crop;
    let mut grader_loss = 0.0;
    for group in ConditionGroup::ALL {
        let mut data = Vec::new();
        let mut onehot = Vec::new();
        let mut w = Vec::new();
        let mut ranges: Vec<(usize, usize, f32, f32)> = Vec::new(); // start, end, y, v
        for st in batch {
            let Some(ex) = st.crops.get(&group) else {
                continue;
            };
            let start = w.len();
            for e in ex {
                data.extend_from_slice(&e.data);
                let mut o = [0f32; 3];
                o[e.grade] = 1.0;
                onehot.extend_from_slice(&o);
                w.push(weight(e.grade));
            }
            if group == ConditionGroup::Spinal && !ex.is_empty() {
                let y = ex.iter().any(|e| e.grade == 2);
                let v = ex.iter().map(|e| weight(e.grade)).fold(0.0, f32::max);
                ranges.push((start, w.len(), if y { 1.0 } else { 0.0 }, v));
            }
        }
        let n = w.len();
        if n == 0 {
            continue;
        }
        images += n;
        let sum_w: f32 = w.iter().sum();
        let x = Tensor::<4>::from_data(
            TensorData::new(data, [n, c.slices, c.rows, c.columns]),
            device,
        );
        let logits = net.grader(group).forward(x);
        let oh = Tensor::<2>::from_data(TensorData::new(onehot, [n, 3]), device);
        let wt = Tensor::<2>::from_data(TensorData::new(w, [n, 1]), device);
        let nll = (log_softmax(logits.clone(), 1) * oh).sum_dim(1).neg();
        let mut l = (nll * wt).sum() / sum_w as f64;
        if !ranges.is_empty() && any_severe_weight > 0.0 {
            let p = softmax(logits, 1);
            let m = ranges.len();
            let maxes: Vec<Tensor<1>> = ranges
                .iter()
                .map(|(a, b, _, _)| p.clone().slice([*a..*b, 2..3]).max().reshape([1]))
                .collect();
            let pm = Tensor::cat(maxes, 0).clamp(1e-7, 1.0 - 1e-7);
            let y: Vec<f32> = ranges.iter().map(|r| r.2).collect();
            let v: Vec<f32> = ranges.iter().map(|r| r.3).collect();
            let sum_v: f32 = v.iter().sum();
            let y = Tensor::<1>::from_data(TensorData::new(y, [m]), device);
            let v = Tensor::<1>::from_data(TensorData::new(v, [m]), device);
            let bce =
                (y.clone() * pm.clone().log() + (y.neg() + 1.0) * (pm.neg() + 1.0).log()).neg();
            l = l + (bce * v).sum() * (any_severe_weight / sum_v as f64);
        }
        grader_loss += l.clone().into_scalar::<f32>() as f64;
        add(&mut total, l);
    }
    // Point localisers: foraminal (sagittal T1, candidate slices) and subarticular (axial T2).
    let mut pt_loss = 0.0;
    let fo: Vec<&PointExample> = batch.iter().flat_map(|b| &b.foraminal_points).collect();
    let su: Vec<&PointExample> = batch.iter().flat_map(|b| &b.subarticular_points).collect();
    for (loc, ex) in [
        (&net.foraminal_localiser, fo),
        (&net.subarticular_localiser, su),
    ] {
        if let Some((l, im)) = point_loss(loc, &ex, pre, device) {
            images += im;
            pt_loss += l.clone().into_scalar::<f32>() as f64;
            add(&mut total, l);
        }
    }
    (total, loc_loss, grader_loss, images, pt_loss)
}

/// Median canal-point error (mm, in-plane) of the localiser on samples with targets.
fn canal_error_mm(
    net: &Net,
    samples: &[&StudySample],
    pre: &Preprocessing,
    device: &Device,
) -> Option<f64> {
    let g = pre.localiser_grid;
    let mut errs = Vec::new();
    for s in samples {
        let Some((x, t)) = &s.localiser else { continue };
        let xt = Tensor::<4>::from_data(
            TensorData::new(x.clone(), [1, pre.localiser_slices, g, g]),
            device,
        );
        let logits: Vec<f32> = net
            .localiser
            .forward(xt)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        // Targets are in level order top to bottom, so sorting by row (the grid's rows run
        // head to foot on a sagittal image) pairs them; the error is in grid cells times spacing.
        let peaks = decode_levels(&logits, g, g, |r, _| -r);
        for (p, (r, c)) in peaks.iter().zip(t.iter()) {
            errs.push(
                ((p.row - r).powi(2) + (p.column - c).powi(2)).sqrt() * pre.localiser_spacing_mm,
            );
        }
    }
    if errs.is_empty() {
        return None;
    }
    errs.sort_by(f64::total_cmp);
    Some(errs[errs.len() / 2])
}

/// Median point error (mm) of a point localiser on examples with targets: in-plane distance on
/// the grid, plus the distance between the chosen and the labelled candidate slice.
fn point_error_mm(
    loc: &crate::net::Localiser,
    examples: &[&PointExample],
    pre: &Preprocessing,
    device: &Device,
) -> Option<f64> {
    let spec = pre.point_spec();
    let g = spec.rows;
    let mut errs = Vec::new();
    for chunk in examples.chunks(16) {
        let (cand, outs) = (chunk[0].candidates, chunk[0].targets.len());
        let n = chunk.len();
        let x: Vec<f32> = chunk.iter().flat_map(|e| e.data.iter().copied()).collect();
        let xt = Tensor::<4>::from_data(TensorData::new(x, [n * cand, spec.slices, g, g]), device);
        let logits: Vec<f32> = loc
            .forward(xt)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        if logits.len() != n * cand * outs * g * g {
            return None;
        }
        for (i, e) in chunk.iter().enumerate() {
            for (o, tg) in e.targets.iter().enumerate() {
                let Some((kt, r, c)) = tg else { continue };
                let mut ch = Vec::with_capacity(cand * g * g);
                for j in 0..cand {
                    let at = ((i * cand + j) * outs + o) * g * g;
                    ch.extend_from_slice(&logits[at..at + g * g]);
                }
                let (k, p) = decode_over_slices(&ch, cand, g, g);
                let inplane =
                    ((p.row - r).powi(2) + (p.column - c).powi(2)) * spec.spacing_mm.powi(2);
                let across = ((k as f64 - *kt as f64) * e.slice_mm).powi(2);
                errs.push((inplane + across).sqrt());
            }
        }
    }
    if errs.is_empty() {
        return None;
    }
    errs.sort_by(f64::total_cmp);
    Some(errs[errs.len() / 2])
}

/// Median offsets from the canal point to every other point, and the add-one smoothed prior.
fn offsets_and_prior(
    samples: &[&StudySample],
    labels: &BTreeMap<StudyId, discus_core::formats::StudyLabels>,
) -> (BTreeMap<String, [f64; 3]>, BTreeMap<String, [f64; 3]>) {
    let mut offsets = BTreeMap::new();
    for c in Condition::ALL.into_iter().skip(1) {
        for l in Level::ALL {
            let mut d: [Vec<f64>; 3] = Default::default();
            for s in samples {
                if let (Some(p), Some(q)) = (
                    s.points_mm.get(&(c, l)),
                    s.points_mm.get(&(Condition::SpinalCanalStenosis, l)),
                ) {
                    for (i, di) in d.iter_mut().enumerate() {
                        di.push(p[i] - q[i]);
                    }
                }
            }
            if d[0].is_empty() {
                continue;
            }
            let med = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let [mut a, mut b, mut cc] = d;
            offsets.insert(
                LabelColumn {
                    condition: c,
                    level: l,
                }
                .name(),
                [med(&mut a), med(&mut b), med(&mut cc)],
            );
        }
    }
    let mut prior = BTreeMap::new();
    for col in LabelColumn::all() {
        let mut n = [1.0f64; 3];
        for s in samples {
            if let Some(g) = labels.get(&s.study).and_then(|l| l.grades[col.index()]) {
                n[g.index()] += 1.0;
            }
        }
        let t: f64 = n.iter().sum();
        prior.insert(col.name(), [n[0] / t, n[1] / t, n[2] / t]);
    }
    (offsets, prior)
}

/// Logits, grades and severity weights of one group's crops.
pub(crate) type GroupLogits = (Vec<[f64; 3]>, Vec<usize>, Vec<f64>);

/// Grader logits of the crops of `samples`, by group: `(logits, grades, severity weights)`.
pub(crate) fn grader_logits(
    net: &Net,
    samples: &[&StudySample],
    pre: &Preprocessing,
    device: &Device,
) -> BTreeMap<ConditionGroup, GroupLogits> {
    let c = &pre.crop;
    let mut out = BTreeMap::new();
    for group in ConditionGroup::ALL {
        let ex: Vec<&crate::prep::CropExample> = samples
            .iter()
            .filter_map(|s| s.crops.get(&group))
            .flatten()
            .collect();
        let mut logits = Vec::with_capacity(ex.len());
        for chunk in ex.chunks(64) {
            let n = chunk.len();
            let x: Vec<f32> = chunk.iter().flat_map(|e| e.data.iter().copied()).collect();
            let x = Tensor::<4>::from_data(
                TensorData::new(x, [n, c.slices, c.rows, c.columns]),
                device,
            );
            let v: Vec<f32> = net
                .grader(group)
                .forward(x)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap_or_default();
            logits.extend(v.chunks(3).map(|z| [z[0] as f64, z[1] as f64, z[2] as f64]));
        }
        let grades: Vec<usize> = ex.iter().map(|e| e.grade).collect();
        let w: Vec<f64> = ex.iter().map(|e| weight(e.grade) as f64).collect();
        out.insert(group, (logits, grades, w));
    }
    out
}

/// The temperature of each group fitted on the held-out samples (none without them).
fn fit_temperatures(
    net: &Net,
    held: &[&StudySample],
    pre: &Preprocessing,
    device: &Device,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    if held.is_empty() {
        return out;
    }
    for (group, (logits, grades, w)) in grader_logits(net, held, pre, device) {
        if logits.len() == grades.len() && !logits.is_empty() {
            out.insert(
                group.as_str().to_string(),
                crate::calibrate::fit_temperature(&logits, &grades, &w),
            );
        }
    }
    out
}

fn hardware(device: &Device) -> String {
    format!(
        "{} {}, {} logical cores, burn {}",
        std::env::consts::ARCH,
        std::env::consts::OS,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        backend_name(device)
    )
}

/// The checkpoint's parameter ids, in the networks' visiting order.
const PARAM_IDS_FILE: &str = "param_ids.json";

/// Every float parameter's id, in visiting order.
struct IdList(Vec<u64>);

impl burn::module::ModuleVisitor for IdList {
    fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
        self.0.push(p.id.val());
    }
}

/// Gives the parameters, in visiting order, the ids a checkpoint recorded.
struct SetIds<'a> {
    ids: &'a [u64],
    at: usize,
}

impl burn::module::ModuleMapper for SetIds<'_> {
    fn map_float<const D: usize>(
        &mut self,
        mut p: burn::module::Param<Tensor<D>>,
    ) -> burn::module::Param<Tensor<D>> {
        if let Some(id) = self.ids.get(self.at) {
            p.id = burn::module::ParamId::from(*id);
        }
        self.at += 1;
        p
    }
}

/// The resumed networks with the parameter ids of the checkpoint (when it recorded them): Adam's
/// saved state is keyed by parameter id, and weights loaded into fresh networks get new ids, so
/// without this the optimiser would restart from empty moments after a resume.
fn with_checkpoint_ids(net: Net, dir: &Path) -> Result<Net, ModelError> {
    let p = dir.join(PARAM_IDS_FILE);
    let Ok(bytes) = std::fs::read(&p) else {
        return Ok(net);
    };
    let ids: Vec<u64> = serde_json::from_slice(&bytes).map_err(|e| ModelError::BadModel {
        path: p.clone(),
        what: format!("unreadable parameter ids: {e}"),
    })?;
    let mut count = IdList(Vec::new());
    net.visit(&mut count);
    if count.0.len() != ids.len() {
        return Err(ModelError::BadModel {
            path: p,
            what: format!(
                "{} parameter ids for {} parameters",
                ids.len(),
                count.0.len()
            ),
        });
    }
    Ok(net.map(&mut SetIds { ids: &ids, at: 0 }))
}

fn write_checkpoint(
    dir: &Path,
    net: &Net,
    optim: &ModuleOptimizer,
    state: &CheckpointState,
) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut ids = IdList(Vec::new());
    net.visit(&mut ids);
    let p = dir.join(PARAM_IDS_FILE);
    discus_core::fsio::atomic_write(&p, &serde_json::to_vec(&ids.0).expect("ids"))
        .map_err(io_err(&p))?;
    let w = dir.join(crate::WEIGHTS_FILE);
    discus_core::fsio::atomic_write(&w, &weights_bytes(net)?).map_err(io_err(&w))?;
    let o = dir.join(OPTIMIZER_FILE);
    let tmp = discus_core::fsio::temp_beside(&o).map_err(io_err(&o))?;
    optim
        .save(&tmp)
        .map_err(|e| ModelError::Request(format!("{}: saving the optimiser: {e}", o.display())))?;
    tmp.persist(&o).map_err(|e| io_err(&o)(e.error))?;
    let s = dir.join(STATE_FILE);
    discus_core::fsio::atomic_write(&s, &serde_json::to_vec_pretty(state).expect("state"))
        .map_err(io_err(&s))
}

/// Trains a model as `request` says and writes its folder; `progress` sees every step.
pub fn train(
    request: &TrainRequest,
    progress: &(dyn Fn(TrainProgress) + Sync),
) -> Result<TrainResult, ModelError> {
    if request.datasets.is_empty() {
        return Err(ModelError::Request("no training dataset".into()));
    }
    if request.epochs == 0 || request.batch_studies == 0 {
        return Err(ModelError::Request(
            "epochs and studies per step must be at least 1".into(),
        ));
    }
    // Before any data is read (building a crop cache takes minutes).
    if request.graders_only && request.init.is_none() {
        return Err(ModelError::Request(
            "training the graders only needs an initial model (--init) for the localisers".into(),
        ));
    }
    if request.graders_only && request.localisers_only {
        return Err(ModelError::Request(
            "the graders only and the localisers only: nothing would be trained; choose one".into(),
        ));
    }
    if request.held_fold > 0 && request.held_fold >= request.folds {
        return Err(ModelError::Request(format!(
            "held-out fold {} needs at least {} folds (--folds {})",
            request.held_fold,
            request.held_fold + 1,
            request.folds
        )));
    }
    if request.fresh_graders && request.init.is_none() {
        return Err(ModelError::Request(
            "fresh graders need an initial model (--init) for the localisers".into(),
        ));
    }
    let device = crate::default_device();
    let ad = device.clone().autodiff();
    let init_card = match &request.init {
        Some(dir) => Some(ModelCard::read(&dir.join(crate::CARD_FILE))?),
        None => None,
    };
    let (init_arch, pre) = match &init_card {
        Some(c) => (c.architecture, c.preprocessing),
        None => (request.architecture, request.preprocessing),
    };
    let arch = Architecture {
        grader_ordinal: request.grader_ordinal.unwrap_or(init_arch.grader_ordinal),
        ..init_arch
    };
    // New graders on the initial model's localisers: asked for, or another head than its own.
    let new_graders = init_card.is_some() && (arch != init_arch || request.fresh_graders);

    // Samples (one bad study is reported and skipped).
    let mut samples = Vec::new();
    let mut skipped = Vec::new();
    let mut all_labels = BTreeMap::new();
    let mut cards = Vec::new();
    for root in &request.datasets {
        if let Some(card) = load_card(root)? {
            cards.push(card);
        }
        let ds = Dataset::open(root)?;
        let labels = ds.labels()?;
        let total = labels.len();
        for (i, l) in labels.iter().enumerate() {
            all_labels.insert(l.study, l.clone());
            if request.cache.is_some() {
                continue;
            }
            match study_sample(&ds, l.study, l, &pre) {
                Ok(s) => samples.push(s),
                Err(e) => skipped.push((l.study, e.to_string())),
            }
            progress(TrainProgress::Preparing { done: i + 1, total });
        }
    }
    if let Some(dir) = &request.cache {
        crate::cache::build(
            dir,
            &request.datasets,
            &pre,
            crate::cache::CacheOptions::default(),
            &|done, total| progress(TrainProgress::Preparing { done, total }),
        )?;
        let c = crate::cache::CropCache::open(dir, &request.datasets, &pre)?;
        samples = c.samples()?;
        skipped = c.skipped();
    }
    if request.graders_only {
        // Without localiser inputs and point examples the losses are the graders' alone.
        for s in &mut samples {
            s.localiser = None;
            s.foraminal_points.clear();
            s.subarticular_points.clear();
        }
    }
    let held = |s: &StudySample| {
        request.folds >= 2 && s.study.0 % request.folds as u64 == request.held_fold as u64
    };
    if request.localisers_only {
        // The training studies' grader crops leave the loss; the held-out ones stay for the
        // graders' held-out loss and temperatures.
        for s in samples.iter_mut().filter(|s| !held(s)) {
            s.crops.clear();
        }
    }
    let train_set: Vec<&StudySample> = samples.iter().filter(|s| !held(s)).collect();
    let held_set: Vec<&StudySample> = samples.iter().filter(|s| held(s)).collect();
    if train_set.is_empty() {
        return Err(ModelError::Request(format!(
            "no usable labelled study to train on ({} skipped)",
            skipped.len()
        )));
    }
    let (offsets_mm, prior) = offsets_and_prior(&train_set, &all_labels);

    // Start: a checkpoint of the same request, the initial model, or a seeded initialisation.
    let ckpt = request.out.join(CHECKPOINT_DIR);
    let fingerprint = request.fingerprint();
    let mut state = CheckpointState {
        fingerprint: fingerprint.clone(),
        epochs_done: 0,
        metrics: Vec::new(),
        seconds: 0.0,
        best: None,
    };
    let mut optim: ModuleOptimizer = AdamConfig::new().init();
    let mut net = if ckpt.join(STATE_FILE).is_file() {
        let sp = ckpt.join(STATE_FILE);
        let old: CheckpointState =
            serde_json::from_slice(&std::fs::read(&sp).map_err(io_err(&sp))?).map_err(|e| {
                ModelError::BadModel {
                    path: sp.clone(),
                    what: format!("unreadable checkpoint state: {e}"),
                }
            })?;
        if old.fingerprint != fingerprint {
            return Err(ModelError::Request(format!(
                "{} holds a checkpoint of a different training request; choose another output folder",
                request.out.display()
            )));
        }
        let net = with_checkpoint_ids(
            load_weights(&ckpt.join(crate::WEIGHTS_FILE), &arch, &ad)?,
            &ckpt,
        )?;
        let op = ckpt.join(OPTIMIZER_FILE);
        optim = optim.load(&op).map_err(|e| ModelError::BadModel {
            path: op.clone(),
            what: format!("unreadable optimiser state: {e}"),
        })?;
        state = old;
        progress(TrainProgress::Resumed {
            epochs_done: state.epochs_done,
        });
        net
    } else if let Some(dir) = &request.init {
        let mut net = load_weights(&dir.join(crate::WEIGHTS_FILE), &init_arch, &ad)?;
        if new_graders {
            let fresh = seeded_net(&arch, request.seed, &ad);
            net.spinal = fresh.spinal;
            net.foraminal = fresh.foraminal;
            net.subarticular = fresh.subarticular;
        }
        net
    } else {
        seeded_net(&arch, request.seed, &ad)
    };
    let resumed_after = state.epochs_done;

    let start = std::time::Instant::now();
    let base_seconds = state.seconds;
    let mut images = 0usize;
    let mut step_seconds = 0.0;
    let replicas = crate::parallel::train_replicas();
    for epoch in state.epochs_done + 1..=request.epochs {
        let mut order: Vec<usize> = (0..train_set.len()).collect();
        let mut rng =
            rand_chacha::ChaCha8Rng::seed_from_u64(request.seed.wrapping_add(epoch as u64));
        order.shuffle(&mut rng);
        let steps = order.len().div_ceil(request.batch_studies);
        let (mut loc_sum, mut grad_sum, mut pt_sum, mut n) = (0.0, 0.0, 0.0, 0usize);
        for (k, chunk) in order.chunks(request.batch_studies).enumerate() {
            let t0 = std::time::Instant::now();
            // Augmented copies of the canal-localiser inputs and grader crops (the rest is shared
            // unchanged).
            let augmented: Vec<Option<StudySample>> = chunk
                .iter()
                .map(|i| {
                    let s = train_set[*i];
                    let loc = match (&s.localiser, request.localiser_shift_cells) {
                        (Some((x, t)), m) if m > 0 => {
                            let g = pre.localiser_grid;
                            let (d, gain) = localiser_shift(t, g, m, request.seed, epoch, s.study);
                            Some(shifted_localiser(x, t, pre.localiser_slices, g, d, gain))
                        }
                        _ => None,
                    };
                    let crops = (request.crop_shift_cells > 0).then(|| {
                        shifted_crops(s, &pre, request.crop_shift_cells, request.seed, epoch)
                    });
                    if loc.is_none() && crops.is_none() {
                        return None;
                    }
                    // Only what is not replaced is copied.
                    Some(StudySample {
                        study: s.study,
                        localiser: loc.or_else(|| s.localiser.clone()),
                        crops: crops.unwrap_or_else(|| s.crops.clone()),
                        points_mm: s.points_mm.clone(),
                        foraminal_points: s.foraminal_points.clone(),
                        subarticular_points: s.subarticular_points.clone(),
                    })
                })
                .collect();
            let batch: Vec<&StudySample> = chunk
                .iter()
                .zip(&augmented)
                .map(|(i, a)| a.as_ref().unwrap_or(train_set[*i]))
                .collect();
            let lr = scheduled_rate(
                request.learning_rate,
                request.cosine_epochs,
                steps,
                (epoch - 1) * steps + k,
            );
            // Data parallel over DISCUS_TRAIN_REPLICAS threads (default 1: the plain step).
            let (grads, l, g, im, pl) = crate::parallel::batch_grads(
                &net,
                &batch,
                &pre,
                &ad,
                replicas,
                request.any_severe_weight,
            );
            if let Some(grads) = grads {
                net = optim.step(lr, net, grads);
            }
            step_seconds += t0.elapsed().as_secs_f64();
            images += im;
            loc_sum += l * batch.len() as f64;
            grad_sum += g * batch.len() as f64;
            pt_sum += pl * batch.len() as f64;
            n += batch.len();
            progress(TrainProgress::Step {
                epoch,
                step: k + 1,
                steps,
            });
        }
        let (held_loss, held_err, held_fo, held_su) = if held_set.is_empty() {
            (None, None, None, None)
        } else {
            let v = net.valid();
            let (mut s, mut all) = (0.0, 0.0);
            for chunk in held_set.chunks(request.batch_studies) {
                let (_, l, g, _, p) =
                    batch_loss(&v, chunk, &pre, &device, request.any_severe_weight);
                s += g * chunk.len() as f64;
                all += (l + g + p) * chunk.len() as f64;
            }
            let all = all / held_set.len() as f64;
            if all.is_finite() && state.best.is_none_or(|(_, b)| all < b) {
                let w = ckpt.join(BEST_FILE);
                std::fs::create_dir_all(&ckpt).map_err(io_err(&ckpt))?;
                discus_core::fsio::atomic_write(&w, &weights_bytes(&v)?).map_err(io_err(&w))?;
                state.best = Some((epoch, all));
            }
            let fo: Vec<&PointExample> =
                held_set.iter().flat_map(|b| &b.foraminal_points).collect();
            let su: Vec<&PointExample> = held_set
                .iter()
                .flat_map(|b| &b.subarticular_points)
                .collect();
            (
                Some(s / held_set.len() as f64),
                canal_error_mm(&v, &held_set, &pre, &device),
                point_error_mm(&v.foraminal_localiser, &fo, &pre, &device),
                point_error_mm(&v.subarticular_localiser, &su, &pre, &device),
            )
        };
        let m = EpochMetrics {
            epoch,
            localiser_loss: loc_sum / n.max(1) as f64,
            grader_loss: grad_sum / n.max(1) as f64,
            point_loss: pt_sum / n.max(1) as f64,
            held_out_grader_loss: held_loss,
            held_out_canal_error_mm: held_err,
            held_out_foraminal_error_mm: held_fo,
            held_out_subarticular_error_mm: held_su,
        };
        state.metrics.push(m.clone());
        state.epochs_done = epoch;
        state.seconds = base_seconds + start.elapsed().as_secs_f64();
        write_checkpoint(&ckpt, &net, &optim, &state)?;
        progress(TrainProgress::Epoch(m));
    }

    // With a held-out fold the final model is its best epoch.
    let best_epoch = state.best.map(|b| b.0);
    if let Some(b) = best_epoch {
        if b != state.epochs_done {
            net = load_weights(&ckpt.join(BEST_FILE), &arch, &ad)?;
        }
    }
    // Without a held-out fold a fine-tuned model keeps its initial model's temperatures (not
    // when its graders were replaced: theirs belonged to the old ones).
    // Graders left out of the training (`localisers_only`) keep what they had: the initial
    // model's temperatures, or none for untrained ones.
    let temperatures = match (&init_card, held_set.is_empty()) {
        (Some(c), _) if request.localisers_only && !new_graders => c.temperatures.clone(),
        _ if request.localisers_only => BTreeMap::new(),
        (Some(c), true) if !new_graders => c.temperatures.clone(),
        _ => fit_temperatures(&net.valid(), &held_set, &pre, &device),
    };
    let mut provenance =
        Provenance::new(format!("discus {} train", env!("CARGO_PKG_VERSION")), cards);
    if let Some(c) = &init_card {
        provenance.inputs.push(c.provenance.clone());
    }
    let mut card = ModelCard {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        discus_version: env!("CARGO_PKG_VERSION").into(),
        architecture: arch,
        preprocessing: pre,
        offsets_mm,
        prior,
        temperatures,
        training: TrainingInfo {
            seed: request.seed,
            epochs: state.epochs_done,
            learning_rate: request.learning_rate,
            batch_studies: request.batch_studies,
            train_studies: train_set.len(),
            held_out_studies: held_set.len(),
            folds: request.folds,
            held_fold: request.held_fold,
            seconds: state.seconds,
            finished_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            hardware: hardware(&device),
            init: request.init.as_ref().map(|p| p.display().to_string()),
            graders_only: request.graders_only,
            localisers_only: request.localisers_only,
            fresh_graders: new_graders,
            best_epoch,
        },
        metrics: state.metrics.clone(),
        provenance,
    };
    let net = net.valid();
    // The temperatures where prediction grades: on the held-out fold's predictions, the
    // localisers' points included (crate::calibrate). The labelled-point fit above stands for a
    // group without predicted findings.
    if !held_set.is_empty() && !request.localisers_only {
        let held: std::collections::BTreeSet<StudyId> = held_set.iter().map(|s| s.study).collect();
        let model = crate::Model::new(card.clone(), net, device.clone());
        let fit = crate::calibrate::fit_on_predictions(
            &model,
            &request.datasets,
            &|s| held.contains(&s),
            &|done, total| progress(TrainProgress::Calibrating { done, total }),
        )?;
        card.temperatures.extend(fit.temperatures());
        save_folder(&request.out, &card, &model.net)?;
    } else {
        save_folder(&request.out, &card, &net)?;
    }
    Ok(TrainResult {
        card,
        resumed_after,
        skipped,
        images_per_second: if step_seconds > 0.0 {
            images as f64 / step_seconds
        } else {
            0.0
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_any_severe_term_is_weighted_as_asked() {
        use crate::prep::CropExample;
        use discus_core::{Condition, Level};
        let pre = Preprocessing::default();
        let c = pre.crop;
        let n = c.slices * c.rows * c.columns;
        let d = Device::flex();
        let net = seeded_net(&Architecture::default(), 3, &d);
        let grades = [0usize, 1, 2, 0, 1];
        let data: Vec<Vec<f32>> = (0..5)
            .map(|k| (0..n).map(|i| ((i * (k + 3)) % 17) as f32 / 17.0).collect())
            .collect();
        let mut crops = BTreeMap::new();
        crops.insert(
            ConditionGroup::Spinal,
            (0..5)
                .map(|k| CropExample {
                    data: data[k].clone(),
                    condition: Condition::SpinalCanalStenosis,
                    level: Level::ALL[k],
                    grade: grades[k],
                })
                .collect(),
        );
        let s = StudySample {
            study: StudyId(3),
            localiser: None,
            crops,
            points_mm: BTreeMap::new(),
            foraminal_points: Vec::new(),
            subarticular_points: Vec::new(),
        };
        let g = |w: f64| batch_loss(&net, &[&s], &pre, &d, w).2;
        // The term, computed here: the study has a Severe level (y = 1), so it is -ln of the
        // largest Severe probability over its five levels.
        let x = Tensor::<4>::from_data(
            TensorData::new(data.concat(), [5, c.slices, c.rows, c.columns]),
            &d,
        );
        let p = softmax(net.spinal.forward(x), 1)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let pm = (0..5).map(|k| p[3 * k + 2] as f64).fold(0.0, f64::max);
        let term = -pm.ln();
        let (g0, g1, g2) = (g(0.0), g(1.0), g(2.5));
        assert!((g1 - g0 - term).abs() < 1e-4, "{g1} - {g0} vs {term}");
        assert!(
            (g2 - g0 - 2.5 * term).abs() < 1e-4,
            "{g2} - {g0} vs 2.5 x {term}"
        );
    }

    #[test]
    fn the_cosine_schedule_runs_from_the_rate_to_five_percent() {
        // 1e-3 over 4 epochs of 10 steps: cos(0) = 1, cos(pi / 2) = 0, cos(pi) = -1.
        assert_eq!(scheduled_rate(1e-3, 0, 10, 37), 1e-3);
        assert!((scheduled_rate(1e-3, 4, 10, 0) - 1e-3).abs() < 1e-15);
        assert!((scheduled_rate(1e-3, 4, 10, 20) - 1e-3 * (0.05 + 0.95 * 0.5)).abs() < 1e-15);
        assert!((scheduled_rate(1e-3, 4, 10, 40) - 5e-5).abs() < 1e-15);
        assert!((scheduled_rate(1e-3, 4, 10, 400) - 5e-5).abs() < 1e-15);
    }

    #[test]
    fn grader_crops_move_by_their_own_seeded_shift() {
        use crate::prep::CropExample;
        use discus_core::{Condition, Level};
        let pre = Preprocessing::default();
        let c = pre.crop;
        let n = c.slices * c.rows * c.columns;
        // One bright cell at the crop centre on every slice.
        let mut x = vec![0f32; n];
        let centre = (c.rows / 2) * c.columns + c.columns / 2;
        for s in 0..c.slices {
            x[s * c.rows * c.columns + centre] = 1.0;
        }
        let ex = |level| CropExample {
            data: x.clone(),
            condition: Condition::SpinalCanalStenosis,
            level,
            grade: 0,
        };
        let mut crops = BTreeMap::new();
        crops.insert(ConditionGroup::Spinal, Level::ALL.map(ex).to_vec());
        let s = StudySample {
            study: StudyId(7),
            localiser: None,
            crops,
            points_mm: BTreeMap::new(),
            foraminal_points: Vec::new(),
            subarticular_points: Vec::new(),
        };
        let mut moves = std::collections::BTreeSet::new();
        for epoch in 1..=8 {
            let a = shifted_crops(&s, &pre, 3, 9, epoch);
            assert_eq!(a, shifted_crops(&s, &pre, 3, 9, epoch), "seeded");
            for (i, e) in a[&ConditionGroup::Spinal].iter().enumerate() {
                let ((dr, dc), gain) =
                    crop_shift(3, 9, epoch, StudyId(7), ConditionGroup::Spinal, i);
                assert!(dr.abs() <= 3 && dc.abs() <= 3 && (0.9..=1.1).contains(&gain));
                // The bright cell moved by (dr, dc) on every slice, scaled by the gain.
                let at = ((c.rows / 2) as i64 + dr) as usize * c.columns
                    + ((c.columns / 2) as i64 + dc) as usize;
                for k in 0..c.slices {
                    let plane = &e.data[k * c.rows * c.columns..(k + 1) * c.rows * c.columns];
                    assert_eq!(plane[at], gain);
                    assert_eq!(plane.iter().filter(|v| **v != 0.0).count(), 1);
                }
                assert_eq!((e.level, e.grade), (Level::ALL[i], 0));
                moves.insert((dr, dc));
            }
        }
        // Crops and epochs draw different shifts.
        assert!(moves.len() > 10, "{moves:?}");
    }

    #[test]
    fn a_shifted_localiser_input_moves_with_its_targets() {
        // Two slices of 8 x 8; one bright pixel per slice at the first target.
        let g = 8;
        let mut x = vec![0f32; 2 * g * g];
        x[2 * g + 3] = 1.0; // slice 0, row 2, column 3
        x[g * g + 2 * g + 3] = 0.5; // slice 1
        let t = [(2.0, 3.0), (3.0, 3.0), (4.0, 3.5), (5.0, 4.0), (6.0, 4.0)];
        let (y, u) = shifted_localiser(&x, &t, 2, g, (-1, 2), 2.0);
        assert_eq!(y[g + 5], 2.0); // row 1, column 5
        assert_eq!(y[g * g + g + 5], 1.0);
        assert_eq!(y.iter().filter(|v| **v != 0.0).count(), 2);
        assert_eq!(u[0], (1.0, 5.0));
        assert_eq!(u[4], (5.0, 6.0));
        // Seeded shifts never push a target off the grid (one cell of margin) and stay in range.
        for epoch in 1..50 {
            let ((dr, dc), gain) = localiser_shift(&t, g, 6, 3, epoch, StudyId(11));
            assert!((0.9..=1.1).contains(&gain));
            assert!(dr.abs() <= 6 && dc.abs() <= 6);
            for (r, c) in t {
                let (r, c) = (r + dr as f64, c + dc as f64);
                assert!(r >= 1.0 && c >= 1.0 && r <= 6.0 && c <= 6.0, "{dr} {dc}");
            }
        }
    }
}
