//! From a [`Dataset`] to network inputs: series by kind, normalised volumes, the localiser's grid,
//! crops at points, and the training samples of one study.

use crate::ModelError;
use discus_core::{Condition, ConditionGroup, Level, SeriesKind, StudyId};
use discus_data::dataset::{Dataset, PartialVolume, SeriesRef, Volume};
use discus_data::geometry::{Stack, Vec3};
use discus_data::standardise::{
    crop, crop_pixel_to_voxel, crop_slices, CropSpec, IntensityWindow, Padding, StackVoxels,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Preprocessing parameters (stored in `model.toml`: prediction uses exactly what training used).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// Low and high percentiles of the per-volume intensity window (see `discus_data::standardise`).
    pub percentiles: (f64, f64),
    /// The localiser's input: the middle slice of the sagittal stack and its neighbours, resampled
    /// to a square grid of this many cells centred on the image centre.
    pub localiser_grid: usize,
    /// Cell size of the localiser grid, mm.
    pub localiser_spacing_mm: f64,
    /// Slices of the localiser input (odd; centred on the middle slice).
    pub localiser_slices: usize,
    /// Standard deviation of the Gaussian heat-map targets, grid cells.
    pub heat_sigma: f64,
    /// The graders' crops (every group uses the same shape).
    pub crop: CropSpec,
    /// The point localisers' (foraminal, subarticular) input: square crops of this many cells (a
    /// multiple of 4) with the graders' slices, centred on the expected point.
    pub point_grid: usize,
    /// Cell size of the point localisers' crops, mm.
    pub point_spacing_mm: f64,
    /// Candidate sagittal T1 slices on each side of the expected foraminal slice (the foraminal
    /// localiser chooses among `2 * n + 1`).
    pub foraminal_candidates: usize,
    /// Candidate axial T2 slices on each side of the slice that the canal point projects to (the
    /// subarticular localiser chooses among `2 * n + 1`). Training cuts each level's window around
    /// the labelled slice, moved by up to `n` slices (seeded), so the localiser learns to choose;
    /// models whose card predates the field were trained on the labelled slice alone and predict
    /// with 1.
    #[serde(default = "one")]
    pub subarticular_candidates: usize,
    /// Training only: the largest in-plane shift (mm, per axis) of a point crop's centre from the
    /// labelled point, drawn once per study and finding from a seeded generator, so the point
    /// localisers learn to find points away from the crop centre.
    pub point_jitter_mm: f64,
}

impl Default for Preprocessing {
    fn default() -> Self {
        Preprocessing {
            percentiles: discus_data::standardise::DEFAULT_PERCENTILES,
            localiser_grid: 64,
            localiser_spacing_mm: 4.5,
            localiser_slices: 3,
            heat_sigma: 1.5,
            crop: CropSpec {
                slices: 3,
                slice_step: 1,
                rows: 32,
                columns: 32,
                spacing_mm: 1.5,
                padding: Padding::Zero,
            },
            point_grid: 32,
            point_spacing_mm: 2.0,
            foraminal_candidates: 1,
            subarticular_candidates: 1,
            point_jitter_mm: 8.0,
        }
    }
}

fn one() -> usize {
    1
}

impl Preprocessing {
    /// The point localisers' crop spec (the graders' slices, the point grid).
    pub fn point_spec(&self) -> CropSpec {
        CropSpec {
            slices: self.crop.slices,
            slice_step: self.crop.slice_step,
            rows: self.point_grid,
            columns: self.point_grid,
            spacing_mm: self.point_spacing_mm,
            padding: Padding::Zero,
        }
    }

    /// The localiser's crop spec.
    pub fn localiser_spec(&self) -> CropSpec {
        CropSpec {
            slices: self.localiser_slices,
            slice_step: 1,
            rows: self.localiser_grid,
            columns: self.localiser_grid,
            spacing_mm: self.localiser_spacing_mm,
            padding: Padding::Zero,
        }
    }
}

/// The series of one study by kind. The kind comes from the descriptions CSV; a series without a
/// row there is taken by its header description (`T1` / `T2` / `STIR`) and plane.
#[derive(Debug, Clone, Default)]
pub struct StudySeries {
    /// Sagittal T1 (foraminal).
    pub t1: Option<SeriesRef>,
    /// Sagittal T2/STIR (canal; the localiser's input).
    pub t2: Option<SeriesRef>,
    /// Axial T2 series (subarticular), possibly several.
    pub axial: Vec<SeriesRef>,
}

