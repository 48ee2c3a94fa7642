//! The RSNA 2024 / LumbarDISC competition metric (spec section 5), exactly, and fast.
//!
//! A submission is joined to the labels on `row_id`, never by position, and refused when it is not a
//! complete, clean prediction of the labelled studies:
//!
//! * **missing row**: every study in the labels must have all 25 rows (`<study>_<condition>_<level>`)
//!   in the submission, including rows whose label is empty (the competition required every row to be
//!   predicted); a missing row is an error even when its label is missing;
//! * **duplicate row**: a row_id given twice;
//! * **unknown row**: a row_id whose study is not in the labels;
//! * **bad value**: a probability that is not finite or is negative.
//!
//! Rows whose label is empty are then not scored. Each error names the row (and its line in the file
//! when the caller passes the lines, see [`submission_lines`]).
//!
//! The score is the mean of four terms: the weighted log loss of the spinal, foraminal and subarticular
//! groups (weights 1, 2, 4 for a true Normal/Mild, Moderate, Severe) and the weighted binary log loss of
//! "any severe spinal stenosis" per study. [`Semantics`] picks how a row's three values become
//! probabilities: clipped to `[eps, 1-eps]` and renormalised (the scikit-learn < 1.5 behaviour the
//! competition was scored with, the default), or clipped only (scikit-learn >= 1.5).
//!
//! Joining is done once ([`Joined`]); the per-study sums of each term are then precomputed
//! ([`StudyTerms`]) so that any multiset of studies (a bootstrap resample, a site, a fold) is scored by
//! adding a few numbers per study, without re-joining.
//!
//! ```
//! use discus_core::formats::{StudyLabels, SubmissionRow};
//! use discus_core::metric::{score, Semantics};
//! use discus_core::{LabelColumn, RowId, Severity, StudyId};
//!
//! let mut labels = StudyLabels::empty(StudyId(7));
//! labels.grades = [Some(Severity::NormalMild); 25];
//! let rows: Vec<SubmissionRow> = LabelColumn::all()
//!     .iter()
//!     .map(|&column| SubmissionRow {
//!         row_id: RowId { study: StudyId(7), column },
//!         probs: [1.0, 1.0, 1.0], // unnormalised: renormalised to 1/3 each
//!     })
//!     .collect();
//! let s = score(&[labels], &rows, Semantics::Renormalize).unwrap();
//! assert!((s.spinal - 3f64.ln()).abs() < 1e-12);
//! // any_severe: no severe level, p = raw severe value 1.0 clipped to 1 - eps: a huge loss.
//! assert!(s.any_severe > 30.0);
//! ```

use crate::formats::{StudyLabels, SubmissionRow, SUBMISSION_HEADER};
use crate::types::{ConditionGroup, LabelColumn, RowId, Severity, StudyId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// The clipping bound: float64 machine epsilon, scikit-learn's `eps="auto"` for float64 input.
pub const EPS: f64 = f64::EPSILON;

/// The four terms, in the order they are reported.
pub const TERM_NAMES: [&str; 4] = ["spinal", "foraminal", "subarticular", "any_severe_spinal"];

/// How a row's three submitted values become the probability of the true grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Semantics {
    /// Clip each value to `[eps, 1-eps]`, then divide by the row's sum (scikit-learn < 1.5, the
    /// behaviour the competition was scored with).
    #[default]
    Renormalize,
    /// Clip each value to `[eps, 1-eps]` and use it as is (scikit-learn >= 1.5).
    ClipOnly,
}

impl Semantics {
    /// `"renormalize"` or `"clip-only"`, as in reports and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Semantics::Renormalize => "renormalize",
            Semantics::ClipOnly => "clip-only",
        }
    }
}

impl fmt::Display for Semantics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Semantics {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "renormalize" => Ok(Semantics::Renormalize),
            "clip-only" => Ok(Semantics::ClipOnly),
            _ => Err(format!(
                "unknown semantics {s:?} (expected renormalize or clip-only)"
            )),
        }
    }
}

