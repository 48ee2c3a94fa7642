//! Standardisation: what every model input goes through, whatever the scanner.
//!
//! - **Intensity** ([`IntensityWindow`]): robust per-series normalisation. The window is the
//!   `lo`/`hi` percentiles (default 0.5 and 99.5) of every voxel of the volume, computed with linear
//!   interpolation between order statistics (numpy's default `percentile` method); a value maps to
//!   `(v - p_lo) / (p_hi - p_lo)` clamped to `[0, 1]`. A flat volume (`p_hi == p_lo`) maps to 0.
//! - **Crops in mm** ([`CropSpec`], [`crop`]): a 2.5D crop of `slices x rows x columns` centred on a
//!   patient point. In-plane the grid follows the stack's own row and column directions with a fixed
//!   spacing in mm, so the same anatomy covers the same number of pixels on every scanner; output
//!   pixel `(r, c)` sits at `(c - (columns - 1) / 2) * spacing_mm` along the row direction and
//!   `(r - (rows - 1) / 2) * spacing_mm` along the column direction from the centre, and is sampled
//!   **bilinearly** from the slice. Across slices the crop takes **acquired slices** (nearest
//!   neighbour): output slice `s` is stack slice `round(k) + (s - (slices - 1) / 2) * slice_step`,
//!   where `k` is the centre's fractional slice index, so no value is ever interpolated between two
//!   slices several mm apart. Outside the image (in-plane or beyond the first/last slice) the
//!   [`Padding`] decides: zeros, or the nearest edge value.
//! - **Which axial slice** ([`target_slice`]): the stack and slice of a (for example axial) series
//!   that a sagittal point falls on, by projecting it (`geometry::project_point`).
//!
//! Coordinates say their frame: `patient_mm` is the DICOM patient frame in mm; voxel coordinates are
//! `[x = column, y = row, k = slice index in stack order]`.

use crate::dataset::Volume;
use crate::geometry::{project_point, Projection, Stack, Vec3};
use serde::{Deserialize, Serialize};

/// Why a standardisation step could not be done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StandardiseError {
    /// A crop or window was asked with impossible parameters.
    #[error("bad standardisation parameters: {0}")]
    BadParameters(String),
    /// The volume holds no voxel.
    #[error("the volume is empty")]
    EmptyVolume,
    /// A point is not finite.
    #[error("point {0:?} is not finite")]
    BadPoint(Vec3),
}

/// A robust intensity window: the `lo` and `hi` percentiles of a volume map to 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IntensityWindow {
    /// The value that maps to 0 (the low percentile).
    pub lo: f32,
    /// The value that maps to 1 (the high percentile).
    pub hi: f32,
}

/// Percentiles of the default robust window.
pub const DEFAULT_PERCENTILES: (f64, f64) = (0.5, 99.5);

/// The `q`-th percentile (0..=100) of `values` with linear interpolation between order statistics
/// (numpy's default method). `None` for no value or a `q` outside `[0, 100]`; NaN values are ignored.
pub fn percentile(values: &[f32], q: f64) -> Option<f32> {
    let mut v: Vec<f32> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    percentiles_in_place(&mut v, &[q]).map(|p| p[0])
}

/// The `qs` percentiles of `v` (numpy's linear method) by selection, not a full sort: each needs
/// the order statistics `i` and `i + 1` only, and `select_nth_unstable` finds them in linear time
/// (the values are exactly those of the sorted slice). `v` is reordered.
fn percentiles_in_place(v: &mut [f32], qs: &[f64]) -> Option<Vec<f32>> {
    if v.is_empty() || qs.iter().any(|q| !(0.0..=100.0).contains(q)) {
        return None;
    }
    let n = v.len();
    // The k-th smallest value; after the call, v[..k] <= v[k] <= v[k + 1..].
    let nth = |v: &mut [f32], k: usize| -> (f32, Option<f32>) {
        let (_, at, above) = v.select_nth_unstable_by(k, f32::total_cmp);
        let at = *at;
        let next = above.iter().copied().min_by(f32::total_cmp);
        (at, next)
    };
    Some(
        qs.iter()
            .map(|q| {
                let pos = q / 100.0 * (n - 1) as f64;
                let i = pos.floor() as usize;
                let t = pos - i as f64;
                if i + 1 >= n {
                    nth(v, n - 1).0
                } else {
                    let (a, b) = nth(v, i);
                    let b = b.unwrap_or(a);
                    (a as f64 + t * (b as f64 - a as f64)) as f32
                }
            })
            .collect(),
    )
}

