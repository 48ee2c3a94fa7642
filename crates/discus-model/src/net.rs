//! The networks: one model code for every burn backend (the device picks the backend).
//!
//! - [`Localiser`]: a small U-Net (three poolings: its receptive field spans the whole 64-cell
//!   grid, so a channel can tell one disc level from its neighbours by counting from the sacrum)
//!   from the 3 mid-sagittal slices resampled to a fixed mm grid to 5 heat-map logits at the input
//!   resolution, one per level.
//! - [`Grader`]: a small 2.5D CNN (3 conv blocks, each of two 3x3 convolutions with group
//!   normalisation, then global average pool, linear) from a `slices x size x size` crop to 3
//!   severity logits; one per condition group. Without normalisation (the first models) the
//!   graders sat on the prior for hundreds of Adam steps and stayed far from what a logistic
//!   regression on the raw pixels reaches; with it they pass it within a few epochs.
//! - [`Net`]: the localisers and the three graders, saved together as one safetensors file. Besides
//!   the canal localiser there are two point localisers of the same U-Net shape on 2.5D crops: the
//!   foraminal one (sagittal T1, one heat-map channel per candidate slice; the slice is chosen by a
//!   softmax over all candidate slices together) and the subarticular one (axial T2, two channels:
//!   left, right).

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::interpolate::{Interpolate2d, Interpolate2dConfig, InterpolateMode};
use burn::nn::norm::{GroupNorm, GroupNormConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{log_sigmoid, relu};
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
    /// Group normalisation (groups of 8 channels) after each grader convolution. Absent from the
    /// cards of models made before it existed: those load as `false`.
    #[serde(default)]
    pub grader_norm: bool,
    /// Convolutions per grader block (1 or 2; absent from older cards: 1).
    #[serde(default = "one")]
    pub grader_convs: usize,
    /// Ordinal severity head (see [`ordinal_logits`]): one severity score per crop and two
    /// learned cut points instead of three free logits. Absent from older cards: `false`.
    #[serde(default)]
    pub grader_ordinal: bool,
}

fn one() -> usize {
    1
}

