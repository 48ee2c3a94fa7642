//! Rescan agreement: the same patients scanned twice (at two sites), both scans predicted, and how
//! far the two predictions agree.
//!
//! The pairs come from the synthetic cohort's `truth.json` (`discus synth --rescan`: each second
//! scan names its first in `rescan_of`; [`pairs_from_truth`]) or from a CSV of `first,second`
//! study ids ([`pairs_from_csv`]) for real rescans.
//!
//! Per condition group and overall ([`agreement`]), over every finding both scans predicted:
//! - **quadratic weighted kappa** of the two predicted grades (argmax of the probabilities), as
//!   [`discus_core::agreement::cohen_kappa`] with [`Weights::Quadratic`] and categories 0..3
//!   (scikit-learn's `cohen_kappa_score(weights="quadratic", labels=[0, 1, 2])`); `None` where it
//!   is undefined (both scans give one and the same grade everywhere);
//! - **mean absolute probability difference**: the mean over findings and the three grades of
//!   `|p_first - p_second|`;
//! - **grade flip rate**: the fraction of findings whose predicted grade differs;
//! - **point distance in anatomical terms**, mm, median and mean per level. The two scans lie in
//!   different patient coordinate systems (another scanner, another positioning), so patient mm
//!   cannot be compared directly; each point is first written in an anatomical frame built from
//!   the same scan's own predicted canal points (the five spinal canal points, L1/L2 .. L5/S1):
//!   - *foraminal and subarticular points*: the frame of their level, origin at that level's
//!     canal point; axis `superior` along the canal there (from the next level below to the next
//!     level above; at L1/L2 and L5/S1 the one neighbour), axis `left` the patient's left (LPS +x)
//!     made orthogonal to it, axis `posterior` = `superior × left`. The coordinates
//!     (left, posterior, superior) of both scans' points are compared: the distance says whether
//!     both localisers put the point at the same place relative to that level's canal;
//!   - *spinal canal points* (the origins themselves): the frame of the whole lumbar canal, origin
//!     at the mean of the five canal points, `superior` from the L5/S1 to the L1/L2 point, `left`
//!     and `posterior` as above. The distance says whether each level's canal point sits at the
//!     same place along and across the scan's own canal (level spacing, curvature). It is blind to
//!     a shift shared by all five points (a whole-spine miscount moves every frame with it).
//!
//!   A scan without its five heat-map canal points (no sagittal series) has no frame, and its
//!   points are left out of the distances (counted in `points_without_frame`).

use crate::predict::{Finding, StudyPrediction};
use discus_core::agreement::{cohen_kappa, Ratings, Weights};
use discus_core::{ConditionGroup, Level, StudyId};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Two scans of the same patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RescanPair {
    /// The first scan.
    pub first: StudyId,
    /// The second scan of the same patient (`rescan_of` = `first` in truth.json).
    pub second: StudyId,
}

/// Why the rescan pairs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RescanError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not what was expected.
    #[error("{}: {what}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong (with the line for a CSV).
        what: String,
    },
}

/// The rescan pairs of a synthetic cohort's `truth.json` (`discus synth --rescan`): every study
/// with `rescan_of`, paired with that first scan, in truth.json order. A cohort without rescans
/// gives no pair.
pub fn pairs_from_truth(path: &Path) -> Result<Vec<RescanPair>, RescanError> {
    #[derive(Deserialize)]
    struct Study {
        study_id: StudyId,
        #[serde(default)]
        rescan_of: Option<StudyId>,
    }
    #[derive(Deserialize)]
    struct Truth {
        studies: Vec<Study>,
    }
    let bytes = std::fs::read(path).map_err(|source| RescanError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let t: Truth = serde_json::from_slice(&bytes).map_err(|e| RescanError::Format {
        path: path.to_path_buf(),
        what: format!("not a discus-synth truth.json: {e}"),
    })?;
    Ok(t.studies
        .iter()
        .filter_map(|s| {
            s.rescan_of.map(|first| RescanPair {
                first,
                second: s.study_id,
            })
        })
        .collect())
}

/// Rescan pairs from a CSV with a `first,second` header and one pair of study ids per line.
pub fn pairs_from_csv(path: &Path) -> Result<Vec<RescanPair>, RescanError> {
    let text = std::fs::read_to_string(path).map_err(|source| RescanError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |what: String| RescanError::Format {
        path: path.to_path_buf(),
        what,
    };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim().replace(' ', "") == "first,second" => {}
        other => {
            return Err(bad(format!(
                "line 1: header {:?}, expected \"first,second\"",
                other.map(|(_, h)| h).unwrap_or("")
            )))
        }
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let id = |s: &str| {
            s.parse::<u64>()
                .map(StudyId)
                .map_err(|_| bad(format!("line {}: {s:?} is not a study id", i + 1)))
        };
        if f.len() != 2 {
            return Err(bad(format!(
                "line {}: {} fields, expected 2 (first,second)",
                i + 1,
                f.len()
            )));
        }
        out.push(RescanPair {
            first: id(f[0])?,
            second: id(f[1])?,
        });
    }
    Ok(out)
}

/// Point distance figures of one level (or of all levels), mm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distance {
    /// Findings with a point and a frame in both scans.
    pub n: usize,
    /// Median distance, mm (`None` without any).
    pub median_mm: Option<f64>,
    /// Mean distance, mm.
    pub mean_mm: Option<f64>,
}

