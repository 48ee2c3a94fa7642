//! The CSV files of the layout, read with their findings.

use super::*;

// ---------------------------------------------------------------------------------------------
// CSV files

#[derive(Default)]
pub(crate) struct CsvData {
    /// (split, study, series) -> kind
    pub(crate) descriptions: HashMap<(&'static str, u64, u64), SeriesKind>,
    pub(crate) desc_rows: Vec<(String, SeriesDescription)>,
    /// Splits whose descriptions file was read.
    pub(crate) desc_read: HashSet<&'static str>,
    pub(crate) labels: Option<Vec<StudyLabels>>,
    pub(crate) points: Option<Vec<LabelPoint>>,
}

pub(crate) fn csv_findings<T>(
    name: &str,
    result: Result<CsvFile<T>, FormatError>,
    findings: &mut Vec<Finding>,
) -> Option<Vec<T>> {
    match result {
        Ok(file) => {
            for e in &file.errors {
                let kind = if e.message.contains("unknown condition") {
                    FindingKind::UnknownCondition
                } else {
                    FindingKind::CsvRowError
                };
                findings.push(Finding::new(
                    kind,
                    None,
                    None,
                    None,
                    format!("{name}: line {}: {}", e.line, e.message),
                ));
            }
            Some(file.rows)
        }
        Err(FormatError::Empty { .. }) => {
            findings.push(Finding::new(
                FindingKind::EmptyCsv,
                None,
                None,
                None,
                format!("{name}: the file is empty"),
            ));
            None
        }
        Err(FormatError::Header { message, .. }) => {
            let kind = if message.contains("is not a condition and level") {
                FindingKind::UnknownCondition
            } else {
                FindingKind::CsvBadHeader
            };
            findings.push(Finding::new(
                kind,
                None,
                None,
                None,
                format!("{name}: line 1: bad header: {message}"),
            ));
            None
        }
        Err(e) => {
            findings.push(Finding::new(
                FindingKind::CsvBadHeader,
                None,
                None,
                None,
                format!("{name}: {e}"),
            ));
            None
        }
    }
}

pub(crate) fn read_csvs(
    root: &Path,
    splits: &[&'static str],
    findings: &mut Vec<Finding>,
) -> CsvData {
    let mut d = CsvData::default();
    for (split, file) in SPLITS {
        let path = root.join(file);
        let images = splits.contains(&split);
        if !path.exists() {
            if images {
                findings.push(Finding::new(
                    FindingKind::MissingDescriptionsCsv,
                    None,
                    None,
                    None,
                    format!("{file} is missing beside {split}"),
                ));
            }
            continue;
        }
        if let Some(rows) = csv_findings(file, read_series_descriptions(&path), findings) {
            d.desc_read.insert(split);
            for r in rows {
                d.descriptions
                    .insert((split, r.study.0, r.series.0), r.kind);
                d.desc_rows.push((split.to_string(), r));
            }
        }
    }
    let has_train_split = splits.contains(&Split::Train.folder());
    for file in [TRAIN_CSV, COORDINATES_CSV] {
        let path = root.join(file);
        if !path.exists() {
            if has_train_split {
                findings.push(Finding::new(
                    FindingKind::MissingLabelsCsv,
                    None,
                    None,
                    None,
                    format!("{file} is missing beside {}", Split::Train),
                ));
            }
            continue;
        }
        if file == TRAIN_CSV {
            d.labels = csv_findings(file, read_train(&path), findings);
        } else {
            d.points = csv_findings(file, read_coordinates(&path), findings);
        }
    }
    d
}
