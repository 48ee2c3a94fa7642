//! Fused CPU inference: how the default `cpu` device runs a trained model's networks.
//!
//! burn's flex backend runs a network one tensor operation at a time, each a pass over NCHW
//! activations; on the same networks PyTorch's CPU kernels are about 2.6 times as fast (README,
//! "Backends"). For inference on the `cpu` device, discus runs the same weights through this
//! module instead:
//!
//! - activations are channels-last (NHWC), one image at a time, with a one-pixel zero border, so
//!   a 3x3 convolution with `Same` padding reads its window without bounds checks;
//! - a convolution is computed directly: for each output row, blocks of 8 pixels times 16 or 32
//!   output channels are held in registers, each input value is broadcast against a weight vector
//!   (one multiply-add per weight), and the bias and ReLU are applied as the block is stored. The
//!   kernel is compiled for AVX-512, AVX2 with FMA, NEON, or plain code, and the widest the
//!   processor has is chosen at run time (`pulp`'s dispatch; no `unsafe` here);
//! - group normalisation is three passes over an image's map while it is in cache (the means, the
//!   variances, then scale, shift and ReLU in place); max pooling, nearest upsampling with the
//!   decoder's concatenation, and the global average are one pass each;
//! - the images of a batch run in parallel (rayon), each on one thread. A batch smaller than the
//!   thread count splits each convolution's output rows across the threads instead;
//! - buffers are reused per thread.
//!
//! [`FusedNet::new`] reads the weights of a burn [`Net`] once; it returns `None` for a layer
//! shape it does not handle (none of discus's architectures has one), and the caller keeps the
//! burn network. The outputs equal burn's forward pass within float rounding: the tests compare
//! them with [`Grader::forward`] and [`Localiser::forward`] for each architecture option, at
//! sizes whose rows are and are not multiples of the kernel's block.
//!
//! Training, the explanations' gradients and the other backends use the burn networks.
//! [`crate::Model`] uses this path on the flex device unless `DISCUS_FUSED=0`.

use crate::net::{Grader, Localiser, LocaliserNet, Net};
use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, PaddingConfig2d};
use burn::tensor::Tensor;
use rayon::prelude::*;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU8, Ordering};

/// Output channels per weight vector (one AVX-512 register of f32).
const LANES: usize = 16;

fn values<const D: usize>(t: Tensor<D>) -> Option<Vec<f32>> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().ok()
}

/// A 3x3 (`Same` padding) or 1x1 convolution (stride 1, no dilation, one group), packed.
#[derive(Debug, Clone)]
struct Conv {
    cin: usize,
    cout: usize,
    k: usize,
    /// `ceil(cout / 16)`.
    blocks: usize,
    /// `[block][ky][kx][cin][16]`; output channels past `cout` are zero.
    w: Vec<f32>,
    /// `[blocks * 16]`.
    b: Vec<f32>,
}

impl Conv {
    fn new(c: &Conv2d) -> Option<Conv> {
        let [cout, cin, kh, kw] = c.weight.val().dims();
        let k = kh;
        let padding_ok = match k {
            3 => matches!(c.padding, PaddingConfig2d::Same),
            1 => matches!(c.padding, PaddingConfig2d::Same | PaddingConfig2d::Valid),
            _ => false,
        };
        if kw != kh || !padding_ok || c.stride != [1, 1] || c.dilation != [1, 1] || c.groups != 1 {
            return None;
        }
        let wv = values(c.weight.val())?;
        let blocks = cout.div_ceil(LANES);
        let mut w = vec![0f32; blocks * k * k * cin * LANES];
        for co in 0..cout {
            for ci in 0..cin {
                for ky in 0..k {
                    for kx in 0..k {
                        let at = (((co / LANES) * k * k + ky * k + kx) * cin + ci) * LANES;
                        w[at + co % LANES] = wv[((co * cin + ci) * k + ky) * k + kx];
                    }
                }
            }
        }
        let mut b = vec![0f32; blocks * LANES];
        if let Some(bias) = &c.bias {
            b[..cout].copy_from_slice(&values(bias.val())?);
        }
        Some(Conv {
            cin,
            cout,
            k,
            blocks,
            w,
            b,
        })
    }
}

