//! The networks: one model code for every burn backend (the device picks the backend).
//!
//! - [`Localiser`]: a small U-Net (three poolings: its receptive field spans the whole 64-cell
//!   grid, so a channel can tell one disc level from its neighbours by counting from the sacrum)
//!   from the 3 mid-sagittal slices resampled to a fixed mm grid to 5 heat-map logits at the input
//!   resolution, one per level.
//! - [`Grader`]: a small 2.5D CNN (3 conv blocks, global average pool, linear) from a
//!   `slices x size x size` crop to 3 severity logits; one per condition group.
//! - [`Net`]: the localisers and the three graders, saved together as one safetensors file. Besides
//!   the canal localiser there are two point localisers of the same U-Net shape on 2.5D crops: the
//!   foraminal one (sagittal T1, one heat-map channel per candidate slice; the slice is chosen by a
//!   softmax over all candidate slices together) and the subarticular one (axial T2, two channels:
//!   left, right).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::interpolate::{Interpolate2d, Interpolate2dConfig, InterpolateMode};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Sizes of the networks (stored in `model.toml`; a model is rebuilt from them before loading).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Architecture {
    /// Input slices of the localiser (channels).
    pub localiser_slices: usize,
    /// Channels of the localiser's first block (doubled after the first pooling).
    pub localiser_width: usize,
    /// Input slices of each grader (channels).
    pub grader_slices: usize,
    /// Channels of the graders' first block (doubled after each pooling).
    pub grader_width: usize,
}

impl Default for Architecture {
    fn default() -> Self {
        Architecture {
            localiser_slices: 3,
            localiser_width: 16,
            grader_slices: 3,
            grader_width: 16,
        }
    }
}

fn conv(i: usize, o: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([i, o], [3, 3])
        .with_padding(PaddingConfig2d::Same)
        .init(device)
}

fn pool() -> MaxPool2d {
    MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init()
}

/// Heat-map network: input `[batch, slices, H, W]` (H, W divisible by 8), output
/// `[batch, outputs, H, W]` logits. The canal localiser has five outputs (one per level, in no
/// particular order: the decoder sorts them). Three poolings (widths `w, 2w, 2w, 4w`): on the
/// 64-cell canal grid the bottleneck's cells see about 70 cells, the whole grid (with two poolings
/// they saw about 35, less than the L1/L2 .. L5/S1 span, and a channel could not tell neighbouring
/// discs apart).
#[derive(Module, Debug)]
pub struct Localiser {
    e1a: Conv2d,
    e1b: Conv2d,
    e2a: Conv2d,
    e2b: Conv2d,
    e3a: Conv2d,
    e3b: Conv2d,
    e4a: Conv2d,
    e4b: Conv2d,
    d3: Conv2d,
    d2: Conv2d,
    d1: Conv2d,
    head: Conv2d,
    pool: MaxPool2d,
    up: Interpolate2d,
}

impl Localiser {
    /// A freshly initialised canal localiser (five outputs).
    pub fn new(a: &Architecture, device: &Device) -> Self {
        Localiser::with_shape(a.localiser_slices, a.localiser_width, 5, device)
    }

    /// A freshly initialised heat-map network of `inputs` slices, first-block width `w` and
    /// `outputs` heat-map channels.
    pub fn with_shape(inputs: usize, w: usize, outputs: usize, device: &Device) -> Self {
        Localiser {
            e1a: conv(inputs, w, device),
            e1b: conv(w, w, device),
            e2a: conv(w, 2 * w, device),
            e2b: conv(2 * w, 2 * w, device),
            e3a: conv(2 * w, 2 * w, device),
            e3b: conv(2 * w, 2 * w, device),
            e4a: conv(2 * w, 4 * w, device),
            e4b: conv(4 * w, 4 * w, device),
            d3: conv(6 * w, 2 * w, device),
            d2: conv(4 * w, 2 * w, device),
            d1: conv(3 * w, w, device),
            head: Conv2dConfig::new([w, outputs], [1, 1]).init(device),
            pool: pool(),
            up: Interpolate2dConfig::new()
                .with_scale_factor(Some([2.0, 2.0]))
                .with_mode(InterpolateMode::Nearest)
                .init(),
        }
    }