impl Default for Architecture {
    fn default() -> Self {
        Architecture {
            localiser_slices: 3,
            localiser_width: 16,
            grader_slices: 3,
            grader_width: 16,
            grader_norm: true,
            grader_convs: 2,
            grader_ordinal: false,
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

    /// The convolutions in order: `e1a, e1b, e2a, e2b, e3a, e3b, e4a, e4b, d3, d2, d1, head`.
    pub(crate) fn convs(&self) -> [&Conv2d; 12] {
        [
            &self.e1a, &self.e1b, &self.e2a, &self.e2b, &self.e3a, &self.e3b, &self.e4a, &self.e4b,
            &self.d3, &self.d2, &self.d1, &self.head,
        ]
    }

    /// Heat-map logits. [`crate::fused::FusedLocaliser`] runs the same layers for inference on
    /// the CPU: a change here must be made there too (its tests compare the two).
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
/// (Normal/Mild, Moderate, Severe). Three blocks (widths `w, 2w, 4w`), each one or two 3x3
/// convolutions, each optionally group-normalised, with ReLU, then a 2x2 max pool; global average
/// pool; linear to the three logits, or to one severity score turned into them by the ordinal head
/// ([`ordinal_logits`], `grader_ordinal`).
#[derive(Module, Debug)]
pub struct Grader {
    c1: Conv2d,
    c2: Conv2d,
    c3: Conv2d,
    /// Second convolution of each block (`grader_convs` = 2).
    c1b: Option<Conv2d>,
    c2b: Option<Conv2d>,
    c3b: Option<Conv2d>,
    /// Normalisation after `c1`, `c2`, `c3` and after the second convolutions (`grader_norm`).
    n1: Option<GroupNorm>,
    n2: Option<GroupNorm>,
    n3: Option<GroupNorm>,
    n1b: Option<GroupNorm>,
    n2b: Option<GroupNorm>,
    n3b: Option<GroupNorm>,
    pool: MaxPool2d,
    gap: AdaptiveAvgPool2d,
    /// Three logits, or one severity score with the ordinal head.
    fc: Linear,
    /// The ordinal head's `[theta1, d, beta1, beta2]` (`grader_ordinal`; see [`ordinal_logits`]).
    ordinal: Option<Param<Tensor<1>>>,
}

/// Initial ordinal head: cut points at 0.5 and 2.0 (`d = ln(e^1.5 - 1)`), no tilt.
const ORDINAL_INIT: [f32; 4] = [0.5, 1.258_675, 0.0, 0.0];

/// The three severity logits of a cumulative-logit (ordinal) head.
///
/// `s` (`[batch, 1]`) is the crop's severity score; `head` holds `theta1`, `d`, `beta1`,
/// `beta2`. The cut points are `theta1` and `theta2 = theta1 + softplus(d) + 1e-3` (so always
/// ordered), `P(grade >= Moderate) = sigmoid(s - theta1)`, `P(grade >= Severe) = sigmoid(s -
/// theta2)`, and the logits are the logarithms of the three resulting probabilities, the upper two
/// shifted by `beta1`, `beta2`. The shifts let the weighted cross-entropy (1, 2, 4) tilt the
/// prediction towards the severe grades as it does a free head's; with them at zero the softmax of
/// the logits is exactly the ordinal model's probabilities. This is the shape of the labels'
/// generating process (a reader grades a perceived degree against two thresholds), so the rare
/// Severe grade learns from every Moderate crop's score, not from its own examples alone.
///
/// The middle term uses `sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(b - a))` with
/// `a - b = theta2 - theta1 > 0`, so every term stays a finite log for any score. `exportable`
/// writes `log_sigmoid` as `-ln(1 + exp(-x))` (ONNX has no log-sigmoid operator).
pub fn ordinal_logits(s: Tensor<2>, head: Tensor<1>, exportable: bool) -> Tensor<2> {
    let ls = |x: Tensor<2>| {
        if exportable {
            x.neg().exp().add_scalar(1.0).log().neg()
        } else {
            log_sigmoid(x)
        }
    };
    let h = head.reshape([1, 4]);
    let theta1 = h.clone().narrow(1, 0, 1);
    // softplus(d), written out (a model constant; d stays far below exp's overflow).
    let gap = h
        .clone()
        .narrow(1, 1, 1)
        .exp()
        .add_scalar(1.0)
        .log()
        .add_scalar(1e-3);
    let beta1 = h.clone().narrow(1, 2, 1);
    let beta2 = h.narrow(1, 3, 1);
    let a = s - theta1;
    let b = a.clone() - gap.clone();
    let lp0 = ls(a.clone().neg());
    let lp2 = ls(b.clone()) + beta2;
    // ln(1 - exp(-gap)), gap > 1e-3.
    let spread = gap.neg().exp().neg().add_scalar(1.0).log();
    let lp1 = ls(a) + ls(b.neg()) + spread + beta1;
    Tensor::cat(vec![lp0, lp1, lp2], 1)
}

/// Groups of a normalised layer of `c` channels: about 8 channels each, dividing `c`.
fn groups(c: usize) -> usize {
    (1..=c / 8).rev().find(|g| c % g == 0).unwrap_or(1)
}

/// Group normalisation of `x` with the groups, epsilon, gamma and beta of `n`: the values of
/// `GroupNorm::forward` (each group's mean and biased variance over its channels and pixels)
/// computed with a channel mask per group instead of a reshape to `[batch, groups, rest]` or a slice
/// of the batch, neither of which the ONNX exporter can keep symbolic in the batch. The masks are
/// computed from gamma (a static tensor), so they trace as static. Slower than burn's; used for
/// export only ([`Grader::forward_exportable`]).
fn group_norm_masked(n: &GroupNorm, x: Tensor<4>) -> Tensor<4> {
    let (Some(gamma), Some(beta)) = (&n.gamma, &n.beta) else {
        return n.forward(x);
    };
    let [_, c, h, w] = x.dims();
    let groups = n.num_groups.max(1);
    let k = c / groups;
    // Zeros and ones computed from gamma (not created: the exporter must see a source).
    let base = gamma.val().mul_scalar(0.0);
    let masks: Vec<Tensor<4>> = (0..groups)
        .map(|g| {
            let mut parts = Vec::new();
            if g > 0 {
                parts.push(base.clone().narrow(0, 0, g * k));
            }
            parts.push(base.clone().narrow(0, g * k, k).add_scalar(1.0));
            if (g + 1) * k < c {
                parts.push(base.clone().narrow(0, (g + 1) * k, c - (g + 1) * k));
            }
            Tensor::cat(parts, 0).reshape([1, c, 1, 1])
        })
        .collect();
    let count = (k * h * w) as f64;
    let per_channel = |t: &Tensor<4>| {
        masks
            .iter()
            .map(|m| {
                (t.clone() * m.clone())
                    .sum_dim(1)
                    .sum_dim(2)
                    .sum_dim(3)
                    .div_scalar(count)
                    * m.clone()
            })
            .reduce(|a, b| a + b)
            .expect("at least one group")
    };
    let d = x.clone() - per_channel(&x);
    let var = per_channel(&d.clone().square());
    d / (var + n.epsilon).sqrt() * gamma.val().reshape([1, c, 1, 1])
        + beta.val().reshape([1, c, 1, 1])
}

/// Group normalisation of `x` with the groups, epsilon, gamma and beta of `n`: the values of
/// `GroupNorm::forward` in fewer full-size passes. Each group's mean and biased variance come
/// from one `var_mean_bias`; gamma and beta fold with them into one scale and one shift per
/// sample and channel, so the activations are read for the statistics and then once for a
/// multiply and an add (burn's takes about ten operations, each a pass over the activations).
fn group_norm_folded(n: &GroupNorm, x: Tensor<4>) -> Tensor<4> {
    let (Some(gamma), Some(beta)) = (&n.gamma, &n.beta) else {
        return n.forward(x);
    };
    let [b, c, h, w] = x.dims();
    let groups = n.num_groups.max(1);
    let k = c / groups;
    let (var, mean) = x.clone().reshape([b, groups, k * h * w]).var_mean_bias(2);
    // [b, groups, 1] -> [b, c, 1]: each group's statistic repeated for its k channels.
    let per_channel = |t: Tensor<3>| t.expand([b, groups, k]).reshape([b, c, 1]);
    let inv = per_channel(var.add_scalar(n.epsilon).sqrt().recip());
    let scale = inv * gamma.val().reshape([1, c, 1]);
    let shift = beta.val().reshape([1, c, 1]) - per_channel(mean) * scale.clone();
    (x.reshape([b, c, h * w]) * scale + shift).reshape([b, c, h, w])
}

/// How a grader normalises: burn's `GroupNorm::forward`, or [`group_norm_masked`] for export.
type Norm = fn(&GroupNorm, Tensor<4>) -> Tensor<4>;

/// Convolution, optional normalisation, ReLU.
fn unit(c: &Conv2d, n: &Option<GroupNorm>, x: Tensor<4>, norm: Norm) -> Tensor<4> {
    let x = c.forward(x);
    relu(match n {
        Some(n) => norm(n, x),
        None => x,
    })
}

impl Grader {
    /// A freshly initialised grader.
    pub fn new(a: &Architecture, device: &Device) -> Self {
        let w = a.grader_width;
        let norm = |c: usize| {
            a.grader_norm
                .then(|| GroupNormConfig::new(groups(c), c).init(device))
        };
        let two = a.grader_convs >= 2;
        let second = |c: usize| two.then(|| conv(c, c, device));
        let second_norm = |c: usize| if two { norm(c) } else { None };
        Grader {
            c1: conv(a.grader_slices, w, device),
            c2: conv(w, 2 * w, device),
            c3: conv(2 * w, 4 * w, device),
            c1b: second(w),
            c2b: second(2 * w),
            c3b: second(4 * w),
            n1: norm(w),
            n2: norm(2 * w),
            n3: norm(4 * w),
            n1b: second_norm(w),
            n2b: second_norm(2 * w),
            n3b: second_norm(4 * w),
            pool: pool(),
            gap: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(4 * w, if a.grader_ordinal { 1 } else { 3 }).init(device),
            ordinal: a
                .grader_ordinal
                .then(|| Param::from_tensor(Tensor::from_floats(ORDINAL_INIT, device))),
        }
    }

    /// The layers in order, for [`crate::fused`].
    pub(crate) fn parts(&self) -> GraderParts<'_> {
        fn block<'a>(
            c: &'a Conv2d,
            n: &'a Option<GroupNorm>,
            cb: &'a Option<Conv2d>,
            nb: &'a Option<GroupNorm>,
        ) -> Vec<(&'a Conv2d, Option<&'a GroupNorm>)> {
            let mut units = vec![(c, n.as_ref())];
            if let Some(cb) = cb {
                units.push((cb, nb.as_ref()));
            }
            units
        }
        GraderParts {
            blocks: vec![
                block(&self.c1, &self.n1, &self.c1b, &self.n1b),
                block(&self.c2, &self.n2, &self.c2b, &self.n2b),
                block(&self.c3, &self.n3, &self.c3b, &self.n3b),
            ],
            fc: &self.fc,
            ordinal: self.ordinal.as_ref().map(|h| h.val()),
        }
    }

    /// Severity logits. [`crate::fused::FusedGrader`] runs the same layers for inference on the
    /// CPU: a change here must be made there too (its tests compare the two).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_with(x, group_norm_folded, false)
    }