/// Why a submission (or a labels table) cannot be scored. Every variant names the row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    /// A labelled study's row is absent from the submission.
    #[error(
        "missing row {row_id}: the submission must predict all 25 rows of every labelled study"
    )]
    MissingRow {
        /// The missing row.
        row_id: RowId,
    },
    /// A row_id appears twice in the submission.
    #[error("{}duplicate row {row_id} (first given {})", at(*line), at_first(*first_line))]
    DuplicateRow {
        /// The repeated row.
        row_id: RowId,
        /// The line of the repeat, when the caller gave the lines.
        line: Option<u64>,
        /// The line of the first occurrence, when known.
        first_line: Option<u64>,
    },
    /// A row_id's study is not in the labels.
    #[error("{}unknown row {row_id}: study {} is not in the labels", at(*line), row_id.study)]
    UnknownRow {
        /// The unknown row.
        row_id: RowId,
        /// Its line, when the caller gave the lines.
        line: Option<u64>,
    },
    /// A submitted value is not finite or is negative.
    #[error("{}row {row_id}: {column} = {value} is not a finite number >= 0", at(*line))]
    BadValue {
        /// The row.
        row_id: RowId,
        /// Its line, when the caller gave the lines.
        line: Option<u64>,
        /// The column: `normal_mild`, `moderate` or `severe`.
        column: &'static str,
        /// The offending value.
        value: f64,
    },
    /// The labels hold one study twice.
    #[error("study {study} appears twice in the labels")]
    DuplicateStudy {
        /// The repeated study.
        study: StudyId,
    },
    /// A term has no labelled row to score.
    #[error("nothing to score: no labelled row for the {term} term")]
    EmptyTerm {
        /// The term's name, e.g. `"spinal"`.
        term: &'static str,
    },
}

fn at(line: Option<u64>) -> String {
    line.map(|l| format!("line {l}: ")).unwrap_or_default()
}

fn at_first(line: Option<u64>) -> String {
    line.map(|l| format!("at line {l}"))
        .unwrap_or_else(|| "earlier".into())
}

/// The score and its four terms, with what went into them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricScore {
    /// Weighted log loss of the spinal canal stenosis rows.
    pub spinal: f64,
    /// Weighted log loss of the neural foraminal narrowing rows (both sides).
    pub foraminal: f64,
    /// Weighted log loss of the subarticular stenosis rows (both sides).
    pub subarticular: f64,
    /// Weighted binary log loss of "any severe spinal canal stenosis" per study.
    pub any_severe: f64,
    /// The mean of the four terms.
    pub score: f64,
    /// Studies scored (with multiplicity, for a resample).
    pub studies: usize,
    /// Scored rows of the spinal, foraminal and subarticular groups.
    pub rows: [usize; 3],
    /// Sum of weights of each term (spinal, foraminal, subarticular, any_severe).
    pub weights: [f64; 4],
    /// Studies in the any_severe term (those with at least one scored spinal row).
    pub any_severe_studies: usize,
}

impl MetricScore {
    /// The four terms in order: spinal, foraminal, subarticular, any_severe.
    pub fn terms(&self) -> [f64; 4] {
        [
            self.spinal,
            self.foraminal,
            self.subarticular,
            self.any_severe,
        ]
    }
}

/// The line in the CSV text of each submission row, in the order `formats::parse_submission` returns
/// the rows of a file it read without errors (blank lines are skipped as it does). Lets errors name the
/// line as well as the row.
pub fn submission_lines(bytes: &[u8]) -> Vec<u64> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    let mut lines = Vec::new();
    let mut record = csv::StringRecord::new();
    while let Ok(true) = rdr.read_record(&mut record) {
        if record.len() == 1 && record.get(0) == Some("") {
            continue;
        }
        lines.push(record.position().map(|p| p.line()).unwrap_or(0));
    }
    lines
}