    /// Heat-map logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let e1 = relu(self.e1b.forward(relu(self.e1a.forward(x))));
        let e2 = relu(
            self.e2b
                .forward(relu(self.e2a.forward(self.pool.forward(e1.clone())))),
        );
        let e3 = relu(
            self.e3b
                .forward(relu(self.e3a.forward(self.pool.forward(e2.clone())))),
        );
        let e4 = relu(
            self.e4b
                .forward(relu(self.e4a.forward(self.pool.forward(e3.clone())))),
        );
        let u3 = Tensor::cat(vec![self.up.forward(e4), e3], 1);
        let d3 = relu(self.d3.forward(u3));
        let u2 = Tensor::cat(vec![self.up.forward(d3), e2], 1);
        let d2 = relu(self.d2.forward(u2));
        let u1 = Tensor::cat(vec![self.up.forward(d2), e1], 1);
        let d1 = relu(self.d1.forward(u1));
        self.head.forward(d1)
    }
}

/// Severity network: input `[batch, slices, S, S]` (S divisible by 8), output `[batch, 3]` logits
/// (Normal/Mild, Moderate, Severe).
#[derive(Module, Debug)]
pub struct Grader {
    c1: Conv2d,
    c2: Conv2d,
    c3: Conv2d,
    pool: MaxPool2d,
    gap: AdaptiveAvgPool2d,
    fc: Linear,
}

impl Grader {
    /// A freshly initialised grader.
    pub fn new(a: &Architecture, device: &Device) -> Self {
        let w = a.grader_width;
        Grader {
            c1: conv(a.grader_slices, w, device),
            c2: conv(w, 2 * w, device),
            c3: conv(2 * w, 4 * w, device),
            pool: pool(),
            gap: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(4 * w, 3).init(device),
        }
    }

    /// Severity logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(relu(self.c1.forward(x)));
        let x = self.pool.forward(relu(self.c2.forward(x)));
        let x = self.pool.forward(relu(self.c3.forward(x)));
        let x = self.gap.forward(x).flatten::<2>(1, 3);
        self.fc.forward(x)
    }
}

/// Every network of a model.
#[derive(Module, Debug)]
pub struct Net {
    /// Canal points on the sagittal T2/STIR series.
    pub localiser: Localiser,
    /// Foraminal points on the sagittal T1 series: one channel per candidate slice crop.
    pub foraminal_localiser: Localiser,
    /// Left and right subarticular points on an axial T2 slice (channels 0 = left, 1 = right).
    pub subarticular_localiser: Localiser,
    /// Spinal canal stenosis (sagittal T2/STIR crops).
    pub spinal: Grader,
    /// Neural foraminal narrowing, both sides (sagittal T1 crops).
    pub foraminal: Grader,
    /// Subarticular stenosis, both sides (axial T2 crops, the right side mirrored).
    pub subarticular: Grader,
}

impl Net {
    /// A freshly initialised model.
    pub fn new(a: &Architecture, device: &Device) -> Self {
        Net {
            localiser: Localiser::new(a, device),
            foraminal_localiser: Localiser::with_shape(
                a.grader_slices,
                a.localiser_width,
                1,
                device,
            ),
            subarticular_localiser: Localiser::with_shape(
                a.grader_slices,
                a.localiser_width,
                2,
                device,
            ),
            spinal: Grader::new(a, device),
            foraminal: Grader::new(a, device),
            subarticular: Grader::new(a, device),
        }
    }

    /// The grader of a condition group.
    pub fn grader(&self, group: discus_core::ConditionGroup) -> &Grader {
        match group {
            discus_core::ConditionGroup::Spinal => &self.spinal,
            discus_core::ConditionGroup::Foraminal => &self.foraminal,
            discus_core::ConditionGroup::Subarticular => &self.subarticular,
        }
    }
}
