//! Planning and writing a cohort: studies, series, labels, readers, quirks and the truth file.

use crate::anatomy::{
    disc_of_level, grade_of_degree, side_index, Anatomy, SpineCoord, FORAMEN_ROOT_R,
};
use crate::dcm::{encode_instance, mix_all, uid, InstanceInfo};
use crate::protocol::{
    axial_levels, axial_stacks, sagittal_stack, sequence_for, SeriesPlan, Site, SliceGeom,
};
use crate::raster::{render_slice, SeriesSignal};
use crate::readers::{bayes_limit, BayesLimit, Reader, ScoredFinding};
use discus_core::formats::{
    write_coordinates, write_series_descriptions, write_train, LabelPoint, LineEnding,
    SeriesDescription, StudyLabels,
};
use discus_core::fsio::atomic_write;
use discus_core::{Condition, Level, SeriesId, SeriesKind, Severity, StudyId};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthConfig {
    /// Number of studies to generate.
    pub studies: usize,
    /// Number of hospital sites; studies are spread over them.
    pub sites: usize,
    /// Seed of every random draw: the same configuration gives the same cohort, byte for byte.
    pub seed: u64,
    /// Number of simulated readers grading each study (reader 0 writes train.csv).
    pub readers: usize,
    /// Probability that a study carries one injected quirk.
    pub quirk_rate: f64,
    /// Scales every image matrix (1 = the realistic sizes; smaller for fast tests and demos). The
    /// field of view and the anatomy are unchanged.
    #[serde(default = "one")]
    pub matrix_scale: f64,
}

fn one() -> f64 {
    1.0
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            studies: 12,
            sites: 3,
            seed: 1,
            readers: 3,
            quirk_rate: 0.0,
            matrix_scale: 1.0,
        }
    }
}

/// Errors of cohort generation.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A label CSV could not be read back or written.
    #[error("{0}")]
    Format(#[from] discus_core::formats::FormatError),
    /// An instance could not be encoded as DICOM.
    #[error("study {study}, series {series}: DICOM encoding failed: {message}")]
    Dicom {
        /// The study.
        study: StudyId,
        /// The series.
        series: SeriesId,
        /// The encoder's message.
        message: String,
    },
    /// The output folder holds something else than this configuration's cohort.
    #[error("{path}: holds a different synthetic cohort ({message}); choose an empty folder")]
    Mismatch {
        /// The output folder.
        path: PathBuf,
        /// What differs.
        message: String,
    },
    /// The configuration is unusable (no studies, sites or readers; a scale or rate out of range).
    #[error("bad configuration: {0}")]
    Config(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The quirks that `--quirks` injects (spec section 4), by injection name.
pub const QUIRK_INJECTIONS: [&str; 7] = [
    "missing_series",
    "wrong_series_description",
    "points_on_wrong_series",
    "instance_number_gaps",
    "split_axial_series",
    "label_without_point",
    "point_without_label",
];

/// One injected quirk. `kind` is the snake_case name of the finding `discus validate` reports for
/// it (the `FindingKind` names of `discus_data::validate`); `expected_findings` lists every finding
/// kind the injection should cause (a wrong description, for example, also leaves points on a series
/// of the wrong type and may leave the study without a series of the right type).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quirk {
    /// The snake_case finding kind `discus validate` reports for the quirk (e.g. `missing_series`).
    pub kind: String,
    /// The injection, one of [`QUIRK_INJECTIONS`].
    pub injected: String,
    /// The study the quirk was injected into.
    pub study_id: StudyId,
    /// The series involved, when the quirk concerns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_id: Option<SeriesId>,
    /// The condition involved, when the quirk concerns one label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    /// The level involved, when the quirk concerns one label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// Every finding kind the injection should cause.
    pub expected_findings: Vec<String>,
    /// What was done, in words.
    pub detail: String,
}

/// A finding that `discus validate` should report on a quirk-free part of the cohort because real
/// data has it too (per-level angled axial stacks in one series: `mixed_orientation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NaturalFinding {
    /// The snake_case finding kind, e.g. `mixed_orientation`.
    pub kind: String,
    /// The study.
    pub study_id: StudyId,
    /// The series.
    pub series_id: SeriesId,
    /// Why the finding is expected, in words.
    pub detail: String,
}