    /// The same logits, computed with operations the ONNX exporter keeps symbolic in the batch
    /// (group normalisation by channel masks; see `group_norm_masked`). Equal to
    /// [`Grader::forward`] within float rounding (tested).
    pub fn forward_exportable(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_with(x, group_norm_masked, true)
    }

    fn forward_with(&self, x: Tensor<4>, norm: Norm, exportable: bool) -> Tensor<2> {
        let mut x = x;
        for (c, n, cb, nb) in [
            (&self.c1, &self.n1, &self.c1b, &self.n1b),
            (&self.c2, &self.n2, &self.c2b, &self.n2b),
            (&self.c3, &self.n3, &self.c3b, &self.n3b),
        ] {
            x = unit(c, n, x, norm);
            if let Some(cb) = cb {
                x = unit(cb, nb, x, norm);
            }
            x = self.pool.forward(x);
        }
        let x = self.gap.forward(x).flatten::<2>(1, 3);
        let out = self.fc.forward(x);
        match &self.ordinal {
            Some(head) => ordinal_logits(out, head.val(), exportable),
            None => out,
        }
    }
}

/// A grader's layers: per block its convolutions with their normalisations, the linear layer and
/// the ordinal head's parameters.
pub(crate) struct GraderParts<'a> {
    pub(crate) blocks: Vec<Vec<(&'a Conv2d, Option<&'a GroupNorm>)>>,
    pub(crate) fc: &'a Linear,
    pub(crate) ordinal: Option<Tensor<1>>,
}