fn guess_kind(s: &SeriesRef) -> Option<SeriesKind> {
    if let Some(k) = s.kind {
        return Some(k);
    }
    let d = s
        .description
        .clone()
        .unwrap_or_default()
        .to_ascii_uppercase();
    match s.plane.as_deref() {
        Some("axial") => Some(SeriesKind::AxialT2),
        Some("sagittal") if d.contains("T1") => Some(SeriesKind::SagittalT1),
        Some("sagittal") if d.contains("T2") || d.contains("STIR") => {
            Some(SeriesKind::SagittalT2Stir)
        }
        _ => None,
    }
}

impl StudySeries {
    /// The series of `study` in `ds`.
    pub fn of(ds: &Dataset, study: StudyId) -> Result<StudySeries, ModelError> {
        let mut out = StudySeries::default();
        for s in ds.series(study)? {
            if s.n_readable == 0 {
                continue;
            }
            match guess_kind(&s) {
                Some(SeriesKind::SagittalT1) if out.t1.is_none() => out.t1 = Some(s),
                Some(SeriesKind::SagittalT2Stir) if out.t2.is_none() => out.t2 = Some(s),
                Some(SeriesKind::AxialT2) => out.axial.push(s),
                _ => {}
            }
        }
        Ok(out)
    }
}

/// A loaded, intensity-normalised stack.
pub struct Loaded {
    /// The series.
    pub series: SeriesRef,
    /// Its stacks (geometry).
    pub stacks: Vec<Stack>,
    /// Normalised volumes, one per stack, loaded when first asked for.
    volumes: BTreeMap<usize, Volume>,
    /// Stacks of which only some slices are normalised yet (their window is the whole stack's).
    partial: BTreeMap<usize, PartialVolume>,
}

impl Loaded {
    /// The series' stacks, no pixel read yet.
    pub fn new(ds: &Dataset, series: &SeriesRef) -> Result<Loaded, ModelError> {
        Ok(Loaded {
            series: series.clone(),
            stacks: ds.stacks(series)?,
            volumes: BTreeMap::new(),
            partial: BTreeMap::new(),
        })
    }

    fn no_stack(&self, i: usize) -> ModelError {
        ModelError::Input {
            study: self.series.study,
            what: format!("series {} has no stack {i}", self.series.series),
        }
    }

    /// The normalised volume of stack `i` (decoded on first use; slices already normalised by
    /// [`Loaded::voxels`] are kept, with their window).
    pub fn volume(
        &mut self,
        ds: &Dataset,
        i: usize,
        pre: &Preprocessing,
    ) -> Result<&Volume, ModelError> {
        if !self.volumes.contains_key(&i) {
            let Some(stack) = self.stacks.get(i) else {
                return Err(self.no_stack(i));
            };
            let v = match self.partial.remove(&i) {
                Some(part) => ds.complete(&self.series, part)?,
                None => {
                    let v = ds.load_stack(&self.series, stack)?;
                    let w =
                        IntensityWindow::of_values(&v.data, pre.percentiles.0, pre.percentiles.1)
                            .map_err(|e| ModelError::Input {
                            study: self.series.study,
                            what: format!("series {}: {e}", self.series.series),
                        })?;
                    w.normalise_owned(v)
                }
            };
            self.volumes.insert(i, v);
        }
        Ok(&self.volumes[&i])
    }

    /// Stack `i` normalised (by the whole stack's window, as [`Loaded::volume`]) with at least
    /// the slices `wanted` (stack order): the whole volume when it is loaded already, otherwise
    /// only those slices are rescaled and normalised (the stack's files are read once for the
    /// window; later calls add slices).
    pub fn voxels(
        &mut self,
        ds: &Dataset,
        i: usize,
        pre: &Preprocessing,
        wanted: &[usize],
    ) -> Result<&dyn StackVoxels, ModelError> {
        if let Some(v) = self.volumes.get(&i) {
            return Ok(v);
        }
        let Some(stack) = self.stacks.get(i) else {
            return Err(self.no_stack(i));
        };
        match self.partial.entry(i) {
            std::collections::btree_map::Entry::Occupied(e) => {
                let part = e.into_mut();
                ds.load_slices(&self.series, part, wanted)?;
                Ok(part)
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                let part = ds.load_normalised(&self.series, stack, pre.percentiles, wanted)?;
                Ok(e.insert(part))
            }
        }
    }