/// A group normalisation's groups, epsilon and affine parameters.
#[derive(Debug, Clone)]
struct Norm {
    groups: usize,
    epsilon: f32,
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl Norm {
    fn new(n: &GroupNorm) -> Option<Norm> {
        let c = n.num_channels;
        let (gamma, beta) = match (&n.gamma, &n.beta) {
            (Some(g), Some(b)) => (values(g.val())?, values(b.val())?),
            _ => (vec![1.0; c], vec![0.0; c]),
        };
        let groups = n.num_groups.max(1);
        (c % groups == 0 && gamma.len() == c && beta.len() == c).then_some(Norm {
            groups,
            epsilon: n.epsilon as f32,
            gamma,
            beta,
        })
    }
}

/// The widest instruction set the kernels may use: 0 the processor's widest, 1 AVX2 at most, 2
/// plain code. Always 0 but in tests, which run every path.
static LIMIT: AtomicU8 = AtomicU8::new(0);

/// Runs `op` under the widest SIMD instruction set the processor has (and [`LIMIT`] allows).
fn dispatch<Op: pulp::WithSimd>(op: Op) -> Op::Output {
    match LIMIT.load(Ordering::Relaxed) {
        0 => pulp::Arch::new().dispatch(op),
        #[cfg(target_arch = "x86_64")]
        1 => match pulp::x86::V3::try_new() {
            Some(simd) => pulp::Simd::vectorize(simd, op),
            None => op.with_simd(pulp::Scalar::new()),
        },
        _ => op.with_simd(pulp::Scalar::new()),
    }
}

/// The instruction set the kernels run with on this processor: `AVX-512`, `AVX2+FMA`, `NEON` or
/// `plain`.
pub fn instruction_set() -> &'static str {
    struct Op;
    impl pulp::WithSimd for Op {
        type Output = usize;
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) -> usize {
            std::mem::size_of::<S::f32s>()
        }
    }
    match dispatch(Op) {
        w if w >= 64 => "AVX-512",
        w if w >= 32 => "AVX2+FMA",
        16 if cfg!(target_arch = "aarch64") => "NEON",
        16 => "SSE",
        _ => "plain",
    }
}

thread_local! {
    /// Buffers of dropped maps, reused by the next maps made on this thread.
    static SPARE: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// One image's activations: `(h + 2) x (w + 2)` pixels of `c` channels (channels last), the
/// outer ring of pixels zero.
struct Map {
    h: usize,
    w: usize,
    c: usize,
    data: Vec<f32>,
}

impl Map {
    /// A zeroed map (its buffer taken from this thread's spares when one is large enough).
    fn new(h: usize, w: usize, c: usize) -> Map {
        let len = (h + 2) * (w + 2) * c;
        let mut data = SPARE.with(|s| {
            let mut s = s.borrow_mut();
            match s.iter().position(|b| b.capacity() >= len) {
                Some(i) => s.swap_remove(i),
                None => s.pop().unwrap_or_default(),
            }
        });
        data.clear();
        data.resize(len, 0.0);
        Map { h, w, c, data }
    }

    /// Index of channel 0 of interior pixel `(y, x)`.
    fn at(&self, y: usize, x: usize) -> usize {
        ((y + 1) * (self.w + 2) + x + 1) * self.c
    }

    /// A map of `[c, h, w]` values (one image of an NCHW batch).
    fn from_chw(x: &[f32], c: usize, h: usize, w: usize) -> Map {
        let mut m = Map::new(h, w, c);
        for ch in 0..c {
            for y in 0..h {
                let src = &x[(ch * h + y) * w..][..w];
                let row = m.at(y, 0);
                for (xi, v) in src.iter().enumerate() {
                    m.data[row + xi * c + ch] = *v;
                }
            }
        }
        m
    }

    /// Writes the interior as `[c, h, w]`.
    fn to_chw(&self, out: &mut [f32]) {
        let (h, w, c) = (self.h, self.w, self.c);
        for y in 0..h {
            let row = self.at(y, 0);
            for x in 0..w {
                let px = &self.data[row + x * c..][..c];
                for (ch, v) in px.iter().enumerate() {
                    out[(ch * h + y) * w + x] = *v;
                }
            }
        }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        let data = std::mem::take(&mut self.data);
        // During thread teardown the spares may already be gone: then the buffer is just freed.
        let _ = SPARE.try_with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < 32 {
                s.push(data);
            }
        });
    }
}