/// A labelled point of the truth: where the graded structure's centre is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthPoint {
    /// The graded condition.
    pub condition: Condition,
    /// The disc level.
    pub level: Level,
    /// The structure's centre in patient coordinates (mm, LPS).
    pub patient_mm: [f64; 3],
    /// The series the point is labelled on.
    pub series_id: SeriesId,
    /// The InstanceNumber of the slice nearest the centre.
    pub instance_number: u32,
    /// Column of the centre on that slice, in pixels.
    pub x: f64,
    /// Row of the centre on that slice, in pixels.
    pub y: f64,
}

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

/// Plans one study, deterministically from (seed, index).
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
    let mut ids = std::collections::BTreeSet::new();
    let mut new_series_id = |rng: &mut ChaCha8Rng| loop {
        let id = draw_id(rng);
        if ids.insert(id) {
            return SeriesId(id);
        }
    };
    let mut series = Vec::new();
    for kind in [SeriesKind::SagittalT1, SeriesKind::SagittalT2Stir] {
        let slices = sagittal_stack(&anatomy, site, &mut rng);
        let n = slices.len() as u32;
        series.push(SeriesPlan {
            series_id: new_series_id(&mut rng),
            series_number: series.len() as u32 + 1,
            kind,
            description: kind,
            sequence: sequence_for(kind, site, &mut rng),
            slices,
            instance_numbers: (1..=n).collect(),
            levels: vec![],
        });
    }
    let levels = axial_levels(&mut rng);
    let per_level = rng.gen::<f64>() < site.p_per_level_axial;
    let ax = axial_stacks(&anatomy, site, &levels, per_level, &mut rng);
    let n = ax.len() as u32;
    series.push(SeriesPlan {
        series_id: new_series_id(&mut rng),
        series_number: 3,
        kind: SeriesKind::AxialT2,
        description: SeriesKind::AxialT2,
        sequence: sequence_for(SeriesKind::AxialT2, site, &mut rng),
        slices: ax.iter().map(|a| a.0.clone()).collect(),
        instance_numbers: (1..=n).collect(),
        levels: levels.clone(),
    });
    let slice_levels: Vec<Option<Level>> = ax.iter().map(|a| a.1).collect();
    if config.matrix_scale != 1.0 {
        for s in &mut series {
            for g in &mut s.slices {
                *g = g.rescaled(config.matrix_scale);
            }
        }
    }

    // Quirk choice (before labels, since some quirks change which series exist).
    let mut qrng = ChaCha8Rng::seed_from_u64(mix_all(&[config.seed, index as u64, 2]));
    let quirk_kind = (qrng.gen::<f64>() < config.quirk_rate).then(|| {
        let mut kinds: Vec<&str> = QUIRK_INJECTIONS.to_vec();
        if !(per_level && levels.len() >= 2) {
            kinds.retain(|k| *k != "split_axial_series");
        }
        *kinds.choose(&mut qrng).unwrap()
    });
    let mut quirks = Vec::new();
    let mut q = |injected: &str,
                 kind: &str,
                 expected: &[&str],
                 series_id: Option<SeriesId>,
                 c: Option<Condition>,
                 l: Option<Level>,
                 detail: String| {
        quirks.push(Quirk {
            kind: kind.into(),
            injected: injected.into(),
            expected_findings: expected.iter().map(|s| s.to_string()).collect(),
            study_id: study,
            series_id,
            condition: c,
            level: l,
            detail,
        })
    };
    let mut missing_kind = None;
    match quirk_kind {
        Some("missing_series") => {
            let k = if qrng.gen::<bool>() {
                SeriesKind::SagittalT1
            } else {
                SeriesKind::SagittalT2Stir
            };
            let pos = series.iter().position(|s| s.kind == k).unwrap();
            let gone = series.remove(pos);
            missing_kind = Some(k);
            let kind = if k == SeriesKind::SagittalT1 {
                "missing_sagittal_t1"
            } else {
                "missing_sagittal_t2_stir"
            };
            q(
                "missing_series",
                kind,
                &[kind],
                Some(gone.series_id),
                None,
                None,
                format!("no {k} series; its conditions' labels are empty"),
            );
        }
        Some("wrong_series_description") => {
            let pos = qrng.gen_range(0..series.len());
            let real = series[pos].kind;
            let wrong = *SeriesKind::ALL
                .iter()
                .filter(|k| **k != real)
                .collect::<Vec<_>>()
                .choose(&mut qrng)
                .unwrap();
            series[pos].description = *wrong;
            let kind = if real.is_sagittal() != wrong.is_sagittal() {
                "description_plane_mismatch"
            } else {
                "description_contrast_mismatch"
            };
            // The series carries its condition's points (every study has them unless uncovered), and
            // the study is left without a series described as the real kind.
            let mut expected = vec![kind, "point_on_wrong_series_type"];
            expected.push(match real {
                SeriesKind::SagittalT1 => "missing_sagittal_t1",
                SeriesKind::SagittalT2Stir => "missing_sagittal_t2_stir",
                SeriesKind::AxialT2 => "missing_axial_t2",
            });
            if *wrong == SeriesKind::AxialT2 {
                expected.push("multiple_axial_series");
            }
            // TR/TE contradict the description as well when T1 and T2 contrast are swapped.
            let t1 = |k: SeriesKind| k == SeriesKind::SagittalT1;
            if kind != "description_contrast_mismatch" && t1(real) != t1(*wrong) {
                expected.push("description_contrast_mismatch");
            }
            q(
                "wrong_series_description",
                kind,
                &expected,
                Some(series[pos].series_id),
                None,
                None,
                format!("a {real} series described as {wrong}"),
            );
        }
        Some("instance_number_gaps") => {
            let pos = qrng.gen_range(0..series.len());
            let s = &mut series[pos];
            let offset = qrng.gen::<bool>();
            let mut next = if offset {
                qrng.gen_range(1..6) * 1000 + 1
            } else {
                1
            };
            for inst in s.instance_numbers.iter_mut() {
                *inst = next;
                next += if !offset && qrng.gen::<f64>() < 0.25 {
                    qrng.gen_range(2..5)
                } else {
                    1
                };
            }
            if !offset && s.instance_numbers.windows(2).all(|w| w[1] == w[0] + 1) {
                // Make sure there is at least one gap.
                let last = s.instance_numbers.len() - 1;
                s.instance_numbers[last] += 3;
            }
            let detail = if offset {
                format!("instance numbers start at {}", s.instance_numbers[0])
            } else {
                "instance numbers have gaps".to_string()
            };
            let kind = if offset {
                "instance_number_offset"
            } else {
                "instance_number_gaps"
            };
            q(
                "instance_number_gaps",
                kind,
                &[kind],
                Some(s.series_id),
                None,
                None,
                detail,
            );
        }
        Some("split_axial_series") => {
            let pos = series
                .iter()
                .position(|s| s.kind == SeriesKind::AxialT2)
                .unwrap();
            let split_at = qrng.gen_range(1..levels.len());
            let second_levels = levels[split_at..].to_vec();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for (g, l) in series[pos].slices.iter().zip(&slice_levels) {
                if second_levels.contains(&l.unwrap()) {
                    b.push(g.clone());
                } else {
                    a.push(g.clone());
                }
            }
            let id2 = new_series_id(&mut rng);
            let mut s2 = series[pos].clone();
            s2.series_id = id2;
            s2.series_number = 4;
            s2.instance_numbers = (1..=b.len() as u32).collect();
            s2.slices = b;
            s2.levels = second_levels.clone();
            series[pos].instance_numbers = (1..=a.len() as u32).collect();
            series[pos].slices = a;
            series[pos].levels = levels[..split_at].to_vec();
            q(
                "split_axial_series",
                "multiple_axial_series",
                &["multiple_axial_series", "levels_split_across_series"],
                Some(id2),
                None,
                None,
                format!(
                    "axial levels split over two series; this one holds {}",
                    second_levels
                        .iter()
                        .map(|l| l.words())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            );
            series.push(s2);
        }
        _ => {}
    }

    // Truth: grades and points on the series the spec names.
    let mut true_grades = [None; 25];
    let mut truth_points = Vec::new();
    let mut uncovered = Vec::new();
    for col in discus_core::LabelColumn::all() {
        let (c, l) = (col.condition, col.level);
        let kind = c.series_kind();
        if missing_kind == Some(kind) {
            continue;
        }
        let p = structure_centre(&anatomy, c, l);
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
        true_grades[col.index()] = Some(grade_of_degree(degree));
        truth_points.push(TruthPoint {
            condition: c,
            level: l,
            patient_mm: p,
            series_id: s.series_id,
            instance_number: s.instance_numbers[i],
            x,
            y,
        });
    }
    let wrong_series_points = quirk_kind == Some("points_on_wrong_series")
        && series.iter().any(|s| s.kind == SeriesKind::SagittalT1);

    // Reads.
    let mut reads = Vec::new();
    for r in readers {
        let mut rr =
            ChaCha8Rng::seed_from_u64(mix_all(&[config.seed, index as u64, 3, r.index as u64]));
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
            grades.grades[col.index()] = Some(r.grade(degree, col.condition, col.level, e));
            let mut target = series.iter().find(|s| s.series_id == tp.series_id).unwrap();
            if wrong_series_points && col.condition == Condition::SpinalCanalStenosis {
                target = series
                    .iter()
                    .find(|s| s.kind == SeriesKind::SagittalT1)
                    .unwrap();
            }
            let (i, _, _, _) = nearest_slice(&target.slices, tp.patient_mm);
            let g = &target.slices[i];
            let (x, y, _) = g.patient_to_pixel(tp.patient_mm);
            let (sx, sy) = (
                r.point_sigma_mm / g.spacing[1],
                r.point_sigma_mm / g.spacing[0],
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
        reads.push(StudyRead {
            reader: r.index,
            grades,
            points,
        });
    }
    if wrong_series_points {
        let t1 = series
            .iter()
            .find(|s| s.kind == SeriesKind::SagittalT1)
            .unwrap();
        q(
            "points_on_wrong_series",
            "point_on_wrong_series_type",
            &["point_on_wrong_series_type"],
            Some(t1.series_id),
            Some(Condition::SpinalCanalStenosis),
            None,
            "spinal canal points placed on the Sagittal T1 series".into(),
        );
    }
    if matches!(
        quirk_kind,
        Some("label_without_point") | Some("point_without_label")
    ) && !truth_points.is_empty()
    {
        let k = qrng.gen_range(0..truth_points.len());
        let (c, l) = (truth_points[k].condition, truth_points[k].level);
        let kind = quirk_kind.unwrap();
        for r in &mut reads {
            if kind == "label_without_point" {
                r.points.retain(|p| !(p.condition == c && p.level == l));
            } else {
                r.grades.set(c, l, None);
            }
        }
        q(
            kind,
            kind,
            &[kind],
            Some(truth_points[k].series_id),
            Some(c),
            Some(l),
            if kind == "label_without_point" {
                "a grade without its point".into()
            } else {
                "a point without its grade".into()
            },
        );
    }

    let signals = series
        .iter()
        .map(|s| {
            crate::protocol::series_signal(&anatomy, site, s.kind, &s.sequence, &s.slices, &mut rng)
        })
        .collect();
    let frame_uid = uid(&[config.seed, index as u64, 7], 0);
    let natural = series
        .iter()
        .filter(|s| s.kind == SeriesKind::AxialT2 && per_level && s.levels.len() >= 2)
        .map(|s| NaturalFinding {
            kind: "mixed_orientation".into(),
            study_id: study,
            series_id: s.series_id,
            detail: "axial stacks angled per disc level in one series".into(),
        })
        .collect();
    StudyPlan {
        index,
        study,
        site: site_i,
        anatomy,
        series,
        signals,
        truth_points,
        true_grades,
        reads,
        quirks,
        uncovered,
        natural,
        frame_uid,
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The noise seed of slice `k` of series `si` of a study.
pub fn slice_noise_seed(cfg: &SynthConfig, st: &StudyPlan, si: usize, k: usize) -> u64 {
    mix_all(&[cfg.seed, st.index as u64, 100 + si as u64, k as u64])
}

/// The SOPInstanceUID of an instance.
pub fn sop_instance_uid(
    cfg: &SynthConfig,
    st: &StudyPlan,
    series: SeriesId,
    instance: u32,
) -> String {
    uid(&[cfg.seed, st.index as u64, series.0], instance)
}

/// Renders and writes one study's DICOM files. Returns bytes written.
pub fn write_study(
    root: &Path,
    cfg: &SynthConfig,
    st: &StudyPlan,
    site: &Site,
) -> Result<u64, SynthError> {
    let dir = root.join("train_images").join(st.study.to_string());
    let mut total = 0u64;
    for (si, s) in st.series.iter().enumerate() {
        let sdir = dir.join(s.series_id.to_string());
        let sig = &st.signals[si];
        let bytes: Result<Vec<u64>, SynthError> = s
            .slices
            .par_iter()
            .enumerate()
            .map(|(k, g)| {
                let inst = s.instance_numbers[k];
                let seed = slice_noise_seed(cfg, st, si, k);
                let pixels = render_slice(&st.anatomy, g, sig, seed);
                let info = InstanceInfo {
                    study: st.study,
                    series: s,
                    site,
                    geom: g,
                    signal: sig,
                    instance_number: inst,
                    sop_instance_uid: sop_instance_uid(cfg, st, s.series_id, inst),
                    frame_of_reference_uid: st.frame_uid.clone(),
                };
                let b = encode_instance(&info, &pixels).map_err(|message| SynthError::Dicom {
                    study: st.study,
                    series: s.series_id,
                    message,
                })?;
                let path = sdir.join(format!("{inst}.dcm"));
                atomic_write(&path, &b).map_err(io(&path))?;
                Ok(b.len() as u64)
            })
            .collect();
        total += bytes?.iter().sum::<u64>();
    }
    Ok(total)
}

/// Per-study truth, as written to truth.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StudyTruth {
    /// The study id.
    pub study_id: StudyId,
    /// The site's InstitutionName.
    pub site: String,
    /// The scanner's Manufacturer (0008,0070).
    pub manufacturer: String,
    /// The scanner's ManufacturerModelName (0008,1090).
    pub model: String,
    /// MagneticFieldStrength (0018,0087), in tesla.
    pub field_strength_t: f64,
    /// The continuous degeneration degrees the grades came from.
    pub degrees: crate::anatomy::Degeneration,
    /// True grade per label column (`spinal_canal_stenosis_l1_l2` ...), null when not labelled.
    pub true_grades: BTreeMap<String, Option<Severity>>,
    /// The true point of every finding.
    pub truth_points: Vec<TruthPoint>,
    /// Levels the axial series do not cover (their subarticular labels are empty, as in real data).
    pub uncovered_axial_levels: Vec<Level>,
    /// The study's series as written.
    pub series: Vec<SeriesTruth>,
    /// Every reader's grades per label column.
    pub reads: Vec<BTreeMap<String, Option<Severity>>>,
}

/// One series of a study in truth.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesTruth {
    /// The series id.
    pub series_id: SeriesId,
    /// What the series really is.
    pub kind: SeriesKind,
    /// The description written to the CSV and header (differs from `kind` for a wrong-description quirk).
    pub description: SeriesKind,
    /// Number of instances written.
    pub instances: usize,
    /// Levels covered by an axial series (empty for sagittal).
    pub levels: Vec<Level>,
}

/// The truth file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Truth {
    /// The generator and its version, e.g. `discus-synth 0.1.0`.
    pub generator: String,
    /// The configuration the cohort was generated from.
    pub config: SynthConfig,
    /// The reader whose grades and points are train.csv / train_label_coordinates.csv.
    pub designated_reader: usize,
    /// The line ending of the written CSVs (`LF`).
    pub line_ending: String,
    /// The simulated readers.
    pub readers: Vec<Reader>,
    /// The expected score of the Bayes-optimal prediction on these labels.
    pub bayes_limit: BayesLimit,
    /// Every injected quirk.
    pub quirks: Vec<Quirk>,
    /// Findings `discus validate` should report that are not injected quirks (real data has them).
    pub natural_findings: Vec<NaturalFinding>,
    /// Per-study truth, in generation order.
    pub studies: Vec<StudyTruth>,
}

