//! Planning a cohort: per study, the patient and anatomy, the series, the true labels and points,
//! the quirks and every reader's reads. Cheap (no pixels) and deterministic from (seed, index).

use crate::anatomy::{
    disc_of_level, grade_of_degree, side_index, Anatomy, SpineCoord, FORAMEN_ROOT_R,
};
use crate::cohort::{SynthConfig, SynthError};
use crate::dcm::{mix_all, uid};
use crate::protocol::{
    axial_levels, axial_stacks, sagittal_stack, sequence_for, SeriesPlan, Site, SliceGeom,
};
use crate::quirks::{self, Injection, NaturalFinding, Quirk, SeriesContext};
use crate::raster::SeriesSignal;
use crate::readers::{bayes_limit, BayesLimit, Reader, ScoredFinding};
use crate::truth::TruthPoint;
use discus_core::formats::{LabelPoint, StudyLabels};
use discus_core::{Condition, Level, SeriesId, SeriesKind, Severity, StudyId};
use discus_data::validate::FindingKind;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One reader's reads of one study (after quirks: what the CSVs say).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyRead {
    /// The reader's index in [`CohortPlan::readers`].
    pub reader: usize,
    /// The reader's grades, as they would appear in train.csv.
    pub grades: StudyLabels,
    /// The reader's points, as they would appear in train_label_coordinates.csv.
    pub points: Vec<LabelPoint>,
}

/// A fully planned study; rendering it needs nothing else.
#[derive(Debug, Clone)]
pub struct StudyPlan {
    /// Position of the study in the cohort (seeds the study's random streams).
    pub index: usize,
    /// The study id.
    pub study: StudyId,
    /// Index of the study's site in [`CohortPlan::sites`].
    pub site: usize,
    /// The patient's anatomy and degeneration.
    pub anatomy: Anatomy,
    /// The series to write, in series-number order.
    pub series: Vec<SeriesPlan>,
    /// The signal model of each series, same order as `series`.
    pub signals: Vec<SeriesSignal>,
    /// The true point of every finding.
    pub truth_points: Vec<TruthPoint>,
    /// The true grade per label column (train.csv order); `None` when not labelled.
    pub true_grades: [Option<Severity>; 25],
    /// Every reader's reads, reader 0 first.
    pub reads: Vec<StudyRead>,
    /// Quirks injected into this study.
    pub quirks: Vec<Quirk>,
    /// Levels the axial series do not cover (their subarticular labels are left empty).
    pub uncovered: Vec<Level>,
    /// Findings expected on the unaltered data (e.g. per-level angled axials).
    pub natural: Vec<NaturalFinding>,
    /// The study's FrameOfReferenceUID (0020,0052), shared by all its series.
    pub frame_uid: String,
}

/// A whole planned cohort.
#[derive(Debug, Clone)]
pub struct CohortPlan {
    /// The configuration the cohort was planned from.
    pub config: SynthConfig,
    /// The hospital sites.
    pub sites: Vec<Site>,
    /// The simulated readers.
    pub readers: Vec<Reader>,
    /// The studies, in generation order.
    pub studies: Vec<StudyPlan>,
}

const ID_MIN: u64 = 4_000_000;
const ID_MAX: u64 = 4_294_967_295;

fn nearest_slice(slices: &[SliceGeom], p: [f64; 3]) -> (usize, f64, f64, f64) {
    let mut best = (0, 0.0, 0.0, f64::INFINITY);
    for (i, g) in slices.iter().enumerate() {
        let (c, r, d) = g.patient_to_pixel(p);
        if d.abs() < best.3.abs() {
            best = (i, c, r, d);
        }
    }
    best
}

/// The patient-space centre of the structure graded by a finding.
pub fn structure_centre(anat: &Anatomy, condition: Condition, level: Level) -> [f64; 3] {
    let j = disc_of_level(level);
    let s = anat.disc_s(j);
    match (condition.group(), condition.side()) {
        (discus_core::ConditionGroup::Spinal, _) => {
            let (dc, _, _) = anat.sac_at(s, j);
            anat.to_patient(SpineCoord { s, x: 0.0, d: dc })
        }
        (discus_core::ConditionGroup::Foraminal, Some(side)) => {
            let si = side_index(side);
            let (_, fd, _, _, root_s) = anat.foramen(j, si);
            let sign = if si == 0 { 1.0 } else { -1.0 };
            anat.to_patient(SpineCoord {
                s: root_s + 0.5 * FORAMEN_ROOT_R,
                x: sign * anat.foramen_x(),
                d: fd,
            })
        }
        (_, side) => {
            let si = side_index(side.unwrap_or(discus_core::Side::Left));
            let (xr, dr, _, _) = anat.recess_at(s, j, si);
            let sign = if si == 0 { 1.0 } else { -1.0 };
            anat.to_patient(SpineCoord {
                s,
                x: sign * xr,
                d: dr,
            })
        }
    }
}