/// One block of `P` output pixels (row `y`, columns `x0..x0 + P`) times `NB` blocks of 16
/// output channels from block `cob`, stored into `row` (output row `y`, border pixels included).
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
fn block<const P: usize, const NB: usize, const FMA: bool>(
    c: &Conv,
    inp: &[f32],
    wp: usize,
    y: usize,
    x0: usize,
    cob: usize,
    row: &mut [f32],
    relu: bool,
) {
    let (cin, k) = (c.cin, c.k);
    // A 1x1 kernel reads the pixel itself: one pixel in from the border.
    let off = 1 - k / 2;
    let mut acc = [[[0f32; LANES]; NB]; P];
    for nb in 0..NB {
        let b = &c.b[(cob + nb) * LANES..][..LANES];
        for p in 0..P {
            acc[p][nb].copy_from_slice(b);
        }
    }
    for ky in 0..k {
        for kx in 0..k {
            let base = ((y + ky + off) * wp + x0 + kx + off) * cin;
            // Each pixel's input channels, and each output block's weights at this tap: slices of
            // exactly `cin` and `cin * 16` values, so the loop below needs no bounds checks.
            let px: [&[f32]; P] = std::array::from_fn(|p| &inp[base + p * cin..][..cin]);
            let wrow: [&[f32]; NB] = std::array::from_fn(|nb| {
                let at = (((cob + nb) * k * k + ky * k + kx) * cin) * LANES;
                &c.w[at..at + cin * LANES]
            });
            for ci in 0..cin {
                let wv: [[f32; LANES]; NB] = std::array::from_fn(|nb| {
                    let mut v = [0f32; LANES];
                    v.copy_from_slice(&wrow[nb][ci * LANES..ci * LANES + LANES]);
                    v
                });
                for p in 0..P {
                    let v = px[p][ci];
                    for nb in 0..NB {
                        for j in 0..LANES {
                            acc[p][nb][j] = if FMA {
                                v.mul_add(wv[nb][j], acc[p][nb][j])
                            } else {
                                v * wv[nb][j] + acc[p][nb][j]
                            };
                        }
                    }
                }
            }
        }
    }
    let cout = c.cout;
    for p in 0..P {
        let o = (x0 + p + 1) * cout;
        for nb in 0..NB {
            let co = ((cob + nb) * LANES).min(cout);
            let n = (cout - co).min(LANES);
            // A copy: a slice of `acc` itself would keep the accumulators out of registers.
            let mut v = acc[p][nb];
            if relu {
                for a in v.iter_mut() {
                    *a = a.max(0.0);
                }
            }
            row[o + co..o + co + n].copy_from_slice(&v[..n]);
        }
    }
}

/// Output rows `y0..` of a convolution, `rows` holding whole padded rows of the output map.
#[inline(always)]
fn conv_rows<const P: usize, const NB: usize, const FMA: bool>(op: RowsOp<'_>) {
    let RowsOp {
        c,
        inp,
        w,
        y0,
        rows,
        relu,
    } = op;
    let wp = w + 2;
    for (i, row) in rows.chunks_mut(wp * c.cout).enumerate() {
        let y = y0 + i;
        let mut cob = 0;
        while cob < c.blocks {
            if NB >= 2 && c.blocks - cob >= NB {
                let mut x = 0;
                while x + P <= w {
                    block::<P, NB, FMA>(c, inp, wp, y, x, cob, row, relu);
                    x += P;
                }
                while x < w {
                    block::<1, NB, FMA>(c, inp, wp, y, x, cob, row, relu);
                    x += 1;
                }
                cob += NB;
            } else {
                let mut x = 0;
                while x + P <= w {
                    block::<P, 1, FMA>(c, inp, wp, y, x, cob, row, relu);
                    x += P;
                }
                while x < w {
                    block::<1, 1, FMA>(c, inp, wp, y, x, cob, row, relu);
                    x += 1;
                }
                cob += 1;
            }
        }
    }
}

/// Some output rows of a convolution, run under the processor's widest SIMD instruction set.
struct RowsOp<'a> {
    c: &'a Conv,
    inp: &'a [f32],
    w: usize,
    y0: usize,
    rows: &'a mut [f32],
    relu: bool,
}

