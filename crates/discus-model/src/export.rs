//! ONNX export: one `.onnx` file per network of a model, so a hospital can run a discus model in
//! the ONNX-based inference it already has.
//!
//! [`export_onnx`] writes, into one folder:
//! - `localiser.onnx`: input `[batch, localiser_slices, grid, grid]` (the mid-sagittal slices on the
//!   localiser grid, see [`crate::prep::Preprocessing`]), output `[batch, 5, grid, grid]`
//!   heat-map logits (one channel per level, unordered: sort the decoded peaks head to foot);
//! - `foraminal_localiser.onnx`, `subarticular_localiser.onnx` (the point localisers): input
//!   `[batch, crop slices, point_grid, point_grid]` (2.5D crops at `point_spacing_mm`, see
//!   [`crate::prep::Preprocessing::point_spec`]), output `[batch, 1, point_grid, point_grid]`
//!   (foraminal: one heat map per candidate slice crop; the softmax runs over all candidates of a
//!   finding together) or `[batch, 2, point_grid, point_grid]` (subarticular: left, right);
//! - `spinal.onnx`, `foraminal.onnx`, `subarticular.onnx` (the graders): input
//!   `[batch, crop slices, crop rows, crop columns]`, output `[batch, 3]` severity logits
//!   (Normal/Mild, Moderate, Severe; softmax gives the probabilities). The right subarticular
//!   crop is mirrored left-right before grading, as in training;
//! - `model.toml`, the model card, copied unchanged: the training data's licence travels with
//!   the networks;
//! - `onnx.toml` ([`OnnxManifest`]): which file is which network, its input and output shapes.
//!
//! The batch axis is symbolic (`batch`); every other axis is fixed by the model card. The
//! exporter is burn-onnx's (experimental in 0.22; opset 18, weights embedded): it runs each
//! network's forward pass once per batch size (1 and 2) on a capture device and lowers the trace.

use crate::net::{Grader, Localiser, Net};
use crate::{io_err, ModelCard, ModelError, CARD_FILE};
use burn::tensor::{Device, Tensor};
use burn_onnx::export::{AxisSpec, InputSpec, OnnxExporter};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The manifest written beside the exported networks.
pub const MANIFEST_FILE: &str = "onnx.toml";

/// One exported network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnnxNetwork {
    /// Network name: one of [`NETWORKS`].
    pub name: String,
    /// File name inside the export folder.
    pub file: String,
    /// Input shape; axis 0 is the symbolic batch axis (written here as 1).
    pub input: Vec<usize>,
    /// Output shape for a batch of 1.
    pub output: Vec<usize>,
    /// What the output means.
    pub meaning: String,
}

/// `onnx.toml`: what was exported, from which model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnnxManifest {
    /// discus version that exported.
    pub discus_version: String,
    /// ONNX operator set of every file.
    pub opset: u32,
    /// The model card's licence name (the full card is `model.toml` beside this file).
    pub licence: Vec<String>,
    /// The networks.
    pub networks: Vec<OnnxNetwork>,
}

impl OnnxManifest {
    /// Writes what `discus model export` prints: each network's file (under `out`) with its input
    /// and output shapes, and where the model card went with its licence.
    pub fn write_text(&self, out: &Path, w: &mut impl std::io::Write) -> std::io::Result<()> {
        for n in &self.networks {
            writeln!(
                w,
                "{}: input {:?} (axis 0 = batch), output {:?}",
                out.join(&n.file).display(),
                n.input,
                n.output
            )?;
        }
        writeln!(
            w,
            "model card copied to {} (licence: {})",
            out.join(CARD_FILE).display(),
            if self.licence.is_empty() {
                "none recorded".to_string()
            } else {
                self.licence.join("; ")
            }
        )
    }
}

/// The names of a model's networks in export order.
pub const NETWORKS: [&str; 6] = [
    "localiser",
    "foraminal_localiser",
    "subarticular_localiser",
    "spinal",
    "foraminal",
    "subarticular",
];

/// The number of heat-map channels of a point localiser (`None` for the other networks).
fn point_outputs(name: &str) -> Option<usize> {
    match name {
        "foraminal_localiser" => Some(1),
        "subarticular_localiser" => Some(2),
        _ => None,
    }
}

/// The input shape (batch of `batch`) of network `name` under `card`.
pub fn input_shape(card: &ModelCard, name: &str, batch: usize) -> [usize; 4] {
    let p = &card.preprocessing;
    if point_outputs(name).is_some() {
        [
            batch,
            card.architecture.grader_slices,
            p.point_grid,
            p.point_grid,
        ]
    } else if name == "localiser" {
        [
            batch,
            card.architecture.localiser_slices,
            p.localiser_grid,
            p.localiser_grid,
        ]
    } else {
        [
            batch,
            card.architecture.grader_slices,
            p.crop.rows,
            p.crop.columns,
        ]
    }
}

/// Deterministic, non-constant example input of `shape` (a smooth pattern plus a ramp), used as
/// the capture sample; tests use it too.
pub fn sample_input(shape: [usize; 4], phase: f32) -> Vec<f32> {
    let n: usize = shape.iter().product();
    (0..n)
        .map(|i| {
            let x = i as f32;
            (x * 0.37 + phase).sin() * 0.8 + (x * 0.011).cos() * 0.5 + phase * 0.1
        })
        .collect()
}

