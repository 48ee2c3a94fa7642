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
    percentiles_of(values, &[q]).map(|p| p[0])
}

/// The key of `x` whose unsigned order is `f32::total_cmp`'s order.
#[inline(always)]
fn total_key(x: f32) -> u32 {
    let b = x.to_bits() as i32;
    ((b ^ ((((b >> 31) as u32) >> 1) as i32)) as u32) ^ 0x8000_0000
}

/// The inverse of [`total_key`].
fn from_total_key(k: u32) -> f32 {
    let b = (k ^ 0x8000_0000) as i32;
    f32::from_bits((b ^ ((((b >> 31) as u32) >> 1) as i32)) as u32)
}

/// numpy's linear method from order statistics: the `q`-th percentile of `n` values whose `k`-th
/// smallest is `kth(k)`.
fn interpolate(n: usize, q: f64, mut kth: impl FnMut(usize) -> f32) -> f32 {
    let pos = q / 100.0 * (n - 1) as f64;
    let i = pos.floor() as usize;
    let t = pos - i as f64;
    if i + 1 >= n {
        kth(n - 1)
    } else {
        let (a, b) = (kth(i), kth(i + 1));
        (a as f64 + t * (b as f64 - a as f64)) as f32
    }
}

/// The order statistics `i` and `i + 1` that a percentile needs (both `n - 1` at the top).
fn ranks_of(n: usize, q: f64) -> [usize; 2] {
    let i = (q / 100.0 * (n - 1) as f64).floor() as usize;
    [i.min(n - 1), (i + 1).min(n - 1)]
}

/// Values per chunk of the parallel histogram passes.
const CHUNK: usize = 1 << 20;

/// The `qs` percentiles of `values` (numpy's linear method, NaN ignored) by a two-pass radix
/// selection on the bits of `f32::total_cmp`'s order: a histogram of the high 16 bits finds the
/// bucket of each needed order statistic, a histogram of the low 16 bits inside those buckets
/// finds the value. Exactly the values of a sorted copy, in linear time, without copying or
/// reordering `values`; chunks of a large slice are counted in parallel.
fn percentiles_of(values: &[f32], qs: &[f64]) -> Option<Vec<f32>> {
    use rayon::prelude::*;
    if qs.iter().any(|q| !(0.0..=100.0).contains(q)) || values.len() > u32::MAX as usize {
        return None;
    }
    let high = |chunk: &[f32]| -> Vec<u32> {
        let mut h = vec![0u32; 1 << 16];
        for &x in chunk {
            if !x.is_nan() {
                h[(total_key(x) >> 16) as usize] += 1;
            }
        }
        h
    };
    let add = |mut a: Vec<u32>, b: Vec<u32>| {
        a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
        a
    };
    let hist: Vec<u32> = if values.len() > CHUNK {
        values.par_chunks(CHUNK).map(high).reduce_with(add)?
    } else {
        high(values)
    };
    let n: usize = hist.iter().map(|c| *c as usize).sum();
    if n == 0 {
        return None;
    }
    // Every needed rank, its high bucket and its rank inside the bucket.
    let mut ranks: Vec<usize> = qs.iter().flat_map(|q| ranks_of(n, *q)).collect();
    ranks.sort_unstable();
    ranks.dedup();
    let mut cum = 0usize;
    let mut bucket = 0usize;
    let mut at: Vec<(usize, u32, usize)> = Vec::with_capacity(ranks.len());
    for &r in &ranks {
        while cum + hist[bucket] as usize <= r {
            cum += hist[bucket] as usize;
            bucket += 1;
        }
        at.push((r, bucket as u32, r - cum));
    }
    let mut buckets: Vec<u32> = at.iter().map(|a| a.1).collect();
    buckets.dedup();
    let low = |chunk: &[f32]| -> Vec<u32> {
        let mut h = vec![0u32; buckets.len() << 16];
        for &x in chunk {
            if x.is_nan() {
                continue;
            }
            let k = total_key(x);
            if let Some(j) = buckets.iter().position(|b| *b == k >> 16) {
                h[(j << 16) | (k & 0xFFFF) as usize] += 1;
            }
        }
        h
    };
    let lows: Vec<u32> = if values.len() > CHUNK {
        values.par_chunks(CHUNK).map(low).reduce_with(add)?
    } else {
        low(values)
    };
    let value_of = |r: usize| -> f32 {
        let &(_, b, mut within) = at.iter().find(|a| a.0 == r).expect("every rank was placed");
        let j = buckets
            .iter()
            .position(|x| *x == b)
            .expect("every bucket was counted");
        let h = &lows[j << 16..(j + 1) << 16];
        let mut l = 0usize;
        while within >= h[l] as usize {
            within -= h[l] as usize;
            l += 1;
        }
        from_total_key((b << 16) | l as u32)
    };
    Some(qs.iter().map(|q| interpolate(n, *q, value_of)).collect())
}

