//! Explanations of a prediction, as overlays aligned with the source slices.
//!
//! For each finding of a [`StudyPrediction`]:
//! - **Localiser heat map** (canal findings, `point_source = heat_map`): the localiser's spatial
//!   softmax for the channel that was decoded as this level (channels are matched to levels the way
//!   [`crate::heatmap::decode_levels`] orders them), resampled from the localiser's mm grid back onto
//!   the pixel grid of the middle sagittal slice it was computed on (through the inverse of the
//!   standardisation: patient mm -> grid cell, bilinear).
//! - **Occlusion map of the grader** (every finding with a point): the drop in the probability of
//!   the predicted grade when a square patch of the 2.5D crop is set to 0 (the padding value; all
//!   crop slices at once), averaged over the patches covering each crop pixel (Zeiler and Fergus
//!   2014, occlusion sensitivity). Drops below zero (the patch made the grade more likely) count as
//!   zero. The map is drawn back onto the crop's centre slice through the crop's own geometry (the
//!   inverse of `discus_data::standardise::crop`, mirroring included).
//!
//! Each overlay has exactly the source slice's `rows x columns` pixels, so it lies on the DICOM
//! image as it is. Overlays are computed from the finding's point and series (the prediction is not
//! re-run), so explaining costs one grader batch per finding, plus one localiser pass per study
//! unless the prediction's own run is reused ([`explain_study_with`] on the [`Sources`] the
//! prediction filled: then no series is decoded again either).
//!
//! Foraminal and subarticular findings get no localiser heat map in this slice: their points are
//! the canal point plus a learned offset ([`PointSource::CanalOffset`]), not a heat-map peak.

use crate::heatmap::decode_channel;
use crate::predict::{Finding, PointSource, StudyPrediction};
use crate::prep::{mirrored, Loaded, LocaliserView, Preprocessing};
use crate::{io_err, Model, ModelError};
use discus_core::{ConditionGroup, SeriesId, StudyId};
use discus_data::dataset::{Dataset, Volume};
use discus_data::geometry::Vec3;
use discus_data::standardise::{crop, target_slice, Crop, CropSpec};
use std::collections::BTreeMap;
use std::path::Path;

/// A map over one source slice: the (normalised) slice itself, a non-negative map of the same size,
/// and the finding's point on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlay {
    /// The series of the slice.
    pub series: SeriesId,
    /// InstanceNumber of the slice.
    pub instance: i64,
    /// Rows of the slice (and of the map).
    pub rows: usize,
    /// Columns of the slice (and of the map).
    pub columns: usize,
    /// The slice's intensities after the model's intensity window (about 0..1), row by row.
    pub image: Vec<f32>,
    /// The map, `rows * columns` non-negative values row by row (all zero: no map, only the point).
    pub map: Vec<f32>,
    /// The finding's point on the slice, pixels `(x = column, y = row)`.
    pub point: (f64, f64),
}

/// The explanations of one finding.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingExplanation {
    /// `<study>_<condition>_<level>`.
    pub row_id: String,
    /// The localiser's heat map (canal findings only).
    pub heatmap: Option<Overlay>,
    /// The grader's occlusion map (findings with a point).
    pub occlusion: Option<Overlay>,
}

/// Occlusion settings, in crop pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ExplainOptions {
    /// Side of the occluding square; 0 takes a quarter of the crop's rows.
    pub patch: usize,
    /// Step between patches; 0 takes half the patch.
    pub stride: usize,
}

/// The decoded series of one study, by series id: each stack is decoded and normalised once and
/// shared by prediction ([`crate::predict::predict_study_with`]), explanations
/// ([`explain_study_with`]), stability ([`crate::stability::stability_study_with`]) and the
/// findings pages' thumbnails ([`point_overlays_with`]); with the canal localiser's run, so that
/// explaining does not run the localiser again.
pub struct Sources<'a> {
    ds: &'a Dataset,
    study: StudyId,
    loaded: BTreeMap<u64, Loaded>,
    pub(crate) localiser: Option<LocaliserRun>,
}

