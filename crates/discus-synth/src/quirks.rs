//! Quirk injection: the faults of the real data (spec section 4) that `--quirks` plants in a study,
//! each recorded with the `discus validate` finding kinds it should cause.

use crate::plan::StudyRead;
use crate::protocol::{SeriesPlan, SliceGeom};
use crate::truth::TruthPoint;
use discus_core::{Condition, Level, SeriesId, SeriesKind, StudyId};
use discus_data::validate::FindingKind;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// What `--quirks` can inject into a study. The snake_case names are those of truth.json's
/// `injected` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Injection {
    /// A sagittal series (T1 or T2/STIR) is left out; its conditions' labels are empty.
    MissingSeries,
    /// A series is described as another kind in the CSV and the header.
    WrongSeriesDescription,
    /// The spinal canal points are placed on the Sagittal T1 series.
    PointsOnWrongSeries,
    /// Instance numbers skip values or start far from 1.
    InstanceNumberGaps,
    /// The axial levels are split over two series.
    SplitAxialSeries,
    /// A grade keeps its row in train.csv but loses its point.
    LabelWithoutPoint,
    /// A point keeps its row but loses its grade.
    PointWithoutLabel,
}

impl Injection {
    /// Every injection, in the order the generator draws from.
    pub const ALL: [Injection; 7] = [
        Injection::MissingSeries,
        Injection::WrongSeriesDescription,
        Injection::PointsOnWrongSeries,
        Injection::InstanceNumberGaps,
        Injection::SplitAxialSeries,
        Injection::LabelWithoutPoint,
        Injection::PointWithoutLabel,
    ];

    /// The stable snake_case name (as in truth.json).
    pub fn as_str(self) -> &'static str {
        match self {
            Injection::MissingSeries => "missing_series",
            Injection::WrongSeriesDescription => "wrong_series_description",
            Injection::PointsOnWrongSeries => "points_on_wrong_series",
            Injection::InstanceNumberGaps => "instance_number_gaps",
            Injection::SplitAxialSeries => "split_axial_series",
            Injection::LabelWithoutPoint => "label_without_point",
            Injection::PointWithoutLabel => "point_without_label",
        }
    }
}

impl std::fmt::Display for Injection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One injected quirk. `kind` is the finding `discus validate` reports for it; `expected_findings`
/// lists every finding kind the injection should cause (a wrong description, for example, also
/// leaves points on a series of the wrong type and may leave the study without a series of the
/// right type).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quirk {
    /// The finding `discus validate` reports for the quirk (e.g. `missing_sagittal_t1`).
    pub kind: FindingKind,
    /// What was injected.
    pub injected: Injection,
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
    pub expected_findings: Vec<FindingKind>,
    /// What was done, in words.
    pub detail: String,
}

impl Quirk {
    /// A quirk concerning one series of a study (no single label).
    fn on_series(
        injected: Injection,
        kind: FindingKind,
        expected_findings: Vec<FindingKind>,
        study_id: StudyId,
        series_id: SeriesId,
        detail: String,
    ) -> Quirk {
        Quirk {
            kind,
            injected,
            study_id,
            series_id: Some(series_id),
            condition: None,
            level: None,
            expected_findings,
            detail,
        }
    }
}

/// A finding that `discus validate` should report on a quirk-free part of the cohort because real
/// data has it too (per-level angled axial stacks in one series: `mixed_orientation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NaturalFinding {
    /// The finding kind, e.g. `mixed_orientation`.
    pub kind: FindingKind,
    /// The study.
    pub study_id: StudyId,
    /// The series.
    pub series_id: SeriesId,
    /// Why the finding is expected, in words.
    pub detail: String,
}

/// The finding `discus validate` reports for a study without a series described as `kind`.
pub fn missing_series_finding(kind: SeriesKind) -> FindingKind {
    match kind {
        SeriesKind::SagittalT1 => FindingKind::MissingSagittalT1,
        SeriesKind::SagittalT2Stir => FindingKind::MissingSagittalT2Stir,
        SeriesKind::AxialT2 => FindingKind::MissingAxialT2,
    }
}

/// Draws whether the study gets a quirk and which one. `split_possible` says whether the axial
/// series has per-level stacks over at least two levels (else it cannot be split).
pub(crate) fn choose(
    quirk_rate: f64,
    split_possible: bool,
    qrng: &mut ChaCha8Rng,
) -> Option<Injection> {
    (qrng.gen::<f64>() < quirk_rate).then(|| {
        let mut kinds: Vec<Injection> = Injection::ALL.to_vec();
        if !split_possible {
            kinds.retain(|k| *k != Injection::SplitAxialSeries);
        }
        *kinds.choose(qrng).unwrap()
    })
}