/// The labels and the submission joined on row_id: for study `s` (in label order) and label column
/// `c`, index `s * 25 + c` holds the true grade (None when not labelled) and the raw submitted values.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    /// The labelled studies, in label order.
    pub studies: Vec<StudyId>,
    /// True grade of study `s`, column `c` at `s * 25 + c`; `None` when not labelled.
    pub truth: Vec<Option<Severity>>,
    /// Submitted Normal/Mild, Moderate, Severe values at `s * 25 + c`, raw (not normalised).
    pub probs: Vec<[f64; 3]>,
}

impl Joined {
    /// Joins `submission` to `labels`. `lines`, when given, holds the file line of each submission
    /// row (same length and order) so that errors can name it.
    pub fn new(
        labels: &[StudyLabels],
        submission: &[SubmissionRow],
        lines: Option<&[u64]>,
    ) -> Result<Self, MetricError> {
        let line_of = |i: usize| lines.and_then(|l| l.get(i).copied());
        let mut index: HashMap<StudyId, usize> = HashMap::with_capacity(labels.len());
        let mut truth = Vec::with_capacity(labels.len() * 25);
        for (s, l) in labels.iter().enumerate() {
            if index.insert(l.study, s).is_some() {
                return Err(MetricError::DuplicateStudy { study: l.study });
            }
            truth.extend_from_slice(&l.grades);
        }
        // Which submission row fills each slot; u32::MAX = none yet.
        let mut slot = vec![u32::MAX; labels.len() * 25];
        let mut probs = vec![[0.0; 3]; labels.len() * 25];
        for (i, row) in submission.iter().enumerate() {
            let Some(&s) = index.get(&row.row_id.study) else {
                return Err(MetricError::UnknownRow {
                    row_id: row.row_id,
                    line: line_of(i),
                });
            };
            for (k, &v) in row.probs.iter().enumerate() {
                if !v.is_finite() || v < 0.0 {
                    return Err(MetricError::BadValue {
                        row_id: row.row_id,
                        line: line_of(i),
                        column: SUBMISSION_HEADER[k + 1],
                        value: v,
                    });
                }
            }
            let j = s * 25 + row.row_id.column.index();
            if slot[j] != u32::MAX {
                return Err(MetricError::DuplicateRow {
                    row_id: row.row_id,
                    line: line_of(i),
                    first_line: line_of(slot[j] as usize),
                });
            }
            slot[j] = i as u32;
            probs[j] = row.probs;
        }
        if let Some(j) = slot.iter().position(|&x| x == u32::MAX) {
            return Err(MetricError::MissingRow {
                row_id: RowId {
                    study: labels[j / 25].study,
                    column: LabelColumn::from_index(j % 25).expect("index < 25"),
                },
            });
        }
        Ok(Joined {
            studies: labels.iter().map(|l| l.study).collect(),
            truth,
            probs,
        })
    }

    /// The per-study sums of the four terms.
    #[allow(clippy::needless_range_loop)] // c indexes both the study's slots and the column table
    pub fn study_terms(&self, semantics: Semantics) -> StudyTerms {
        let cols = LabelColumn::all();
        let group_of: [usize; 25] = std::array::from_fn(|c| cols[c].condition.group() as usize);
        let mut out = Vec::with_capacity(self.studies.len());
        for s in 0..self.studies.len() {
            let mut t = StudyTerm::default();
            let mut any: Option<(bool, f64, f64)> = None; // (y, v, max raw severe)
            for c in 0..25 {
                let j = s * 25 + c;
                let Some(g) = self.truth[j] else { continue };
                let w = g.weight();
                let loss = row_loss(&self.probs[j], g, semantics);
                let k = group_of[c];
                t.num[k] += w * loss;
                t.den[k] += w;
                t.rows[k] += 1;
                if k == ConditionGroup::Spinal as usize {
                    let sev = self.probs[j][2];
                    let a = any.get_or_insert((false, 0.0, f64::NEG_INFINITY));
                    a.0 |= g == Severity::Severe;
                    a.1 = a.1.max(w);
                    a.2 = a.2.max(sev);
                }
            }
            if let Some((y, v, p)) = any {
                t.num[3] = v * binary_loss(y, p);
                t.den[3] = v;
                t.any = true;
            }
            out.push(t);
        }
        StudyTerms { terms: out }
    }
}