/// The canal localiser's input view and output logits on one stack (kept by prediction for the
/// explanations).
pub(crate) struct LocaliserRun {
    pub(crate) series: SeriesId,
    pub(crate) stack: usize,
    pub(crate) view: LocaliserView,
    pub(crate) logits: Vec<f32>,
}

/// Where a finding's grader input comes from: the volume (by series and stack) and the target.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GraderSite {
    pub series: SeriesId,
    pub stack: usize,
    pub target: Vec3,
    pub mirror: bool,
}

impl<'a> Sources<'a> {
    /// No series decoded yet.
    pub fn new(ds: &'a Dataset, study: StudyId) -> Self {
        Sources {
            ds,
            study,
            loaded: BTreeMap::new(),
            localiser: None,
        }
    }

    /// The dataset.
    pub fn dataset(&self) -> &'a Dataset {
        self.ds
    }

    /// The study.
    pub fn study(&self) -> StudyId {
        self.study
    }

    /// Takes a series out (its decoded stacks with it), or a fresh one; give it back with
    /// [`Sources::put`].
    pub(crate) fn take(
        &mut self,
        series: &discus_data::dataset::SeriesRef,
    ) -> Result<Loaded, ModelError> {
        match self.loaded.remove(&series.series.0) {
            Some(l) => Ok(l),
            None => Loaded::new(self.ds, series),
        }
    }

    /// Gives a series back.
    pub(crate) fn put(&mut self, l: Loaded) {
        self.loaded.insert(l.series.series.0, l);
    }

    pub(crate) fn loaded(&mut self, series: SeriesId) -> Result<&mut Loaded, ModelError> {
        if !self.loaded.contains_key(&series.0) {
            let s = self
                .ds
                .find_series(self.study, series)?
                .ok_or_else(|| ModelError::Input {
                    study: self.study,
                    what: format!("series {series} of a finding is not in the dataset"),
                })?;
            self.loaded.insert(series.0, Loaded::new(self.ds, &s)?);
        }
        Ok(self.loaded.get_mut(&series.0).expect("just inserted"))
    }

    pub(crate) fn volume(
        &mut self,
        series: SeriesId,
        stack: usize,
        pre: &Preprocessing,
    ) -> Result<&Volume, ModelError> {
        let ds = self.ds;
        self.loaded(series)?.volume(ds, stack, pre)
    }

    /// The grader input site of a finding, as `predict_study` chose it: the finding's series, the
    /// stack its point projects onto, the point in patient mm. `None` without a point.
    pub(crate) fn site(&mut self, f: &Finding) -> Result<Option<GraderSite>, ModelError> {
        let Some(p) = &f.point else { return Ok(None) };
        let l = self.loaded(p.series)?;
        let Some(proj) = target_slice(p.patient_mm, &l.stacks) else {
            return Ok(None);
        };
        Ok(Some(GraderSite {
            series: p.series,
            stack: proj.stack,
            target: p.patient_mm,
            mirror: mirrored(f.condition),
        }))
    }

    /// The unperturbed crop at a site.
    pub(crate) fn crop(
        &mut self,
        site: &GraderSite,
        pre: &Preprocessing,
    ) -> Result<(Crop, &Volume), ModelError> {
        let study = self.study;
        let v = self.volume(site.series, site.stack, pre)?;
        let c = crop(v, site.target, &pre.crop, site.mirror).map_err(|e| ModelError::Input {
            study,
            what: e.to_string(),
        })?;
        Ok((c, v))
    }
}