fn grade_map(g: &[Option<Severity>; 25]) -> BTreeMap<String, Option<Severity>> {
    discus_core::LabelColumn::all()
        .iter()
        .map(|c| (c.name(), g[c.index()]))
        .collect()
}

impl CohortPlan {
    /// The truth file's content for this plan.
    pub fn truth(&self) -> Truth {
        Truth {
            generator: format!("discus-synth {}", env!("CARGO_PKG_VERSION")),
            config: self.config.clone(),
            designated_reader: 0,
            line_ending: "LF".into(),
            readers: self.readers.clone(),
            bayes_limit: self.bayes_limit(),
            quirks: self.studies.iter().flat_map(|s| s.quirks.clone()).collect(),
            natural_findings: self
                .studies
                .iter()
                .flat_map(|s| s.natural.clone())
                .collect(),
            studies: self
                .studies
                .iter()
                .map(|s| {
                    let site = &self.sites[s.site];
                    StudyTruth {
                        study_id: s.study,
                        site: site.name.clone(),
                        manufacturer: site.manufacturer.clone(),
                        model: site.model.clone(),
                        field_strength_t: site.field_t,
                        degrees: s.anatomy.degeneration.clone(),
                        true_grades: grade_map(&s.true_grades),
                        truth_points: s.truth_points.clone(),
                        uncovered_axial_levels: s.uncovered.clone(),
                        series: s
                            .series
                            .iter()
                            .map(|x| SeriesTruth {
                                series_id: x.series_id,
                                kind: x.kind,
                                description: x.description,
                                instances: x.slices.len(),
                                levels: x.levels.clone(),
                            })
                            .collect(),
                        reads: s
                            .reads
                            .iter()
                            .map(|r| grade_map(&r.grades.grades))
                            .collect(),
                    }
                })
                .collect(),
        }
    }