impl Distance {
    fn of(mut d: Vec<f64>) -> Distance {
        d.sort_by(f64::total_cmp);
        let n = d.len();
        let median_mm = (n > 0).then(|| {
            if n % 2 == 1 {
                d[n / 2]
            } else {
                (d[n / 2 - 1] + d[n / 2]) / 2.0
            }
        });
        Distance {
            n,
            median_mm,
            mean_mm: (n > 0).then(|| d.iter().sum::<f64>() / n as f64),
        }
    }
}

/// The agreement figures of one condition group (or of all findings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// `spinal`, `foraminal`, `subarticular` or `all`.
    pub group: String,
    /// Findings compared (both scans predicted them).
    pub findings: usize,
    /// Quadratic weighted kappa of the two predicted grades; `None` where undefined.
    pub kappa_quadratic: Option<f64>,
    /// Mean over findings and grades of |p_first - p_second|.
    pub mean_abs_probability_difference: f64,
    /// Fraction of findings whose predicted grade differs.
    pub grade_flip_rate: f64,
    /// Point distance in the scans' own anatomical frames, all levels.
    pub distance: Distance,
    /// The same per level, L1/L2 .. L5/S1.
    pub distance_by_level: Vec<(Level, Distance)>,
}

/// One finding of a pair: both scans' grades, probabilities and the anatomical distance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedFinding {
    /// The first scan.
    pub first: StudyId,
    /// The second scan.
    pub second: StudyId,
    /// The condition.
    pub condition: discus_core::Condition,
    /// The level.
    pub level: Level,
    /// The first scan's grade index (0 Normal/Mild, 1 Moderate, 2 Severe).
    pub grade_first: usize,
    /// The second scan's grade index.
    pub grade_second: usize,
    /// The first scan's probabilities.
    pub probabilities_first: [f64; 3],
    /// The second scan's probabilities.
    pub probabilities_second: [f64; 3],
    /// The first scan's point in its own anatomical frame (left, posterior, superior), mm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_mm_first: Option<[f64; 3]>,
    /// The second scan's point in its own anatomical frame, mm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_mm_second: Option<[f64; 3]>,
    /// The distance between the two, mm, when both have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_mm: Option<f64>,
}

/// The rescan agreement of a set of pairs (`report.json` of `discus model rescan`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RescanAgreement {
    /// Pairs compared.
    pub pairs: usize,
    /// Per group (spinal, foraminal, subarticular), then `all`.
    pub groups: Vec<Agreement>,
    /// Points left out of the distances because their scan had no canal frame.
    pub points_without_frame: usize,
    /// Every compared finding.
    pub findings: Vec<PairedFinding>,
}

/// An orthonormal anatomical frame: origin and the left, posterior, superior axes (patient LPS).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    /// Origin, patient mm.
    pub origin: [f64; 3],
    /// Unit axes: left, posterior, superior.
    pub axes: [[f64; 3]; 3],
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}
fn unit(a: [f64; 3]) -> Option<[f64; 3]> {
    let n = dot(a, a).sqrt();
    (n > 1e-9 && n.is_finite()).then(|| [a[0] / n, a[1] / n, a[2] / n])
}