/// Which of a model's heat-map networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocaliserNet {
    /// The canal localiser (sagittal T2/STIR).
    Canal,
    /// The foraminal point localiser (sagittal T1).
    Foraminal,
    /// The subarticular point localiser (axial T2).
    Subarticular,
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

    /// One of the heat-map networks.
    pub fn localiser_of(&self, which: LocaliserNet) -> &Localiser {
        match which {
            LocaliserNet::Canal => &self.localiser,
            LocaliserNet::Foraminal => &self.foraminal_localiser,
            LocaliserNet::Subarticular => &self.subarticular_localiser,
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn a_card_without_the_grader_fields_is_the_first_grader() {
        let old =
            "localiser_slices = 3\nlocaliser_width = 16\ngrader_slices = 3\ngrader_width = 16\n";
        let a: Architecture = toml::from_str(old).unwrap();
        assert!(!a.grader_norm);
        assert_eq!(a.grader_convs, 1);
        assert!(!a.grader_ordinal);
        let d = Architecture::default();
        assert!(d.grader_norm);
        assert_eq!(d.grader_convs, 2);
    }

    #[test]
    fn masked_group_norm_equals_burns() {
        let d = Device::flex();
        d.seed(7);
        for (c, g) in [(16, 2), (32, 4), (8, 1)] {
            let mut n = GroupNormConfig::new(g, c).init(&d);
            // Non-trivial affine parameters.
            n.gamma = Some(burn::module::Param::from_tensor(Tensor::random(
                [c],
                burn::tensor::Distribution::Uniform(0.5, 1.5),
                &d,
            )));
            n.beta = Some(burn::module::Param::from_tensor(Tensor::random(
                [c],
                burn::tensor::Distribution::Uniform(-0.5, 0.5),
                &d,
            )));
            let x = Tensor::<4>::random(
                [3, c, 8, 8],
                burn::tensor::Distribution::Normal(0.3, 2.0),
                &d,
            );
            let want = values(n.forward(x.clone()));
            for (name, norm) in [
                ("masked", group_norm_masked as Norm),
                ("folded", group_norm_folded as Norm),
            ] {
                let got = values(norm(&n, x.clone()));
                let worst = want
                    .iter()
                    .zip(&got)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(worst < 1e-5, "{name}, {c} channels, {g} groups: {worst}");
            }
        }
    }

    /// The folded normalisation trains like burn's: the gradients of a weighted sum of its output
    /// with respect to the input, gamma and beta match burn's `GroupNorm::forward`'s.
    #[test]
    fn folded_group_norm_has_burns_gradients() {
        let d = Device::flex().autodiff();
        d.seed(8);
        let (c, g) = (32, 4);
        let mut n = GroupNormConfig::new(g, c).init(&d);
        n.gamma = Some(burn::module::Param::from_tensor(
            Tensor::random([c], burn::tensor::Distribution::Uniform(0.5, 1.5), &d).require_grad(),
        ));
        n.beta = Some(burn::module::Param::from_tensor(
            Tensor::random([c], burn::tensor::Distribution::Uniform(-0.5, 0.5), &d).require_grad(),
        ));
        let x0 = Tensor::<4>::random(
            [3, c, 6, 6],
            burn::tensor::Distribution::Normal(0.3, 2.0),
            &d,
        );
        let r = Tensor::<4>::random(
            [3, c, 6, 6],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &d,
        );
        let grads = |norm: Norm| {
            let x = x0.clone().require_grad();
            let gr = (norm(&n, x.clone()) * r.clone()).sum().backward();
            let gamma = n.gamma.as_ref().unwrap().val();
            let beta = n.beta.as_ref().unwrap().val();
            [
                values(x.grad(&gr).unwrap()),
                values(gamma.grad(&gr).unwrap()),
                values(beta.grad(&gr).unwrap()),
            ]
        };
        let want = grads(|n, x| n.forward(x));
        let got = grads(group_norm_folded);
        for (k, name) in ["input", "gamma", "beta"].iter().enumerate() {
            let scale = want[k].iter().fold(1f32, |m, v| m.max(v.abs()));
            let worst = want[k]
                .iter()
                .zip(&got[k])
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-4 * scale, "{name} gradient differs by {worst}");
        }
    }

    #[test]
    fn the_exportable_grader_gives_the_graders_logits() {
        let d = Device::flex();
        for ordinal in [false, true] {
            d.seed(3);
            let a = Architecture {
                grader_ordinal: ordinal,
                ..Architecture::default()
            };
            let g = Grader::new(&a, &d);
            let x = Tensor::<4>::random(
                [4, 3, 32, 32],
                burn::tensor::Distribution::Uniform(0.0, 1.0),
                &d,
            );
            let p = values(g.forward(x.clone()));
            let q = values(g.forward_exportable(x));
            assert_eq!(p.len(), 12, "ordinal head: {ordinal}");
            for (p, q) in p.iter().zip(&q) {
                assert!(
                    (p - q).abs() < 1e-5 * p.abs().max(1.0),
                    "ordinal head {ordinal}: {p} vs {q}"
                );
            }
        }
    }

    #[test]
    fn normalisation_groups_hold_about_eight_channels_and_divide_the_layer() {
        for (c, g) in [
            (3, 1),
            (8, 1),
            (12, 1),
            (16, 2),
            (24, 3),
            (32, 4),
            (64, 8),
            (40, 5),
        ] {
            assert_eq!(groups(c), g, "{c} channels");
            assert_eq!(c % groups(c), 0);
        }
    }

    #[test]
    fn each_grader_shape_has_the_parameters_of_its_layers() {
        let d = Device::flex();
        let count = |a: &Architecture| Grader::new(a, &d).num_params();
        let conv = |i: usize, o: usize| i * o * 9 + o;
        let (s, w) = (3, 16);
        let mut a = Architecture {
            grader_norm: false,
            grader_convs: 1,
            ..Architecture::default()
        };
        let plain = conv(s, w) + conv(w, 2 * w) + conv(2 * w, 4 * w) + 4 * w * 3 + 3;
        assert_eq!(count(&a), plain);
        a.grader_convs = 2;
        let two = plain + conv(w, w) + conv(2 * w, 2 * w) + conv(4 * w, 4 * w);
        assert_eq!(count(&a), two);
        a.grader_norm = true;
        // gamma and beta per channel, after each of the six convolutions.
        let normed = two + 2 * 2 * (w + 2 * w + 4 * w);
        assert_eq!(count(&a), normed);
        // The ordinal head: one output instead of three, and its four parameters.
        a.grader_ordinal = true;
        assert_eq!(count(&a), normed - (4 * w * 3 + 3) + (4 * w + 1) + 4);
    }

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn ordinal_logits_are_the_cumulative_logit_probabilities() {
        let d = Device::flex();
        let scores = [-60.0f32, -3.0, -0.4, 0.0, 0.7, 1.9, 2.6, 5.0, 60.0];
        let n = scores.len();
        let s = Tensor::<2>::from_data(TensorData::new(scores.to_vec(), [n, 1]), &d);
        for (theta1, dd, b1, b2) in [
            (0.5f64, 1.258_675f64, 0.0f64, 0.0f64),
            (-1.0, -2.0, 0.0, 0.0),
            (0.3, 0.8, 0.7, 1.4),
        ] {
            let head =
                Tensor::<1>::from_floats([theta1 as f32, dd as f32, b1 as f32, b2 as f32], &d);
            for exportable in [false, true] {
                let got = values(ordinal_logits(s.clone(), head.clone(), exportable));
                assert_eq!(got.len(), 3 * n);
                let theta2 = theta1 + (1.0 + dd.exp()).ln() + 1e-3;
                for (i, &x) in scores.iter().enumerate() {
                    let x = x as f64;
                    let (ge1, ge2) = (sigmoid(x - theta1), sigmoid(x - theta2));
                    // The softmax of the logits: the ordinal probabilities, tilted by exp(beta).
                    let raw = [1.0 - ge1, (ge1 - ge2) * b1.exp(), ge2 * b2.exp()];
                    let total: f64 = raw.iter().sum();
                    let z = &got[3 * i..3 * i + 3];
                    assert!(z.iter().all(|v| v.is_finite()), "score {x}: {z:?}");
                    let m = z.iter().cloned().fold(f32::MIN, f32::max) as f64;
                    let e: Vec<f64> = z.iter().map(|&v| (v as f64 - m).exp()).collect();
                    let es: f64 = e.iter().sum();
                    for k in 0..3 {
                        let want = raw[k] / total;
                        let have = e[k] / es;
                        assert!(
                            (want - have).abs() < 1e-5,
                            "score {x}, head {theta1} {dd} {b1} {b2}, grade {k}: {have} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