    /// Writes the label CSVs (root = reader 0; `readers/<r>/` for every reader) and truth.json.
    pub fn write_labels(&self, root: &Path) -> Result<(), SynthError> {
        let mut order: Vec<&StudyPlan> = self.studies.iter().collect();
        order.sort_by_key(|s| s.study);
        let le = LineEnding::Lf;
        for r in 0..self.readers.len() {
            let grades: Vec<StudyLabels> =
                order.iter().map(|s| s.reads[r].grades.clone()).collect();
            let mut pts: Vec<LabelPoint> = order
                .iter()
                .flat_map(|s| s.reads[r].points.clone())
                .collect();
            pts.sort_by(|a, b| {
                (a.study, a.series, a.condition, a.level).cmp(&(
                    b.study,
                    b.series,
                    b.condition,
                    b.level,
                ))
            });
            let dir = root.join("readers").join(r.to_string());
            write_train(&dir.join("train.csv"), &grades, le)?;
            write_coordinates(&dir.join("train_label_coordinates.csv"), &pts, le)?;
            if r == 0 {
                write_train(&root.join("train.csv"), &grades, le)?;
                write_coordinates(&root.join("train_label_coordinates.csv"), &pts, le)?;
            }
        }
        let desc: Vec<SeriesDescription> = order
            .iter()
            .flat_map(|s| {
                s.series.iter().map(|x| SeriesDescription {
                    study: s.study,
                    series: x.series_id,
                    kind: x.description,
                })
            })
            .collect();
        write_series_descriptions(&root.join("train_series_descriptions.csv"), &desc, le)?;
        let path = root.join("truth.json");
        let json = serde_json::to_vec_pretty(&self.truth()).expect("truth serialises");
        atomic_write(&path, &json).map_err(io(&path))?;
        let card_path = root.join(discus_core::governance::CARD_FILE);
        self.card().write(&card_path).map_err(|e| match e {
            discus_core::governance::CardError::Io { path, source } => {
                SynthError::Io { path, source }
            }
            other => SynthError::Io {
                path: card_path.clone(),
                source: std::io::Error::other(other.to_string()),
            },
        })?;
        Ok(())
    }