impl CohortPlan {
    /// Plans a cohort (cheap: no pixels).
    pub fn new(config: &SynthConfig) -> Result<Self, SynthError> {
        if config.studies == 0 || config.sites == 0 || config.readers == 0 {
            return Err(SynthError::Config(
                "studies, sites and readers must be at least 1".into(),
            ));
        }
        if !(config.matrix_scale > 0.0 && config.matrix_scale <= 4.0) {
            return Err(SynthError::Config(
                "the matrix scale must be in (0, 4]".into(),
            ));
        }
        if !(0.0..=1.0).contains(&config.quirk_rate) {
            return Err(SynthError::Config(
                "the quirk rate must be in [0, 1]".into(),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(mix_all(&[config.seed, 0xC0407]));
        let sites = Site::make_sites(config.sites, &mut rng);
        let readers = Reader::make(config.readers, &mut rng);
        let mut studies: Vec<StudyPlan> = (0..config.studies)
            .into_par_iter()
            .map(|i| plan_study(config, &sites, &readers, i))
            .collect();
        // Study ids must be unique; re-draw the rare collision deterministically.
        let mut seen = std::collections::BTreeSet::new();
        for st in &mut studies {
            let mut id = st.study.0;
            let mut salt = 1;
            while !seen.insert(id) {
                id = ID_MIN + mix_all(&[config.seed, st.index as u64, salt]) % (ID_MAX - ID_MIN);
                salt += 1;
            }
            if id != st.study.0 {
                st.relabel(StudyId(id));
            }
        }
        Ok(CohortPlan {
            config: config.clone(),
            sites,
            readers,
            studies,
        })
    }

    /// The Bayes limit over the designated reader's (reader 0's) scored labels.
    pub fn bayes_limit(&self) -> BayesLimit {
        let reader = &self.readers[0];
        let mut findings = Vec::new();
        for (si, st) in self.studies.iter().enumerate() {
            for col in discus_core::LabelColumn::all() {
                if st.reads[0].grades.grades[col.index()].is_none() {
                    continue;
                }
                let g = st
                    .anatomy
                    .degeneration
                    .degree(col.condition.index(), col.level.index());
                findings.push(ScoredFinding {
                    study: si,
                    condition: col.condition,
                    level: col.level,
                    probs: reader.label_probs(g, col.condition, col.level),
                });
            }
        }
        bayes_limit(&findings, self.studies.len())
    }
}

impl StudyPlan {
    fn relabel(&mut self, id: StudyId) {
        self.study = id;
        for r in &mut self.reads {
            r.grades.study = id;
            r.points.iter_mut().for_each(|p| p.study = id);
        }
        self.quirks.iter_mut().for_each(|q| q.study_id = id);
        self.natural.iter_mut().for_each(|q| q.study_id = id);
    }

    /// The series of a kind (by what it really is).
    pub fn series_of(&self, kind: SeriesKind) -> Vec<&SeriesPlan> {
        self.series.iter().filter(|s| s.kind == kind).collect()
    }

    /// Number of DICOM files this study writes.
    pub fn instance_count(&self) -> usize {
        self.series.iter().map(|s| s.slices.len()).sum()
    }
}

fn draw_id(rng: &mut ChaCha8Rng) -> u64 {
    rng.gen_range(ID_MIN..=ID_MAX)
}

/// Draws the study's series ids: unique within the study, from the study's main stream.
struct SeriesIds(BTreeSet<u64>);

impl SeriesIds {
    fn fresh(&mut self, rng: &mut ChaCha8Rng) -> SeriesId {
        loop {
            let id = draw_id(rng);
            if self.0.insert(id) {
                return SeriesId(id);
            }
        }
    }
}

/// The series of a study as acquired (before any quirk).
struct Acquisition {
    series: Vec<SeriesPlan>,
    /// The levels the axial series covers.
    levels: Vec<Level>,
    /// The level of each axial slice.
    slice_levels: Vec<Option<Level>>,
    /// Whether the axial series is one angled stack per disc level.
    per_level: bool,
}

/// Plans the sagittal T1, sagittal T2/STIR and axial T2 series of a study, scaled to the
/// configuration's matrix scale.
fn plan_series(
    config: &SynthConfig,
    anatomy: &Anatomy,
    site: &Site,
    ids: &mut SeriesIds,
    rng: &mut ChaCha8Rng,
) -> Acquisition {
    let mut series = Vec::new();
    for kind in [SeriesKind::SagittalT1, SeriesKind::SagittalT2Stir] {
        let slices = sagittal_stack(anatomy, site, rng);
        let n = slices.len() as u32;
        series.push(SeriesPlan {
            series_id: ids.fresh(rng),
            series_number: series.len() as u32 + 1,
            kind,
            description: kind,
            sequence: sequence_for(kind, site, rng),
            slices,
            instance_numbers: (1..=n).collect(),
            levels: vec![],
        });
    }
    let levels = axial_levels(rng);
    let per_level = rng.gen::<f64>() < site.p_per_level_axial;
    let ax = axial_stacks(anatomy, site, &levels, per_level, rng);
    let n = ax.len() as u32;
    series.push(SeriesPlan {
        series_id: ids.fresh(rng),
        series_number: 3,
        kind: SeriesKind::AxialT2,
        description: SeriesKind::AxialT2,
        sequence: sequence_for(SeriesKind::AxialT2, site, rng),
        slices: ax.iter().map(|a| a.0.clone()).collect(),
        instance_numbers: (1..=n).collect(),
        levels: levels.clone(),
    });
    let slice_levels = ax.iter().map(|a| a.1).collect();
    if config.matrix_scale != 1.0 {
        for s in &mut series {
            for g in &mut s.slices {
                *g = g.rescaled(config.matrix_scale);
            }
        }
    }
    Acquisition {
        series,
        levels,
        slice_levels,
        per_level,
    }
}

/// The true labels of a study: per label column, the grade and the point on the series the spec
/// names for the condition, when that series exists and covers the structure.
struct TrueLabels {
    grades: [Option<Severity>; 25],
    points: Vec<TruthPoint>,
    /// Levels the axial series do not cover.
    uncovered: Vec<Level>,
}

fn true_labels(
    anatomy: &Anatomy,
    series: &[SeriesPlan],
    missing_kind: Option<SeriesKind>,
) -> TrueLabels {
    let mut grades = [None; 25];
    let mut points = Vec::new();
    let mut uncovered = Vec::new();
    for col in discus_core::LabelColumn::all() {
        let (c, l) = (col.condition, col.level);
        let kind = c.series_kind();
        if missing_kind == Some(kind) {
            continue;
        }
        let p = structure_centre(anatomy, c, l);
        let mut best: Option<(&SeriesPlan, usize, f64, f64, f64)> = None;
        for s in series.iter().filter(|s| s.kind == kind) {
            let (i, x, y, d) = nearest_slice(&s.slices, p);
            if best.as_ref().is_none_or(|b| d.abs() < b.4.abs()) {
                best = Some((s, i, x, y, d));
            }
        }
        let Some((s, i, x, y, d)) = best else {
            continue;
        };
        let g = &s.slices[i];
        let inside = x >= 0.0 && y >= 0.0 && x < g.cols as f64 && y < g.rows as f64;
        if d.abs() > 0.5 * g.thickness.max(4.0) + 1.0 || !inside {
            if kind == SeriesKind::AxialT2 && !uncovered.contains(&l) {
                uncovered.push(l);
            }
            continue;
        }
        let degree = anatomy.degeneration.degree(c.index(), l.index());
        grades[col.index()] = Some(grade_of_degree(degree));
        points.push(TruthPoint {
            condition: c,
            level: l,
            patient_mm: p,
            series_id: s.series_id,
            instance_number: s.instance_numbers[i],
            x,
            y,
        });
    }
    TrueLabels {
        grades,
        points,
        uncovered,
    }
}

/// One simulated reader's grades and points of a study, drawn from the reader's own stream `rr`.
/// With `spinal_on_t1` the spinal canal points go on the Sagittal T1 series (the
/// points-on-wrong-series quirk).
fn read_study(
    mut rr: ChaCha8Rng,
    study: StudyId,
    reader: &Reader,
    anatomy: &Anatomy,
    series: &[SeriesPlan],
    truth_points: &[TruthPoint],
    spinal_on_t1: bool,
) -> StudyRead {
    let mut grades = StudyLabels::empty(study);
    let mut points = Vec::new();
    for col in discus_core::LabelColumn::all() {
        let e: f64 = StandardNormal.sample(&mut rr);
        let (jx, jy): (f64, f64) = (
            StandardNormal.sample(&mut rr),
            StandardNormal.sample(&mut rr),
        );
        let Some(tp) = truth_points
            .iter()
            .find(|t| t.condition == col.condition && t.level == col.level)
        else {
            continue;
        };
        let degree = anatomy
            .degeneration
            .degree(col.condition.index(), col.level.index());
        grades.grades[col.index()] = Some(reader.grade(degree, col.condition, col.level, e));
        let mut target = series.iter().find(|s| s.series_id == tp.series_id).unwrap();
        if spinal_on_t1 && col.condition == Condition::SpinalCanalStenosis {
            target = series
                .iter()
                .find(|s| s.kind == SeriesKind::SagittalT1)
                .unwrap();
        }
        let (i, _, _, _) = nearest_slice(&target.slices, tp.patient_mm);
        let g = &target.slices[i];
        let (x, y, _) = g.patient_to_pixel(tp.patient_mm);
        let (sx, sy) = (
            reader.point_sigma_mm / g.spacing[1],
            reader.point_sigma_mm / g.spacing[0],
        );
        points.push(LabelPoint {
            study,
            series: target.series_id,
            instance: target.instance_numbers[i],
            condition: col.condition,
            level: col.level,
            x: round3((x + sx * jx).clamp(0.0, g.cols as f64 - 1.0)),
            y: round3((y + sy * jy).clamp(0.0, g.rows as f64 - 1.0)),
        });
    }
    StudyRead {
        reader: reader.index,
        grades,
        points,
    }
}

/// The signal model of each series: the site's intensity and noise, a random bias field.
fn series_signals(
    series: &[SeriesPlan],
    site: &Site,
    anatomy: &Anatomy,
    rng: &mut ChaCha8Rng,
) -> Vec<SeriesSignal> {
    series
        .iter()
        .map(|s| {
            let table = crate::signal::signal_table(&s.sequence, site.field_t, &anatomy.disc_deg);
            let scale = site.intensity_scale * rng.gen_range(0.9..1.1) * 1.6;
            SeriesSignal {
                table,
                scale,
                sigma: site.noise * scale * 0.5,
                bias_depth: rng.gen_range(70.0..120.0),
                bias_grad: [
                    rng.gen_range(-8e-4..8e-4),
                    rng.gen_range(-8e-4..8e-4),
                    rng.gen_range(-8e-4..8e-4),
                ],
            }
        })
        .collect()
}

/// Findings validate should report on unaltered data: per-level angled axial stacks in one series.
fn natural_findings(study: StudyId, series: &[SeriesPlan], per_level: bool) -> Vec<NaturalFinding> {
    series
        .iter()
        .filter(|s| s.kind == SeriesKind::AxialT2 && per_level && s.levels.len() >= 2)
        .map(|s| NaturalFinding {
            kind: FindingKind::MixedOrientation,
            study_id: study,
            series_id: s.series_id,
            detail: "axial stacks angled per disc level in one series".into(),
        })
        .collect()
}

/// Plans one study, deterministically from (seed, index).
///
/// Random streams: the study's main stream draws the patient, the anatomy, the series and their
/// signal; a second stream draws the quirk; each reader has a stream of its own.
pub fn plan_study(
    config: &SynthConfig,
    sites: &[Site],
    readers: &[Reader],
    index: usize,
) -> StudyPlan {
    let mut rng = ChaCha8Rng::seed_from_u64(mix_all(&[config.seed, index as u64, 1]));
    let study = StudyId(draw_id(&mut rng));
    let site_i = index % sites.len();
    let site = &sites[site_i];
    let anatomy = Anatomy::sample(&mut rng);
    let mut ids = SeriesIds(BTreeSet::new());
    let Acquisition {
        mut series,
        levels,
        slice_levels,
        per_level,
    } = plan_series(config, &anatomy, site, &mut ids, &mut rng);

    // Quirk choice (before labels, since some quirks change which series exist).
    let mut qrng = ChaCha8Rng::seed_from_u64(mix_all(&[config.seed, index as u64, 2]));
    let injection: Option<Injection> =
        quirks::choose(config.quirk_rate, per_level && levels.len() >= 2, &mut qrng);
    let ctx = SeriesContext {
        study,
        levels: &levels,
        slice_levels: &slice_levels,
    };
    let series_quirk = quirks::inject_series(injection, &ctx, &mut series, &mut qrng, &mut || {
        ids.fresh(&mut rng)
    });
    let mut study_quirks: Vec<Quirk> = series_quirk.quirk.into_iter().collect();

    let truth = true_labels(&anatomy, &series, series_quirk.missing_kind);
    let spinal_on_t1 = quirks::spinal_points_on_t1(injection, &series);
    let mut reads: Vec<StudyRead> = readers
        .iter()
        .map(|r| {
            let rr =
                ChaCha8Rng::seed_from_u64(mix_all(&[config.seed, index as u64, 3, r.index as u64]));
            read_study(rr, study, r, &anatomy, &series, &truth.points, spinal_on_t1)
        })
        .collect();
    study_quirks.extend(quirks::inject_reads(
        injection,
        study,
        &series,
        spinal_on_t1,
        &truth.points,
        &mut reads,
        &mut qrng,
    ));

    let signals = series_signals(&series, site, &anatomy, &mut rng);
    let frame_uid = uid(&[config.seed, index as u64, 7], 0);
    let natural = natural_findings(study, &series, per_level);
    StudyPlan {
        index,
        study,
        site: site_i,
        anatomy,
        series,
        signals,
        truth_points: truth.points,
        true_grades: truth.grades,
        reads,
        quirks: study_quirks,
        uncovered: truth.uncovered,
        natural,
        frame_uid,
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