    /// The largest stack (the one a localiser reads).
    pub fn main_stack(&self) -> usize {
        (0..self.stacks.len())
            .max_by_key(|i| (self.stacks[*i].len(), std::cmp::Reverse(*i)))
            .unwrap_or(0)
    }

    /// Stack index and slice index of an instance.
    pub fn find_instance(&self, instance: i64) -> Option<(usize, usize)> {
        self.stacks
            .iter()
            .enumerate()
            .find_map(|(si, s)| s.find_instance(instance).map(|k| (si, k)))
    }
}

/// The localiser's view of a sagittal volume: its input and the grid <-> patient maps.
#[derive(Debug, Clone)]
pub struct LocaliserView {
    /// `slices * grid * grid` input values.
    pub input: Vec<f32>,
    /// Centre of the grid, voxel coordinates of the volume.
    pub centre_voxel: [f64; 3],
    /// The middle slice (stack order) the grid lies on.
    pub mid_slice: usize,
    /// The crop spec used.
    pub spec: CropSpec,
}

impl LocaliserView {
    /// The grid centre (voxel) and middle slice of a stack's localiser view.
    fn centre_of(stack: &Stack) -> ([f64; 3], usize) {
        let mid = (stack.len().saturating_sub(1)) / 2;
        let centre = [
            (stack.columns as f64 - 1.0) / 2.0,
            (stack.rows as f64 - 1.0) / 2.0,
            mid as f64,
        ];
        (centre, mid)
    }

    /// The slices (stack order) [`LocaliserView::new`] reads from a stack.
    pub fn slices_needed(stack: &Stack, pre: &Preprocessing) -> Vec<usize> {
        let (centre, _) = Self::centre_of(stack);
        crop_slices(stack, stack.voxel_to_patient(centre), &pre.localiser_spec())
    }

    /// The localiser input of a (normalised) sagittal volume.
    pub fn new<V: StackVoxels + ?Sized>(
        volume: &V,
        pre: &Preprocessing,
        study: StudyId,
    ) -> Result<LocaliserView, ModelError> {
        let (centre, mid) = Self::centre_of(volume.stack());
        let spec = pre.localiser_spec();
        let p = volume.to_patient(centre);
        let c = crop(volume, p, &spec, false).map_err(|e| ModelError::Input {
            study,
            what: e.to_string(),
        })?;
        Ok(LocaliserView {
            input: c.data,
            centre_voxel: c.centre_voxel,
            mid_slice: mid,
            spec,
        })
    }

    /// Voxel `(x, y)` on the middle slice of grid position `(row, column)`.
    pub fn grid_to_pixel<V: StackVoxels + ?Sized>(
        &self,
        volume: &V,
        row: f64,
        column: f64,
    ) -> (f64, f64) {
        crop_pixel_to_voxel(volume, self.centre_voxel, &self.spec, row, column)
    }

    /// Patient mm of grid position `(row, column)` (on the middle slice's plane).
    pub fn grid_to_patient<V: StackVoxels + ?Sized>(
        &self,
        volume: &V,
        row: f64,
        column: f64,
    ) -> Vec3 {
        let (x, y) = self.grid_to_pixel(volume, row, column);
        volume.to_patient([x, y, self.mid_slice as f64])
    }

    /// Grid position `(row, column)` of a patient point (projected in-plane).
    pub fn patient_to_grid(&self, volume: &Volume, p: Vec3) -> (f64, f64) {
        let v = volume.patient_to_voxel(p);
        let ps = volume.stack.reference().pixel_spacing;
        let half = (self.spec.rows as f64 - 1.0) / 2.0;
        (
            (v[1] - self.centre_voxel[1]) * ps[0] / self.spec.spacing_mm + half,
            (v[0] - self.centre_voxel[0]) * ps[1] / self.spec.spacing_mm
                + (self.spec.columns as f64 - 1.0) / 2.0,
        )
    }
}