    /// The dataset card (`dataset.toml`) of this synthetic cohort: generated data with no patient
    /// in it, so every use is permitted. Deterministic (no wall clock): the same configuration gives
    /// the same bytes.
    pub fn card(&self) -> discus_core::governance::DatasetCard {
        use discus_core::governance::{DatasetCard, Deidentification, Licence, Use};
        let c = &self.config;
        DatasetCard {
            name: format!("discus synthetic cohort (seed {})", c.seed),
            source: format!(
                "discus synth {}: synthetic lumbar MRI cohort generated from seed {}, {} studies, {} sites, {} readers, quirk rate {}, matrix scale {}",
                env!("CARGO_PKG_VERSION"),
                c.seed,
                c.studies,
                c.sites,
                c.readers,
                c.quirk_rate,
                c.matrix_scale
            ),
            date: None,
            sites: self.sites.iter().map(|s| s.name.clone()).collect(),
            licence: Licence {
                name: "MIT OR Apache-2.0 (synthetic data; no patient data)".into(),
                url: None,
                permitted_uses: Use::ALL.to_vec(),
                citation_required: false,
                citation: None,
            },
            deidentification: Deidentification {
                applied: false,
                method: Some("not applicable: synthetic data, no patient was ever scanned".into()),
                ..Deidentification::default()
            },
            derived_from: Vec::new(),
        }
    }
}

