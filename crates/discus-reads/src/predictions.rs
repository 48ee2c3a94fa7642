//! A model's predictions as a reader's reads ("AI reader"), so that model-vs-reader agreement is
//! measured exactly like reader-vs-reader agreement.
//!
//! The input is the output folder of `discus predict`: `submission.csv` (the LumbarDISC submission
//! shape: three probabilities per row) and, per study, `<study>/findings.json` with each finding's
//! point. Each submission row becomes one read:
//! - its **grade** is the most probable class (a tie goes to the more severe grade, as
//!   `discus predict` chooses its `grade`);
//! - its **point** is the finding's point in `findings.json` (series, instance, x, y), when the file
//!   and the point are there (a finding graded from the prior has none). A study without
//!   `findings.json` is imported with grades only.
//!
//! The same checks as a reader's files apply (all or nothing, every bad line named; with a
//! [`Catalog`], unknown studies are refused), and re-importing the same folder records nothing. A
//! predicted point that the catalog cannot place on its image (a point projected off the image, or
//! on a series the dataset does not list) is dropped and the grade kept: the model's point is
//! advisory, its grade is the read. Name the reader after the model, e.g. `ai:<model name>`.

use crate::import::{content_hash, Catalog, ImportError, ImportReport, Issue};
use crate::store::{Point, ReadEvent, ReadsStore, RoundKind};
use discus_core::formats::{parse_submission, LabelPoint, SUBMISSION_HEADER};
use discus_core::RowId;
use discus_core::{SeriesId, Severity, StudyId};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

/// The submission file of a prediction folder.
pub const SUBMISSION_FILE: &str = "submission.csv";
/// The per-study findings file of a prediction folder (`<study>/findings.json`).
pub const FINDINGS_FILE: &str = "findings.json";

#[derive(Deserialize)]
struct FindingsFile {
    findings: Vec<PredictedFinding>,
}

#[derive(Deserialize)]
struct PredictedFinding {
    row_id: String,
    #[serde(default)]
    point: Option<PredictedPoint>,
}

#[derive(Deserialize)]
struct PredictedPoint {
    series: SeriesId,
    instance: i64,
    x: f64,
    y: f64,
}

/// Whether `path` looks like a `discus predict` output: a folder holding `submission.csv`, or a
/// CSV file whose header is the submission header.
pub fn is_predictions(path: &Path) -> bool {
    if path.is_dir() {
        return path.join(SUBMISSION_FILE).is_file();
    }
    std::fs::read(path)
        .ok()
        .and_then(|b| {
            let first = b.split(|c| *c == b'\n').next()?.to_vec();
            let head = String::from_utf8(first).ok()?;
            let cells: Vec<&str> = head
                .trim()
                .trim_start_matches('\u{feff}')
                .split(',')
                .collect();
            Some(cells == SUBMISSION_HEADER)
        })
        .unwrap_or(false)
}

/// The prediction folder of `path` (the folder itself, or the folder of a submission file).
pub fn predictions_dir(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    }
}

fn grade_of(p: &[f64; 3]) -> Severity {
    // The last maximum: a tie goes to the more severe grade.
    let i = (0..3).max_by(|a, b| p[*a].total_cmp(&p[*b])).unwrap_or(0);
    Severity::ALL[i]
}

