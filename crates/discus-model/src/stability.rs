//! Consistency of a prediction under small perturbations of its grader inputs.
//!
//! For each finding with a point, `samples` perturbed crops are graded, each with its own random
//! draw of every perturbation at once (uniform within `± magnitude x` the nominal size):
//!
//! | perturbation | nominal size | how |
//! |---|---|---|
//! | intensity | ± 10 % | the normalised crop times `1 + u` |
//! | noise | σ = 0.02 | Gaussian noise added to the normalised crop (about 2 % of the window) |
//! | slice | ± 1 slice | the crop centre moved along the stack normal by a whole number of slices |
//! | rotation | ± 3° | the crop rotated in-plane about its centre (bilinear, zero outside) |
//! | shift | ± 2 mm | the crop centre moved in-plane, both directions |
//!
//! Reported per finding ([`Stability`]): the standard deviation and the range (max - min) of each
//! class probability over the samples, and how often the most probable grade differs from the
//! prediction's (the flip rate). The localiser is not re-run: the ±1 slice and ±2 mm shifts stand
//! in for the uncertainty of the point. Findings without a point (the prior) have no stability.
//!
//! With `magnitude = 0` every draw is the null perturbation: the crops are the prediction's own and
//! the spread is zero. The draws are deterministic under `seed` (ChaCha8).

use crate::explain::{grade, Sources};
use crate::predict::StudyPrediction;
use crate::{Model, ModelError};
use discus_core::ConditionGroup;
use discus_data::dataset::Dataset;
use discus_data::standardise::crop;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How many perturbed predictions, how large, and the seed of the draws.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StabilityOptions {
    /// Perturbed gradings per finding.
    pub samples: usize,
    /// Scale of every perturbation: 1 is the nominal sizes of the module documentation, 0 none.
    pub magnitude: f64,
    /// Seed of the draws.
    pub seed: u64,
}

impl StabilityOptions {
    /// `samples` draws at the nominal sizes, seed 0.
    pub fn new(samples: usize) -> Self {
        StabilityOptions {
            samples,
            magnitude: 1.0,
            seed: 0,
        }
    }
}

/// The spread of one finding's probabilities under perturbation (`stability` in findings.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stability {
    /// Perturbed gradings.
    pub samples: usize,
    /// The perturbations' scale (1 = nominal).
    pub magnitude: f64,
    /// Standard deviation of each class probability (Normal/Mild, Moderate, Severe).
    pub std: [f64; 3],
    /// Max - min of each class probability.
    pub range: [f64; 3],
    /// Fraction of the samples whose most probable grade differs from the prediction's grade.
    pub flip_rate: f64,
}

/// One draw of every perturbation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Perturbation {
    /// Intensity factor (1 = none).
    pub intensity: f64,
    /// Standard deviation of the added Gaussian noise (0 = none).
    pub noise_sd: f64,
    /// Slices along the stack normal (0 = none).
    pub slices: i64,
    /// In-plane rotation, degrees (0 = none).
    pub rotation_deg: f64,
    /// In-plane shift, mm, along the rows' and the columns' directions (0 = none).
    pub shift_mm: [f64; 2],
}

impl Perturbation {
    /// The null perturbation.
    pub const NONE: Perturbation = Perturbation {
        intensity: 1.0,
        noise_sd: 0.0,
        slices: 0,
        rotation_deg: 0.0,
        shift_mm: [0.0, 0.0],
    };

