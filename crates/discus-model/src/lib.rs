//! # discus-model
//!
//! The diagnostic-assist model, localise then grade, on burn (one model code for every backend; the
//! device picks the backend: pure-Rust CPU `flex` by default, `wgpu` behind the `wgpu` feature).
//!
//! - **Localise** ([`net::Localiser`]): the middle sagittal T2/STIR slices, resampled to a fixed mm
//!   grid ([`prep::Preprocessing`]), give five heat maps; decoded peaks are sorted head to foot and
//!   named L1/L2 .. L5/S1 ([`heatmap`]), i.e. counted upwards from the sacrum.
//! - **Subarticular points** (axial T2): per level, the axial series, stack and slice by
//!   projection of the canal point; the subarticular localiser's two heat maps (left, right) on
//!   crops centred on the projection, on that slice and `n` neighbours each side
//!   ([`prep::Preprocessing::subarticular_candidates`], 1), each side's softmax over all of them
//!   choosing its slice and point; trained on windows that hold the labelled slice anywhere.
//! - **Foraminal points** (sagittal T1): the canal point, moved through the sagittal plane onto
//!   the midpoint of its level's two subarticular points (the canal localiser's points lie on the
//!   middle slice, the canal on the patient's midline), plus the median offset (patient mm)
//!   learned for that side and level from the labelled points ([`ModelCard::offsets_mm`]) gives
//!   the expected point; its projection on the T1 series gives the expected parasagittal slice;
//!   the foraminal localiser reads 2.5D crops centred there on `2 n + 1` candidate slices and a
//!   softmax over all of them together chooses the slice and the point
//!   ([`heatmap::decode_over_slices`]).
//! - **Spinal crops** (sagittal T2/STIR): at the canal point moved through the plane onto the
//!   midline ([`predict::canal_on_midline`]), a weighted mean of the midpoints of its level's
//!   subarticular points (two thirds: in-plane on the axial slices, so left-right to the pixel) and
//!   foraminal points (one third: as coarse as the sagittal slices), [`predict::midline_point`].
//! - **Fallback**: without the sagittal T1 (or axial) series, foraminal points are the canal point
//!   plus the offset projected on the sagittal T2/STIR series ([`PointSource::CanalOffset`]), and
//!   subarticular findings get the training prior. Findings say which ([`PointSource`]).
//! - **Grade** ([`net::Grader`], one per condition group): 2.5D crops around each point; the right
//!   subarticular crops are mirrored so both sides share weights. Loss: weighted cross-entropy with
//!   weights 1/2/4 (Normal/Mild, Moderate, Severe) plus the competition's any-severe term on the
//!   spinal levels of each study. Probabilities are temperature-scaled per group
//!   ([`calibrate`], fitted on the held-out fold).
//! - **Train** ([`train::train`]): deterministic under a seed, a checkpoint each epoch, resumable
//!   (a resume restores Adam's state and the parameter ids it is keyed by); with an initial model,
//!   optionally the graders alone ([`TrainRequest::graders_only`]).
//! - **Predict** ([`predict::predict_study`]): all 25 rows of a study, the point of each finding and
//!   the series it came from; a missing series falls back to what is left, and the finding says so.
//!
//! - **Explain** ([`explain::explain_study`]): per finding, the localiser's heat map and the
//!   grader's occlusion map as PNG overlays on the source slice's own pixel grid.
//! - **Stability** ([`stability::stability_study`]): the spread of each finding's probabilities
//!   under small perturbations (intensity, noise, ±1 slice, ±3°, ±2 mm).
//! - **Rescan agreement** ([`rescan`]): both scans of the same patients (`discus synth --rescan`)
//!   predicted and compared: weighted kappa, probability difference, grade flips, and point
//!   distances in each scan's own canal frame.
//! - **Findings page** ([`page`]): an HTML page per study and an index of the predicted studies.
//! - **Fused CPU inference** ([`fused`]): on the default flex device, prediction runs the trained
//!   weights through discus's own CPU kernels (direct convolution, run-time SIMD dispatch), about
//!   twice PyTorch's speed on these networks; equal to the burn networks within float rounding.
//!
//! A model is a folder ([`Model::save`], [`Model::load`]): `weights.safetensors` and `model.toml`
//! ([`ModelCard`]: architecture, preprocessing, offsets, prior, the training data's dataset cards
//! and licence, metrics, time, hardware, discus version).