/// Parses and checks a prediction folder: the reads, and the content hash of every file read
/// (for idempotent re-import), or every problem found.
pub fn parse_predictions(
    dir: &Path,
    catalog: Option<&Catalog>,
) -> Result<(Vec<ReadEvent>, String), ImportError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| ImportError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let sub = dir.join(SUBMISSION_FILE);
    let sub_bytes = read(&sub)?;
    let file = parse_submission(&sub_bytes, &sub)?;
    let issue = |path: &Path, line: u64, message: String| Issue {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut issues: Vec<Issue> = file
        .errors
        .iter()
        .map(|e| issue(&sub, e.line, e.message.clone()))
        .collect();
    let mut reads: BTreeMap<RowId, ReadEvent> = BTreeMap::new();
    let mut seen: BTreeMap<RowId, u64> = BTreeMap::new();
    for (line, row) in file.lines.iter().zip(&file.rows) {
        let key = RowId::new(
            row.row_id.study,
            row.row_id.column.condition,
            row.row_id.column.level,
        );
        if let Some(first) = seen.insert(key, *line) {
            issues.push(issue(
                &sub,
                *line,
                format!("row {} again (first at line {first})", row.row_id),
            ));
            continue;
        }
        if let Some(c) = catalog {
            if !c.knows_study(key.study) {
                issues.push(issue(
                    &sub,
                    *line,
                    format!("study {} is not in the dataset", key.study),
                ));
                continue;
            }
        }
        if row.probs.iter().any(|p| !p.is_finite() || *p < 0.0) {
            issues.push(issue(
                &sub,
                *line,
                format!("probabilities {:?} are not all finite and >= 0", row.probs),
            ));
            continue;
        }
        reads.insert(
            key,
            ReadEvent::new(key.study, key.condition(), key.level()).grade(grade_of(&row.probs)),
        );
    }
    // Points from each study's findings.json.
    let studies: BTreeSet<StudyId> = reads.keys().map(|k| k.study).collect();
    let mut hashed: Vec<Vec<u8>> = vec![b"submission".to_vec(), sub_bytes.clone()];
    for study in studies {
        let path = dir.join(study.to_string()).join(FINDINGS_FILE);
        if !path.is_file() {
            continue;
        }
        let bytes = read(&path)?;
        let parsed: FindingsFile = match serde_json::from_slice(&bytes) {
            Ok(f) => f,
            Err(e) => {
                issues.push(issue(
                    &path,
                    e.line() as u64,
                    format!("not a findings file: {e}"),
                ));
                continue;
            }
        };
        for f in parsed.findings {
            let Some(p) = f.point else { continue };
            let key = match crate::import::parse_row_id(&f.row_id) {
                Ok(k) if k.study == study => k,
                Ok(k) => {
                    issues.push(issue(
                        &path,
                        0,
                        format!(
                            "finding {} belongs to study {}, not {study}",
                            f.row_id, k.study
                        ),
                    ));
                    continue;
                }
                Err(m) => {
                    issues.push(issue(&path, 0, format!("finding {:?}: {m}", f.row_id)));
                    continue;
                }
            };
            let Some(r) = reads.get_mut(&key) else {
                continue; // a finding the submission does not have: its grade is unknown
            };
            let Ok(instance) = u32::try_from(p.instance) else {
                issues.push(issue(
                    &path,
                    0,
                    format!("finding {}: instance {} out of range", f.row_id, p.instance),
                ));
                continue;
            };
            if let Some(c) = catalog {
                let lp = LabelPoint {
                    study,
                    series: p.series,
                    instance,
                    condition: key.condition(),
                    level: key.level(),
                    x: p.x,
                    y: p.y,
                };
                if c.check_point(&lp).is_err() {
                    // A projected point may fall off the image: keep the grade, drop the point.
                    continue;
                }
            }
            r.point = Some(Point {
                series: p.series,
                instance,
                x: p.x,
                y: p.y,
            });
        }
        hashed.push(study.to_string().into_bytes());
        hashed.push(bytes);
    }
    if !issues.is_empty() {
        issues.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
        return Err(ImportError::Rows { issues });
    }
    let parts: Vec<&[u8]> = hashed.iter().map(|v| v.as_slice()).collect();
    Ok((reads.into_values().collect(), content_hash(&parts)))
}