impl IntensityWindow {
    /// The window of a volume's voxels at percentiles `lo_pct` and `hi_pct` (0..=100, `lo < hi`).
    pub fn of_values(
        values: &[f32],
        lo_pct: f64,
        hi_pct: f64,
    ) -> Result<IntensityWindow, StandardiseError> {
        if lo_pct.partial_cmp(&hi_pct) != Some(std::cmp::Ordering::Less) {
            return Err(StandardiseError::BadParameters(format!(
                "percentiles {lo_pct} and {hi_pct}: the low one must be below the high one"
            )));
        }
        let mut v: Vec<f32> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return Err(StandardiseError::EmptyVolume);
        }
        let p = percentiles_in_place(&mut v, &[lo_pct, hi_pct]).ok_or_else(|| {
            StandardiseError::BadParameters(format!(
                "percentiles {lo_pct} and {hi_pct} must lie in [0, 100]"
            ))
        })?;
        Ok(IntensityWindow { lo: p[0], hi: p[1] })
    }

    /// The default window (0.5 and 99.5 percentiles) of a volume.
    pub fn of_volume(volume: &Volume) -> Result<IntensityWindow, StandardiseError> {
        IntensityWindow::of_values(&volume.data, DEFAULT_PERCENTILES.0, DEFAULT_PERCENTILES.1)
    }

    /// Maps one value: `(v - lo) / (hi - lo)` clamped to `[0, 1]`; 0 when the window is flat.
    pub fn apply(&self, v: f32) -> f32 {
        let w = self.hi - self.lo;
        if w <= 0.0 || !w.is_finite() {
            return 0.0;
        }
        ((v - self.lo) / w).clamp(0.0, 1.0)
    }

    /// A copy of the volume with every voxel mapped through the window.
    pub fn normalise(&self, volume: &Volume) -> Volume {
        self.normalise_owned(volume.clone())
    }

    /// [`IntensityWindow::normalise`] in place, for a volume that is not needed raw any more.
    pub fn normalise_owned(&self, mut volume: Volume) -> Volume {
        let w = self.hi - self.lo;
        if w <= 0.0 || !w.is_finite() {
            volume.data.iter_mut().for_each(|v| *v = 0.0);
        } else {
            let lo = self.lo;
            // The same arithmetic as `apply` (a division, not a multiplication by 1 / w).
            for v in &mut volume.data {
                *v = ((*v - lo) / w).clamp(0.0, 1.0);
            }
        }
        volume
    }
}

/// What a crop samples outside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// Zeros outside (bilinear weights still blend the edge pixel with zero in the half pixel
    /// beyond it: scipy's `mode="grid-constant"`, `cval=0`).
    #[default]
    Zero,
    /// The nearest edge value (scipy's `mode="nearest"`); slices beyond the stack repeat the end slice.
    Edge,
}

/// The shape and spacing of a 2.5D crop.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CropSpec {
    /// Number of slices (odd numbers centre the crop on the nearest slice).
    pub slices: usize,
    /// Step between the crop's slices, in stack slices (1 = neighbouring slices).
    pub slice_step: usize,
    /// Output rows (along the stack's column direction).
    pub rows: usize,
    /// Output columns (along the stack's row direction).
    pub columns: usize,
    /// Output pixel spacing in mm, both directions.
    pub spacing_mm: f64,
    /// What is sampled outside the image.
    pub padding: Padding,
}

impl CropSpec {
    fn check(&self) -> Result<(), StandardiseError> {
        if self.slices == 0 || self.rows == 0 || self.columns == 0 || self.slice_step == 0 {
            return Err(StandardiseError::BadParameters(format!(
                "crop of {} x {} x {} slices/rows/columns with slice step {}: all must be positive",
                self.slices, self.rows, self.columns, self.slice_step
            )));
        }
        if !(self.spacing_mm > 0.0 && self.spacing_mm.is_finite()) {
            return Err(StandardiseError::BadParameters(format!(
                "crop spacing {} mm must be positive",
                self.spacing_mm
            )));
        }
        Ok(())
    }

    /// Number of values of one crop.
    pub fn len(&self) -> usize {
        self.slices * self.rows * self.columns
    }

    /// Whether the crop holds no value (never, for a valid spec).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A 2.5D crop: `slices * rows * columns` values, `[slice][row][column]`, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Crop {
    /// The spec it was sampled with.
    pub spec: CropSpec,
    /// The values.
    pub data: Vec<f32>,
    /// The centre in voxel coordinates `[x, y, k]` of the volume (fractional).
    pub centre_voxel: [f64; 3],
    /// The stack slice index each crop slice took (before padding; may be outside the stack).
    pub slice_indices: Vec<i64>,
}