fn tensor(shape: [usize; 4], phase: f32, device: &Device) -> Tensor<4> {
    Tensor::from_data(
        burn::tensor::TensorData::new(sample_input(shape, phase), shape),
        device,
    )
}

fn batch_dynamic() -> [InputSpec; 1] {
    [InputSpec::new([
        AxisSpec::dynamic("batch"),
        AxisSpec::Static,
        AxisSpec::Static,
        AxisSpec::Static,
    ])]
}

fn export_err(name: &str) -> impl FnOnce(burn_onnx::export::ExportError) -> ModelError + '_ {
    move |e| ModelError::Request(format!("exporting the {name} network to ONNX: {e}"))
}

/// The ONNX bytes of one network of `net` (shapes from `card`), with a symbolic batch axis.
pub fn network_onnx(
    net: &Net,
    card: &ModelCard,
    name: &str,
    device: &Device,
) -> Result<Vec<u8>, ModelError> {
    let one = tensor(input_shape(card, name, 1), 0.0, device);
    let two = tensor(input_shape(card, name, 2), 1.0, device);
    let ex = OnnxExporter::new();
    let spec = batch_dynamic();
    let model = match name {
        "localiser" => ex
            .export_dynamic(&net.localiser, one, two, &spec, Localiser::forward)
            .map_err(export_err(name))?,
        "foraminal_localiser" => ex
            .export_dynamic(
                &net.foraminal_localiser,
                one,
                two,
                &spec,
                Localiser::forward,
            )
            .map_err(export_err(name))?,
        "subarticular_localiser" => ex
            .export_dynamic(
                &net.subarticular_localiser,
                one,
                two,
                &spec,
                Localiser::forward,
            )
            .map_err(export_err(name))?,
        "spinal" | "foraminal" | "subarticular" => {
            let g = match name {
                "spinal" => &net.spinal,
                "foraminal" => &net.foraminal,
                _ => &net.subarticular,
            };
            ex.export_dynamic(g, one, two, &spec, Grader::forward_exportable)
                .map_err(export_err(name))?
        }
        other => {
            return Err(ModelError::Request(format!(
                "no network named {other:?} (expected one of {NETWORKS:?})"
            )))
        }
    };
    Ok(model.into_bytes())
}

/// Exports every network of the model folder `model_dir` to `out` (created if needed): one
/// `.onnx` per network, `model.toml` copied, and `onnx.toml`. Each file is written to a temporary
/// name, then renamed into place. Returns the manifest.
pub fn export_onnx(model_dir: &Path, out: &Path) -> Result<OnnxManifest, ModelError> {
    let device = Device::flex();
    let model = crate::Model::load_on(model_dir, &device)?;
    let card_path = model_dir.join(CARD_FILE);
    let card_text = std::fs::read(&card_path).map_err(io_err(&card_path))?;
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let mut networks = Vec::new();
    for name in NETWORKS {
        let bytes = network_onnx(&model.net, &model.card, name, &device)?;
        let file = format!("{name}.onnx");
        let path = out.join(&file);
        discus_core::fsio::atomic_write(&path, &bytes).map_err(io_err(&path))?;
        let input = input_shape(&model.card, name, 1).to_vec();
        let (output, meaning) = if let Some(c) = point_outputs(name) {
            (
                vec![1, c, input[2], input[3]],
                if c == 1 {
                    "heat-map logits of the foraminal point on one candidate slice crop (one \
                     softmax over all candidate crops of a finding picks the slice and the point)"
                } else {
                    "heat-map logits of the subarticular points, channels left, right"
                },
            )
        } else if name == "localiser" {
            (
                vec![1, 5, input[2], input[3]],
                "heat-map logits, one channel per level (unordered: sort the peaks head to foot \
                 and name them L1/L2 .. L5/S1)",
            )
        } else {
            (
                vec![1, 3],
                "severity logits: Normal/Mild, Moderate, Severe (softmax for probabilities)",
            )
        };
        networks.push(OnnxNetwork {
            name: name.into(),
            file,
            input,
            output,
            meaning: meaning.into(),
        });
    }
    let c = out.join(CARD_FILE);
    discus_core::fsio::atomic_write(&c, &card_text).map_err(io_err(&c))?;
    let manifest = OnnxManifest {
        discus_version: env!("CARGO_PKG_VERSION").into(),
        opset: 18,
        licence: licences(&model.card),
        networks,
    };
    let m = out.join(MANIFEST_FILE);
    let text = toml::to_string(&manifest)
        .map_err(|e| ModelError::Request(format!("serialising {MANIFEST_FILE}: {e}")))?;
    discus_core::fsio::atomic_write(&m, text.as_bytes()).map_err(io_err(&m))?;
    Ok(manifest)
}

/// The licence names of a model's training data (its dataset cards and, for a fine-tuned model,
/// its initial model's).
fn licences(card: &ModelCard) -> Vec<String> {
    let mut out = Vec::new();
    for c in card.provenance.all_cards() {
        if !out.contains(&c.licence.name) {
            out.push(c.licence.name.clone());
        }
    }
    out
}

/// Where [`export_onnx`] puts network `name` under `out`.
pub fn network_path(out: &Path, name: &str) -> PathBuf {
    out.join(format!("{name}.onnx"))
}