impl Frame {
    /// The frame at `origin` whose superior axis is along `up`; left is the patient's left (LPS
    /// +x) made orthogonal to it; posterior = superior × left. `None` when `up` is degenerate or
    /// parallel to left-right.
    pub fn new(origin: [f64; 3], up: [f64; 3]) -> Option<Frame> {
        let s = unit(up)?;
        let x = [1.0, 0.0, 0.0];
        let l = unit(sub(x, s.map(|v| v * dot(x, s))))?;
        let p = cross(s, l);
        Some(Frame {
            origin,
            axes: [l, p, s],
        })
    }

    /// A point's (left, posterior, superior) coordinates in this frame, mm.
    pub fn coordinates(&self, point: [f64; 3]) -> [f64; 3] {
        let d = sub(point, self.origin);
        self.axes.map(|a| dot(d, a))
    }

    /// The frame of a level: origin at its canal point, superior along the canal (see the module
    /// documentation). `canal` is L1/L2 .. L5/S1, head to foot.
    pub fn of_level(canal: &[[f64; 3]; 5], level: usize) -> Option<Frame> {
        let above = canal[level.saturating_sub(1)];
        let below = canal[(level + 1).min(4)];
        Frame::new(canal[level], sub(above, below))
    }

    /// The frame of the whole lumbar canal: origin at the mean canal point, superior from L5/S1
    /// to L1/L2.
    pub fn of_canal(canal: &[[f64; 3]; 5]) -> Option<Frame> {
        let mut o = [0.0; 3];
        for c in canal {
            for i in 0..3 {
                o[i] += c[i] / 5.0;
            }
        }
        Frame::new(o, sub(canal[0], canal[4]))
    }
}

/// The five heat-map canal points of a prediction, L1/L2 .. L5/S1, when it has them all.
fn canal_points(p: &StudyPrediction) -> Option<[[f64; 3]; 5]> {
    let mut out = [[0.0; 3]; 5];
    let mut seen = [false; 5];
    for f in &p.findings {
        if f.condition.group() == ConditionGroup::Spinal
            && f.point_source == crate::predict::PointSource::HeatMap
        {
            if let Some(pt) = &f.point {
                out[f.level.index()] = pt.patient_mm;
                seen[f.level.index()] = true;
            }
        }
    }
    seen.iter().all(|s| *s).then_some(out)
}

/// A finding's point in its scan's anatomical frame.
fn in_frame(f: &Finding, canal: Option<&[[f64; 3]; 5]>) -> Option<[f64; 3]> {
    let canal = canal?;
    let pt = f.point.as_ref()?;
    let frame = if f.condition.group() == ConditionGroup::Spinal {
        Frame::of_canal(canal)?
    } else {
        Frame::of_level(canal, f.level.index())?
    };
    Some(frame.coordinates(pt.patient_mm))
}

fn grade_index(p: &[f64; 3]) -> usize {
    (0..3).max_by(|a, b| p[*a].total_cmp(&p[*b])).unwrap_or(0)
}

/// The agreement of the predictions of each pair (first scan, second scan).
pub fn agreement(pairs: &[(StudyPrediction, StudyPrediction)]) -> RescanAgreement {
    let mut findings = Vec::new();
    let mut without = 0usize;
    for (a, b) in pairs {
        let (ca, cb) = (canal_points(a), canal_points(b));
        for fa in &a.findings {
            let Some(fb) = b
                .findings
                .iter()
                .find(|f| f.condition == fa.condition && f.level == fa.level)
            else {
                continue;
            };
            let (pa, pb) = (in_frame(fa, ca.as_ref()), in_frame(fb, cb.as_ref()));
            without += usize::from(fa.point.is_some() && pa.is_none());
            without += usize::from(fb.point.is_some() && pb.is_none());
            let distance_mm = match (pa, pb) {
                (Some(x), Some(y)) => Some(dot(sub(x, y), sub(x, y)).sqrt()),
                _ => None,
            };
            findings.push(PairedFinding {
                first: a.study,
                second: b.study,
                condition: fa.condition,
                level: fa.level,
                grade_first: grade_index(&fa.probabilities),
                grade_second: grade_index(&fb.probabilities),
                probabilities_first: fa.probabilities,
                probabilities_second: fb.probabilities,
                frame_mm_first: pa,
                frame_mm_second: pb,
                distance_mm,
            });
        }
    }
    let mut groups: Vec<Agreement> = ConditionGroup::ALL
        .iter()
        .map(|g| {
            let sel: Vec<&PairedFinding> = findings
                .iter()
                .filter(|f| f.condition.group() == *g)
                .collect();
            summarise(g.as_str(), &sel)
        })
        .collect();
    groups.push(summarise("all", &findings.iter().collect::<Vec<_>>()));
    RescanAgreement {
        pairs: pairs.len(),
        groups,
        points_without_frame: without,
        findings,
    }
}