/// Bilinear sample of slice `k` at fractional `(x = column, y = row)`.
fn bilinear(volume: &Volume, k: usize, x: f64, y: f64, padding: Padding) -> f32 {
    let (w, h) = (volume.columns as i64, volume.rows as i64);
    let plane = volume.slice(k);
    let at = |xi: i64, yi: i64| -> f32 {
        match padding {
            Padding::Zero => {
                if xi < 0 || yi < 0 || xi >= w || yi >= h {
                    0.0
                } else {
                    plane[(yi * w + xi) as usize]
                }
            }
            Padding::Edge => plane[(yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)) as usize],
        }
    };
    let (x0, y0) = (x.floor(), y.floor());
    let (tx, ty) = (x - x0, y - y0);
    let (xi, yi) = (x0 as i64, y0 as i64);
    let v = (1.0 - ty) * ((1.0 - tx) * at(xi, yi) as f64 + tx * at(xi + 1, yi) as f64)
        + ty * ((1.0 - tx) * at(xi, yi + 1) as f64 + tx * at(xi + 1, yi + 1) as f64);
    v as f32
}

/// Samples a 2.5D crop of `volume` centred on `patient_mm` (see the module documentation for the
/// grid and the interpolation). `mirror` flips the crop's columns (left/right), so that the two
/// sides of a paired structure look alike to a network sharing weights between them.
pub fn crop(
    volume: &Volume,
    patient_mm: Vec3,
    spec: &CropSpec,
    mirror: bool,
) -> Result<Crop, StandardiseError> {
    spec.check()?;
    if patient_mm.iter().any(|v| !v.is_finite()) {
        return Err(StandardiseError::BadPoint(patient_mm));
    }
    if volume.slices() == 0 || volume.rows == 0 || volume.columns == 0 {
        return Err(StandardiseError::EmptyVolume);
    }
    let c = volume.patient_to_voxel(patient_mm);
    let ps = volume.stack.reference().pixel_spacing;
    // Output steps in voxel units: columns advance along row_dir (x), rows along col_dir (y).
    let (dx, dy) = (spec.spacing_mm / ps[1], spec.spacing_mm / ps[0]);
    let k0 = c[2].round() as i64;
    let n = volume.slices() as i64;
    let half_s = (spec.slices as f64 - 1.0) / 2.0;
    let (half_r, half_c) = (
        (spec.rows as f64 - 1.0) / 2.0,
        (spec.columns as f64 - 1.0) / 2.0,
    );
    let mut data = vec![0.0f32; spec.len()];
    let mut slice_indices = Vec::with_capacity(spec.slices);
    for s in 0..spec.slices {
        let k = k0 + ((s as f64 - half_s) * spec.slice_step as f64).round() as i64;
        slice_indices.push(k);
        let k = match spec.padding {
            Padding::Zero if k < 0 || k >= n => continue,
            Padding::Zero => k as usize,
            Padding::Edge => k.clamp(0, n - 1) as usize,
        };
        for r in 0..spec.rows {
            let y = c[1] + (r as f64 - half_r) * dy;
            for col in 0..spec.columns {
                let x = c[0] + (col as f64 - half_c) * dx;
                let out_col = if mirror { spec.columns - 1 - col } else { col };
                data[(s * spec.rows + r) * spec.columns + out_col] =
                    bilinear(volume, k, x, y, spec.padding);
            }
        }
    }
    Ok(Crop {
        spec: *spec,
        data,
        centre_voxel: c,
        slice_indices,
    })
}

/// Where the centre pixel of output `(row, column)` of a crop centred at voxel `centre` lies on its
/// slice, in pixel coordinates `(x, y)` of the volume: the inverse map for drawing a crop's heat map
/// back onto the source slice.
pub fn crop_pixel_to_voxel(
    volume: &Volume,
    centre: [f64; 3],
    spec: &CropSpec,
    row: f64,
    column: f64,
) -> (f64, f64) {
    let ps = volume.stack.reference().pixel_spacing;
    (
        centre[0] + (column - (spec.columns as f64 - 1.0) / 2.0) * spec.spacing_mm / ps[1],
        centre[1] + (row - (spec.rows as f64 - 1.0) / 2.0) * spec.spacing_mm / ps[0],
    )
}