/// Runs a grader on `n` crops (`n * crop.len()` values); softmax probabilities, 3 per crop.
pub(crate) fn grade(
    model: &Model,
    group: ConditionGroup,
    data: Vec<f32>,
    n: usize,
    study: StudyId,
) -> Result<Vec<[f64; 3]>, ModelError> {
    let cs = &model.card.preprocessing.crop;
    let logits = model
        .grader_logits(group, data, [n, cs.slices, cs.rows, cs.columns])
        .map_err(|e| ModelError::Input {
            study,
            what: format!("grader output: {e}"),
        })?;
    let p = crate::predict::softmax_rows(&logits, 1.0);
    Ok(p.chunks(3)
        .map(|c| [c[0] as f64, c[1] as f64, c[2] as f64])
        .collect())
}

/// Bilinear sample of a `h x w` map at fractional `(row, column)`; zero more than half a cell
/// outside the map, the edge value within that half cell.
fn sample(map: &[f32], h: usize, w: usize, row: f64, column: f64) -> f32 {
    if !(row >= -0.5 && column >= -0.5 && row <= h as f64 - 0.5 && column <= w as f64 - 0.5) {
        return 0.0;
    }
    let r = row.clamp(0.0, (h - 1) as f64);
    let c = column.clamp(0.0, (w - 1) as f64);
    let (r0, c0) = (r.floor() as usize, c.floor() as usize);
    let (r1, c1) = ((r0 + 1).min(h - 1), (c0 + 1).min(w - 1));
    let (tr, tc) = (r - r0 as f64, c - c0 as f64);
    let at = |y: usize, x: usize| map[y * w + x] as f64;
    ((1.0 - tr) * ((1.0 - tc) * at(r0, c0) + tc * at(r0, c1))
        + tr * ((1.0 - tc) * at(r1, c0) + tc * at(r1, c1))) as f32
}

/// A map over a crop's grid (`spec.rows x spec.columns`, crop output order: mirrored columns stay
/// mirrored) drawn back onto slice `round(centre[2])` of `volume`: one value per slice pixel, by the
/// inverse of the crop's pixel map (see `discus_data::standardise::crop_pixel_to_voxel`).
pub fn crop_map_to_slice(
    volume: &Volume,
    centre: [f64; 3],
    spec: &CropSpec,
    mirror: bool,
    map: &[f32],
) -> Vec<f32> {
    let ps = volume.stack.reference().pixel_spacing;
    let (hr, hc) = (
        (spec.rows as f64 - 1.0) / 2.0,
        (spec.columns as f64 - 1.0) / 2.0,
    );
    let mut out = vec![0f32; volume.rows * volume.columns];
    for y in 0..volume.rows {
        let r = (y as f64 - centre[1]) * ps[0] / spec.spacing_mm + hr;
        for x in 0..volume.columns {
            let mut c = (x as f64 - centre[0]) * ps[1] / spec.spacing_mm + hc;
            if mirror {
                c = spec.columns as f64 - 1.0 - c;
            }
            out[y * volume.columns + x] = sample(map, spec.rows, spec.columns, r, c);
        }
    }
    out
}

/// A map over the localiser's grid (`grid x grid`) drawn back onto the slice of `volume` that the
/// localiser view lies on: one value per slice pixel, through patient mm.
pub fn grid_map_to_slice(view: &LocaliserView, volume: &Volume, map: &[f32]) -> Vec<f32> {
    let g = view.spec.rows;
    let mut out = vec![0f32; volume.rows * volume.columns];
    for y in 0..volume.rows {
        for x in 0..volume.columns {
            let p = volume.voxel_to_patient([x as f64, y as f64, view.mid_slice as f64]);
            let (r, c) = view.patient_to_grid(volume, p);
            out[y * volume.columns + x] = sample(map, g, view.spec.columns, r, c);
        }
    }
    out
}

fn slice_index(volume: &Volume, k: f64) -> usize {
    (k.round().max(0.0) as usize).min(volume.slices().saturating_sub(1))
}

fn overlay(
    volume: &Volume,
    series: SeriesId,
    k: usize,
    map: Vec<f32>,
    point: (f64, f64),
) -> Overlay {
    Overlay {
        series,
        instance: volume.stack.slices[k].instance_number,
        rows: volume.rows,
        columns: volume.columns,
        image: volume.slice(k).to_vec(),
        map,
        point,
    }
}