/// `-ln q` of the true grade for one row under `semantics`.
#[inline]
pub fn row_loss(probs: &[f64; 3], truth: Severity, semantics: Semantics) -> f64 {
    let clip = |v: f64| v.clamp(EPS, 1.0 - EPS);
    let q = clip(probs[truth.index()]);
    match semantics {
        Semantics::ClipOnly => -q.ln(),
        Semantics::Renormalize => {
            let sum = clip(probs[0]) + clip(probs[1]) + clip(probs[2]);
            -(q / sum).ln()
        }
    }
}

/// The probabilities a row's values stand for under `semantics` (clipped; renormalised or not).
pub fn row_probs(probs: &[f64; 3], semantics: Semantics) -> [f64; 3] {
    let c = probs.map(|v| v.clamp(EPS, 1.0 - EPS));
    match semantics {
        Semantics::ClipOnly => c,
        Semantics::Renormalize => {
            let sum = c[0] + c[1] + c[2];
            c.map(|v| v / sum)
        }
    }
}

/// Binary log loss of one study's any-severe term, `p` the raw maximum severe value.
#[inline]
fn binary_loss(y: bool, p: f64) -> f64 {
    let p = p.clamp(EPS, 1.0 - EPS);
    if y {
        -p.ln()
    } else {
        -(1.0 - p).ln()
    }
}

/// One study's contribution to each of the four terms: weighted loss sums and weight sums.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct StudyTerm {
    /// Weighted loss sum of each term (spinal, foraminal, subarticular, any_severe).
    pub num: [f64; 4],
    /// Weight sum of each term, in the same order.
    pub den: [f64; 4],
    /// Labelled rows in each of the three condition groups.
    pub rows: [usize; 3],
    /// Whether the study enters the any_severe term.
    pub any: bool,
}

/// Per-study term sums, in the order of [`Joined::studies`].
#[derive(Debug, Clone, PartialEq)]
pub struct StudyTerms {
    /// One entry per study, in the order of [`Joined::studies`].
    pub terms: Vec<StudyTerm>,
}

impl StudyTerms {
    /// The score of all studies. An empty term is NaN (see [`score`] for the erroring version).
    pub fn total(&self) -> MetricScore {
        self.accumulate(self.terms.iter().map(|t| (t, 1.0)))
    }

    /// The score of the studies at `indices` (repeats count repeatedly), e.g. a bootstrap resample.
    pub fn subset(&self, indices: &[usize]) -> MetricScore {
        self.accumulate(indices.iter().map(|&i| (&self.terms[i], 1.0)))
    }

    /// The score with study `i` counted `counts[i]` times (a resample as multiplicities).
    pub fn weighted(&self, counts: &[u32]) -> MetricScore {
        self.accumulate(
            self.terms
                .iter()
                .zip(counts)
                .filter(|(_, &n)| n > 0)
                .map(|(t, &n)| (t, n as f64)),
        )
    }