/// The stack and slice of a series that a patient point (for example a canal point found on a
/// sagittal series) falls on, and the point's pixel position there: the slice whose plane is nearest
/// among those whose image contains the point's projection (see `geometry::project_point`).
/// `None` when the series has no slice.
pub fn target_slice(patient_mm: Vec3, stacks: &[Stack]) -> Option<Projection> {
    project_point(patient_mm, stacks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{assemble_stacks, SliceGeometry, SliceInput, StackOptions};

    fn volume(rows: usize, cols: usize, n: usize) -> Volume {
        let slices: Vec<SliceInput> = (0..n)
            .map(|k| SliceInput {
                instance_number: k as i64 + 1,
                geometry: SliceGeometry::new(
                    [k as f64 * 4.0, -100.0, 50.0],
                    [0.0, 1.0, 0.0, 0.0, 0.0, -1.0],
                    [2.0, 1.5],
                    rows as u32,
                    cols as u32,
                )
                .unwrap(),
            })
            .collect();
        let stack = assemble_stacks(slices, &StackOptions::default()).remove(0);
        let data = (0..n * rows * cols).map(|i| (i % 97) as f32).collect();
        Volume {
            stack,
            rows,
            columns: cols,
            data,
        }
    }

    #[test]
    fn percentile_matches_hand_values() {
        // numpy.percentile([1, 2, 3, 4], 50) == 2.5; ([1..=5], 10) == 1.4
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 50.0), Some(2.5));
        assert!((percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 10.0).unwrap() - 1.4).abs() < 1e-6);
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[1.0], 101.0), None);
    }

    #[test]
    fn selection_gives_the_sorted_order_statistics() {
        // The definition (numpy's linear method) on a fully sorted copy, against the selection:
        // pseudo-random values with many ties, every percentile from 0 to 100 in steps of 0.5.
        let mut state = 12345u64;
        let values: Vec<f32> = (0..5001)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) % 700) as f32 * 0.25 - 20.0
            })
            .collect();
        let mut sorted = values.clone();
        sorted.sort_by(f32::total_cmp);
        let n = sorted.len();
        for step in 0..=200 {
            let q = step as f64 * 0.5;
            let pos = q / 100.0 * (n - 1) as f64;
            let i = pos.floor() as usize;
            let t = pos - i as f64;
            let want = if i + 1 >= n {
                sorted[n - 1]
            } else {
                (sorted[i] as f64 + t * (sorted[i + 1] as f64 - sorted[i] as f64)) as f32
            };
            assert_eq!(percentile(&values, q), Some(want), "q = {q}");
        }
        let w = IntensityWindow::of_values(&values, 0.5, 99.5).unwrap();
        assert_eq!(
            (w.lo, w.hi),
            (
                percentile(&values, 0.5).unwrap(),
                percentile(&values, 99.5).unwrap()
            )
        );
        // normalise_owned maps exactly as apply does.
        let v = volume(3, 4, 2);
        let w = IntensityWindow { lo: 10.0, hi: 70.0 };
        let n = w.normalise_owned(v.clone());
        assert!(v.data.iter().zip(&n.data).all(|(a, b)| w.apply(*a) == *b));
    }

    #[test]
    fn window_maps_and_clamps() {
        let w = IntensityWindow { lo: 10.0, hi: 20.0 };
        assert_eq!(w.apply(15.0), 0.5);
        assert_eq!(w.apply(-3.0), 0.0);
        assert_eq!(w.apply(99.0), 1.0);
        assert_eq!(IntensityWindow { lo: 1.0, hi: 1.0 }.apply(5.0), 0.0);
        assert!(IntensityWindow::of_values(&[1.0], 99.0, 1.0).is_err());
    }

    #[test]
    fn crop_at_a_voxel_centre_with_native_spacing_copies_pixels() {
        let v = volume(20, 24, 5);
        // Voxel (x=7, y=9, k=2); spacing 1.5 mm = the column spacing, so columns are whole voxels.
        let p = v.voxel_to_patient([7.0, 9.0, 2.0]);
        let spec = CropSpec {
            slices: 3,
            slice_step: 1,
            rows: 1,
            columns: 3,
            spacing_mm: 1.5,
            padding: Padding::Zero,
        };
        let c = crop(&v, p, &spec, false).unwrap();
        for s in 0..3 {
            for col in 0..3 {
                let want = v.get(1 + s, 9, 6 + col).unwrap();
                assert_eq!(c.data[s * 3 + col], want);
            }
        }
        let m = crop(&v, p, &spec, true).unwrap();
        assert_eq!(m.data[0], c.data[2]);
        assert_eq!(c.slice_indices, vec![1, 2, 3]);
    }

    #[test]
    fn crop_rejects_bad_specs() {
        let v = volume(4, 4, 2);
        let mut spec = CropSpec {
            slices: 1,
            slice_step: 1,
            rows: 2,
            columns: 2,
            spacing_mm: 0.0,
            padding: Padding::Edge,
        };
        assert!(crop(&v, [0.0; 3], &spec, false).is_err());
        spec.spacing_mm = 1.0;
        assert!(crop(&v, [f64::NAN, 0.0, 0.0], &spec, false).is_err());
    }
}