/// Counts of the integer stored values of a stack (8 or 16 bits, signed or not) under one
/// RescaleSlope/Intercept: enough for the exact percentiles of the rescaled voxels without
/// rescaling them (the rescale is monotone, so the `k`-th smallest rescaled value is the rescale
/// of the `k`-th smallest stored value, or of the `k`-th largest for a negative slope). Holds at
/// most `u32::MAX` values (a 16 GiB stack of `f32`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredHistogram {
    /// Count of each stored value `v`, at index `v + 32768` (`-32768..=65535`).
    counts: Vec<u32>,
    /// RescaleSlope (finite, not 0).
    pub slope: f64,
    /// RescaleIntercept (finite).
    pub intercept: f64,
}

impl StoredHistogram {
    /// Offset of stored value 0 in `counts`.
    const ZERO: usize = 32768;

    /// No value counted yet, under this rescale.
    pub fn new(slope: f64, intercept: f64) -> StoredHistogram {
        StoredHistogram {
            counts: vec![0; 32768 + 65536],
            slope,
            intercept,
        }
    }

    /// The counts of stored values 0..=65535.
    fn unsigned(&mut self) -> &mut [u32; 65536] {
        (&mut self.counts[Self::ZERO..Self::ZERO + 65536])
            .try_into()
            .expect("the table holds 65536 unsigned values")
    }

    /// Counts unsigned 16-bit values.
    pub fn add_u16(&mut self, values: impl Iterator<Item = u16>) {
        let c = self.unsigned();
        for v in values {
            c[v as usize] += 1;
        }
    }

    /// Counts unsigned 16-bit values stored little endian (two bytes each), masked to their low
    /// `bits_stored` bits (1..=16).
    pub fn add_u16_le(&mut self, bytes: &[u8], bits_stored: u32) {
        let mask = (((1u32 << bits_stored.clamp(1, 16)) - 1) & 0xFFFF) as u16;
        let c = self.unsigned();
        for p in bytes.chunks_exact(2) {
            c[(u16::from_le_bytes([p[0], p[1]]) & mask) as usize] += 1;
        }
    }

    /// Counts signed 16-bit values stored little endian (two bytes each), sign-extended from bit
    /// `bits_stored - 1` (`bits_stored` in 1..=16).
    pub fn add_i16_le(&mut self, bytes: &[u8], bits_stored: u32) {
        let shift = 16 - bits_stored.clamp(1, 16);
        let c: &mut [u32; 65536] = (&mut self.counts[..65536])
            .try_into()
            .expect("the table holds 65536 signed values");
        for p in bytes.chunks_exact(2) {
            let v = ((u16::from_le_bytes([p[0], p[1]]) << shift) as i16) >> shift;
            c[(v as i32 + 32768) as usize] += 1;
        }
    }

    /// Counts signed 16-bit values.
    pub fn add_i16(&mut self, values: impl Iterator<Item = i16>) {
        let c: &mut [u32; 65536] = (&mut self.counts[..65536])
            .try_into()
            .expect("the table holds 65536 signed values");
        for v in values {
            c[(v as i32 + 32768) as usize] += 1;
        }
    }