    fn accumulate<'a>(&self, it: impl Iterator<Item = (&'a StudyTerm, f64)>) -> MetricScore {
        let mut num = [0.0; 4];
        let mut den = [0.0; 4];
        let mut rows = [0usize; 3];
        let (mut studies, mut any) = (0usize, 0usize);
        for (t, n) in it {
            for k in 0..4 {
                num[k] += n * t.num[k];
                den[k] += n * t.den[k];
            }
            for (r, &tr) in rows.iter_mut().zip(&t.rows) {
                *r += n as usize * tr;
            }
            studies += n as usize;
            any += n as usize * t.any as usize;
        }
        let term = |k: usize| {
            if den[k] > 0.0 {
                num[k] / den[k]
            } else {
                f64::NAN
            }
        };
        let (a, b, c, d) = (term(0), term(1), term(2), term(3));
        MetricScore {
            spinal: a,
            foraminal: b,
            subarticular: c,
            any_severe: d,
            score: (a + b + c + d) / 4.0,
            studies,
            rows,
            weights: den,
            any_severe_studies: any,
        }
    }
}

/// Scores `submission` against `labels`: joins, checks, and computes the four terms and the score.
/// Errors when the submission is refused or when a term has nothing to score.
pub fn score(
    labels: &[StudyLabels],
    submission: &[SubmissionRow],
    semantics: Semantics,
) -> Result<MetricScore, MetricError> {
    score_with_lines(labels, submission, None, semantics)
}