/// Predicts both scans of every pair of `ds` with `model` and measures their [`agreement`]. A
/// pair with a scan that cannot be predicted is left out and returned with the error (the others
/// are still compared).
pub fn predict_agreement(
    model: &crate::Model,
    ds: &discus_data::dataset::Dataset,
    pairs: &[RescanPair],
) -> (RescanAgreement, Vec<(RescanPair, crate::ModelError)>) {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for p in pairs {
        let r = crate::predict::predict_study(model, ds, p.first)
            .and_then(|a| crate::predict::predict_study(model, ds, p.second).map(|b| (a, b)));
        match r {
            Ok(ab) => done.push(ab),
            Err(e) => failed.push((*p, e)),
        }
    }
    (agreement(&done), failed)
}

fn summarise(group: &str, sel: &[&PairedFinding]) -> Agreement {
    let n = sel.len();
    let a: Vec<usize> = sel.iter().map(|f| f.grade_first).collect();
    let b: Vec<usize> = sel.iter().map(|f| f.grade_second).collect();
    let kappa_quadratic = Ratings::from_columns(3, &[&a, &b])
        .ok()
        .and_then(|r| cohen_kappa(&r, 0, 1, Weights::Quadratic));
    let diff: f64 = sel
        .iter()
        .map(|f| {
            (0..3)
                .map(|k| (f.probabilities_first[k] - f.probabilities_second[k]).abs())
                .sum::<f64>()
        })
        .sum();
    let flips = sel
        .iter()
        .filter(|f| f.grade_first != f.grade_second)
        .count();
    let dist = |lv: Option<Level>| {
        Distance::of(
            sel.iter()
                .filter(|f| lv.is_none_or(|l| f.level == l))
                .filter_map(|f| f.distance_mm)
                .collect(),
        )
    };
    Agreement {
        group: group.into(),
        findings: n,
        kappa_quadratic,
        mean_abs_probability_difference: if n > 0 { diff / (3 * n) as f64 } else { 0.0 },
        grade_flip_rate: if n > 0 { flips as f64 / n as f64 } else { 0.0 },
        distance: dist(None),
        distance_by_level: Level::ALL.iter().map(|l| (*l, dist(Some(*l)))).collect(),
    }
}