    /// Adds another histogram's counts (same rescale).
    pub fn merge(&mut self, other: &StoredHistogram) {
        self.counts
            .iter_mut()
            .zip(&other.counts)
            .for_each(|(a, b)| *a += b);
    }

    /// Number of values counted.
    pub fn len(&self) -> u64 {
        self.counts.iter().map(|c| *c as u64).sum()
    }

    /// Whether no value was counted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rescaled value of a stored one, exactly as a volume holds it
    /// (`stored * slope + intercept` in `f64`, then `f32`).
    pub fn rescale(&self, stored: i64) -> f32 {
        (stored as f64 * self.slope + self.intercept) as f32
    }

    /// The window of the rescaled values at percentiles `lo_pct` and `hi_pct`: the same as
    /// [`IntensityWindow::of_values`] on the rescaled voxels.
    pub fn window(&self, lo_pct: f64, hi_pct: f64) -> Result<IntensityWindow, StandardiseError> {
        check_percentiles(lo_pct, hi_pct)?;
        let n = self.len() as usize;
        if n == 0 {
            return Err(StandardiseError::EmptyVolume);
        }
        // Cumulative counts, then the stored value of each rank by binary search.
        let cum: Vec<u64> = self
            .counts
            .iter()
            .scan(0u64, |s, c| {
                *s += *c as u64;
                Some(*s)
            })
            .collect();
        let kth_stored = |k: usize| -> i64 {
            let i = cum.partition_point(|c| *c <= k as u64);
            i as i64 - Self::ZERO as i64
        };
        let kth = |k: usize| -> f32 {
            let k = if self.slope < 0.0 { n - 1 - k } else { k };
            self.rescale(kth_stored(k))
        };
        Ok(IntensityWindow {
            lo: interpolate(n, lo_pct, kth),
            hi: interpolate(n, hi_pct, kth),
        })
    }
}

fn check_percentiles(lo_pct: f64, hi_pct: f64) -> Result<(), StandardiseError> {
    if lo_pct.partial_cmp(&hi_pct) != Some(std::cmp::Ordering::Less) {
        return Err(StandardiseError::BadParameters(format!(
            "percentiles {lo_pct} and {hi_pct}: the low one must be below the high one"
        )));
    }
    if !(0.0..=100.0).contains(&lo_pct) || !(0.0..=100.0).contains(&hi_pct) {
        return Err(StandardiseError::BadParameters(format!(
            "percentiles {lo_pct} and {hi_pct} must lie in [0, 100]"
        )));
    }
    Ok(())
}

impl IntensityWindow {
    /// The window of a volume's voxels at percentiles `lo_pct` and `hi_pct` (0..=100, `lo < hi`).
    pub fn of_values(
        values: &[f32],
        lo_pct: f64,
        hi_pct: f64,
    ) -> Result<IntensityWindow, StandardiseError> {
        check_percentiles(lo_pct, hi_pct)?;
        let p = percentiles_of(values, &[lo_pct, hi_pct]).ok_or(StandardiseError::EmptyVolume)?;
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
        let map = self.mapper();
        volume.data.iter_mut().for_each(|v| *v = map(*v));
        volume
    }