/// The occlusion map of a crop in crop space (`rows x columns`): the mean drop of `p[grade]` over
/// the patches covering each pixel.
fn occlusion_map(
    model: &Model,
    group: ConditionGroup,
    base: &Crop,
    grade: usize,
    opts: &ExplainOptions,
    study: StudyId,
) -> Result<Vec<f32>, ModelError> {
    let spec = base.spec;
    let (h, w) = (spec.rows, spec.columns);
    let patch = if opts.patch == 0 {
        (h / 4).max(1)
    } else {
        opts.patch.min(h.min(w))
    };
    let stride = if opts.stride == 0 {
        (patch / 2).max(1)
    } else {
        opts.stride
    };
    let starts = |n: usize| -> Vec<usize> {
        let mut v: Vec<usize> = (0..=n.saturating_sub(patch)).step_by(stride).collect();
        if v.last() != Some(&(n.saturating_sub(patch))) {
            v.push(n.saturating_sub(patch));
        }
        v
    };
    let patches: Vec<(usize, usize)> = starts(h)
        .into_iter()
        .flat_map(|r| starts(w).into_iter().map(move |c| (r, c)))
        .collect();
    let mut data = base.data.clone();
    for &(r0, c0) in &patches {
        let mut d = base.data.clone();
        for s in 0..spec.slices {
            for r in r0..(r0 + patch).min(h) {
                for c in c0..(c0 + patch).min(w) {
                    d[(s * h + r) * w + c] = 0.0;
                }
            }
        }
        data.extend_from_slice(&d);
    }
    let p = grade_chunks(model, group, data, patches.len() + 1, study)?;
    let p0 = p[0][grade];
    let mut sum = vec![0f64; h * w];
    let mut n = vec![0u32; h * w];
    for (&(r0, c0), q) in patches.iter().zip(&p[1..]) {
        let drop = (p0 - q[grade]).max(0.0);
        for r in r0..(r0 + patch).min(h) {
            for c in c0..(c0 + patch).min(w) {
                sum[r * w + c] += drop;
                n[r * w + c] += 1;
            }
        }
    }
    Ok(sum
        .iter()
        .zip(&n)
        .map(|(s, k)| if *k > 0 { (*s / *k as f64) as f32 } else { 0.0 })
        .collect())
}

/// [`grade`] in batches of at most 64 crops (bounded memory).
fn grade_chunks(
    model: &Model,
    group: ConditionGroup,
    data: Vec<f32>,
    n: usize,
    study: StudyId,
) -> Result<Vec<[f64; 3]>, ModelError> {
    let len = model.card.preprocessing.crop.len();
    let mut out = Vec::with_capacity(n);
    for chunk in data.chunks(64 * len) {
        out.extend(grade(
            model,
            group,
            chunk.to_vec(),
            chunk.len() / len,
            study,
        )?);
    }
    Ok(out)
}

/// The explanations of every finding of `prediction` (made by `model` on `ds`).
pub fn explain_study(
    model: &Model,
    ds: &Dataset,
    prediction: &StudyPrediction,
    opts: &ExplainOptions,
) -> Result<Vec<FindingExplanation>, ModelError> {
    explain_study_with(
        model,
        &mut Sources::new(ds, prediction.study),
        prediction,
        opts,
    )
}

