//! Rendering one slice as a scanner would reconstruct it.
//!
//! 1. The tissue model is sampled per pixel of the displayed grid, at two depths across the slice
//!    thickness (partial volume through the slice profile), into a water and a fat image.
//! 2. The fat image is displaced along the frequency-encoding direction by the chemical shift
//!    (3.4 ppm x 42.58 MHz/T x B0 over the receiver bandwidth per pixel) and, for spectral fat
//!    saturation, its residual grows away from the isocentre (B0 inhomogeneity).
//! 3. The posterior phased-array coil's sensitivity multiplies the object: it falls with depth from
//!    the back, ripples along the spine with the element pattern, dips towards the flanks, plus a
//!    gentle gradient.
//! 4. Truncation of k-space at the acquired matrix: the displayed image is the object convolved with
//!    the Dirichlet kernel of the acquired extent, `D(n) = sin(pi M n / N) / (N sin(pi n / N))`
//!    (N displayed, M acquired samples along the axis), applied separably over +-8 lobes. This is
//!    exactly zero-filled reconstruction of the truncated k-space of the point-sampled object, done in
//!    image space (cheaper than two FFTs per axis); it gives Gibbs ringing with the acquired period at
//!    every sharp edge (CSF-cord, fat-muscle).
//! 5. Occasional motion ghosting: attenuated copies of the image displaced along the phase-encoding
//!    direction (periodic respiratory motion modulates k-space along phase).
//! 6. Complex Gaussian noise of the series' sigma on both channels, magnitude (Rician), rounding into
//!    the vendor's stored value range.

use crate::anatomy::noise::fbm3;
use crate::anatomy::{Anatomy, SpineCoord, Tissue};
use crate::protocol::{PhaseDir, SliceGeom};
use crate::signal::SignalTable;
use crate::signal::TEXTURE_CV;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// Chemical shift of fat relative to water (ppm).
pub const FAT_PPM: f64 = 3.4;
/// Proton gyromagnetic ratio over 2 pi (MHz/T).
pub const GAMMA_MHZ_T: f64 = 42.577;

/// Motion ghosting of one series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ghost {
    /// Amplitude of each ghost relative to the image.
    pub amplitude: f64,
    /// Displacement of the ghosts along the phase direction, as a fraction of the image size.
    pub period: f64,
}

/// Everything needed to turn tissue into pixel values for one series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSignal {
    /// Water and fat signal of each tissue code under the series' sequence.
    pub table: SignalTable,
    /// Stored value per unit of signal.
    pub scale: f64,
    /// Noise sigma in stored units.
    pub sigma: f64,
    /// Depth (mm) over which the coil's sensitivity falls by 1/e.
    pub bias_depth: f64,
    /// Gain gradient per mm of patient x, y, z (LPS).
    pub bias_grad: [f64; 3],
    /// Relative ripple of the sensitivity along the spine (coil elements ~ 70 mm apart).
    pub coil_ripple: f64,
    /// Phase of the ripple (radians).
    pub coil_phase: f64,
    /// Spectral fat saturation: how many times more fat signal an unsuppressed voxel has than a
    /// suppressed one at the isocentre (1 without fat saturation).
    pub fat_fail: f64,
    /// The isocentre (patient mm, LPS): the centre of the series.
    pub iso: [f64; 3],
    /// Fat displacement along the frequency direction, in acquired pixels.
    pub chem_shift_px: f64,
    /// Phase encoding direction.
    pub phase_dir: PhaseDir,
    /// Acquired over displayed samples along the frequency and the phase direction (<= 1).
    pub acq_frac: [f64; 2],
    /// Motion ghosting, when the series has it.
    pub ghost: Option<Ghost>,
    /// Largest stored value (4095 for 12 bits stored, 65535 for 16).
    pub max_stored: u16,
}

