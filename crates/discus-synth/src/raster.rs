//! Rendering one slice: sample the tissue model per pixel (with sub-samples across the slice
//! thickness for partial volume), apply the sequence's signal, a smooth coil bias field, the site's
//! intensity scale and Rician noise.

use crate::anatomy::{Anatomy, SpineCoord, N_TISSUE_CODES};
use crate::protocol::SliceGeom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Everything needed to turn tissue into pixel values for one series.
#[derive(Debug, Clone)]
pub struct SeriesSignal {
    /// Signal of each tissue code ([`crate::anatomy::Tissue::code`]) under the series' sequence.
    pub table: [f32; N_TISSUE_CODES],
    /// Signal-to-pixel scale.
    pub scale: f64,
    /// Noise sigma in pixel units.
    pub sigma: f64,
    /// Bias field: gain falls off with distance from the posterior coil, plus a gentle gradient.
    pub bias_depth: f64,
    /// Gain gradient per mm of patient x, y, z (LPS).
    pub bias_grad: [f64; 3],
}

impl SeriesSignal {
    fn gain(&self, anat: &Anatomy, c: SpineCoord, p: [f64; 3]) -> f64 {
        let depth = (anat.back_d - c.d).max(0.0);
        let g = 0.7 + 0.45 * (-depth / self.bias_depth).exp();
        g * (1.0 + self.bias_grad[0] * p[0] + self.bias_grad[1] * p[1] + self.bias_grad[2] * p[2])
            .clamp(0.6, 1.4)
    }
}

/// Grid step (pixels) for the straightened-coordinate interpolation.
const GRID: usize = 8;
/// Sub-samples across the slice thickness (midpoint rule at -t/4 and +t/4: partial volume of
/// structures thinner than the slice, at two thirds of the cost of three samples).
const SUB: usize = 2;

/// Renders one slice to 16-bit pixels (row-major, `rows * cols`). Deterministic in `noise_seed`.
pub fn render_slice(
    anat: &Anatomy,
    g: &SliceGeom,
    sig: &SeriesSignal,
    noise_seed: u64,
) -> Vec<u16> {
    let (rows, cols) = (g.rows as usize, g.cols as usize);
    let n = g.normal();
    let gw = cols.div_ceil(GRID) + 1;
    let gh = rows.div_ceil(GRID) + 1;
    let mut acc = vec![0f32; rows * cols];
    let mut gain = vec![0f32; rows * cols];
    for k in 0..SUB {
        let off = (k as f64 + 0.5) / SUB as f64 - 0.5;
        let shift = [
            n[0] * off * g.thickness,
            n[1] * off * g.thickness,
            n[2] * off * g.thickness,
        ];
        // Straightened (s, d) on a coarse grid; x is exact per pixel.
        let mut gs = vec![0f64; gw * gh];
        let mut gd = vec![0f64; gw * gh];
        let mut guess = None;
        for gy in 0..gh {
            for gx in 0..gw {
                let mut p = g.pixel_to_patient((gx * GRID) as f64, (gy * GRID) as f64);
                p = [p[0] + shift[0], p[1] + shift[1], p[2] + shift[2]];
                let c = match guess {
                    Some(s) => anat.to_spine_from(p, s),
                    None => anat.to_spine(p),
                };
                guess = Some(c.s);
                gs[gy * gw + gx] = c.s;
                gd[gy * gw + gx] = c.d;
            }
            guess = Some(gs[gy * gw]);
        }
        for r in 0..rows {
            let gy = r / GRID;
            let fy = (r % GRID) as f64 / GRID as f64;
            for cix in 0..cols {
                let gx = cix / GRID;
                let fx = (cix % GRID) as f64 / GRID as f64;
                let i00 = gy * gw + gx;
                let lerp = |v: &Vec<f64>| {
                    let a = v[i00] + (v[i00 + 1] - v[i00]) * fx;
                    let b = v[i00 + gw] + (v[i00 + gw + 1] - v[i00 + gw]) * fx;
                    a + (b - a) * fy
                };
                let p0 = g.pixel_to_patient(cix as f64, r as f64);
                let p = [p0[0] + shift[0], p0[1] + shift[1], p0[2] + shift[2]];
                let c = SpineCoord {
                    s: lerp(&gs),
                    x: p[0],
                    d: lerp(&gd),
                };
                let t = anat.tissue(c, p);
                acc[r * cols + cix] += sig.table[t.code()];
                if k == 0 {
                    gain[r * cols + cix] = sig.gain(anat, c, p) as f32;
                }
            }
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(noise_seed);
    let mut out = vec![0u16; rows * cols];
    for i in 0..rows * cols {
        let v = acc[i] as f64 / SUB as f64 * gain[i] as f64 * sig.scale;
        let n1: f64 = StandardNormal.sample(&mut rng);
        let n2: f64 = StandardNormal.sample(&mut rng);
        let m = ((v + sig.sigma * n1).powi(2) + (sig.sigma * n2).powi(2)).sqrt();
        out[i] = m.round().clamp(0.0, 65535.0) as u16;
    }
    out
}
