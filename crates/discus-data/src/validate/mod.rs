//! `discus validate`: reads a dataset in the LumbarDISC layout (the CSV files and every DICOM header),
//! joins them, and reports every [`Finding`] and the dataset's [`Shape`].
//!
//! Headers are read in parallel (rayon, one series per task) and streamed: a task reads one series,
//! assembles its stacks, checks it, and hands it to a single writer thread that stores it in the
//! [index](crate::index); only a small per-series summary stays in memory for the joins that follow.
//! Files whose size and modification time match the index are not read again. A bad file is a
//! finding and is skipped; nothing stops the run except a root that is not a folder or an index that
//! cannot be opened.
//!
//! Each finding has a stable snake_case [`FindingKind`]; its severity follows from the kind (see
//! [`FindingKind::severity`]): errors are what breaks a pipeline (unreadable files, points on
//! slices that do not exist, bad CSV rows, ...), warnings are the quirks of real data a reader must
//! survive (spec section 4), info notes what is unusual but harmless.
//!
//! ```
//! use discus_data::validate::{validate, FindingKind, ValidateOptions};
//! let root = tempfile::tempdir().unwrap();
//! std::fs::create_dir_all(root.path().join("train_images/4003253")).unwrap();
//! std::fs::write(root.path().join("train_series_descriptions.csv"), "study_id,series_id,series_description\n").unwrap();
//! let report = validate(root.path(), &ValidateOptions::default(), &|_progress| {}).unwrap();
//! let kinds: Vec<&str> = report.findings.iter().map(|f| f.kind.as_str()).collect();
//! assert_eq!(kinds, [
//!     "missing_labels_csv", "missing_labels_csv", "empty_study_folder",
//!     "missing_sagittal_t1", "missing_sagittal_t2_stir", "missing_axial_t2",
//! ]);
//! assert!(!report.has_errors());
//! assert_eq!(report.shape.studies, 1);
//! ```

use crate::dicom::read_header;
use crate::geometry::{assemble_stacks, Plane, SliceGeometry, SliceInput, Stack, StackOptions};
use crate::header::InstanceHeader;
use crate::index::{
    default_index_path, CsvTables, FindingRow, Index, IndexError, InstanceRecord, SeriesRow,
    SeriesWrite, StoredFile,
};
use discus_core::formats::{
    read_coordinates, read_series_descriptions, read_train, CsvFile, FormatError, LabelPoint,
    SeriesDescription, StudyLabels,
};
use discus_core::layout::{Split, COORDINATES_CSV, TRAIN_CSV};
use discus_core::{Condition, LabelColumn, Level, SeriesId, SeriesKind, StudyId};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The image folders of the layout, each with its descriptions file.
pub const SPLITS: [(&str, &str); 2] = [
    (Split::Train.folder(), Split::Train.descriptions_file()),
    (Split::Test.folder(), Split::Test.descriptions_file()),
];

mod contrast;
mod csv;
mod findings;
mod joins;
pub mod report;
mod scan;
mod shape;
pub mod text;

pub use contrast::{infer_contrast, Contrast};
use csv::*;
pub use findings::{Finding, FindingKind, FindingSeverity};
use joins::*;
use scan::*;
use shape::*;
pub use shape::{LabelCounts, MinMedMax, Shape};

/// Validation could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The dataset root is not a folder.
    #[error("{}: not a folder", .0.display())]
    NotAFolder(PathBuf),
    /// The index could not be opened or written.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A file or folder could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Options of [`validate`].
#[derive(Debug, Clone, Default)]
pub struct ValidateOptions {
    /// Where the index lives; default `<ROOT>/.discus/index.sqlite`.
    pub index_path: Option<PathBuf>,
}

/// Progress of the header scan, reported after each series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Files whose header is done (read or reused).
    pub files_done: u64,
    /// Files to scan in all.
    pub files_total: u64,
}