impl pulp::WithSimd for RowsOp<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        // The register width of the instruction set pulp chose: 64 bytes is AVX-512 (32
        // registers: 8 pixels x 2 vectors of accumulators), 32 AVX2 (16 registers), 16 NEON or
        // SSE, 4 plain code. Multiply-add is fused where the instruction set has it.
        let width = std::mem::size_of::<S::f32s>();
        if width >= 64 {
            conv_rows::<8, 2, true>(self)
        } else if width >= 32 || cfg!(target_arch = "aarch64") {
            conv_rows::<4, 1, true>(self)
        } else {
            conv_rows::<4, 1, false>(self)
        }
    }
}

/// `c` over `inp`, with ReLU when `relu`; the output rows split across threads when `par`.
fn conv(c: &Conv, inp: &Map, relu: bool, par: bool) -> Map {
    debug_assert_eq!(inp.c, c.cin);
    let (h, w) = (inp.h, inp.w);
    let mut out = Map::new(h, w, c.cout);
    let rs = (w + 2) * c.cout;
    let body = &mut out.data[rs..(h + 1) * rs];
    let run = |y0: usize, rows: &mut [f32]| {
        dispatch(RowsOp {
            c,
            inp: &inp.data,
            w,
            y0,
            rows,
            relu,
        })
    };
    if par && h > 1 {
        let band = h.div_ceil(rayon::current_num_threads().max(1) * 2).max(1);
        body.par_chunks_mut(band * rs)
            .enumerate()
            .for_each(|(i, rows)| run(i * band, rows));
    } else {
        run(0, body);
    }
    // The kernel writes interior pixels only: the border columns stay zero from `Map::new`.
    out
}

/// Group normalisation then ReLU, in place on the interior of `m`.
fn group_norm_relu(m: &mut Map, n: &Norm) {
    struct Op<'a>(&'a mut Map, &'a Norm);
    impl pulp::WithSimd for Op<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) {
            group_norm_relu_in(self.0, self.1)
        }
    }
    dispatch(Op(m, n))
}

#[inline(always)]
fn group_norm_relu_in(m: &mut Map, n: &Norm) {
    let (h, w, c) = (m.h, m.w, m.c);
    let k = c / n.groups;
    let count = (h * w * k) as f64;
    let mut sum = vec![0f32; c];
    for y in 0..h {
        let at = m.at(y, 0);
        for px in m.data[at..at + w * c].chunks_exact(c) {
            for (s, v) in sum.iter_mut().zip(px) {
                *s += v;
            }
        }
    }
    let mean: Vec<f32> = sum
        .chunks_exact(k)
        .map(|g| (g.iter().map(|&s| s as f64).sum::<f64>() / count) as f32)
        .collect();
    let mean_c: Vec<f32> = (0..c).map(|ch| mean[ch / k]).collect();
    let mut sq = vec![0f32; c];
    for y in 0..h {
        let at = m.at(y, 0);
        for px in m.data[at..at + w * c].chunks_exact(c) {
            for ((s, v), mu) in sq.iter_mut().zip(px).zip(&mean_c) {
                let d = v - mu;
                *s += d * d;
            }
        }
    }
    let mut scale = vec![0f32; c];
    let mut shift = vec![0f32; c];
    for (g, chunk) in sq.chunks_exact(k).enumerate() {
        let var = chunk.iter().map(|&s| s as f64).sum::<f64>() / count;
        let inv = 1.0 / (var + n.epsilon as f64).sqrt();
        for ch in g * k..(g + 1) * k {
            scale[ch] = (inv * n.gamma[ch] as f64) as f32;
            shift[ch] = n.beta[ch] - mean[g] * scale[ch];
        }
    }
    for y in 0..h {
        let at = m.at(y, 0);
        for px in m.data[at..at + w * c].chunks_exact_mut(c) {
            for ((v, a), b) in px.iter_mut().zip(&scale).zip(&shift) {
                *v = (*v * a + b).max(0.0);
            }
        }
    }
}

/// 2x2 max pooling with stride 2 (odd trailing rows and columns dropped, as burn's).
fn max_pool(m: &Map) -> Map {
    struct Op<'a>(&'a Map);
    impl pulp::WithSimd for Op<'_> {
        type Output = Map;
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) -> Map {
            max_pool_in(self.0)
        }
    }
    dispatch(Op(m))
}