/// [`explain_study`] on series already decoded (by the prediction that made `prediction`; the
/// canal localiser's run is reused when the prediction kept it).
pub fn explain_study_with(
    model: &Model,
    src: &mut Sources<'_>,
    prediction: &StudyPrediction,
    opts: &ExplainOptions,
) -> Result<Vec<FindingExplanation>, ModelError> {
    let study = prediction.study;
    let pre = model.card.preprocessing;
    let heat = localiser_maps(model, src, prediction)?;
    let mut out = Vec::new();
    for f in &prediction.findings {
        let mut e = FindingExplanation {
            row_id: f.row_id.clone(),
            heatmap: heat.get(&f.row_id).cloned(),
            occlusion: None,
        };
        if let Some(site) = src.site(f)? {
            let (c, v) = src.crop(&site, &pre)?;
            let (centre, k) = (c.centre_voxel, slice_index(v, c.centre_voxel[2]));
            let m = occlusion_map(model, f.condition.group(), &c, f.grade.index(), opts, study)?;
            let v = src.volume(site.series, site.stack, &pre)?;
            let map = crop_map_to_slice(v, centre, &pre.crop, site.mirror, &m);
            e.occlusion = Some(overlay(v, site.series, k, map, (centre[0], centre[1])));
        }
        out.push(e);
    }
    Ok(out)
}

/// The localiser heat maps of the canal findings, by row id.
fn localiser_maps(
    model: &Model,
    src: &mut Sources<'_>,
    prediction: &StudyPrediction,
) -> Result<BTreeMap<String, Overlay>, ModelError> {
    let study = prediction.study;
    let pre = model.card.preprocessing;
    let canal: Vec<&Finding> = prediction
        .findings
        .iter()
        .filter(|f| f.point_source == PointSource::HeatMap && f.point.is_some())
        .collect();
    let Some(first) = canal.first() else {
        return Ok(BTreeMap::new());
    };
    let series = first.point.as_ref().expect("filtered").series;
    let main = src.loaded(series)?.main_stack();
    // The prediction's own localiser run when it kept one on this stack, else a new run.
    let run = match src.localiser.take() {
        Some(r) if r.series == series && r.stack == main => r,
        _ => {
            let v = src.volume(series, main, &pre)?;
            let view = LocaliserView::new(v, &pre, study)?;
            let logits = crate::predict::run_localiser(model, &view, study)?;
            LocaliserRun {
                series,
                stack: main,
                view,
                logits,
            }
        }
    };
    let v = src.volume(series, main, &pre)?;
    let (view, logits) = (&run.view, &run.logits);
    let g = pre.localiser_grid;
    // Channels to levels exactly as decode_levels orders them: by the superior coordinate of the
    // decoded peak, head first (a stable sort).
    let mut channels: Vec<(usize, f64)> = (0..5)
        .map(|c| {
            let p = decode_channel(&logits[c * g * g..(c + 1) * g * g], g, g);
            (c, view.grid_to_patient(v, p.row, p.column)[2])
        })
        .collect();
    channels.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut out = BTreeMap::new();
    for f in canal {
        let p = f.point.as_ref().expect("filtered");
        if p.series != series {
            continue;
        }
        let c = channels[f.level.index()].0;
        let l = &logits[c * g * g..(c + 1) * g * g];
        let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = l.iter().map(|v| (v - max).exp()).collect();
        let sum: f32 = e.iter().sum();
        let prob: Vec<f32> = e.iter().map(|v| v / sum).collect();
        let map = grid_map_to_slice(view, v, &prob);
        out.insert(
            f.row_id.clone(),
            overlay(v, series, view.mid_slice, map, (p.x, p.y)),
        );
    }
    src.localiser = Some(run);
    Ok(out)
}