/// Summary of a generation run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SynthSummary {
    /// The cohort's root folder.
    pub out: PathBuf,
    /// Studies in the cohort.
    pub studies: usize,
    /// Studies skipped because an earlier run had finished them.
    pub studies_skipped_done: usize,
    /// DICOM instances in the cohort.
    pub instances: usize,
    /// Bytes of DICOM written by this run.
    pub bytes_written: u64,
    /// Quirks injected.
    pub quirks: usize,
    /// The expected score of the Bayes-optimal prediction.
    pub bayes_limit: BayesLimit,
}

/// Generates a cohort into `root`: plans it, renders and writes each study (resuming: studies finished
/// by an earlier run with the same configuration are skipped), then writes the CSVs and truth.json.
/// `progress` is called after each study with the number done so far.
pub fn generate(
    root: &Path,
    config: &SynthConfig,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<SynthSummary, SynthError> {
    let plan = CohortPlan::new(config)?;
    let state = root.join(".discus-synth");
    let cfg_path = state.join("config.json");
    let cfg_json = serde_json::to_vec_pretty(config).expect("config serialises");
    match std::fs::read(&cfg_path) {
        Ok(old) if old != cfg_json => {
            return Err(SynthError::Mismatch {
                path: root.to_path_buf(),
                message: format!("{} differs", cfg_path.display()),
            })
        }
        Ok(_) => {}
        Err(_) => {
            if root.join("train_images").exists() {
                return Err(SynthError::Mismatch {
                    path: root.to_path_buf(),
                    message: "train_images exists but was not written by discus synth".into(),
                });
            }
            atomic_write(&cfg_path, &cfg_json).map_err(io(&cfg_path))?;
        }
    }
    let done = std::sync::atomic::AtomicUsize::new(0);
    let skipped = std::sync::atomic::AtomicUsize::new(0);
    let results: Result<Vec<u64>, SynthError> = plan
        .studies
        .par_iter()
        .map(|st| {
            let marker = state.join("done").join(st.study.to_string());
            let b = if marker.exists() {
                skipped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                0
            } else {
                let b = write_study(root, config, st, &plan.sites[st.site])?;
                atomic_write(&marker, b"").map_err(io(&marker))?;
                b
            };
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(n);
            Ok(b)
        })
        .collect();
    let bytes: u64 = results?.iter().sum();
    plan.write_labels(root)?;
    Ok(SynthSummary {
        out: root.to_path_buf(),
        studies: plan.studies.len(),
        studies_skipped_done: skipped.into_inner(),
        instances: plan.studies.iter().map(|s| s.instance_count()).sum(),
        bytes_written: bytes,
        quirks: plan.studies.iter().map(|s| s.quirks.len()).sum(),
        bayes_limit: plan.bayes_limit(),
    })
}