/// As [`score`], with the file line of each submission row for the error messages.
pub fn score_with_lines(
    labels: &[StudyLabels],
    submission: &[SubmissionRow],
    lines: Option<&[u64]>,
    semantics: Semantics,
) -> Result<MetricScore, MetricError> {
    let joined = Joined::new(labels, submission, lines)?;
    let s = joined.study_terms(semantics).total();
    if let Some(k) = s.weights.iter().position(|&w| w <= 0.0) {
        return Err(MetricError::EmptyTerm {
            term: TERM_NAMES[k],
        });
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::parse_submission;
    use crate::types::{Condition, Level};
    use std::path::Path;

    /// Spec section 5, test vector A: (row_id, true grade, values).
    fn vector_a() -> (Vec<StudyLabels>, Vec<(&'static str, [f64; 3])>) {
        let rows: [(&str, Severity, [f64; 3]); 8] = [
            (
                "1001_spinal_canal_stenosis_l1_l2",
                Severity::NormalMild,
                [0.80, 0.15, 0.05],
            ),
            (
                "1001_spinal_canal_stenosis_l4_l5",
                Severity::Severe,
                [0.20, 0.30, 0.50],
            ),
            (
                "1001_left_neural_foraminal_narrowing_l5_s1",
                Severity::Moderate,
                [0.30, 0.60, 0.10],
            ),
            (
                "1001_left_subarticular_stenosis_l4_l5",
                Severity::Severe,
                [0.10, 0.30, 0.60],
            ),
            (
                "1002_spinal_canal_stenosis_l1_l2",
                Severity::NormalMild,
                [0.90, 0.08, 0.02],
            ),
            (
                "1002_spinal_canal_stenosis_l4_l5",
                Severity::Moderate,
                [0.40, 0.40, 0.20],
            ),
            (
                "1002_right_neural_foraminal_narrowing_l4_l5",
                Severity::NormalMild,
                [0.70, 0.20, 0.10],
            ),
            (
                "1002_right_subarticular_stenosis_l3_l4",
                Severity::Moderate,
                [0.50, 0.25, 0.25],
            ),
        ];
        let mut labels = vec![
            StudyLabels::empty(StudyId(1001)),
            StudyLabels::empty(StudyId(1002)),
        ];
        let mut preds = Vec::new();
        for (id, g, p) in rows {
            let r: RowId = id.parse().unwrap();
            let s = if r.study == StudyId(1001) { 0 } else { 1 };
            labels[s].grades[r.column.index()] = Some(g);
            preds.push((id, p));
        }
        (labels, preds)
    }

    /// A full submission for the labels: the given rows, and arbitrary values for the unlabelled ones.
    fn submission(labels: &[StudyLabels], given: &[(&str, [f64; 3])]) -> Vec<SubmissionRow> {
        let mut out = Vec::new();
        for l in labels {
            for column in LabelColumn::all() {
                let row_id = RowId {
                    study: l.study,
                    column,
                };
                let probs = given
                    .iter()
                    .find(|(id, _)| *id == row_id.to_string())
                    .map(|g| g.1)
                    .unwrap_or([0.2, 0.3, 0.5]);
                out.push(SubmissionRow { row_id, probs });
            }
        }
        // Order must not matter: join on row_id.
        out.reverse();
        out
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }

    #[test]
    fn vector_a_both_semantics() {
        let (labels, given) = vector_a();
        let sub = submission(&labels, &given);
        for sem in [Semantics::Renormalize, Semantics::ClipOnly] {
            let s = score(&labels, &sub, sem).unwrap();
            close(s.spinal, 0.6167092816);
            close(s.foraminal, 0.4594420638);
            close(s.subarticular, 0.8026485362);
            close(s.any_severe, 0.5364793041);
            close(s.score, 0.6038197965);
            assert_eq!(s.rows, [4, 2, 2]);
            assert_eq!(s.any_severe_studies, 2);
        }
    }

    #[test]
    fn vector_b_both_semantics() {
        let (labels, mut given) = vector_a();
        given[1].1 = [0.4, 0.6, 1.0];
        given[6].1 = [0.0, 0.0, 0.0];
        let sub = submission(&labels, &given);
        let s = score(&labels, &sub, Semantics::Renormalize).unwrap();
        close(s.spinal, 0.6167092816);
        close(s.foraminal, 0.7067545121);
        close(s.subarticular, 0.8026485362);
        close(s.any_severe, 0.0743811838);
        close(s.score, 0.5501233784);
        let s = score(&labels, &sub, Semantics::ClipOnly).unwrap();
        close(s.spinal, 0.2701356913);
        close(s.foraminal, 12.3551015455);
        close(s.subarticular, 0.8026485362);
        close(s.any_severe, 0.0743811838);
        close(s.score, 3.3755667392);
    }

    #[test]
    fn subsets_add_up() {
        let (labels, given) = vector_a();
        let sub = submission(&labels, &given);
        let j = Joined::new(&labels, &sub, None).unwrap();
        let t = j.study_terms(Semantics::Renormalize);
        assert_eq!(t.subset(&[0, 1]), t.total());
        assert_eq!(t.weighted(&[1, 1]), t.total());
        // Study 1001 twice: its own score, with doubled weights.
        let twice = t.subset(&[0, 0]);
        let once = t.subset(&[0]);
        close(twice.score, once.score);
        assert_eq!(twice.weights[0], 2.0 * once.weights[0]);
        assert_eq!(t.weighted(&[2, 0]).score, twice.score);
        // Study 1001 alone: spinal = (1*-ln .8 + 4*-ln .5) / 5
        close(once.spinal, (-(0.8f64).ln() + 4.0 * -(0.5f64).ln()) / 5.0);
    }

    fn csv_of(rows: &[SubmissionRow]) -> String {
        String::from_utf8(crate::formats::submission_to_bytes(
            rows,
            crate::formats::LineEnding::Lf,
        ))
        .unwrap()
    }

    /// Parses CSV text and scores it, with lines, returning the error text.
    fn refuse(labels: &[StudyLabels], text: &str) -> (MetricError, String) {
        let f = parse_submission(text.as_bytes(), Path::new("s.csv")).unwrap();
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        let lines = submission_lines(text.as_bytes());
        assert_eq!(lines.len(), f.rows.len());
        let e =
            score_with_lines(labels, &f.rows, Some(&lines), Semantics::Renormalize).unwrap_err();
        let m = e.to_string();
        (e, m)
    }

    #[test]
    fn refuses_missing_row() {
        let (labels, given) = vector_a();
        let mut sub = submission(&labels, &given);
        // An unlabelled row is still required.
        let gone = RowId::new(
            StudyId(1002),
            Condition::LeftSubarticularStenosis,
            Level::L1L2,
        );
        sub.retain(|r| r.row_id != gone);
        let (e, m) = refuse(&labels, &csv_of(&sub));
        assert!(matches!(e, MetricError::MissingRow { .. }));
        assert!(m.contains("1002_left_subarticular_stenosis_l1_l2"), "{m}");
    }

    #[test]
    fn refuses_duplicate_row() {
        let (labels, given) = vector_a();
        let mut sub = submission(&labels, &given);
        sub.insert(7, sub[3].clone());
        let id = sub[3].row_id.to_string();
        let (e, m) = refuse(&labels, &csv_of(&sub));
        assert!(matches!(e, MetricError::DuplicateRow { .. }));
        assert!(m.contains(&id), "{m}");
        // Row 3 is on line 5, its copy (row 7) on line 9.
        assert!(m.starts_with("line 9: "), "{m}");
        assert!(m.contains("first given at line 5"), "{m}");
    }

    #[test]
    fn refuses_unknown_row() {
        let (labels, given) = vector_a();
        let mut sub = submission(&labels, &given);
        sub.push(SubmissionRow {
            row_id: "1003_spinal_canal_stenosis_l1_l2".parse().unwrap(),
            probs: [1.0, 0.0, 0.0],
        });
        let (e, m) = refuse(&labels, &csv_of(&sub));
        assert!(matches!(e, MetricError::UnknownRow { .. }));
        assert!(
            m.contains("line 52: unknown row 1003_spinal_canal_stenosis_l1_l2"),
            "{m}"
        );
    }

    #[test]
    fn refuses_bad_values() {
        let (labels, given) = vector_a();
        let sub = submission(&labels, &given);
        let text = csv_of(&sub);
        let target = "1001_spinal_canal_stenosis_l4_l5,0.2,0.3,0.5";
        assert!(text.contains(target));
        for (bad, col) in [
            ("1001_spinal_canal_stenosis_l4_l5,0.2,nan,0.5", "moderate"),
            (
                "1001_spinal_canal_stenosis_l4_l5,-0.2,0.3,0.5",
                "normal_mild",
            ),
            ("1001_spinal_canal_stenosis_l4_l5,0.2,0.3,inf", "severe"),
            ("1001_spinal_canal_stenosis_l4_l5,0.2,0.3,-inf", "severe"),
        ] {
            let (e, m) = refuse(&labels, &text.replace(target, bad));
            assert!(matches!(e, MetricError::BadValue { .. }), "{m}");
            assert!(m.contains("row 1001_spinal_canal_stenosis_l4_l5"), "{m}");
            assert!(m.contains(col), "{m}");
            assert!(m.starts_with("line "), "{m}");
        }
    }

    #[test]
    fn refuses_duplicate_study_and_empty_term() {
        let (labels, given) = vector_a();
        let sub = submission(&labels, &given);
        let two = vec![labels[0].clone(), labels[0].clone()];
        assert!(matches!(
            score(&two, &sub[..0], Semantics::Renormalize),
            Err(MetricError::DuplicateStudy { .. })
        ));
        let mut no_sub = labels.clone();
        for l in &mut no_sub {
            for c in LabelColumn::all() {
                if c.condition.group() == ConditionGroup::Subarticular {
                    l.grades[c.index()] = None;
                }
            }
        }
        let e = score(&no_sub, &sub, Semantics::Renormalize).unwrap_err();
        assert_eq!(
            e,
            MetricError::EmptyTerm {
                term: "subarticular"
            }
        );
    }

    #[test]
    fn semantics_parse() {
        assert_eq!(
            "clip-only".parse::<Semantics>().unwrap(),
            Semantics::ClipOnly
        );
        assert_eq!(Semantics::default(), Semantics::Renormalize);
        assert!("clip".parse::<Semantics>().is_err());
    }
}