#[inline(always)]
fn max_pool_in(m: &Map) -> Map {
    let (h, w, c) = (m.h / 2, m.w / 2, m.c);
    let mut out = Map::new(h, w, c);
    for y in 0..h {
        for x in 0..w {
            let o = out.at(y, x);
            let a = m.at(2 * y, 2 * x);
            let b = m.at(2 * y + 1, 2 * x);
            let (top, bottom) = (&m.data[a..a + 2 * c], &m.data[b..b + 2 * c]);
            for ch in 0..c {
                out.data[o + ch] = top[ch].max(top[c + ch]).max(bottom[ch]).max(bottom[c + ch]);
            }
        }
    }
    out
}

/// `[nearest 2x upsampling of low, skip]` along channels (the decoder's input).
fn up_cat(low: &Map, skip: &Map) -> Map {
    let (h, w) = (skip.h, skip.w);
    let (ca, cb) = (low.c, skip.c);
    let mut out = Map::new(h, w, ca + cb);
    for y in 0..h {
        for x in 0..w {
            let o = out.at(y, x);
            let a = low.at(y / 2, x / 2);
            let b = skip.at(y, x);
            out.data[o..o + ca].copy_from_slice(&low.data[a..a + ca]);
            out.data[o + ca..o + ca + cb].copy_from_slice(&skip.data[b..b + cb]);
        }
    }
    out
}

/// Runs `image` on each image of a batch: in parallel over images when there are at least as
/// many as threads, else one image at a time with each convolution split by rows.
fn batched(
    x: &[f32],
    batch: usize,
    per_out: usize,
    image: impl Fn(&[f32], &mut [f32], bool) + Sync,
) -> Vec<f32> {
    let mut out = vec![0f32; batch * per_out];
    if batch == 0 || per_out == 0 {
        return out;
    }
    let per_in = x.len() / batch;
    if batch >= rayon::current_num_threads() {
        out.par_chunks_mut(per_out)
            .zip(x.par_chunks(per_in))
            .for_each(|(o, i)| image(i, o, false));
    } else {
        for (o, i) in out.chunks_mut(per_out).zip(x.chunks(per_in)) {
            image(i, o, true);
        }
    }
    out
}

/// A [`Localiser`]'s weights, for fused inference.
#[derive(Debug, Clone)]
pub struct FusedLocaliser {
    /// `e1a, e1b, e2a, e2b, e3a, e3b, e4a, e4b, d3, d2, d1, head`.
    convs: Vec<Conv>,
}

impl FusedLocaliser {
    /// Reads `l`'s weights; `None` for a layer shape this module does not run.
    pub fn new(l: &Localiser) -> Option<FusedLocaliser> {
        let convs = l
            .convs()
            .iter()
            .map(|c| Conv::new(c))
            .collect::<Option<Vec<_>>>()?;
        let v = &convs;
        let chained = (1..8).all(|i| v[i].cin == v[i - 1].cout)
            && v[..11].iter().all(|c| c.k == 3)
            && v[8].cin == v[7].cout + v[5].cout
            && v[9].cin == v[8].cout + v[3].cout
            && v[10].cin == v[9].cout + v[1].cout
            && v[11].cin == v[10].cout
            && v[11].k == 1;
        chained.then_some(FusedLocaliser { convs })
    }

    /// Input channels.
    pub fn inputs(&self) -> usize {
        self.convs[0].cin
    }

    /// Output heat-map channels.
    pub fn outputs(&self) -> usize {
        self.convs[11].cout
    }

    /// Heat-map logits `[batch, outputs, h, w]` (row-major) of `x`, `[batch, inputs, h, w]`;
    /// `None` when the shape does not fit (`h` and `w` must be multiples of 8).
    pub fn forward(&self, x: &[f32], shape: [usize; 4]) -> Option<Vec<f32>> {
        let [b, c, h, w] = shape;
        if c != self.inputs() || h % 8 != 0 || w % 8 != 0 || x.len() != b * c * h * w {
            return None;
        }
        let outs = self.outputs();
        Some(batched(x, b, outs * h * w, |i, o, par| {
            self.image(i, c, h, w, par).to_chw(o)
        }))
    }