/// A point localiser's input: 2.5D crops centred in-plane on one voxel position, one per candidate
/// slice (stack order), `candidates * slices * grid * grid` values.
#[derive(Debug, Clone)]
pub struct PointInput {
    /// The crops' values, candidate by candidate.
    pub data: Vec<f32>,
    /// Stack slice index of each candidate (outside the stack its crop is zero).
    pub slices: Vec<i64>,
    /// Centre voxel `[x, y, k]` of each candidate's crop.
    pub centres: Vec<[f64; 3]>,
}

/// The point localiser input of `volume` around voxel `(x, y)`: `candidates` crops of `spec` on the
/// slices `first, first + 1, ...` (stack order).
pub fn point_input<V: StackVoxels + ?Sized>(
    volume: &V,
    (x, y): (f64, f64),
    first: i64,
    candidates: usize,
    spec: &CropSpec,
    study: StudyId,
) -> Result<PointInput, ModelError> {
    let mut out = PointInput {
        data: Vec::with_capacity(candidates * spec.len()),
        slices: Vec::with_capacity(candidates),
        centres: Vec::with_capacity(candidates),
    };
    for j in 0..candidates {
        let k = first + j as i64;
        let p = volume.to_patient([x, y, k as f64]);
        let c = crop(volume, p, spec, false).map_err(|e| ModelError::Input {
            study,
            what: e.to_string(),
        })?;
        out.data.extend_from_slice(&c.data);
        out.slices.push(k);
        out.centres.push([x, y, k as f64]);
    }
    Ok(out)
}