impl SeriesSignal {
    /// Coil sensitivity at a point (straightened and patient coordinates).
    pub fn gain(&self, anat: &Anatomy, c: SpineCoord, p: [f64; 3]) -> f64 {
        let depth = (anat.back_d - c.d).max(0.0);
        let g = 0.55 + 0.6 * (-depth / self.bias_depth).exp();
        let ripple =
            1.0 + self.coil_ripple * (std::f64::consts::TAU * p[2] / 70.0 + self.coil_phase).cos();
        let lateral = 1.0 - 0.2 * (p[0] / 160.0).powi(2).min(1.0);
        g * ripple
            * lateral
            * (1.0 + self.bias_grad[0] * p[0] + self.bias_grad[1] * p[1] + self.bias_grad[2] * p[2])
                .clamp(0.6, 1.4)
    }

    /// Factor on the fat signal at a point: 1 without fat saturation; with it, rising from 1 at the
    /// isocentre towards `fat_fail` beyond ~200 mm from it.
    fn fat_factor(&self, p: [f64; 3]) -> f64 {
        if self.fat_fail <= 1.0 {
            return 1.0;
        }
        let d = ((p[0] - self.iso[0]).powi(2)
            + (p[1] - self.iso[1]).powi(2)
            + (p[2] - self.iso[2]).powi(2))
        .sqrt();
        let t = ((d - 110.0) / 100.0).clamp(0.0, 1.0);
        let w = t * t * (3.0 - 2.0 * t);
        1.0 + (self.fat_fail - 1.0) * 0.5 * w
    }

    /// The AcquisitionMatrix (0018,1310) for a displayed geometry: frequency rows, frequency
    /// columns, phase rows, phase columns (two of them zero).
    pub fn acquisition_matrix(&self, g: &SliceGeom) -> [u16; 4] {
        let (nf, np) = match self.phase_dir {
            PhaseDir::Row => (g.rows, g.cols),
            PhaseDir::Col => (g.cols, g.rows),
        };
        let f = (nf as f64 * self.acq_frac[0]).round() as u16;
        let p = (np as f64 * self.acq_frac[1]).round() as u16;
        match self.phase_dir {
            PhaseDir::Row => [f, 0, 0, p],
            PhaseDir::Col => [0, f, p, 0],
        }
    }
}

/// Grid step (pixels) for the straightened-coordinate interpolation.
const GRID: usize = 8;
/// Sub-samples across the slice thickness (midpoint rule at -t/4 and +t/4: partial volume of
/// structures thinner than the slice, at two thirds of the cost of three samples).
const SUB: usize = 2;
/// Lobes of the Dirichlet kernel kept on each side.
pub const LOBES: f64 = 8.0;