    fn image(&self, x: &[f32], c: usize, h: usize, w: usize, par: bool) -> Map {
        let v = &self.convs;
        let x0 = Map::from_chw(x, c, h, w);
        let e1 = conv(&v[1], &conv(&v[0], &x0, true, par), true, par);
        drop(x0);
        let e2 = conv(&v[3], &conv(&v[2], &max_pool(&e1), true, par), true, par);
        let e3 = conv(&v[5], &conv(&v[4], &max_pool(&e2), true, par), true, par);
        let e4 = conv(&v[7], &conv(&v[6], &max_pool(&e3), true, par), true, par);
        let d3 = conv(&v[8], &up_cat(&e4, &e3), true, par);
        drop((e4, e3));
        let d2 = conv(&v[9], &up_cat(&d3, &e2), true, par);
        drop((d3, e2));
        let d1 = conv(&v[10], &up_cat(&d2, &e1), true, par);
        conv(&v[11], &d1, false, par)
    }
}

/// A [`Grader`]'s weights, for fused inference.
#[derive(Debug, Clone)]
pub struct FusedGrader {
    /// Per block: its convolutions, each with its normalisation.
    blocks: Vec<Vec<(Conv, Option<Norm>)>>,
    /// The linear layer, `[inputs][outputs]`, and its bias.
    fc: Vec<f32>,
    fc_bias: Vec<f32>,
    /// The ordinal head's `[theta1, d, beta1, beta2]`.
    ordinal: Option<[f32; 4]>,
}

impl FusedGrader {
    /// Reads `g`'s weights; `None` for a layer shape this module does not run.
    pub fn new(g: &Grader) -> Option<FusedGrader> {
        let parts = g.parts();
        let mut blocks = Vec::new();
        for units in parts.blocks {
            let mut b = Vec::new();
            for (c, n) in units {
                let norm = match n {
                    Some(n) => Some(Norm::new(n)?),
                    None => None,
                };
                let c = Conv::new(c)?;
                if norm.as_ref().is_some_and(|n| c.cout % n.groups != 0) || c.k != 3 {
                    return None;
                }
                b.push((c, norm));
            }
            blocks.push(b);
        }
        let chained = blocks
            .iter()
            .flatten()
            .zip(blocks.iter().flatten().skip(1))
            .all(|((a, _), (b, _))| a.cout == b.cin);
        let fc = values(parts.fc.weight.val())?;
        let [ins, outs] = parts.fc.weight.val().dims();
        let last = blocks.last().and_then(|b| b.last()).map(|(c, _)| c.cout);
        let want = if parts.ordinal.is_some() { 1 } else { 3 };
        if !chained || last != Some(ins) || outs != want {
            return None;
        }
        let fc_bias = match &parts.fc.bias {
            Some(b) => values(b.val())?,
            None => vec![0.0; outs],
        };
        let ordinal = match parts.ordinal {
            Some(h) => Some(<[f32; 4]>::try_from(values(h)?).ok()?),
            None => None,
        };
        Some(FusedGrader {
            blocks,
            fc,
            fc_bias,
            ordinal,
        })
    }

    /// Input channels (slices).
    pub fn inputs(&self) -> usize {
        self.blocks[0][0].0.cin
    }

    /// Severity logits `[batch, 3]` of `x`, `[batch, slices, s, s]`; `None` when the shape does
    /// not fit.
    pub fn forward(&self, x: &[f32], shape: [usize; 4]) -> Option<Vec<f32>> {
        let [b, c, h, w] = shape;
        if c != self.inputs() || h < 8 || w < 8 || x.len() != b * c * h * w {
            return None;
        }
        Some(batched(x, b, 3, |i, o, par| self.image(i, c, h, w, par, o)))
    }

    fn image(&self, x: &[f32], c: usize, h: usize, w: usize, par: bool, out: &mut [f32]) {
        let mut m = Map::from_chw(x, c, h, w);
        for units in &self.blocks {
            for (cv, norm) in units {
                m = match norm {
                    Some(n) => {
                        let mut y = conv(cv, &m, false, par);
                        group_norm_relu(&mut y, n);
                        y
                    }
                    None => conv(cv, &m, true, par),
                };
            }
            m = max_pool(&m);
        }
        // Global average, then the linear layer.
        let (ch, count) = (m.c, (m.h * m.w) as f64);
        let mut mean = vec![0f64; ch];
        for y in 0..m.h {
            let at = m.at(y, 0);
            for px in m.data[at..at + m.w * ch].chunks_exact(ch) {
                for (s, v) in mean.iter_mut().zip(px) {
                    *s += *v as f64;
                }
            }
        }
        let outs = self.fc_bias.len();
        let fc: Vec<f64> = (0..outs)
            .map(|j| {
                self.fc_bias[j] as f64
                    + (0..ch)
                        .map(|i| mean[i] / count * self.fc[i * outs + j] as f64)
                        .sum::<f64>()
            })
            .collect();
        match self.ordinal {
            Some(head) => out.copy_from_slice(&ordinal_logits(fc[0], head)),
            None => {
                for (o, v) in out.iter_mut().zip(&fc) {
                    *o = *v as f32;
                }
            }
        }
    }
}