/// A prediction folder to import as a reader.
pub struct PredictionsRequest<'a> {
    /// The reader's name, e.g. `ai:<model name>` (created in the store when new).
    pub reader: &'a str,
    /// The round's name (created when new).
    pub round: &'a str,
    /// The round's kind; must match the stored kind when the round exists.
    pub round_kind: RoundKind,
    /// The output folder of `discus predict`.
    pub dir: &'a Path,
    /// Seconds since the epoch to record; `None` takes the clock.
    pub at: Option<i64>,
}

/// Imports a prediction folder as one reader's reads: all or nothing, and a no-op when already
/// imported.
pub fn import_predictions(
    store: &mut ReadsStore,
    catalog: Option<&Catalog>,
    req: &PredictionsRequest<'_>,
    progress: &discus_core::progress::Progress,
) -> Result<ImportReport, ImportError> {
    let (reads, hash) = parse_predictions(req.dir, catalog)?;
    let reader = store.reader(req.reader)?;
    let round = store.round(req.round, req.round_kind)?;
    let source = format!("predictions {}", req.dir.display());
    let outcome = store.record_import(reader, round, &hash, &source, &reads, req.at, progress)?;
    let studies: HashSet<StudyId> = reads.iter().map(|r| r.study).collect();
    Ok(ImportReport {
        reader: req.reader.to_string(),
        round: req.round.to_string(),
        outcome,
        studies: studies.len(),
        grades: reads.iter().filter(|r| r.grade.is_some()).count(),
        points: reads.iter().filter(|r| r.point.is_some()).count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grades_are_the_most_probable_class_ties_to_the_more_severe() {
        assert_eq!(grade_of(&[0.7, 0.2, 0.1]), Severity::NormalMild);
        assert_eq!(grade_of(&[0.2, 0.5, 0.3]), Severity::Moderate);
        assert_eq!(grade_of(&[0.4, 0.4, 0.2]), Severity::Moderate);
        assert_eq!(grade_of(&[0.1, 0.2, 0.7]), Severity::Severe);
    }

    #[test]
    fn a_prediction_folder_gives_grades_and_points_and_bad_rows_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join(SUBMISSION_FILE),
            "row_id,normal_mild,moderate,severe\n\
             7_spinal_canal_stenosis_l1_l2,0.2,0.7,0.1\n\
             7_left_subarticular_stenosis_l5_s1,0.1,0.1,0.8\n",
        )
        .unwrap();
        std::fs::create_dir_all(d.join("7")).unwrap();
        std::fs::write(
            d.join("7").join(FINDINGS_FILE),
            r#"{"study":7,"findings":[
              {"row_id":"7_spinal_canal_stenosis_l1_l2","point":{"series":70,"instance":4,"x":10.5,"y":20.0}},
              {"row_id":"7_left_subarticular_stenosis_l5_s1","point":null}],"notes":[]}"#,
        )
        .unwrap();
        assert!(is_predictions(d) && is_predictions(&d.join(SUBMISSION_FILE)));
        assert!(!is_predictions(&d.join("7").join(FINDINGS_FILE)));
        let (reads, h) = parse_predictions(d, None).unwrap();
        assert_eq!(reads.len(), 2);
        assert_eq!(reads[0].grade, Some(Severity::Moderate));
        assert_eq!(
            reads[0].point,
            Some(Point {
                series: SeriesId(70),
                instance: 4,
                x: 10.5,
                y: 20.0
            })
        );
        assert_eq!(reads[1].grade, Some(Severity::Severe));
        assert_eq!(reads[1].point, None);
        // A duplicated row is refused with its line.
        let mut s = std::fs::read_to_string(d.join(SUBMISSION_FILE)).unwrap();
        s.push_str("7_spinal_canal_stenosis_l1_l2,0.2,0.7,0.1\n");
        std::fs::write(d.join(SUBMISSION_FILE), s).unwrap();
        let e = parse_predictions(d, None).unwrap_err();
        assert!(
            e.to_string().contains("line 4") && e.to_string().contains("again"),
            "{e}"
        );
        assert_ne!(h, "");
    }
}