/// The rescan agreement report page (`index.html` beside `report.json`): one row per condition
/// group with the kappa, probability difference, flip rate and point distances, a table of the
/// distances per level, and how the distances are measured.
pub fn report_page(
    r: &RescanAgreement,
    model: &str,
    cards: &[&discus_core::governance::DatasetCard],
) -> discus_report::Markup {
    use discus_report::{html, note, num, opt_num, page, section};
    let body = html! {
        (section("Agreement between the two scans of each patient", html! {
            table {
                tr { th { "group" } th { "findings" } th { "quadratic weighted kappa" }
                     th { "mean |Δp|" } th { "grade flips" } th { "point distance median, mm" }
                     th { "mean, mm" } th { "points" } }
                @for g in &r.groups {
                    tr {
                        td { (g.group) } td { (g.findings) } td { (opt_num(g.kappa_quadratic, 3)) }
                        td { (num(g.mean_abs_probability_difference, 4)) }
                        td { (num(100.0 * g.grade_flip_rate, 1)) " %" }
                        td { (opt_num(g.distance.median_mm, 1)) } td { (opt_num(g.distance.mean_mm, 1)) }
                        td { (g.distance.n) }
                    }
                }
            }
            (note("Kappa: Cohen's quadratic weighted kappa of the predicted grades (argmax) of the first and \
                   second scan, categories Normal/Mild, Moderate, Severe; blank where undefined. \
                   Mean |Δp|: over findings and the three grades."))
        }))
        (section("Point distance per level (median mm)", html! {
            table {
                tr { th { "group" } @for l in discus_core::Level::ALL { th { (l.words()) } } }
                @for g in &r.groups {
                    tr { td { (g.group) } @for (_, d) in &g.distance_by_level { td { (opt_num(d.median_mm, 1)) } } }
                }
            }
            (note("Each scan's points are written in an anatomical frame built from that scan's own five \
                   predicted canal points (axes left, posterior, superior; superior along the canal, left the \
                   scanner's left made orthogonal). Foraminal and subarticular points: the frame of their level, \
                   origin at that level's canal point. Canal points: the frame of the whole lumbar canal, origin \
                   at the mean canal point, superior from L5/S1 to L1/L2 (blind to a shift of all five points). \
                   The distance is between the two scans' coordinates."))
            @if r.points_without_frame > 0 {
                (note(&format!("{} point(s) had no frame (their scan lacks heat-map canal points) and are left out.", r.points_without_frame)))
            }
        }))
    };
    page(
        "Rescan agreement",
        html! { (r.pairs) " patients scanned twice, predicted with model " (model) },
        Some(cards),
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rotation about an arbitrary axis (Rodrigues) and a translation.
    fn motion(p: [f64; 3]) -> [f64; 3] {
        let k = unit([0.3, -0.5, 0.8]).unwrap();
        let (s, c) = (0.4f64.sin(), 0.4f64.cos());
        let kxp = cross(k, p);
        let kd = dot(k, p);
        let r: [f64; 3] = std::array::from_fn(|i| p[i] * c + kxp[i] * s + k[i] * kd * (1.0 - c));
        [r[0] + 12.0, r[1] - 7.0, r[2] + 30.0]
    }

    #[test]
    fn frames_are_orthonormal_and_follow_the_canal() {
        // A straight canal along -z (head at +z in LPS), 35 mm per level.
        let canal: [[f64; 3]; 5] = std::array::from_fn(|i| [0.0, 0.0, -35.0 * i as f64]);
        let f = Frame::of_level(&canal, 2).unwrap();
        assert_eq!(f.axes, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        // 10 mm left, 5 mm anterior (-y), 3 mm above the L3/L4 canal point.
        assert_eq!(f.coordinates([10.0, -5.0, -67.0]), [10.0, -5.0, 3.0]);
        let w = Frame::of_canal(&canal).unwrap();
        assert_eq!(w.coordinates(canal[0]), [0.0, 0.0, 70.0]);
    }

    #[test]
    fn frame_coordinates_follow_the_scan_under_a_rigid_motion() {
        // A curved canal; the other scan is the same anatomy moved (rotated and translated).
        let canal: [[f64; 3]; 5] = std::array::from_fn(|i| {
            let t = i as f64;
            [2.0 * t.sin(), 10.0 + 3.0 * (t * 0.7).cos(), -34.0 * t]
        });
        let point = [14.0, 18.0, -70.0];
        let n = |v: [f64; 3]| dot(v, v).sqrt();
        let x = Frame::of_level(&canal, 2).unwrap().coordinates(point);
        // A translation leaves every coordinate unchanged.
        let shift = |p: [f64; 3]| [p[0] + 5.0, p[1] - 9.0, p[2] + 21.0];
        let xt = Frame::of_level(&canal.map(shift), 2)
            .unwrap()
            .coordinates(shift(point));
        for i in 0..3 {
            assert!((xt[i] - x[i]).abs() < 1e-9, "{xt:?} {x:?}");
        }
        // A rotation keeps the distance from the level's canal point and the height along the
        // canal (the left axis is the scanner's left made orthogonal: a roll about the canal is
        // not undone, as documented).
        let y = Frame::of_level(&canal.map(motion), 2)
            .unwrap()
            .coordinates(motion(point));
        assert!((n(x) - n(y)).abs() < 1e-9, "{x:?} {y:?}");
        assert!((x[2] - y[2]).abs() < 1e-9, "{x:?} {y:?}");
        // The whole-canal frame too.
        let (w, wm) = (
            Frame::of_canal(&canal).unwrap(),
            Frame::of_canal(&canal.map(motion)).unwrap(),
        );
        let (a, b) = (w.coordinates(canal[3]), wm.coordinates(motion(canal[3])));
        assert!((n(a) - n(b)).abs() < 1e-9 && (a[2] - b[2]).abs() < 1e-9);
    }

    #[test]
    fn pairs_csv_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pairs.csv");
        std::fs::write(&p, "first,second\n1,2\n3,x\n").unwrap();
        let e = pairs_from_csv(&p).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("\"x\""), "{e}");
        std::fs::write(&p, "first,second\n1,2\n\n3,4\n").unwrap();
        assert_eq!(
            pairs_from_csv(&p).unwrap(),
            vec![
                RescanPair {
                    first: StudyId(1),
                    second: StudyId(2)
                },
                RescanPair {
                    first: StudyId(3),
                    second: StudyId(4)
                }
            ]
        );
    }
}