    /// [`IntensityWindow::apply`] as a copyable closure (the window's width computed once): what
    /// [`IntensityWindow::normalise_owned`] maps every voxel with.
    pub fn mapper(&self) -> impl Fn(f32) -> f32 + Copy {
        let (lo, w) = (self.lo, self.hi - self.lo);
        let flat = w <= 0.0 || !w.is_finite();
        // The same arithmetic as `apply` (a division, not a multiplication by 1 / w).
        move |v: f32| {
            if flat {
                0.0
            } else {
                ((v - lo) / w).clamp(0.0, 1.0)
            }
        }
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

/// Voxels a crop can be cut from: a stack's geometry and the normalised values of (some of) its
/// slices. [`Volume`] holds every slice; `dataset::PartialVolume` only those it was asked for,
/// and converts only the patch a crop reads.
pub trait StackVoxels {
    /// The stack's geometry (slice order, voxel <-> patient transforms).
    fn stack(&self) -> &Stack;
    /// Rows per slice.
    fn rows(&self) -> usize;
    /// Columns per slice.
    fn columns(&self) -> usize;
    /// Replaces `out` with the values of columns `x` and rows `y` of slice `k` (stack order; both
    /// ranges inside the image), row by row; `false` (and `out` untouched) when the slice is not
    /// held or `k` is outside the stack.
    fn patch(
        &self,
        k: usize,
        x: std::ops::Range<usize>,
        y: std::ops::Range<usize>,
        out: &mut Vec<f32>,
    ) -> bool;

    /// Number of slices of the stack.
    fn slice_count(&self) -> usize {
        self.stack().len()
    }
    /// Voxel coordinates `[x, y, k]` (fractional) of a patient point.
    fn to_voxel(&self, p: Vec3) -> [f64; 3] {
        self.stack().patient_to_voxel(p)
    }
    /// Patient position (mm) of voxel `[x, y, k]` (fractional).
    fn to_patient(&self, v: [f64; 3]) -> Vec3 {
        self.stack().voxel_to_patient(v)
    }
}

impl StackVoxels for Volume {
    fn stack(&self) -> &Stack {
        &self.stack
    }
    fn rows(&self) -> usize {
        self.rows
    }
    fn columns(&self) -> usize {
        self.columns
    }
    fn patch(
        &self,
        k: usize,
        x: std::ops::Range<usize>,
        y: std::ops::Range<usize>,
        out: &mut Vec<f32>,
    ) -> bool {
        if k >= self.slices() {
            return false;
        }
        let plane = self.slice(k);
        out.clear();
        for row in y {
            out.extend_from_slice(&plane[row * self.columns + x.start..row * self.columns + x.end]);
        }
        true
    }
}

/// The stack slices (stack order) a crop of `spec` centred on `patient_mm` reads: the slices that
/// [`crop`] samples, inside the stack (padded slices beyond it read the end slice with
/// [`Padding::Edge`], nothing with [`Padding::Zero`]). Sorted, without repeats.
pub fn crop_slices(stack: &Stack, patient_mm: Vec3, spec: &CropSpec) -> Vec<usize> {
    let n = stack.len() as i64;
    let k0 = stack.patient_to_voxel(patient_mm)[2].round();
    if n == 0 || !k0.is_finite() {
        return Vec::new();
    }
    let mut out: Vec<usize> = slice_plan(k0 as i64, spec)
        .into_iter()
        .filter_map(|k| match spec.padding {
            Padding::Zero => (0..n).contains(&k).then_some(k as usize),
            Padding::Edge => Some(k.clamp(0, n - 1) as usize),
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The stack slice index of each crop slice around centre slice `k0` (before padding).
fn slice_plan(k0: i64, spec: &CropSpec) -> Vec<i64> {
    let half_s = (spec.slices as f64 - 1.0) / 2.0;
    (0..spec.slices)
        .map(|s| k0 + ((s as f64 - half_s) * spec.slice_step as f64).round() as i64)
        .collect()
}

/// One axis of a bilinear sample: the lower source index and its weight pair.
#[derive(Clone, Copy)]
struct Tap {
    i: i64,
    t: f64,
    u: f64,
}

impl Tap {
    fn at(x: f64) -> Tap {
        let x0 = x.floor();
        let t = x - x0;
        Tap {
            i: x0 as i64,
            t,
            u: 1.0 - t,
        }
    }
}

/// Samples a 2.5D crop of `volume` centred on `patient_mm` (see the module documentation for the
/// grid and the interpolation). `mirror` flips the crop's columns (left/right), so that the two
/// sides of a paired structure look alike to a network sharing weights between them. The
/// interpolation is separable: each output column's source column and weights, and each output
/// row's, are computed once per crop. A slice the crop needs that `volume` does not hold (a
/// [`PartialVolume`](crate::dataset::PartialVolume) asked for other slices) is an error.
pub fn crop<V: StackVoxels + ?Sized>(
    volume: &V,
    patient_mm: Vec3,
    spec: &CropSpec,
    mirror: bool,
) -> Result<Crop, StandardiseError> {
    spec.check()?;
    if patient_mm.iter().any(|v| !v.is_finite()) {
        return Err(StandardiseError::BadPoint(patient_mm));
    }
    let (rows, columns) = (volume.rows(), volume.columns());
    if volume.slice_count() == 0 || rows == 0 || columns == 0 {
        return Err(StandardiseError::EmptyVolume);
    }
    let c = volume.to_voxel(patient_mm);
    let ps = volume.stack().reference().pixel_spacing;
    // Output steps in voxel units: columns advance along row_dir (x), rows along col_dir (y).
    let (dx, dy) = (spec.spacing_mm / ps[1], spec.spacing_mm / ps[0]);
    let k0 = c[2].round() as i64;
    let n = volume.slice_count() as i64;
    let (half_r, half_c) = (
        (spec.rows as f64 - 1.0) / 2.0,
        (spec.columns as f64 - 1.0) / 2.0,
    );
    let xs: Vec<Tap> = (0..spec.columns)
        .map(|col| Tap::at(c[0] + (col as f64 - half_c) * dx))
        .collect();
    let ys: Vec<Tap> = (0..spec.rows)
        .map(|r| Tap::at(c[1] + (r as f64 - half_r) * dy))
        .collect();
    let (w, h) = (columns as i64, rows as i64);
    // The box of source pixels the taps read (clamped into the image: with zero padding the taps
    // outside it read 0, with edge padding they are clamped into it).
    let span = |taps: &[Tap], n: i64| -> (i64, i64) {
        let lo = taps.iter().map(|t| t.i).min().unwrap_or(0);
        let hi = taps.iter().map(|t| t.i + 1).max().unwrap_or(0);
        (lo.clamp(0, n - 1), hi.clamp(0, n - 1))
    };
    let ((bx0, bx1), (by0, by1)) = (span(&xs, w), span(&ys, h));
    let pw = bx1 - bx0 + 1;
    let mut data = vec![0.0f32; spec.len()];
    let slice_indices = slice_plan(k0, spec);
    let mut patch = Vec::new();
    for (s, &k) in slice_indices.iter().enumerate() {
        let k = match spec.padding {
            Padding::Zero if k < 0 || k >= n => continue,
            Padding::Zero => k as usize,
            Padding::Edge => k.clamp(0, n - 1) as usize,
        };
        let xr = bx0 as usize..bx1 as usize + 1;
        let yr = by0 as usize..by1 as usize + 1;
        if !volume.patch(k, xr, yr, &mut patch) {
            return Err(StandardiseError::BadParameters(format!(
                "slice {k} of the stack is not loaded (a partial volume holds only the slices asked for)"
            )));
        }
        let plane = &patch[..];
        let at = |xi: i64, yi: i64| -> f64 {
            match spec.padding {
                Padding::Zero => {
                    if xi < 0 || yi < 0 || xi >= w || yi >= h {
                        0.0
                    } else {
                        plane[((yi - by0) * pw + xi - bx0) as usize] as f64
                    }
                }
                Padding::Edge => {
                    plane[((yi.clamp(0, h - 1) - by0) * pw + xi.clamp(0, w - 1) - bx0) as usize]
                        as f64
                }
            }
        };
        let out = &mut data[s * spec.rows * spec.columns..(s + 1) * spec.rows * spec.columns];
        for (r, y) in ys.iter().enumerate() {
            let line = &mut out[r * spec.columns..(r + 1) * spec.columns];
            for (col, x) in xs.iter().enumerate() {
                let v = y.u * (x.u * at(x.i, y.i) + x.t * at(x.i + 1, y.i))
                    + y.t * (x.u * at(x.i, y.i + 1) + x.t * at(x.i + 1, y.i + 1));
                let out_col = if mirror { spec.columns - 1 - col } else { col };
                line[out_col] = v as f32;
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
pub fn crop_pixel_to_voxel<V: StackVoxels + ?Sized>(
    volume: &V,
    centre: [f64; 3],
    spec: &CropSpec,
    row: f64,
    column: f64,
) -> (f64, f64) {
    let ps = volume.stack().reference().pixel_spacing;
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