/// Counts of the header scan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanStats {
    /// Series folders scanned.
    pub series: u64,
    /// Files found.
    pub files: u64,
    /// Bytes in those files.
    pub bytes: u64,
    /// Headers read from disk in this run.
    pub files_read: u64,
    /// Headers taken from the index (size and mtime unchanged).
    pub files_reused: u64,
    /// Files whose header could not be read.
    pub files_unreadable: u64,
    /// Wall-clock time of the scan, seconds.
    pub seconds: f64,
}

/// Everything validation found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The dataset root.
    pub root: PathBuf,
    /// The index file the scan wrote.
    pub index: PathBuf,
    /// Sorted by kind, study, series, instance.
    pub findings: Vec<Finding>,
    /// The dataset's shape: counts and distributions.
    pub shape: Shape,
    /// Counts of the header scan.
    pub scan: ScanStats,
    /// The dataset card (`ROOT/dataset.toml`): source, licence, permitted uses, de-identification.
    /// `None` when there is none (or it is broken: then there is a `bad_dataset_card` finding).
    #[serde(default)]
    pub card: Option<discus_core::governance::DatasetCard>,
}

impl Report {
    /// Findings of `severity`.
    pub fn count(&self, severity: FindingSeverity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.count(FindingSeverity::Error) > 0
    }
    /// Findings grouped by kind, in kind order.
    pub fn by_kind(&self) -> BTreeMap<FindingKind, Vec<&Finding>> {
        let mut m: BTreeMap<FindingKind, Vec<&Finding>> = BTreeMap::new();
        for f in &self.findings {
            m.entry(f.kind).or_default().push(f);
        }
        m
    }
}

// ---------------------------------------------------------------------------------------------
// The run