/// `ln sigmoid(x)`, stable for any `x`.
fn log_sigmoid(x: f64) -> f64 {
    x.min(0.0) - (-x.abs()).exp().ln_1p()
}

/// The ordinal head's three logits for severity score `s` ([`crate::net::ordinal_logits`]).
fn ordinal_logits(s: f64, head: [f32; 4]) -> [f32; 3] {
    let [theta1, d, beta1, beta2] = head.map(|v| v as f64);
    let gap = d.exp().ln_1p() + 1e-3;
    let a = s - theta1;
    let b = a - gap;
    let spread = (-(-gap).exp()).ln_1p();
    [
        log_sigmoid(-a),
        log_sigmoid(a) + log_sigmoid(-b) + spread + beta1,
        log_sigmoid(b) + beta2,
    ]
    .map(|v| v as f32)
}

/// Every network of a model, for fused inference.
#[derive(Debug, Clone)]
pub struct FusedNet {
    /// The canal localiser.
    pub localiser: FusedLocaliser,
    /// The foraminal point localiser.
    pub foraminal_localiser: FusedLocaliser,
    /// The subarticular point localiser.
    pub subarticular_localiser: FusedLocaliser,
    /// Spinal canal stenosis grader.
    pub spinal: FusedGrader,
    /// Neural foraminal narrowing grader.
    pub foraminal: FusedGrader,
    /// Subarticular stenosis grader.
    pub subarticular: FusedGrader,
}

impl FusedNet {
    /// Reads every network's weights; `None` when one has a layer shape this module does not run.
    pub fn new(net: &Net) -> Option<FusedNet> {
        Some(FusedNet {
            localiser: FusedLocaliser::new(&net.localiser)?,
            foraminal_localiser: FusedLocaliser::new(&net.foraminal_localiser)?,
            subarticular_localiser: FusedLocaliser::new(&net.subarticular_localiser)?,
            spinal: FusedGrader::new(&net.spinal)?,
            foraminal: FusedGrader::new(&net.foraminal)?,
            subarticular: FusedGrader::new(&net.subarticular)?,
        })
    }

    /// One of the heat-map networks.
    pub fn localiser_of(&self, which: LocaliserNet) -> &FusedLocaliser {
        match which {
            LocaliserNet::Canal => &self.localiser,
            LocaliserNet::Foraminal => &self.foraminal_localiser,
            LocaliserNet::Subarticular => &self.subarticular_localiser,
        }
    }