/// The RGB pixels of an overlay: the slice in grey, the map (scaled to its maximum) in a black-red-
/// yellow-white ramp blended over it where it is above 5 % of its maximum, and the point as a green
/// cross.
pub fn overlay_rgb(o: &Overlay) -> Vec<u8> {
    let max = o.map.iter().copied().fold(0f32, f32::max);
    let mut rgb = Vec::with_capacity(o.rows * o.columns * 3);
    for i in 0..o.rows * o.columns {
        let g = (o.image[i].clamp(0.0, 1.0) * 255.0) as f64;
        let mut px = [g, g, g];
        if max > 0.0 {
            let m = (o.map[i] / max) as f64;
            if m > 0.05 {
                let heat = [
                    (3.0 * m).min(1.0),
                    (3.0 * m - 1.0).clamp(0.0, 1.0),
                    (3.0 * m - 2.0).clamp(0.0, 1.0),
                ];
                let a = 0.25 + 0.45 * m;
                for (p, h) in px.iter_mut().zip(heat) {
                    *p = (1.0 - a) * *p + a * h * 255.0;
                }
            }
        }
        rgb.extend(px.map(|v| v.round().clamp(0.0, 255.0) as u8));
    }
    let (px, py) = (o.point.0.round() as i64, o.point.1.round() as i64);
    let arm = ((o.rows.max(o.columns) / 40) as i64).max(3);
    for d in -arm..=arm {
        for (x, y) in [(px + d, py), (px, py + d)] {
            if x >= 0 && y >= 0 && (x as usize) < o.columns && (y as usize) < o.rows {
                let i = (y as usize * o.columns + x as usize) * 3;
                rgb[i..i + 3].copy_from_slice(&[0, 230, 0]);
            }
        }
    }
    rgb
}

/// Writes an overlay as an 8-bit RGB PNG of the slice's size (atomically).
pub fn write_overlay_png(path: &Path, o: &Overlay) -> Result<(), ModelError> {
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, o.columns as u32, o.rows as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let w = enc
            .write_header()
            .and_then(|mut w| w.write_image_data(&overlay_rgb(o)).map(|_| w))
            .map_err(|e| ModelError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other(e),
            })?;
        w.finish().map_err(|e| ModelError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    discus_core::fsio::atomic_write(path, &bytes).map_err(io_err(path))
}

/// The slice each finding's point lies on, with the point drawn and no map (thumbnails for the
/// findings page), by row id; findings without a point have none.
pub fn point_overlays(
    model: &Model,
    ds: &Dataset,
    prediction: &StudyPrediction,
) -> Result<BTreeMap<String, Overlay>, ModelError> {
    point_overlays_with(model, &mut Sources::new(ds, prediction.study), prediction)
}

