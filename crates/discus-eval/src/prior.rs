//! Constant baselines: the same prediction for a label column in every study.
//!
//! * [`PriorKind::Uniform`]: 1/3 for each grade everywhere.
//! * [`PriorKind::Optimal`] (the default): per label column (condition x level), the constant that
//!   minimises the weighted log loss on the given labels, `p_k = n_k w_k / sum_j n_j w_j` where `n_k`
//!   counts the studies graded `k` in that column and `w_k` is the grade's weight (1, 2, 4). This is
//!   the in-sample optimum for the three group terms (each row's loss is `-ln p_truth` with weight
//!   `w_truth`); the any-severe term is not optimised for. A grade never seen in a column gets 0
//!   (clipped to eps when scored), exactly the formula; a column without any label gets 1/3 each.

use crate::EvalError;
use discus_core::formats::{StudyLabels, SubmissionRow};
use discus_core::{LabelColumn, RowId, Severity, StudyId};
use std::collections::HashSet;
use std::path::Path;

/// Which constant baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PriorKind {
    /// 1/3 for each grade in every row.
    Uniform,
    /// Per label column, the in-sample optimal constant `p_k = n_k w_k / sum_j n_j w_j`.
    #[default]
    Optimal,
}

/// The constant probabilities of each of the 25 label columns (train.csv order).
pub fn prior_probs(labels: &[StudyLabels], kind: PriorKind) -> [[f64; 3]; 25] {
    let uniform = [1.0 / 3.0; 3];
    match kind {
        PriorKind::Uniform => [uniform; 25],
        PriorKind::Optimal => {
            let mut counts = [[0u64; 3]; 25];
            for l in labels {
                for (c, g) in l.grades.iter().enumerate() {
                    if let Some(g) = g {
                        counts[c][g.index()] += 1;
                    }
                }
            }
            counts.map(|n| {
                let mass: [f64; 3] = std::array::from_fn(|k| {
                    n[k] as f64 * Severity::from_index(k).expect("k < 3").weight()
                });
                let total: f64 = mass.iter().sum();
                if total > 0.0 {
                    mass.map(|m| m / total)
                } else {
                    uniform
                }
            })
        }
    }
}

/// A submission predicting `probs` for all 25 rows of each study, studies in the given order.
pub fn prior_submission(probs: &[[f64; 3]; 25], studies: &[StudyId]) -> Vec<SubmissionRow> {
    let mut rows = Vec::with_capacity(studies.len() * 25);
    for &study in studies {
        for column in LabelColumn::all() {
            rows.push(SubmissionRow {
                row_id: RowId { study, column },
                probs: probs[column.index()],
            });
        }
    }
    rows
}

/// The distinct study ids of any CSV file with a `study_id` column (train.csv, a
/// *_series_descriptions.csv, a list of studies), in order of first appearance.
pub fn read_study_ids(path: &Path) -> Result<Vec<StudyId>, EvalError> {
    let bytes = std::fs::read(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_study_ids(&bytes, path)
}

/// As [`read_study_ids`], from the file's bytes.
pub fn parse_study_ids(bytes: &[u8], path: &Path) -> Result<Vec<StudyId>, EvalError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let file_err = |message: String| EvalError::File {
        path: path.to_path_buf(),
        message,
    };
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let header = rdr
        .headers()
        .map_err(|e| file_err(format!("line 1: {e}")))?
        .clone();
    let col = header
        .iter()
        .position(|h| h.trim() == "study_id")
        .ok_or_else(|| file_err("line 1: no study_id column in the header".into()))?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map(|p| p.line()).unwrap_or(0);
                if record.len() == 1 && record.get(0) == Some("") {
                    continue;
                }
                let cell = record.get(col).unwrap_or("");
                let id: StudyId = cell.trim().parse().map_err(|e| EvalError::Line {
                    path: path.to_path_buf(),
                    line,
                    message: format!("{e}"),
                })?;
                if seen.insert(id) {
                    out.push(id);
                }
            }
            Err(e) => {
                return Err(EvalError::Line {
                    path: path.to_path_buf(),
                    line: e.position().map(|p| p.line()).unwrap_or(0),
                    message: e.to_string(),
                })
            }
        }
    }
    if out.is_empty() {
        return Err(file_err("no studies listed".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimal_is_count_times_weight() {
        let mut labels = Vec::new();
        // column 0: 3 Normal/Mild, 2 Moderate, 1 Severe -> mass 3, 4, 4 of 11
        for (i, g) in [0, 0, 0, 1, 1, 2].iter().enumerate() {
            let mut l = StudyLabels::empty(StudyId(i as u64));
            l.grades[0] = Severity::from_index(*g);
            labels.push(l);
        }
        let p = prior_probs(&labels, PriorKind::Optimal);
        assert_eq!(p[0], [3.0 / 11.0, 4.0 / 11.0, 4.0 / 11.0]);
        assert_eq!(p[1], [1.0 / 3.0; 3]); // no labels in column 1
        assert_eq!(prior_probs(&labels, PriorKind::Uniform)[0], [1.0 / 3.0; 3]);
    }

    #[test]
    fn study_ids_from_any_csv() {
        let p = Path::new("d.csv");
        let d = "study_id,series_id,series_description\r\n5,1,Axial T2\r\n5,2,Sagittal T1\r\n4294540297,3,Axial T2\r\n";
        assert_eq!(
            parse_study_ids(d.as_bytes(), p).unwrap(),
            vec![StudyId(5), StudyId(4294540297)]
        );
        let e = parse_study_ids(b"row_id,x\n1,2\n", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no study_id column"), "{e}");
        let e = parse_study_ids(b"a,study_id\n1,2\n1,x\n", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("d.csv: line 3"), "{e}");
    }
}