/// The slices (stack order) [`point_input`] reads from a stack.
pub fn point_input_slices(
    stack: &Stack,
    (x, y): (f64, f64),
    first: i64,
    candidates: usize,
    spec: &CropSpec,
) -> Vec<usize> {
    let mut out: Vec<usize> = (0..candidates)
        .flat_map(|j| {
            let k = first + j as i64;
            crop_slices(stack, stack.voxel_to_patient([x, y, k as f64]), spec)
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Grid position `(row, column)` of pixel `(x, y)` in a crop of `spec` centred on voxel `centre`
/// (the inverse of [`crop_pixel_to_voxel`]).
pub fn pixel_to_grid(
    volume: &Volume,
    centre: [f64; 3],
    spec: &CropSpec,
    (x, y): (f64, f64),
) -> (f64, f64) {
    let ps = volume.stack.reference().pixel_spacing;
    (
        (y - centre[1]) * ps[0] / spec.spacing_mm + (spec.rows as f64 - 1.0) / 2.0,
        (x - centre[0]) * ps[1] / spec.spacing_mm + (spec.columns as f64 - 1.0) / 2.0,
    )
}

/// One point-localiser training example: its input and, per output channel, the target
/// `(candidate, row, column)` (absent: that channel has no label in this example).
#[derive(Debug, Clone)]
pub struct PointExample {
    /// The level.
    pub level: Level,
    /// Candidate slices of the input.
    pub candidates: usize,
    /// `candidates * slices * grid * grid` values.
    pub data: Vec<f32>,
    /// Per output channel: the labelled candidate and grid position.
    pub targets: Vec<Option<(usize, f64, f64)>>,
    /// Distance between neighbouring candidate slices, mm (for errors in mm).
    pub slice_mm: f64,
}

/// A seeded in-plane shift (pixels) and slice shift for the training crops of one finding.
fn jitter(
    study: StudyId,
    column: usize,
    volume: &Volume,
    pre: &Preprocessing,
    slices: i64,
) -> (f64, f64, i64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
        study.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (column as u64 + 1),
    );
    let ps = volume.stack.reference().pixel_spacing;
    let j = pre.point_jitter_mm.max(0.0);
    let (dx, dy) = if j > 0.0 {
        (rng.gen_range(-j..=j), rng.gen_range(-j..=j))
    } else {
        (0.0, 0.0)
    };
    let dk = if slices > 0 {
        rng.gen_range(-slices..=slices)
    } else {
        0
    };
    (dx / ps[1], dy / ps[0], dk)
}

/// Whether the crops of a condition are mirrored (left/right): the right subarticular crops are
/// flipped so that both sides look like the left one to the shared grader. Sagittal foraminal crops
/// are not flipped (each side has its own parasagittal slice; the in-plane view is alike).
pub fn mirrored(condition: Condition) -> bool {
    condition == Condition::RightSubarticularStenosis
}

/// One grader example.
#[derive(Debug, Clone, PartialEq)]
pub struct CropExample {
    /// The crop values.
    pub data: Vec<f32>,
    /// Its condition.
    pub condition: Condition,
    /// Its level.
    pub level: Level,
    /// The grade index (0 Normal/Mild, 1 Moderate, 2 Severe).
    pub grade: usize,
}

/// A localiser input (`slices * grid * grid` values) and its five canal targets `(row, column)`
/// in level order.
pub type LocaliserTarget = (Vec<f32>, [(f64, f64); 5]);

/// The training material of one study.
#[derive(Debug, Clone)]
pub struct StudySample {
    /// The study.
    pub study: StudyId,
    /// Localiser input and the five canal targets `(row, column)` in level order, when the study has
    /// a sagittal T2/STIR series and all five canal points on it.
    pub localiser: Option<LocaliserTarget>,
    /// Grader examples by group.
    pub crops: BTreeMap<ConditionGroup, Vec<CropExample>>,
    /// Label points in patient mm by (condition, level).
    pub points_mm: BTreeMap<(Condition, Level), Vec3>,
    /// Foraminal localiser examples (sagittal T1): one per labelled side and level, its candidate
    /// slices around the labelled one.
    pub foraminal_points: Vec<PointExample>,
    /// Subarticular localiser examples (axial T2): one per level with a labelled side, its
    /// candidate slices around the labelled one, centred near the canal point's projection;
    /// channels left, right.
    pub subarticular_points: Vec<PointExample>,
}

/// A labelled axial pixel: series, stack, slice, x, y.
type AxialPixel = (u64, usize, usize, f64, f64);

/// Builds the training sample of a labelled study: label points to patient mm, crops at them, and
/// the localiser's input and targets. Points on a series or instance the index does not have are
/// skipped (they are reported by `discus validate`).
pub fn study_sample(
    ds: &Dataset,
    study: StudyId,
    grades: &discus_core::formats::StudyLabels,
    pre: &Preprocessing,
) -> Result<StudySample, ModelError> {
    let series = StudySeries::of(ds, study)?;
    let points = ds.points(study)?;
    let mut loaded: BTreeMap<u64, Loaded> = BTreeMap::new();
    let mut sample = StudySample {
        study,
        localiser: None,
        crops: BTreeMap::new(),
        points_mm: BTreeMap::new(),
        foraminal_points: Vec::new(),
        subarticular_points: Vec::new(),
    };
    let spec = pre.point_spec();
    let r = pre.foraminal_candidates as i64;
    let t1_series = series.t1.as_ref().map(|s| s.series.0);
    let axial_series: Vec<u64> = series.axial.iter().map(|s| s.series.0).collect();
    // Axial subarticular label pixels: (condition, level) -> (series, stack, slice, x, y).
    let mut axial_px: BTreeMap<(Condition, Level), AxialPixel> = BTreeMap::new();
    for p in &points {
        let l = match loaded.entry(p.series.0) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let Some(sref) = ds.find_series(study, p.series)? else {
                    continue;
                };
                e.insert(Loaded::new(ds, &sref)?)
            }
        };
        let Some((si, k)) = l.find_instance(p.instance as i64) else {
            continue;
        };
        let mm = l.stacks[si].pixel_to_patient(k, p.x, p.y);
        sample.points_mm.insert((p.condition, p.level), mm);
        let column = discus_core::LabelColumn {
            condition: p.condition,
            level: p.level,
        };
        let group = p.condition.group();
        if group == ConditionGroup::Subarticular && axial_series.contains(&p.series.0) {
            axial_px.insert((p.condition, p.level), (p.series.0, si, k, p.x, p.y));
        }
        let grade = grades.get(p.condition, p.level);
        let foraminal_on_t1 = group == ConditionGroup::Foraminal && t1_series == Some(p.series.0);
        if grade.is_none() && !foraminal_on_t1 {
            continue;
        }
        let v = l.volume(ds, si, pre)?;
        if foraminal_on_t1 {
            let (dx, dy, dk) = jitter(study, column.index(), v, pre, r);
            let first = k as i64 + dk - r;
            let input = point_input(
                v,
                (p.x + dx, p.y + dy),
                first,
                (2 * r + 1) as usize,
                &spec,
                study,
            )?;
            let (row, col) = pixel_to_grid(v, input.centres[0], &spec, (p.x, p.y));
            sample.foraminal_points.push(PointExample {
                level: p.level,
                candidates: (2 * r + 1) as usize,
                data: input.data,
                targets: vec![Some(((r - dk) as usize, row, col))],
                slice_mm: v.stack.slice_spacing.unwrap_or(0.0).abs(),
            });
        }
        let Some(grade) = grade else {
            continue;
        };
        let c = crop(v, mm, &pre.crop, mirrored(p.condition)).map_err(|e| ModelError::Input {
            study,
            what: e.to_string(),
        })?;
        sample.crops.entry(group).or_default().push(CropExample {
            data: c.data,
            condition: p.condition,
            level: p.level,
            grade: grade.index(),
        });
    }
    // Subarticular localiser examples: a window of `2 * ra + 1` candidate slices around the slice
    // of the left (else right) label, moved by a seeded shift of up to `ra` slices (so the labelled
    // slice sits anywhere in it and the localiser has to choose), centred in-plane on the canal
    // point's projection (else the labels' midpoint) shifted by the seeded jitter. Each side's
    // target is on its own labelled slice (absent when that falls outside the window or the stack).
    let ra = pre.subarticular_candidates as i64;
    for level in Level::ALL {
        let sides = [
            axial_px
                .get(&(Condition::LeftSubarticularStenosis, level))
                .copied(),
            axial_px
                .get(&(Condition::RightSubarticularStenosis, level))
                .copied(),
        ];
        let Some((sid, si, k, _, _)) = sides[0].or(sides[1]) else {
            continue;
        };
        let Some(l) = loaded.get_mut(&sid) else {
            continue;
        };
        let canal = sample
            .points_mm
            .get(&(Condition::SpinalCanalStenosis, level))
            .copied();
        let v = l.volume(ds, si, pre)?;
        let same: Vec<Option<(usize, f64, f64)>> = sides
            .iter()
            .map(|s| {
                s.filter(|s| s.0 == sid && s.1 == si)
                    .map(|s| (s.2, s.3, s.4))
            })
            .collect();
        let (cx, cy) = match canal {
            Some(c) => {
                let vx = v.patient_to_voxel(c);
                (vx[0], vx[1])
            }
            None => {
                let pts: Vec<(f64, f64)> = same.iter().flatten().map(|p| (p.1, p.2)).collect();
                let n = pts.len() as f64;
                (
                    pts.iter().map(|p| p.0).sum::<f64>() / n,
                    pts.iter().map(|p| p.1).sum::<f64>() / n,
                )
            }
        };
        let column = discus_core::LabelColumn {
            condition: Condition::LeftSubarticularStenosis,
            level,
        };
        let (dx, dy, dk) = jitter(study, column.index(), v, pre, ra);
        let n = (2 * ra + 1) as usize;
        let first = k as i64 + dk - ra;
        let input = point_input(v, (cx + dx, cy + dy), first, n, &spec, study)?;
        let targets = same
            .iter()
            .map(|s| {
                s.and_then(|(ks, x, y)| {
                    let j = usize::try_from(ks as i64 - first).ok().filter(|j| *j < n)?;
                    let (row, col) = pixel_to_grid(v, input.centres[j], &spec, (x, y));
                    Some((j, row, col))
                })
            })
            .collect();
        sample.subarticular_points.push(PointExample {
            level,
            candidates: n,
            data: input.data,
            targets,
            slice_mm: v.stack.slice_spacing.unwrap_or(0.0).abs(),
        });
    }
    if let Some(t2) = &series.t2 {
        let canal: Vec<Vec3> = Level::ALL
            .iter()
            .filter_map(|l| {
                sample
                    .points_mm
                    .get(&(Condition::SpinalCanalStenosis, *l))
                    .copied()
            })
            .collect();
        if canal.len() == 5 {
            let l = match loaded.entry(t2.series.0) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => e.insert(Loaded::new(ds, t2)?),
            };
            let main = l.main_stack();
            let v = l.volume(ds, main, pre)?;
            let view = LocaliserView::new(v, pre, study)?;
            let t: Vec<(f64, f64)> = canal.iter().map(|p| view.patient_to_grid(v, *p)).collect();
            sample.localiser = Some((view.input, [t[0], t[1], t[2], t[3], t[4]]));
        }
    }
    Ok(sample)
}