/// What a quirk did to a study's series list.
pub(crate) struct SeriesQuirk {
    /// The quirk, when the injection acts on the series (the label injections do not).
    pub quirk: Option<Quirk>,
    /// The kind of series left out (its conditions get no labels).
    pub missing_kind: Option<SeriesKind>,
}

/// The series of the study being planned, with what the series injections need.
pub(crate) struct SeriesContext<'a> {
    /// The study.
    pub study: StudyId,
    /// The levels covered by the axial series, in slice order.
    pub levels: &'a [Level],
    /// The level of every axial slice (same order as the axial series' slices).
    pub slice_levels: &'a [Option<Level>],
}

/// Applies the injections that change which series exist or how they are described or numbered.
/// `new_series_id` draws a fresh series id from the study's main stream (a split needs one).
pub(crate) fn inject_series(
    injection: Option<Injection>,
    ctx: &SeriesContext<'_>,
    series: &mut Vec<SeriesPlan>,
    qrng: &mut ChaCha8Rng,
    new_series_id: &mut dyn FnMut() -> SeriesId,
) -> SeriesQuirk {
    let (quirk, missing_kind) = match injection {
        Some(Injection::MissingSeries) => {
            let (q, k) = missing_series(ctx.study, series, qrng);
            (Some(q), Some(k))
        }
        Some(Injection::WrongSeriesDescription) => {
            (Some(wrong_description(ctx.study, series, qrng)), None)
        }
        Some(Injection::InstanceNumberGaps) => {
            (Some(instance_number_gaps(ctx.study, series, qrng)), None)
        }
        Some(Injection::SplitAxialSeries) => {
            (Some(split_axial(ctx, series, qrng, new_series_id)), None)
        }
        _ => (None, None),
    };
    SeriesQuirk {
        quirk,
        missing_kind,
    }
}

fn missing_series(
    study: StudyId,
    series: &mut Vec<SeriesPlan>,
    qrng: &mut ChaCha8Rng,
) -> (Quirk, SeriesKind) {
    let k = if qrng.gen::<bool>() {
        SeriesKind::SagittalT1
    } else {
        SeriesKind::SagittalT2Stir
    };
    let pos = series.iter().position(|s| s.kind == k).unwrap();
    let gone = series.remove(pos);
    let kind = missing_series_finding(k);
    let q = Quirk::on_series(
        Injection::MissingSeries,
        kind,
        vec![kind],
        study,
        gone.series_id,
        format!("no {k} series; its conditions' labels are empty"),
    );
    (q, k)
}

fn wrong_description(study: StudyId, series: &mut [SeriesPlan], qrng: &mut ChaCha8Rng) -> Quirk {
    let pos = qrng.gen_range(0..series.len());
    let real = series[pos].kind;
    let wrong = *SeriesKind::ALL
        .iter()
        .filter(|k| **k != real)
        .collect::<Vec<_>>()
        .choose(qrng)
        .unwrap();
    series[pos].description = *wrong;
    let kind = if real.is_sagittal() != wrong.is_sagittal() {
        FindingKind::DescriptionPlaneMismatch
    } else {
        FindingKind::DescriptionContrastMismatch
    };
    // The series carries its condition's points (every study has them unless uncovered), and
    // the study is left without a series described as the real kind.
    let mut expected = vec![
        kind,
        FindingKind::PointOnWrongSeriesType,
        missing_series_finding(real),
    ];
    if *wrong == SeriesKind::AxialT2 {
        expected.push(FindingKind::MultipleAxialSeries);
    }
    // TR/TE contradict the description as well when T1 and T2 contrast are swapped.
    let t1 = |k: SeriesKind| k == SeriesKind::SagittalT1;
    if kind != FindingKind::DescriptionContrastMismatch && t1(real) != t1(*wrong) {
        expected.push(FindingKind::DescriptionContrastMismatch);
    }
    Quirk::on_series(
        Injection::WrongSeriesDescription,
        kind,
        expected,
        study,
        series[pos].series_id,
        format!("a {real} series described as {wrong}"),
    )
}