/// Calls `f(pixel index, spine coordinate, patient point, tissue)` for every pixel of a slice, the
/// slice moved by `offset` mm along its normal. Straightened coordinates are computed on a coarse grid
/// and interpolated (x is exact per pixel).
pub fn for_each_pixel(
    anat: &Anatomy,
    g: &SliceGeom,
    offset: f64,
    mut f: impl FnMut(usize, SpineCoord, [f64; 3], Tissue),
) {
    let (rows, cols) = (g.rows as usize, g.cols as usize);
    let n = g.normal();
    let gw = cols.div_ceil(GRID) + 1;
    let gh = rows.div_ceil(GRID) + 1;
    let shift = [n[0] * offset, n[1] * offset, n[2] * offset];
    let mut gs = vec![0f64; gw * gh];
    let mut gd = vec![0f64; gw * gh];
    let mut guess = None;
    for gy in 0..gh {
        for gx in 0..gw {
            let mut p = g.pixel_to_patient((gx * GRID) as f64, (gy * GRID) as f64);
            p = [p[0] + shift[0], p[1] + shift[1], p[2] + shift[2]];
            let c = match guess {
                Some(s) => anat.to_spine_from(p, s),
                // Raw centreline coordinates like the others (`to_spine` gives anatomical ones;
                // its arc length is the same and seeds the raw solve).
                None => anat.to_spine_from(p, anat.to_spine(p).s),
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
            f(r * cols + cix, c, p, anat.tissue(c, p));
        }
    }
}

/// The tissue code ([`Tissue::code`]) of every pixel of a slice, at `offset` mm from its plane.
pub fn tissue_codes(anat: &Anatomy, g: &SliceGeom, offset: f64) -> Vec<u8> {
    let mut out = vec![0u8; g.rows as usize * g.cols as usize];
    for_each_pixel(anat, g, offset, |i, _, _, t| out[i] = t.code() as u8);
    out
}

/// The offsets (mm along the normal) of the sub-samples across a slice's thickness.
pub fn sub_sample_offsets(g: &SliceGeom) -> [f64; SUB] {
    std::array::from_fn(|k| ((k as f64 + 0.5) / SUB as f64 - 0.5) * g.thickness)
}

/// Step (pixels) of the coil gain's grid in [`render_clean`].
const GAIN_STEP: usize = 4;

/// The node rows (or columns) of a [`GAIN_STEP`] grid over `n` pixels, and for pixel `i` its two
/// nodes and the weight of the second.
fn node_span(i: usize, n: usize) -> (usize, usize, f64) {
    let a = i / GAIN_STEP * GAIN_STEP;
    let b = (a + GAIN_STEP).min(n - 1);
    if b <= a {
        (a, a, 0.0)
    } else {
        (a, b, (i - a) as f64 / (b - a) as f64)
    }
}

/// Fills every pixel of `v` (row-major) bilinearly from its values on the [`GAIN_STEP`] grid
/// (every GAIN_STEP-th row and column, and the last ones).
fn fill_between_nodes(v: &mut [f64], rows: usize, cols: usize) {
    let spans: Vec<(usize, usize, f64)> = (0..cols).map(|c| node_span(c, cols)).collect();
    // Along the node rows first, then every row from its two node rows.
    for r in (0..rows).filter(|r| r % GAIN_STEP == 0 || *r == rows - 1) {
        let line = &mut v[r * cols..(r + 1) * cols];
        for (c, &(a, b, w)) in spans.iter().enumerate() {
            if w > 0.0 {
                line[c] = line[a] + (line[b] - line[a]) * w;
            }
        }
    }
    for r in 0..rows {
        let (a, b, w) = node_span(r, rows);
        if w == 0.0 {
            continue;
        }
        for c in 0..cols {
            v[r * cols + c] = v[a * cols + c] + (v[b * cols + c] - v[a * cols + c]) * w;
        }
    }
}

/// 1 / the standard deviation of [`fbm3`] (0.277, measured over 10^5 points of the same value
/// noise with uniform lattice values).
const FBM_TO_UNIT: f64 = 3.6;

/// The within-tissue relaxation texture of a slice: two smooth fields (relative T1 and T2
/// variation in units of [`TEXTURE_CV`], about unit variance), fixed in the patient (the same
/// texture on every series), with features of a few millimetres; computed on the coil gain's grid
/// and interpolated.
pub fn texture_fields(anat: &Anatomy, g: &SliceGeom) -> (Vec<f64>, Vec<f64>) {
    let (rows, cols) = (g.rows as usize, g.cols as usize);
    let mut u1 = vec![0f64; rows * cols];
    let mut u2 = vec![0f64; rows * cols];
    let seed = anat.nseed;
    for r in (0..rows).filter(|r| r % GAIN_STEP == 0 || *r == rows - 1) {
        for c in (0..cols).filter(|c| c % GAIN_STEP == 0 || *c == cols - 1) {
            let p = g.pixel_to_patient(c as f64, r as f64);
            let q = |k: u32| FBM_TO_UNIT * fbm3(seed ^ k, p[0] / 4.0, p[1] / 4.0, p[2] / 4.0);
            u1[r * cols + c] = q(0x7e71);
            u2[r * cols + c] = q(0x7e72);
        }
    }
    fill_between_nodes(&mut u1, rows, cols);
    fill_between_nodes(&mut u2, rows, cols);
    (u1, u2)
}

/// The noiseless image of a slice before the stored-value rounding (signal x gain x scale, with
/// chemical shift, Gibbs ringing and ghosting), row-major.
pub fn render_clean(anat: &Anatomy, g: &SliceGeom, sig: &SeriesSignal) -> Vec<f64> {
    let (rows, cols) = (g.rows as usize, g.cols as usize);
    let mut water = vec![0f64; rows * cols];
    let mut fat = vec![0f64; rows * cols];
    // The coil's gain is smooth (tens of mm): computed on every GAIN_STEP-th row and column (and
    // the last ones) and interpolated.
    let on_node = |i: usize| {
        let (r, c) = (i / cols, i % cols);
        (r % GAIN_STEP == 0 || r == rows - 1) && (c % GAIN_STEP == 0 || c == cols - 1)
    };
    let mut gain = vec![0f64; rows * cols];
    let (u1, u2) = texture_fields(anat, g);
    let tb = &sig.table;
    for (k, off) in sub_sample_offsets(g).into_iter().enumerate() {
        for_each_pixel(anat, g, off, |i, c, p, t| {
            let code = t.code();
            let tex = 1.0
                + TEXTURE_CV
                    * (tb.t1_slope[code] as f64 * u1[i] + tb.t2_slope[code] as f64 * u2[i]);
            water[i] += tb.water[code] as f64 * tex;
            let f = sig.table.fat[code] as f64;
            if k == 0 && on_node(i) {
                gain[i] = sig.gain(anat, c, p);
            }
            if f != 0.0 {
                fat[i] += f * sig.fat_factor(p);
            }
        });
    }
    fill_between_nodes(&mut gain, rows, cols);
    // Chemical shift along the frequency direction, in displayed pixels.
    let shift = sig.chem_shift_px / sig.acq_frac[0].max(1e-3);
    let freq_along_rows = sig.phase_dir == PhaseDir::Col; // frequency changes with the column index
    let fat = shift_axis(&fat, rows, cols, freq_along_rows, shift);
    let mut img: Vec<f64> = (0..rows * cols)
        .map(|i| (water[i] + fat[i]) / SUB as f64 * gain[i] * sig.scale)
        .collect();
    // k-space truncation at the acquired matrix, separably.
    let (nf, np) = if freq_along_rows {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let mf = (nf as f64 * sig.acq_frac[0]).round() as usize;
    let mp = (np as f64 * sig.acq_frac[1]).round() as usize;
    img = convolve_axis(&img, rows, cols, freq_along_rows, &dirichlet(nf, mf));
    img = convolve_axis(&img, rows, cols, !freq_along_rows, &dirichlet(np, mp));
    if let Some(gh) = sig.ghost {
        let d = (gh.period * np as f64).round() as isize;
        let a = shift_axis_wrap(&img, rows, cols, !freq_along_rows, d);
        let b = shift_axis_wrap(&img, rows, cols, !freq_along_rows, -d);
        for i in 0..img.len() {
            img[i] += 0.5 * gh.amplitude * (a[i] + b[i]);
        }
    }
    img
}

/// Renders one slice to stored 16-bit values (row-major, `rows * cols`). Deterministic in
/// `noise_seed`.
pub fn render_slice(
    anat: &Anatomy,
    g: &SliceGeom,
    sig: &SeriesSignal,
    noise_seed: u64,
) -> Vec<u16> {
    let img = render_clean(anat, g, sig);
    let mut rng = ChaCha8Rng::seed_from_u64(noise_seed);
    let max = sig.max_stored as f64;
    img.iter()
        .map(|&v| {
            let n1: f64 = StandardNormal.sample(&mut rng);
            let n2: f64 = StandardNormal.sample(&mut rng);
            let m = ((v + sig.sigma * n1).powi(2) + (sig.sigma * n2).powi(2)).sqrt();
            m.round().clamp(0.0, max) as u16
        })
        .collect()
}

/// The Dirichlet kernel of keeping the central `m` of `n` k-space samples, over +-[`LOBES`] lobes,
/// normalised to unit sum (index `K` is the centre). `[1]` when nothing is truncated.
pub fn dirichlet(n: usize, m: usize) -> Vec<f64> {
    if m >= n || n < 4 || m == 0 {
        return vec![1.0];
    }
    let (nf, mf) = (n as f64, m as f64);
    let k = ((LOBES * nf / mf).ceil() as usize).min(n / 2);
    let pi = std::f64::consts::PI;
    let mut h: Vec<f64> = (0..=2 * k)
        .map(|j| {
            let t = j as f64 - k as f64;
            if t == 0.0 {
                mf / nf
            } else {
                (pi * mf * t / nf).sin() / (nf * (pi * t / nf).sin())
            }
        })
        .collect();
    let sum: f64 = h.iter().sum();
    h.iter_mut().for_each(|v| *v /= sum);
    h
}

/// Convolves along columns index (`along_rows`) or rows index with `h` (centre in the middle), edges
/// clamped.
fn convolve_axis(img: &[f64], rows: usize, cols: usize, along_rows: bool, h: &[f64]) -> Vec<f64> {
    if h.len() == 1 {
        return img.to_vec();
    }
    let k = (h.len() / 2) as isize;
    let mut out = vec![0f64; img.len()];
    if along_rows {
        let mut pad = vec![0f64; cols + 2 * k as usize];
        for r in 0..rows {
            let line = &img[r * cols..(r + 1) * cols];
            for (j, v) in pad.iter_mut().enumerate() {
                *v = line[(j as isize - k).clamp(0, cols as isize - 1) as usize];
            }
            // Tap by tap over the whole line (vectorises; a dot product per pixel does not).
            let o = &mut out[r * cols..(r + 1) * cols];
            for (j, w) in h.iter().enumerate() {
                for (oc, pc) in o.iter_mut().zip(&pad[j..j + cols]) {
                    *oc += w * pc;
                }
            }
        }
    } else {
        for r in 0..rows {
            let o = &mut out[r * cols..(r + 1) * cols];
            for (j, w) in h.iter().enumerate() {
                let rr = (r as isize + j as isize - k).clamp(0, rows as isize - 1) as usize;
                let src = &img[rr * cols..(rr + 1) * cols];
                for c in 0..cols {
                    o[c] += w * src[c];
                }
            }
        }
    }
    out
}

/// Moves an image by `shift` pixels (fractional, linear interpolation, zero outside) along the
/// columns index (`along_rows`) or the rows index.
fn shift_axis(img: &[f64], rows: usize, cols: usize, along_rows: bool, shift: f64) -> Vec<f64> {
    if shift == 0.0 {
        return img.to_vec();
    }
    let i0 = shift.floor() as isize;
    let f = shift - i0 as f64;
    let get = |r: isize, c: isize| -> f64 {
        if r < 0 || c < 0 || r >= rows as isize || c >= cols as isize {
            0.0
        } else {
            img[r as usize * cols + c as usize]
        }
    };
    let mut out = vec![0f64; img.len()];
    for r in 0..rows as isize {
        for c in 0..cols as isize {
            // out(x) = img(x - shift)
            out[r as usize * cols + c as usize] = if along_rows {
                get(r, c - i0) * (1.0 - f) + get(r, c - i0 - 1) * f
            } else {
                get(r - i0, c) * (1.0 - f) + get(r - i0 - 1, c) * f
            };
        }
    }
    out
}

/// Moves an image by whole pixels along an axis, wrapping round (phase-direction ghosts wrap).
fn shift_axis_wrap(img: &[f64], rows: usize, cols: usize, along_rows: bool, d: isize) -> Vec<f64> {
    let mut out = vec![0f64; img.len()];
    for r in 0..rows {
        for c in 0..cols {
            let (sr, sc) = if along_rows {
                (r, (c as isize - d).rem_euclid(cols as isize) as usize)
            } else {
                ((r as isize - d).rem_euclid(rows as isize) as usize, c)
            };
            out[r * cols + c] = img[sr * cols + sc];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirichlet_is_the_truncation_kernel() {
        // Keeping every sample changes nothing.
        assert_eq!(dirichlet(256, 256), vec![1.0]);
        // Independent check: truncate k-space of a step edge by a naive DFT and compare with the
        // kernel applied in image space, away from the (clamped vs circular) borders.
        let n = 64usize;
        let m = 40usize;
        let x: Vec<f64> = (0..n)
            .map(|i| if (20..44).contains(&i) { 1.0 } else { 0.0 })
            .collect();
        let pi = std::f64::consts::PI;
        let mut re = vec![0f64; n];
        let mut im = vec![0f64; n];
        for k in 0..n {
            for (j, v) in x.iter().enumerate() {
                let a = -2.0 * pi * (k * j) as f64 / n as f64;
                re[k] += v * a.cos();
                im[k] += v * a.sin();
            }
        }
        // Keep |k| < m/2 (m even: the central m frequencies, symmetric).
        let keep = |k: usize| {
            let kk = if k > n / 2 { n - k } else { k };
            kk < m / 2
        };
        let y: Vec<f64> = (0..n)
            .map(|j| {
                let mut s = 0.0;
                for k in 0..n {
                    if keep(k) {
                        let a = 2.0 * pi * (k * j) as f64 / n as f64;
                        s += re[k] * a.cos() - im[k] * a.sin();
                    }
                }
                s / n as f64
            })
            .collect();
        let h = dirichlet(n, m - 1);
        let z = convolve_axis(&x, 1, n, true, &h);
        for j in 24..40 {
            assert!(
                (y[j] - z[j]).abs() < 0.03,
                "{j}: dft {} kernel {}",
                y[j],
                z[j]
            );
        }
        // Ringing: overshoot just inside the edge (the Gibbs 9 %).
        let over = z[20..32].iter().cloned().fold(0.0, f64::max);
        assert!(over > 1.05, "{over}");
    }

    #[test]
    fn the_gain_grid_reproduces_a_bilinear_field() {
        // A bilinear function is reproduced exactly from its grid nodes, including the last
        // (partial) cells; other pixels start as garbage.
        for (rows, cols) in [(13usize, 10usize), (16, 17), (5, 4)] {
            let f = |r: usize, c: usize| 1.0 + 0.3 * r as f64 - 0.2 * c as f64;
            let mut v = vec![-99.0; rows * cols];
            for r in 0..rows {
                for c in 0..cols {
                    let node_r = r % GAIN_STEP == 0 || r == rows - 1;
                    let node_c = c % GAIN_STEP == 0 || c == cols - 1;
                    if node_r && node_c {
                        v[r * cols + c] = f(r, c);
                    }
                }
            }
            fill_between_nodes(&mut v, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert!(
                        (v[r * cols + c] - f(r, c)).abs() < 1e-12,
                        "{rows}x{cols} {r},{c}"
                    );
                }
            }
        }
    }

    #[test]
    fn shifts_move_by_the_right_amount() {
        let img: Vec<f64> = (0..20).map(|i| i as f64).collect();
        let s = shift_axis(&img, 1, 20, true, 2.5);
        assert!((s[10] - 7.5).abs() < 1e-12);
        let w = shift_axis_wrap(&img, 20, 1, false, 3);
        assert_eq!(w[0], 17.0);
        assert_eq!(w[5], 2.0);
    }
}