/// Validates the dataset at `root`; `progress` is called from worker threads as series complete.
pub fn validate(
    root: &Path,
    options: &ValidateOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Report, ValidateError> {
    let started = Instant::now();
    if !root.is_dir() {
        return Err(ValidateError::NotAFolder(root.to_path_buf()));
    }
    let index_path = options
        .index_path
        .clone()
        .unwrap_or_else(|| default_index_path(root));
    let mut index = Index::open(&index_path)?;

    let mut findings = Vec::new();
    let (study_dirs, series_dirs, splits) = list_dataset(root, &mut findings);
    if splits.is_empty() {
        findings.push(Finding::new(
            FindingKind::NoImageFolders,
            None,
            None,
            None,
            format!(
                "{}: neither {} nor {} exists",
                root.display(),
                Split::Train,
                Split::Test
            ),
        ));
    }
    let csv = read_csvs(root, &splits, &mut findings);
    let card = match discus_core::governance::load_card(root) {
        Ok(card) => card,
        Err(e) => {
            findings.push(Finding::new(
                FindingKind::BadDatasetCard,
                None,
                None,
                None,
                e.to_string(),
            ));
            None
        }
    };

    // Scan series in parallel; one writer thread stores them.
    let indexed = index.indexed_series()?;
    let files_total: u64 = series_dirs.iter().map(|s| s.n_files).sum();
    let done = AtomicU64::new(0);
    let (tx, rx) = std::sync::mpsc::sync_channel::<SeriesScan>(64);
    let mut stats = ScanStats::default();
    let mut summaries: HashMap<(&'static str, u64, u64), SeriesSummary> = HashMap::new();
    let write_result: Result<(), IndexError> = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut batch: Vec<SeriesWrite> = Vec::new();
            let mut last = Instant::now();
            let mut result = Ok(());
            let mut flush = |batch: &mut Vec<SeriesWrite>, result: &mut Result<(), IndexError>| {
                if result.is_ok() && !batch.is_empty() {
                    *result = index.write_series(batch);
                }
                batch.clear();
            };
            for scan in rx {
                stats.series += 1;
                stats.files += scan.summary.n_files;
                stats.bytes += scan.bytes;
                stats.files_read += scan.files_read;
                stats.files_reused += scan.files_reused;
                stats.files_unreadable += scan.files_unreadable;
                findings.extend(scan.findings);
                summaries.insert(scan.key, scan.summary);
                batch.push(scan.write);
                if batch.len() >= 256 || last.elapsed() > Duration::from_millis(500) {
                    flush(&mut batch, &mut result);
                    last = Instant::now();
                }
            }
            flush(&mut batch, &mut result);
            result
        });
        let index_path = &index_path;
        let descriptions = &csv.descriptions;
        let indexed = &indexed;
        series_dirs.par_iter().for_each_init(
            || tx.clone(),
            |tx, sd| {
                let description = descriptions.get(&(sd.split, sd.study, sd.series)).copied();
                // Only series the index already holds need a look-up (none on a first run).
                let scan = if indexed.contains(&(sd.split.to_string(), sd.study, sd.series)) {
                    with_reader(index_path, |reader| {
                        scan_series(root, sd, reader, description)
                    })
                } else {
                    scan_series(root, sd, None, description)
                };
                let n = done.fetch_add(sd.n_files, Ordering::Relaxed) + sd.n_files;
                // The receiver lives until every sender is gone.
                let _ = tx.send(scan);
                progress(Progress {
                    files_done: n,
                    files_total,
                });
            },
        );
        drop(tx);
        writer
            .join()
            .expect("the index writer thread does not panic")
    });
    write_result?;

    check_joins(&csv, &study_dirs, &splits, &summaries, &mut findings);
    let shape = shape(&csv, &study_dirs, &summaries);

    findings.sort_by(|a, b| {
        (a.kind, a.study, a.series, a.instance, &a.message)
            .cmp(&(b.kind, b.study, b.series, b.instance, &b.message))
    });
    let rows: Vec<FindingRow> = findings
        .iter()
        .map(|f| FindingRow {
            kind: f.kind.as_str().to_string(),
            severity: f.severity.as_str().to_string(),
            study_id: f.study.map(|s| s.0),
            series_id: f.series.map(|s| s.0),
            instance_number: f.instance,
            message: f.message.clone(),
        })
        .collect();
    let tables = CsvTables {
        descriptions: csv.desc_rows.clone(),
        labels: csv.labels.clone().unwrap_or_default(),
        points: csv.points.clone().unwrap_or_default(),
    };
    index.finish_scan(&tables, &rows)?;
    let provenance = card.as_ref().map(|c| {
        discus_core::governance::Provenance::new("discus validate (index)", vec![c.clone()])
            .to_json()
    });
    index.set_meta("provenance", provenance.as_deref())?;
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(Report {
        root: root.to_path_buf(),
        index: index_path,
        findings,
        shape,
        scan: stats,
        card,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contrast_from_timing() {
        // Typical protocols (spec section 4): T1 TSE, T2 TSE, STIR at 1.5 T and 3 T, T1 FLAIR, PD.
        assert_eq!(
            infer_contrast(Some(550.0), Some(12.0), None),
            Some(Contrast::T1)
        );
        assert_eq!(
            infer_contrast(Some(3200.0), Some(95.0), None),
            Some(Contrast::T2)
        );
        assert_eq!(
            infer_contrast(Some(3500.0), Some(40.0), Some(150.0)),
            Some(Contrast::Stir)
        );
        assert_eq!(
            infer_contrast(Some(4000.0), Some(50.0), Some(230.0)),
            Some(Contrast::Stir)
        );
        assert_eq!(infer_contrast(Some(2000.0), Some(10.0), Some(860.0)), None);
        assert_eq!(infer_contrast(Some(2500.0), Some(20.0), None), None);
        assert_eq!(infer_contrast(None, Some(12.0), None), None);
    }

    #[test]
    fn finding_kind_names_are_stable_snake_case() {
        for k in FindingKind::ALL {
            let json = serde_json::to_string(k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert!(k
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        }
        assert_eq!(
            FindingKind::PointOnWrongSeriesType.as_str(),
            "point_on_wrong_series_type"
        );
        assert_eq!(
            FindingKind::UnreadableFile.severity(),
            FindingSeverity::Error
        );
    }
}