fn instance_number_gaps(study: StudyId, series: &mut [SeriesPlan], qrng: &mut ChaCha8Rng) -> Quirk {
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
    let (kind, detail) = if offset {
        (
            FindingKind::InstanceNumberOffset,
            format!("instance numbers start at {}", s.instance_numbers[0]),
        )
    } else {
        (
            FindingKind::InstanceNumberGaps,
            "instance numbers have gaps".to_string(),
        )
    };
    Quirk::on_series(
        Injection::InstanceNumberGaps,
        kind,
        vec![kind],
        study,
        s.series_id,
        detail,
    )
}

fn split_axial(
    ctx: &SeriesContext<'_>,
    series: &mut Vec<SeriesPlan>,
    qrng: &mut ChaCha8Rng,
    new_series_id: &mut dyn FnMut() -> SeriesId,
) -> Quirk {
    let levels = ctx.levels;
    let pos = series
        .iter()
        .position(|s| s.kind == SeriesKind::AxialT2)
        .unwrap();
    let split_at = qrng.gen_range(1..levels.len());
    let second_levels = levels[split_at..].to_vec();
    let (mut a, mut b): (Vec<SliceGeom>, Vec<SliceGeom>) = (Vec::new(), Vec::new());
    for (g, l) in series[pos].slices.iter().zip(ctx.slice_levels) {
        if second_levels.contains(&l.unwrap()) {
            b.push(g.clone());
        } else {
            a.push(g.clone());
        }
    }
    let id2 = new_series_id();
    let mut s2 = series[pos].clone();
    s2.series_id = id2;
    s2.series_number = 4;
    s2.instance_numbers = (1..=b.len() as u32).collect();
    s2.slices = b;
    s2.levels = second_levels.clone();
    series[pos].instance_numbers = (1..=a.len() as u32).collect();
    series[pos].slices = a;
    series[pos].levels = levels[..split_at].to_vec();
    let q = Quirk::on_series(
        Injection::SplitAxialSeries,
        FindingKind::MultipleAxialSeries,
        vec![
            FindingKind::MultipleAxialSeries,
            FindingKind::LevelsSplitAcrossSeries,
        ],
        ctx.study,
        id2,
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
    q
}

/// Whether the readers put the spinal canal points on the Sagittal T1 series
/// ([`Injection::PointsOnWrongSeries`], when the study has that series).
pub(crate) fn spinal_points_on_t1(injection: Option<Injection>, series: &[SeriesPlan]) -> bool {
    injection == Some(Injection::PointsOnWrongSeries)
        && series.iter().any(|s| s.kind == SeriesKind::SagittalT1)
}

/// Applies (or records) the injections that act on the reads, after every reader has read: the
/// spinal points already placed on the Sagittal T1 series (`spinal_on_t1`), or one label losing its
/// point or its grade in every reader's reads.
pub(crate) fn inject_reads(
    injection: Option<Injection>,
    study: StudyId,
    series: &[SeriesPlan],
    spinal_on_t1: bool,
    truth_points: &[TruthPoint],
    reads: &mut [StudyRead],
    qrng: &mut ChaCha8Rng,
) -> Vec<Quirk> {
    let mut quirks = Vec::new();
    if spinal_on_t1 {
        let t1 = series
            .iter()
            .find(|s| s.kind == SeriesKind::SagittalT1)
            .unwrap();
        quirks.push(Quirk {
            condition: Some(Condition::SpinalCanalStenosis),
            ..Quirk::on_series(
                Injection::PointsOnWrongSeries,
                FindingKind::PointOnWrongSeriesType,
                vec![FindingKind::PointOnWrongSeriesType],
                study,
                t1.series_id,
                "spinal canal points placed on the Sagittal T1 series".into(),
            )
        });
    }
    let (kind, detail) = match injection {
        Some(Injection::LabelWithoutPoint) => {
            (FindingKind::LabelWithoutPoint, "a grade without its point")
        }
        Some(Injection::PointWithoutLabel) => {
            (FindingKind::PointWithoutLabel, "a point without its grade")
        }
        _ => return quirks,
    };
    if truth_points.is_empty() {
        return quirks;
    }
    let k = qrng.gen_range(0..truth_points.len());
    let (c, l) = (truth_points[k].condition, truth_points[k].level);
    for r in reads.iter_mut() {
        if kind == FindingKind::LabelWithoutPoint {
            r.points.retain(|p| !(p.condition == c && p.level == l));
        } else {
            r.grades.set(c, l, None);
        }
    }
    quirks.push(Quirk {
        kind,
        injected: injection.unwrap(),
        study_id: study,
        series_id: Some(truth_points[k].series_id),
        condition: Some(c),
        level: Some(l),
        expected_findings: vec![kind],
        detail: detail.into(),
    });
    quirks
}