    /// The grader of a condition group.
    pub fn grader(&self, group: discus_core::ConditionGroup) -> &FusedGrader {
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
    use crate::net::Architecture;
    use burn::module::{Module, ModuleMapper, Param};
    use burn::tensor::{Device, TensorData};

    /// A fixed pseudo-random sequence in [-1, 1) (xorshift).
    fn noise(n: usize, seed: u32) -> Vec<f32> {
        let mut s = 0x9E37_79B9u32 ^ seed.wrapping_mul(0x85EB_CA6B);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Adds noise to every parameter, so that group normalisation's gamma and beta (initialised
    /// to 1 and 0) and the ordinal head take values of their own.
    struct Jitter(u32);

    impl ModuleMapper for Jitter {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            self.0 += 1;
            let t = p.val();
            let shape = t.shape();
            let n = noise(shape.num_elements(), self.0);
            let n = Tensor::<D>::from_data(TensorData::new(n, shape), &t.device()).mul_scalar(0.3);
            Param::from_tensor(t + n)
        }
    }

    fn close(fused: &[f32], burn: &[f32], what: &str) {
        assert_eq!(fused.len(), burn.len(), "{what}: lengths");
        let scale = burn.iter().fold(1f32, |m, v| m.max(v.abs()));
        for (i, (a, b)) in fused.iter().zip(burn).enumerate() {
            assert!(
                (a - b).abs() <= 2e-5 * scale,
                "{what}: value {i}: fused {a}, burn {b} (scale {scale})"
            );
        }
    }

    fn burn_out<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn check_grader(a: &Architecture, batch: usize, s: usize, seed: u32) {
        let d = Device::flex();
        d.seed(seed as u64);
        let g = Grader::new(a, &d).map(&mut Jitter(seed));
        let f = FusedGrader::new(&g).expect("the grader runs fused");
        let shape = [batch, a.grader_slices, s, s];
        let x = noise(shape.iter().product(), seed + 100);
        let want = burn_out(g.forward(Tensor::from_data(TensorData::new(x.clone(), shape), &d)));
        let got = f.forward(&x, shape).expect("the shape fits");
        close(
            &got,
            &want,
            &format!("grader {a:?}, batch {batch}, {s}x{s}"),
        );
    }

    fn check_localiser(inputs: usize, w: usize, outputs: usize, shape: [usize; 4], seed: u32) {
        let d = Device::flex();
        d.seed(seed as u64);
        let l = Localiser::with_shape(inputs, w, outputs, &d).map(&mut Jitter(seed));
        let f = FusedLocaliser::new(&l).expect("the localiser runs fused");
        let x = noise(shape.iter().product(), seed + 200);
        let want = burn_out(l.forward(Tensor::from_data(TensorData::new(x.clone(), shape), &d)));
        let got = f.forward(&x, shape).expect("the shape fits");
        close(
            &got,
            &want,
            &format!("localiser {inputs}->{w}->{outputs}, {shape:?}"),
        );
    }

    #[test]
    fn the_default_grader_equals_burns() {
        let a = Architecture::default();
        // A batch run image by image in parallel, and one image with its rows split.
        check_grader(&a, 5, 32, 1);
        check_grader(&a, 1, 32, 2);
    }

    #[test]
    fn every_grader_option_equals_burns() {
        // One convolution per block, no normalisation, the ordinal head, 5 slices, width 8 (a
        // partial block of output channels), 24x24 crops (rows of 24, 12 and 6: not multiples of
        // the kernel's 8 pixels).
        let a = Architecture {
            grader_slices: 5,
            grader_width: 8,
            grader_norm: false,
            grader_convs: 1,
            grader_ordinal: true,
            ..Architecture::default()
        };
        check_grader(&a, 3, 24, 3);
        let b = Architecture {
            grader_width: 24,
            grader_ordinal: true,
            ..Architecture::default()
        };
        check_grader(&b, 2, 40, 4);
    }

    #[test]
    fn localisers_equal_burns() {
        // The canal localiser's shape, a batch of two; a point localiser's (two outputs), one
        // image of 5 slices with rows split, not square; a width of 12 channels.
        check_localiser(3, 16, 5, [2, 3, 64, 64], 5);
        check_localiser(5, 16, 2, [1, 5, 48, 40], 6);
        check_localiser(3, 12, 1, [3, 3, 24, 32], 7);
    }

    #[test]
    fn every_instruction_set_equals_burns() {
        // AVX2 (where the processor has it; 4 pixels x 1 vector) and plain code, besides the
        // widest (AVX-512 on the machines this was written on). Other tests running meanwhile
        // take the same paths: every one must give burn's values anyway.
        for limit in [1, 2] {
            LIMIT.store(limit, Ordering::Relaxed);
            let a = Architecture::default();
            check_grader(&a, 3, 32, 10 + limit as u32);
            check_localiser(3, 16, 5, [2, 3, 32, 32], 20 + limit as u32);
        }
        LIMIT.store(0, Ordering::Relaxed);
    }

    #[test]
    fn shapes_it_does_not_run_are_refused() {
        let d = Device::flex();
        let l = Localiser::with_shape(3, 16, 5, &d);
        let f = FusedLocaliser::new(&l).unwrap();
        // Not a multiple of 8, or the wrong number of channels: the caller falls back to burn.
        assert!(f.forward(&vec![0.0; 3 * 60 * 60], [1, 3, 60, 60]).is_none());
        assert!(f.forward(&vec![0.0; 4 * 64 * 64], [1, 4, 64, 64]).is_none());
        let g = Grader::new(&Architecture::default(), &d);
        let fg = FusedGrader::new(&g).unwrap();
        assert!(fg
            .forward(&vec![0.0; 2 * 32 * 32], [1, 2, 32, 32])
            .is_none());
    }
}