    /// A random draw at `magnitude` times the nominal sizes.
    pub fn draw(rng: &mut impl Rng, magnitude: f64) -> Perturbation {
        if magnitude == 0.0 {
            return Perturbation::NONE;
        }
        let mut u = || rng.gen_range(-1.0..=1.0f64) * magnitude;
        Perturbation {
            intensity: 1.0 + 0.10 * u(),
            noise_sd: 0.02 * magnitude,
            slices: u().round() as i64,
            rotation_deg: 3.0 * u(),
            shift_mm: [2.0 * u(), 2.0 * u()],
        }
    }
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Rotates each `rows x columns` plane of `data` by `deg` about its centre (bilinear, zero outside).
pub fn rotate_planes(data: &[f32], rows: usize, columns: usize, deg: f64) -> Vec<f32> {
    let (s, c) = deg.to_radians().sin_cos();
    let (hr, hc) = ((rows as f64 - 1.0) / 2.0, (columns as f64 - 1.0) / 2.0);
    let n = rows * columns;
    let mut out = vec![0f32; data.len()];
    for (p, plane) in data.chunks(n).enumerate() {
        let at = |y: i64, x: i64| -> f64 {
            if y < 0 || x < 0 || y >= rows as i64 || x >= columns as i64 {
                0.0
            } else {
                plane[y as usize * columns + x as usize] as f64
            }
        };
        for r in 0..rows {
            for col in 0..columns {
                // Inverse map: the output pixel takes the input at the point rotated by -deg.
                let (dy, dx) = (r as f64 - hr, col as f64 - hc);
                let y = hr + c * dy + s * dx;
                let x = hc - s * dy + c * dx;
                let (y0, x0) = (y.floor(), x.floor());
                let (ty, tx) = (y - y0, x - x0);
                let (yi, xi) = (y0 as i64, x0 as i64);
                let v = (1.0 - ty) * ((1.0 - tx) * at(yi, xi) + tx * at(yi, xi + 1))
                    + ty * ((1.0 - tx) * at(yi + 1, xi) + tx * at(yi + 1, xi + 1));
                out[p * n + r * columns + col] = v as f32;
            }
        }
    }
    out
}

fn argmax(p: &[f64; 3]) -> usize {
    (0..3).max_by(|a, b| p[*a].total_cmp(&p[*b])).unwrap_or(0)
}

/// The stability of every finding of `prediction` that has a point, by row id.
pub fn stability_study(
    model: &Model,
    ds: &Dataset,
    prediction: &StudyPrediction,
    opts: &StabilityOptions,
) -> Result<BTreeMap<String, Stability>, ModelError> {
    stability_study_with(
        model,
        &mut Sources::new(ds, prediction.study),
        prediction,
        opts,
    )
}

/// [`stability_study`] on series already decoded (by the prediction that made `prediction`).
pub fn stability_study_with(
    model: &Model,
    src: &mut Sources<'_>,
    prediction: &StudyPrediction,
    opts: &StabilityOptions,
) -> Result<BTreeMap<String, Stability>, ModelError> {
    let study = prediction.study;
    let pre = model.card.preprocessing;
    let spec = pre.crop;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed ^ study.0);
    let mut out = BTreeMap::new();
    if opts.samples == 0 {
        return Ok(out);
    }
    for group in ConditionGroup::ALL {
        let mut data = Vec::new();
        let mut rows: Vec<(String, usize)> = Vec::new();
        for f in prediction
            .findings
            .iter()
            .filter(|f| f.condition.group() == group)
        {
            let Some(site) = src.site(f)? else { continue };
            let v = src.volume(site.series, site.stack, &pre)?;
            let c0 = v.patient_to_voxel(site.target);
            let ps = v.stack.reference().pixel_spacing;
            for _ in 0..opts.samples {
                let p = Perturbation::draw(&mut rng, opts.magnitude);
                let target = if p.slices == 0 && p.shift_mm == [0.0, 0.0] {
                    site.target
                } else {
                    v.voxel_to_patient([
                        c0[0] + p.shift_mm[1] / ps[1],
                        c0[1] + p.shift_mm[0] / ps[0],
                        c0[2] + p.slices as f64,
                    ])
                };
                let mut d = crop(v, target, &spec, site.mirror)
                    .map_err(|e| ModelError::Input {
                        study,
                        what: e.to_string(),
                    })?
                    .data;
                if p.rotation_deg != 0.0 {
                    d = rotate_planes(&d, spec.rows, spec.columns, p.rotation_deg);
                }
                if p.intensity != 1.0 || p.noise_sd != 0.0 {
                    for x in &mut d {
                        let noise = if p.noise_sd > 0.0 {
                            p.noise_sd * normal(&mut rng)
                        } else {
                            0.0
                        };
                        *x = (*x as f64 * p.intensity + noise) as f32;
                    }
                }
                data.extend_from_slice(&d);
            }
            rows.push((f.row_id.clone(), f.grade.index()));
        }
        if rows.is_empty() {
            continue;
        }
        let n = rows.len() * opts.samples;
        let mut probs = Vec::with_capacity(n);
        for chunk in data.chunks(64 * spec.len()) {
            probs.extend(grade(
                model,
                group,
                chunk.to_vec(),
                chunk.len() / spec.len(),
                study,
            )?);
        }
        for ((row, g), ps) in rows.into_iter().zip(probs.chunks(opts.samples)) {
            let k = ps.len() as f64;
            let mut std = [0.0; 3];
            let mut range = [0.0; 3];
            for c in 0..3 {
                let mean = ps.iter().map(|p| p[c]).sum::<f64>() / k;
                std[c] = (ps.iter().map(|p| (p[c] - mean).powi(2)).sum::<f64>() / k).sqrt();
                let (lo, hi) = ps
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                        (a.min(p[c]), b.max(p[c]))
                    });
                range[c] = hi - lo;
            }
            let flips = ps.iter().filter(|p| argmax(p) != g).count();
            out.insert(
                row,
                Stability {
                    samples: opts.samples,
                    magnitude: opts.magnitude,
                    std,
                    range,
                    flip_rate: flips as f64 / k,
                },
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_by_zero_is_the_identity_and_by_90_degrees_a_transpose() {
        let (h, w) = (5, 5);
        let d: Vec<f32> = (0..h * w).map(|i| i as f32).collect();
        assert_eq!(rotate_planes(&d, h, w, 0.0), d);
        let r = rotate_planes(&d, h, w, 90.0);
        // out(r, c) = in(y, x) with y = c, x = (w-1) - r  (sin 90 = 1, cos 90 = 0).
        for row in 0..h {
            for col in 0..w {
                let want = d[col * w + (w - 1 - row)];
                assert!((r[row * w + col] - want).abs() < 1e-4, "({row},{col})");
            }
        }
    }

    #[test]
    fn draws_scale_with_the_magnitude_and_zero_is_null() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        assert_eq!(Perturbation::draw(&mut rng, 0.0), Perturbation::NONE);
        for _ in 0..200 {
            let p = Perturbation::draw(&mut rng, 1.0);
            assert!((p.intensity - 1.0).abs() <= 0.1 + 1e-12);
            assert!(p.slices.abs() <= 1 && p.rotation_deg.abs() <= 3.0);
            assert!(p.shift_mm.iter().all(|s| s.abs() <= 2.0));
        }
    }
}