/// [`point_overlays`] on series already decoded.
pub fn point_overlays_with(
    model: &Model,
    src: &mut Sources<'_>,
    prediction: &StudyPrediction,
) -> Result<BTreeMap<String, Overlay>, ModelError> {
    let mut out = BTreeMap::new();
    for f in &prediction.findings {
        let Some(p) = &f.point else { continue };
        let Some((si, k)) = src.loaded(p.series)?.find_instance(p.instance) else {
            continue;
        };
        let v = src.volume(p.series, si, &model.card.preprocessing)?;
        let n = v.rows * v.columns;
        out.insert(
            f.row_id.clone(),
            overlay(v, p.series, k, vec![0.0; n], (p.x, p.y)),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use discus_data::geometry::{assemble_stacks, SliceGeometry, SliceInput, StackOptions};
    use discus_data::standardise::{crop_pixel_to_voxel, Padding};

    fn volume(rows: usize, cols: usize) -> Volume {
        let slices: Vec<SliceInput> = (0..3)
            .map(|k| SliceInput {
                instance_number: k as i64 + 1,
                geometry: SliceGeometry::new(
                    [k as f64 * 4.0, -100.0, 50.0],
                    [0.0, 1.0, 0.0, 0.0, 0.0, -1.0],
                    [0.8, 0.6],
                    rows as u32,
                    cols as u32,
                )
                .unwrap(),
            })
            .collect();
        let stack = assemble_stacks(slices, &StackOptions::default()).remove(0);
        Volume {
            stack,
            rows,
            columns: cols,
            data: vec![0.5; 3 * rows * cols],
        }
    }

    /// The intensity-weighted centroid `(x, y)` of a slice map.
    fn centroid(m: &[f32], cols: usize) -> (f64, f64) {
        let (mut sx, mut sy, mut s) = (0.0, 0.0, 0.0);
        for (i, v) in m.iter().enumerate() {
            let v = *v as f64;
            sx += v * (i % cols) as f64;
            sy += v * (i / cols) as f64;
            s += v;
        }
        (sx / s, sy / s)
    }

    #[test]
    fn a_crop_map_lands_where_the_crop_sampled_it() {
        let v = volume(90, 110);
        let spec = CropSpec {
            slices: 3,
            slice_step: 1,
            rows: 16,
            columns: 20,
            spacing_mm: 1.5,
            padding: Padding::Zero,
        };
        let centre = [47.3, 41.8, 1.0];
        for mirror in [false, true] {
            // A Gaussian blob at crop (row 5.0, column 13.0), in crop output order.
            let (r0, c0) = (5.0, 13.0);
            let map: Vec<f32> = (0..spec.rows * spec.columns)
                .map(|i| {
                    let (r, c) = ((i / spec.columns) as f64, (i % spec.columns) as f64);
                    (-((r - r0).powi(2) + (c - c0).powi(2)) / 2.0).exp() as f32
                })
                .collect();
            let out = crop_map_to_slice(&v, centre, &spec, mirror, &map);
            assert_eq!(out.len(), 90 * 110);
            // Where the crop sampled output (r0, c0): mirrored outputs came from column C-1-c.
            let src_col = if mirror {
                spec.columns as f64 - 1.0 - c0
            } else {
                c0
            };
            let (x, y) = crop_pixel_to_voxel(&v, centre, &spec, r0, src_col);
            let (cx, cy) = centroid(&out, 110);
            assert!(
                (cx - x).abs() < 0.3 && (cy - y).abs() < 0.3,
                "mirror {mirror}: centroid ({cx:.2}, {cy:.2}), expected ({x:.2}, {y:.2})"
            );
        }
    }

    #[test]
    fn a_localiser_grid_map_lands_where_the_grid_cell_lies() {
        let v = volume(120, 100);
        let pre = Preprocessing {
            localiser_grid: 32,
            localiser_spacing_mm: 3.0,
            ..Preprocessing::default()
        };
        let view = LocaliserView::new(&v, &pre, StudyId(1)).unwrap();
        let (r0, c0) = (9.0, 21.0);
        let map: Vec<f32> = (0..32 * 32)
            .map(|i| {
                let (r, c) = ((i / 32) as f64, (i % 32) as f64);
                (-((r - r0).powi(2) + (c - c0).powi(2)) / 2.0).exp() as f32
            })
            .collect();
        let out = grid_map_to_slice(&view, &v, &map);
        let (x, y) = view.grid_to_pixel(&v, r0, c0);
        let (cx, cy) = centroid(&out, 100);
        assert!(
            (cx - x).abs() < 0.3 && (cy - y).abs() < 0.3,
            "centroid ({cx:.2}, {cy:.2}), expected ({x:.2}, {y:.2})"
        );
    }

    #[test]
    fn the_overlay_png_has_the_slice_size_and_the_point() {
        let o = Overlay {
            series: SeriesId(1),
            instance: 1,
            rows: 30,
            columns: 40,
            image: vec![0.5; 1200],
            map: (0..1200)
                .map(|i| if i % 40 < 10 { 1.0 } else { 0.0 })
                .collect(),
            point: (20.0, 15.0),
        };
        let rgb = overlay_rgb(&o);
        assert_eq!(rgb.len(), 3600);
        let at = |x: usize, y: usize| &rgb[(y * 40 + x) * 3..(y * 40 + x) * 3 + 3];
        assert_eq!(at(20, 15), &[0, 230, 0]);
        assert_eq!(at(35, 2), &[128, 128, 128]);
        assert!(at(2, 2)[0] > 128 && at(2, 2)[2] > 128); // white-hot at the map's maximum
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.png");
        write_overlay_png(&p, &o).unwrap();
        let dec = png::Decoder::new(std::fs::File::open(&p).unwrap());
        let r = dec.read_info().unwrap();
        assert_eq!((r.info().width, r.info().height), (40, 30));
    }
}