#![deny(missing_docs)]

pub mod backend;
pub mod cache;
pub mod calibrate;
pub mod explain;
pub mod export;
pub mod fused;
pub mod heatmap;
pub mod net;
pub mod page;
pub mod parallel;
pub mod predict;
pub mod prep;
pub mod rescan;
pub mod stability;
pub mod train;

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use discus_core::governance::Provenance;
use discus_core::{LabelColumn, StudyId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use net::LocaliserNet;
pub use predict::{Finding, FindingPoint, PointSource, StudyPrediction};
pub use train::{train, TrainProgress, TrainRequest, TrainResult};

/// The `format` value of every `model.toml` this crate writes.
pub const FORMAT: &str = "discus-model";
/// The version of the model folder layout and weights naming this build reads and writes.
/// Version 2 added the foraminal and subarticular localisers and the temperatures; version 3 gave
/// every heat-map network a third pooling level (a receptive field spanning the canal grid), so
/// version-2 weights do not fit and are refused.
pub const FORMAT_VERSION: u32 = 3;
/// The model card file in a model folder.
pub const CARD_FILE: &str = "model.toml";
/// The weights file in a model folder.
pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// Why a model could not be trained, saved, loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The dataset could not be read.
    #[error(transparent)]
    Dataset(#[from] discus_data::dataset::DatasetError),
    /// A study's images do not give the inputs a network needs.
    #[error("study {study}: {what}")]
    Input {
        /// The study.
        study: StudyId,
        /// What is wrong.
        what: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A model folder is not one this discus can read.
    #[error("{}: {what}", path.display())]
    BadModel {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A training request cannot be carried out.
    #[error("training: {0}")]
    Request(String),
    /// A dataset card could not be read.
    #[error(transparent)]
    Card(#[from] discus_core::governance::CardError),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number (1-based).
    pub epoch: usize,
    /// Mean localiser loss (spatial cross-entropy) over the training studies.
    pub localiser_loss: f64,
    /// Mean grader loss (weighted cross-entropy + any-severe) over the training studies.
    pub grader_loss: f64,
    /// Mean point-localiser loss (foraminal + subarticular spatial cross-entropy).
    #[serde(default)]
    pub point_loss: f64,
    /// Grader loss on the held-out fold, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out_grader_loss: Option<f64>,
    /// Median canal-point localisation error on the held-out fold, mm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out_canal_error_mm: Option<f64>,
    /// Median foraminal-point error on the held-out fold, mm (3D, from the labelled point; a wrong
    /// slice counts its distance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out_foraminal_error_mm: Option<f64>,
    /// Median subarticular-point error on the held-out fold, mm (in-plane, on the labelled slice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out_subarticular_error_mm: Option<f64>,
}

/// How a model was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// Seed of initialisation and shuffling.
    pub seed: u64,
    /// Epochs run.
    pub epochs: usize,
    /// Learning rate (Adam).
    pub learning_rate: f64,
    /// Studies per step.
    pub batch_studies: usize,
    /// Studies trained on.
    pub train_studies: usize,
    /// Studies held out (fold `held_fold` of `folds`), 0 when `folds` < 2.
    pub held_out_studies: usize,
    /// Number of folds the studies were split into (by study id); fold `held_fold` is held out.
    pub folds: usize,
    /// The fold held out (`id % folds == held_fold`).
    #[serde(default)]
    pub held_fold: usize,
    /// Training time, seconds (wall clock; summed over resumed runs).
    pub seconds: f64,
    /// When training finished (seconds since the Unix epoch).
    pub finished_unix: u64,
    /// Hardware: CPU architecture, logical cores, OS, burn backend.
    pub hardware: String,
    /// The model this one was fine-tuned from (`--init`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
    /// Whether only the graders were trained (`--graders-only`; the localisers are the initial
    /// model's).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub graders_only: bool,
    /// Whether only the localisers were trained (`--localisers-only`; the graders are the initial
    /// model's, or untrained without one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub localisers_only: bool,
    /// Whether the graders were started afresh on the initial model's localisers
    /// (`--fresh-graders`, or another grader head than the initial model's).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh_graders: bool,
    /// With a held-out fold: the epoch whose weights the model has (the lowest held-out loss).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_epoch: Option<usize>,
}

/// `model.toml`: everything needed to rebuild, run and judge a model, besides its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// discus version that wrote it.
    pub discus_version: String,
    /// Network sizes.
    pub architecture: net::Architecture,
    /// Preprocessing parameters.
    pub preprocessing: prep::Preprocessing,
    /// Median offset (patient mm) from the canal point to each foraminal and subarticular point,
    /// keyed `<condition>_<level>` (the train.csv column name), learned from the training points.
    pub offsets_mm: BTreeMap<String, [f64; 3]>,
    /// Training label frequencies per row (add-one smoothed), keyed by column name: the fallback
    /// probabilities of a finding whose series is missing.
    pub prior: BTreeMap<String, [f64; 3]>,
    /// Temperature per condition group (`spinal`, `foraminal`, `subarticular`; see [`calibrate`]),
    /// fitted on the held-out fold; a missing group means 1.
    #[serde(default)]
    pub temperatures: BTreeMap<String, f64>,
    /// How it was trained.
    pub training: TrainingInfo,
    /// Metrics per epoch.
    pub metrics: Vec<EpochMetrics>,
    /// The training data's dataset cards and licence (and, for a fine-tuned model, the provenance
    /// of the model it started from as an input).
    pub provenance: Provenance,
}

impl ModelCard {
    /// The prior of a row.
    pub fn prior_of(&self, column: LabelColumn) -> [f64; 3] {
        self.prior
            .get(&column.name())
            .copied()
            .unwrap_or([1.0 / 3.0; 3])
    }

    /// The temperature of a condition group (1 when none was fitted).
    pub fn temperature_of(&self, group: discus_core::ConditionGroup) -> f64 {
        self.temperatures
            .get(group.as_str())
            .copied()
            .filter(|t| t.is_finite() && *t > 0.0)
            .unwrap_or(1.0)
    }

    /// Reads and checks a `model.toml`.
    pub fn read(path: &Path) -> Result<ModelCard, ModelError> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        let bad = |what: String| ModelError::BadModel {
            path: path.to_path_buf(),
            what,
        };
        // Check the format and version before the rest, so a foreign file says what it is.
        let head: toml::Table = text
            .parse()
            .map_err(|e| bad(format!("not a TOML model card: {e}")))?;
        match head.get("format").and_then(|v| v.as_str()) {
            Some(FORMAT) => {}
            other => {
                return Err(bad(format!(
                    "format {other:?}, expected {FORMAT:?}: not a discus model"
                )))
            }
        }
        match head.get("format_version").and_then(|v| v.as_integer()) {
            Some(v) if v == FORMAT_VERSION as i64 => {}
            other => {
                return Err(bad(format!(
                    "model format version {other:?}; this discus {} reads version {FORMAT_VERSION} only (retrain, or use the discus that wrote it: {:?})",
                    env!("CARGO_PKG_VERSION"),
                    head.get("discus_version").and_then(|v| v.as_str()).unwrap_or("unknown")
                )))
            }
        }
        toml::from_str(&text).map_err(|e| bad(format!("bad model card: {e}")))
    }
}

/// A loaded model: its card and networks on a device.
///
/// Inference ([`Model::localiser_logits`], [`Model::grader_logits`]) on the flex (`cpu`) device
/// runs [`fused`]: the same weights, read from `net` on first use, through discus's own CPU
/// kernels (`DISCUS_FUSED=0` keeps burn's). Make a new `Model` rather than replacing `net` after
/// inference has run.
pub struct Model {
    /// The card.
    pub card: ModelCard,
    /// The networks (inference mode on a plain device).
    pub net: net::Net,
    /// The device they run on.
    pub device: Device,
    /// The networks for fused CPU inference, read on first use (`None`: burn runs them).
    fused: std::sync::OnceLock<Option<fused::FusedNet>>,
}

/// Whether inference on a flex device uses [`fused`]: unless `DISCUS_FUSED=0`.
fn fused_enabled() -> bool {
    std::env::var("DISCUS_FUSED").map_or(true, |v| v.trim() != "0")
}

/// The device of the selected backend ([`backend::selected`]): flex (pure-Rust CPU) unless the
/// program selected another (with the `wgpu` feature, `wgpu`).
pub fn default_device() -> Device {
    backend::selected()
        .device()
        .unwrap_or_else(|_| Device::flex())
}

/// The backend's name, for model cards and reports: `flex` (the CPU backend), `wgpu`, and so on.
/// burn's `Device` prints as `Device<Cube>(Cube(Wgpu...))` or `Device<Flex>(Flex(..))` (autodiff
/// devices wrap those), so the name is the first known backend in that text; an unknown one gives
/// the text after `Device<` up to its first bracket or space.
pub fn backend_name(device: &Device) -> String {
    backend_name_of(&format!("{device:?}"))
}

fn backend_name_of(debug: &str) -> String {
    const KNOWN: [(&str, &str); 7] = [
        ("wgpu", "wgpu"),
        ("vulkan", "vulkan"),
        ("cuda", "cuda"),
        ("rocm", "rocm"),
        ("metal", "metal"),
        ("libtorch", "tch"),
        ("flex", "flex"),
    ];
    let lower = debug.to_ascii_lowercase();
    if let Some((_, name)) = KNOWN.iter().find(|(k, _)| lower.contains(k)) {
        return (*name).to_string();
    }
    debug
        .strip_prefix("Device<")
        .unwrap_or(debug)
        .split(['(', ' ', '{', '<', '>'])
        .find(|t| !t.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

/// Serialises a network to safetensors bytes.
pub(crate) fn weights_bytes(net: &net::Net) -> Result<Vec<u8>, ModelError> {
    let mut store = SafetensorsStore::from_bytes(None)
        .metadata("discus_format", FORMAT)
        .metadata("discus_format_version", FORMAT_VERSION.to_string());
    net.save_into(&mut store)
        .map_err(|e| ModelError::Request(format!("serialising weights: {e}")))?;
    store
        .get_bytes()
        .map_err(|e| ModelError::Request(format!("serialising weights: {e}")))
}

/// Loads safetensors weights (from `path`, for errors) into a fresh network of `architecture`.
pub(crate) fn load_weights(
    path: &Path,
    architecture: &net::Architecture,
    device: &Device,
) -> Result<net::Net, ModelError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let bad = |what: String| ModelError::BadModel {
        path: path.to_path_buf(),
        what,
    };
    // safetensors: an 8-byte little-endian header length, then a JSON header.
    if bytes.len() < 8 {
        return Err(bad(format!(
            "{} bytes: too short for a safetensors file (truncated?)",
            bytes.len()
        )));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    if n > bytes.len() - 8 || serde_json::from_slice::<serde_json::Value>(&bytes[8..8 + n]).is_err()
    {
        return Err(bad(
            "not a readable safetensors file (corrupted or truncated)".into(),
        ));
    }
    weights_from_bytes(bytes, architecture, device).map_err(bad)
}

/// safetensors bytes (checked by the caller) loaded into a fresh network of `architecture` on
/// `device`; the error says what did not load.
pub(crate) fn weights_from_bytes(
    bytes: Vec<u8>,
    architecture: &net::Architecture,
    device: &Device,
) -> Result<net::Net, String> {
    let mut net = net::Net::new(architecture, device);
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let r = net
        .load_from(&mut store)
        .map_err(|e| format!("weights do not load: {e}"))?;
    if !r.errors.is_empty() || !r.missing.is_empty() {
        let mut what: Vec<String> = r.errors.iter().take(3).map(|e| format!("{e:?}")).collect();
        what.extend(
            r.missing
                .iter()
                .take(3)
                .map(|(m, _)| format!("missing {m}")),
        );
        return Err(format!(
            "weights do not fit the architecture in {CARD_FILE}: {}",
            what.join("; ")
        ));
    }
    Ok(net)
}

impl Model {
    /// Loads a model folder on `device`: checks `model.toml`'s format and version, then the weights
    /// against the architecture it names.
    pub fn load_on(dir: &Path, device: &Device) -> Result<Model, ModelError> {
        let card = ModelCard::read(&dir.join(CARD_FILE))?;
        let net = load_weights(&dir.join(WEIGHTS_FILE), &card.architecture, device)?;
        Ok(Model::new(card, net.valid(), device.clone()))
    }

    /// A model of `card` and `net` (inference mode) on `device`.
    pub fn new(card: ModelCard, net: net::Net, device: Device) -> Model {
        Model {
            card,
            net,
            device,
            fused: std::sync::OnceLock::new(),
        }
    }

    /// The same model with inference on burn's networks, never [`fused`] (as `DISCUS_FUSED=0`
    /// does for every model).
    pub fn with_burn_inference(mut self) -> Model {
        self.fused = std::sync::OnceLock::from(None);
        self
    }

    /// The fused networks, when inference runs on flex and `DISCUS_FUSED` is not `0`.
    pub fn fused(&self) -> Option<&fused::FusedNet> {
        self.fused
            .get_or_init(|| {
                (backend_name(&self.device) == "flex" && fused_enabled())
                    .then(|| fused::FusedNet::new(&self.net))
                    .flatten()
            })
            .as_ref()
    }

    /// What runs the networks, as recorded in each prediction: `discus fused CPU kernels (ISA)`
    /// ([`fused::instruction_set`]) on flex, else `burn <backend>`.
    pub fn engine(&self) -> String {
        match self.fused() {
            Some(_) => format!("discus fused CPU kernels ({})", fused::instruction_set()),
            None => format!("burn {}", backend_name(&self.device)),
        }
    }

    /// Heat-map logits `[batch, outputs, h, w]` (row-major) of one of the localisers on `input`
    /// (`shape`, `[batch, channels, h, w]`).
    pub fn localiser_logits(
        &self,
        which: LocaliserNet,
        input: Vec<f32>,
        shape: [usize; 4],
    ) -> Result<Vec<f32>, String> {
        if let Some(out) = self
            .fused()
            .and_then(|f| f.localiser_of(which).forward(&input, shape))
        {
            return Ok(out);
        }
        self.burn_logits(input, shape, |x| self.net.localiser_of(which).forward(x))
    }

    /// Severity logits `[batch, 3]` of a condition group's grader on `input` (`shape`, `[batch,
    /// slices, rows, columns]`).
    pub fn grader_logits(
        &self,
        group: discus_core::ConditionGroup,
        input: Vec<f32>,
        shape: [usize; 4],
    ) -> Result<Vec<f32>, String> {
        if let Some(out) = self
            .fused()
            .and_then(|f| f.grader(group).forward(&input, shape))
        {
            return Ok(out);
        }
        self.burn_logits(input, shape, |x| self.net.grader(group).forward(x))
    }

    /// `forward` (one of burn's networks) on `input` of `shape`, its output as row-major values.
    fn burn_logits<const D: usize>(
        &self,
        input: Vec<f32>,
        shape: [usize; 4],
        forward: impl FnOnce(burn::tensor::Tensor<4>) -> burn::tensor::Tensor<D>,
    ) -> Result<Vec<f32>, String> {
        let x = burn::tensor::Tensor::<4>::from_data(
            burn::tensor::TensorData::new(input, shape),
            &self.device,
        );
        forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| format!("{e:?}"))
    }

    /// Loads a model folder on the [`default_device`].
    pub fn load(dir: &Path) -> Result<Model, ModelError> {
        Model::load_on(dir, &default_device())
    }

    /// Writes the model folder (each file to a temporary name, then renamed into place).
    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        save_folder(dir, &self.card, &self.net)
    }
}

pub(crate) fn save_folder(dir: &Path, card: &ModelCard, net: &net::Net) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let w = dir.join(WEIGHTS_FILE);
    discus_core::fsio::atomic_write(&w, &weights_bytes(net)?).map_err(io_err(&w))?;
    let c = dir.join(CARD_FILE);
    let text = toml::to_string(card)
        .map_err(|e| ModelError::Request(format!("serialising {CARD_FILE}: {e}")))?;
    discus_core::fsio::atomic_write(&c, text.as_bytes()).map_err(io_err(&c))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{backend_name, backend_name_of};
    use burn::tensor::Device;

    #[test]
    fn backend_names_come_from_burns_device_text() {
        // burn's own devices, as this build has them.
        assert_eq!(backend_name(&Device::flex()), "flex");
        assert_eq!(backend_name(&Device::flex().autodiff()), "flex");
        // The text burn 0.22 prints for the other backends (`Device<{dispatch:?}>`, the dispatch
        // device a derived tuple variant, autodiff a struct around it).
        assert_eq!(backend_name_of("Device<Cube(Wgpu(DefaultDevice))>"), "wgpu");
        assert_eq!(
            backend_name_of("Device<Autodiff { device: Cube(Cuda(CudaDevice { index: 0 })), checkpointing: None }>"),
            "cuda"
        );
        assert_eq!(backend_name_of("Device<LibTorch(Cpu)>"), "tch");
        assert_eq!(backend_name_of("Device<Remote(x)>"), "Remote");
        assert_eq!(backend_name_of("Mystery"), "Mystery");
    }
}
