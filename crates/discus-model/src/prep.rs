//! From a [`Dataset`] to network inputs: series by kind, normalised volumes, the localiser's grid,
//! crops at points, and the training samples of one study.

use crate::ModelError;
use discus_core::{Condition, ConditionGroup, Level, SeriesKind, StudyId};
use discus_data::dataset::{Dataset, SeriesRef, Volume};
use discus_data::geometry::{Stack, Vec3};
use discus_data::standardise::{crop, crop_pixel_to_voxel, CropSpec, IntensityWindow, Padding};
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
        }
    }
}

impl Preprocessing {
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
}

impl Loaded {
    /// The series' stacks, no pixel read yet.
    pub fn new(ds: &Dataset, series: &SeriesRef) -> Result<Loaded, ModelError> {
        Ok(Loaded {
            series: series.clone(),
            stacks: ds.stacks(series)?,
            volumes: BTreeMap::new(),
        })
    }

    /// The normalised volume of stack `i` (decoded on first use).
    pub fn volume(
        &mut self,
        ds: &Dataset,
        i: usize,
        pre: &Preprocessing,
    ) -> Result<&Volume, ModelError> {
        if !self.volumes.contains_key(&i) {
            let stack = self.stacks.get(i).ok_or_else(|| ModelError::Input {
                study: self.series.study,
                what: format!("series {} has no stack {i}", self.series.series),
            })?;
            let v = ds.load_stack(&self.series, stack)?;
            let w = IntensityWindow::of_values(&v.data, pre.percentiles.0, pre.percentiles.1)
                .map_err(|e| ModelError::Input {
                    study: self.series.study,
                    what: format!("series {}: {e}", self.series.series),
                })?;
            self.volumes.insert(i, w.normalise(&v));
        }
        Ok(&self.volumes[&i])
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
    /// The localiser input of a (normalised) sagittal volume.
    pub fn new(
        volume: &Volume,
        pre: &Preprocessing,
        study: StudyId,
    ) -> Result<LocaliserView, ModelError> {
        let mid = (volume.slices().saturating_sub(1)) / 2;
        let centre = [
            (volume.columns as f64 - 1.0) / 2.0,
            (volume.rows as f64 - 1.0) / 2.0,
            mid as f64,
        ];
        let spec = pre.localiser_spec();
        let p = volume.voxel_to_patient(centre);
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
    pub fn grid_to_pixel(&self, volume: &Volume, row: f64, column: f64) -> (f64, f64) {
        crop_pixel_to_voxel(volume, self.centre_voxel, &self.spec, row, column)
    }

    /// Patient mm of grid position `(row, column)` (on the middle slice's plane).
    pub fn grid_to_patient(&self, volume: &Volume, row: f64, column: f64) -> Vec3 {
        let (x, y) = self.grid_to_pixel(volume, row, column);
        volume.voxel_to_patient([x, y, self.mid_slice as f64])
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

/// Whether the crops of a condition are mirrored (left/right): the right subarticular crops are
/// flipped so that both sides look like the left one to the shared grader. Sagittal foraminal crops
/// are not flipped (each side has its own parasagittal slice; the in-plane view is alike).
pub fn mirrored(condition: Condition) -> bool {
    condition == Condition::RightSubarticularStenosis
}

/// One grader example.
#[derive(Debug, Clone)]
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
}

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
    };
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
        let Some(grade) = grades.get(p.condition, p.level) else {
            continue;
        };
        let v = l.volume(ds, si, pre)?;
        let c = crop(v, mm, &pre.crop, mirrored(p.condition)).map_err(|e| ModelError::Input {
            study,
            what: e.to_string(),
        })?;
        sample
            .crops
            .entry(p.condition.group())
            .or_default()
            .push(CropExample {
                data: c.data,
                condition: p.condition,
                level: p.level,
                grade: grade.index(),
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
