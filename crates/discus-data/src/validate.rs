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
use discus_core::{Condition, LabelColumn, Level, SeriesId, SeriesKind, StudyId};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The image folders of the layout, each with its descriptions file.
pub const SPLITS: [(&str, &str); 2] = [
    ("train_images", "train_series_descriptions.csv"),
    ("test_images", "test_series_descriptions.csv"),
];

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingSeverity {
    Error,
    Warning,
    Info,
}

impl FindingSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingSeverity::Error => "error",
            FindingSeverity::Warning => "warning",
            FindingSeverity::Info => "info",
        }
    }
}

macro_rules! finding_kinds {
    ($( $(#[$doc:meta])* $v:ident = $name:literal, $sev:ident; )*) => {
        /// What a finding is about. The snake_case names are stable: scripts may match on them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum FindingKind {
            $( $(#[$doc])* #[serde(rename = $name)] $v, )*
        }
        impl FindingKind {
            pub const ALL: &'static [FindingKind] = &[$(FindingKind::$v),*];
            /// The stable snake_case name.
            pub fn as_str(self) -> &'static str {
                match self { $(FindingKind::$v => $name,)* }
            }
            /// The severity every finding of this kind has.
            pub fn severity(self) -> FindingSeverity {
                match self { $(FindingKind::$v => FindingSeverity::$sev,)* }
            }
        }
    };
}

finding_kinds! {
    /// Neither train_images nor test_images exists under the root.
    NoImageFolders = "no_image_folders", Error;
    /// A *_series_descriptions.csv is missing beside its image folder.
    MissingDescriptionsCsv = "missing_descriptions_csv", Error;
    /// train.csv or train_label_coordinates.csv is missing beside train_images.
    MissingLabelsCsv = "missing_labels_csv", Warning;
    /// A CSV file is empty.
    EmptyCsv = "empty_csv", Error;
    /// A CSV file cannot be read or its header is wrong.
    CsvBadHeader = "csv_bad_header", Error;
    /// A CSV row cannot be read (the message names the line).
    CsvRowError = "csv_row_error", Error;
    /// A condition (or label column) that is not one of the five.
    UnknownCondition = "unknown_condition", Error;
    /// A folder name under an image folder is not a numeric id.
    BadFolderName = "bad_folder_name", Warning;
    /// A file name is not `<instance number>.dcm`.
    BadFileName = "bad_file_name", Warning;
    /// A study folder holds no series folders.
    EmptyStudyFolder = "empty_study_folder", Warning;
    /// A series folder holds no files.
    EmptySeriesFolder = "empty_series_folder", Warning;
    /// A file is not DICOM, truncated, or otherwise unreadable.
    UnreadableFile = "unreadable_file", Error;
    /// A file shorter than its uncompressed pixel data needs (cut off after the header).
    TruncatedFile = "truncated_file", Error;
    /// InstanceNumber in the header differs from the file name.
    InstanceNumberMismatch = "instance_number_mismatch", Error;
    /// StudyInstanceUID differs from the study folder name.
    StudyUidMismatch = "study_uid_mismatch", Warning;
    /// SeriesInstanceUID differs from the series folder name.
    SeriesUidMismatch = "series_uid_mismatch", Warning;
    /// A file lacks ImagePositionPatient, ImageOrientationPatient or PixelSpacing (or they are unusable).
    MissingGeometry = "missing_geometry", Error;
    /// Instance numbers do not start at 1.
    InstanceNumberOffset = "instance_number_offset", Info;
    /// Instance numbers skip values.
    InstanceNumberGaps = "instance_number_gaps", Warning;
    /// One series holds stacks of different orientations.
    MixedOrientation = "mixed_orientation", Warning;
    /// One series holds slices of different matrix sizes (or pixel spacings).
    MixedMatrixSize = "mixed_matrix_size", Warning;
    /// Several slices of one stack at the same position.
    DuplicateSlicePositions = "duplicate_slice_positions", Warning;
    /// Slices of one stack are not evenly spaced.
    IrregularSliceSpacing = "irregular_slice_spacing", Info;
    /// The description says sagittal but the slices are axial (or the reverse).
    DescriptionPlaneMismatch = "description_plane_mismatch", Warning;
    /// The description's contrast (T1 / T2 / STIR) contradicts TR, TE and TI.
    DescriptionContrastMismatch = "description_contrast_mismatch", Warning;
    /// A series folder with no row in the descriptions file.
    SeriesWithoutDescription = "series_without_description", Warning;
    /// A description row whose series folder does not exist.
    DescriptionWithoutFolder = "description_without_folder", Warning;
    /// A study without a Sagittal T1 series.
    MissingSagittalT1 = "missing_sagittal_t1", Warning;
    /// A study without a Sagittal T2/STIR series.
    MissingSagittalT2Stir = "missing_sagittal_t2_stir", Warning;
    /// A study without an Axial T2 series.
    MissingAxialT2 = "missing_axial_t2", Warning;
    /// A study with several Axial T2 series.
    MultipleAxialSeries = "multiple_axial_series", Info;
    /// The points of one condition of a study lie on several series.
    LevelsSplitAcrossSeries = "levels_split_across_series", Info;
    /// A point on a series whose description is not the type its condition is marked on.
    PointOnWrongSeriesType = "point_on_wrong_series_type", Warning;
    /// A point on a series that has no folder.
    PointOnMissingSeries = "point_on_missing_series", Error;
    /// A point on an instance that has no file (or an unreadable one).
    PointOnMissingInstance = "point_on_missing_instance", Error;
    /// A point outside its image.
    PointOutsideImage = "point_outside_image", Warning;
    /// Two points for the same study, condition and level.
    DuplicatePoint = "duplicate_point", Warning;
    /// A grade in train.csv without a point in train_label_coordinates.csv.
    LabelWithoutPoint = "label_without_point", Warning;
    /// A point without a grade in train.csv.
    PointWithoutLabel = "point_without_label", Warning;
    /// A study in train.csv without a folder under train_images.
    LabelsWithoutImages = "labels_without_images", Warning;
    /// A study folder under train_images without a row in train.csv.
    StudyWithoutLabels = "study_without_labels", Warning;
    /// The dataset card (dataset.toml) cannot be read or parsed.
    BadDatasetCard = "bad_dataset_card", Error;
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing validation found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: FindingSeverity,
    pub study: Option<StudyId>,
    pub series: Option<SeriesId>,
    pub instance: Option<i64>,
    pub message: String,
}

impl Finding {
    pub fn new(
        kind: FindingKind,
        study: Option<u64>,
        series: Option<u64>,
        instance: Option<i64>,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            kind,
            severity: kind.severity(),
            study: study.map(StudyId),
            series: series.map(SeriesId),
            instance,
            message: message.into(),
        }
    }
}

/// Validation could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("{}: not a folder", .0.display())]
    NotAFolder(PathBuf),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
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
    pub files_done: u64,
    pub files_total: u64,
}

/// Counts of the header scan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanStats {
    pub series: u64,
    pub files: u64,
    pub bytes: u64,
    /// Headers read from disk in this run.
    pub files_read: u64,
    /// Headers taken from the index (size and mtime unchanged).
    pub files_reused: u64,
    pub files_unreadable: u64,
    pub seconds: f64,
}

/// min / median / max.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MinMedMax {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub count: usize,
}

impl MinMedMax {
    pub fn of(values: &mut [f64]) -> Option<MinMedMax> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Some(MinMedMax {
            min: values[0],
            median,
            max: values[n - 1],
            count: n,
        })
    }
}

/// Grade counts of one label column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelCounts {
    pub condition: Condition,
    pub level: Level,
    pub normal_mild: u64,
    pub moderate: u64,
    pub severe: u64,
    pub missing: u64,
}

/// The dataset's shape (spec section 3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    /// Study folders (all splits).
    pub studies: u64,
    /// Series folders (all splits).
    pub series: u64,
    pub files: u64,
    /// Series folders by their description (`"none"` when undescribed).
    pub series_per_kind: BTreeMap<String, u64>,
    /// Studies by their (Sagittal T1, Sagittal T2/STIR, Axial T2) series counts, e.g. `"(1,1,2)"`.
    pub series_count_patterns: BTreeMap<String, u64>,
    /// Readable slices per series, by description.
    pub slices_per_series: BTreeMap<String, MinMedMax>,
    /// Series by description and matrix size (`rows x columns` of their largest stack).
    pub matrix_sizes: BTreeMap<String, BTreeMap<String, u64>>,
    /// Series by Manufacturer.
    pub vendors: BTreeMap<String, u64>,
    /// Series by MagneticFieldStrength (tesla).
    pub field_strengths: BTreeMap<String, u64>,
    /// Files by transfer syntax UID.
    pub transfer_syntaxes: BTreeMap<String, u64>,
    /// Studies with a row in train.csv.
    pub labelled_studies: u64,
    pub points: u64,
    /// Grade counts per condition x level, in train.csv column order.
    pub labels: Vec<LabelCounts>,
    /// Share of labelled studies with at least one Severe spinal level.
    pub severe_spinal_share: Option<f64>,
}

/// Everything validation found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub root: PathBuf,
    pub index: PathBuf,
    /// Sorted by kind, study, series, instance.
    pub findings: Vec<Finding>,
    pub shape: Shape,
    pub scan: ScanStats,
    /// The dataset card (`ROOT/dataset.toml`): source, licence, permitted uses, de-identification.
    /// `None` when there is none (or it is broken: then there is a `bad_dataset_card` finding).
    #[serde(default)]
    pub card: Option<discus_core::governance::DatasetCard>,
}

impl Report {
    pub fn count(&self, severity: FindingSeverity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }
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

/// The contrast a series' TR, TE and TI point to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Contrast {
    T1,
    T2,
    Stir,
}

/// T1: short TR (< 1000 ms) and short TE (< 30 ms); STIR: an inversion time of 100-300 ms (fat
/// nulling is ~150 ms at 1.5 T, ~220-250 ms at 3 T); T2: long TR (>= 1500 ms) and long TE (>= 50 ms).
/// Anything else (proton density, T1 FLAIR with TI ~800 ms, missing values) is `None`: no claim is made.
pub fn infer_contrast(tr: Option<f64>, te: Option<f64>, ti: Option<f64>) -> Option<Contrast> {
    if let Some(ti) = ti {
        if (100.0..=300.0).contains(&ti) {
            return Some(Contrast::Stir);
        }
    }
    let (tr, te) = (tr?, te?);
    if tr < 1000.0 && te < 30.0 && ti.is_none_or(|t| t <= 0.0) {
        Some(Contrast::T1)
    } else if tr >= 1500.0 && te >= 50.0 {
        Some(Contrast::T2)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Listing

struct SeriesDir {
    split: &'static str,
    study: u64,
    series: u64,
    path: PathBuf,
    n_files: u64,
}

fn list_dirs(path: &Path) -> std::io::Result<Vec<(String, PathBuf, bool)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(path)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false) || (e.path().is_dir());
        v.push((name, e.path(), is_dir));
    }
    v.sort();
    Ok(v)
}

fn parse_id(name: &str) -> Option<u64> {
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()))
        .then(|| name.parse().ok())
        .flatten()
}

/// Study folders per split (including empty ones) and the series folders to scan.
fn list_dataset(
    root: &Path,
    findings: &mut Vec<Finding>,
) -> (
    BTreeSet<(&'static str, u64)>,
    Vec<SeriesDir>,
    Vec<&'static str>,
) {
    let mut studies = BTreeSet::new();
    let mut series = Vec::new();
    let mut splits = Vec::new();
    for (split, _) in SPLITS {
        let dir = root.join(split);
        if !dir.is_dir() {
            continue;
        }
        splits.push(split);
        let entries = match list_dirs(&dir) {
            Ok(e) => e,
            Err(e) => {
                findings.push(Finding::new(
                    FindingKind::UnreadableFile,
                    None,
                    None,
                    None,
                    format!("{split}: cannot list: {e}"),
                ));
                continue;
            }
        };
        for (name, path, is_dir) in entries {
            if !is_dir {
                continue;
            }
            let Some(study) = parse_id(&name) else {
                findings.push(Finding::new(
                    FindingKind::BadFolderName,
                    None,
                    None,
                    None,
                    format!(
                        "{split}/{name}: a study folder name must be a numeric study id; skipped"
                    ),
                ));
                continue;
            };
            studies.insert((split, study));
            let subs = match list_dirs(&path) {
                Ok(s) => s,
                Err(e) => {
                    findings.push(Finding::new(
                        FindingKind::UnreadableFile,
                        Some(study),
                        None,
                        None,
                        format!("{split}/{name}: cannot list: {e}"),
                    ));
                    continue;
                }
            };
            let mut n_series = 0;
            for (sname, spath, sdir) in subs {
                if !sdir {
                    continue;
                }
                let Some(sid) = parse_id(&sname) else {
                    findings.push(Finding::new(
                        FindingKind::BadFolderName,
                        Some(study),
                        None,
                        None,
                        format!(
                            "{split}/{name}/{sname}: a series folder name must be a numeric series id; skipped"
                        ),
                    ));
                    continue;
                };
                n_series += 1;
                let n_files = std::fs::read_dir(&spath)
                    .map(|rd| rd.count() as u64)
                    .unwrap_or(0);
                series.push(SeriesDir {
                    split,
                    study,
                    series: sid,
                    path: spath,
                    n_files,
                });
            }
            if n_series == 0 {
                findings.push(Finding::new(
                    FindingKind::EmptyStudyFolder,
                    Some(study),
                    None,
                    None,
                    format!("{split}/{name} holds no series folders"),
                ));
            }
        }
    }
    (studies, series, splits)
}

// ---------------------------------------------------------------------------------------------
// Scanning one series

/// What stays in memory of a scanned series.
#[derive(Debug, Clone)]
struct SeriesSummary {
    n_files: u64,
    n_readable: u64,
    /// file number -> (rows, columns) of readable files.
    instances: HashMap<i64, (u32, u32)>,
    matrix: Option<(u32, u32)>,
    manufacturer: Option<String>,
    field_strength: Option<f64>,
    transfer_syntaxes: BTreeMap<String, u64>,
}

struct SeriesScan {
    key: (&'static str, u64, u64),
    summary: SeriesSummary,
    write: SeriesWrite,
    findings: Vec<Finding>,
    bytes: u64,
    files_read: u64,
    files_reused: u64,
    files_unreadable: u64,
}

fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn median(v: &mut [f64]) -> Option<f64> {
    MinMedMax::of(v).map(|m| m.median)
}

fn mode<T: Ord + Clone>(items: impl Iterator<Item = T>) -> Option<T> {
    let mut m: BTreeMap<T, usize> = BTreeMap::new();
    for t in items {
        *m.entry(t).or_default() += 1;
    }
    m.into_iter().max_by_key(|(_, n)| *n).map(|(t, _)| t)
}

fn rel_path(root: &Path, p: &Path) -> String {
    let r = p.strip_prefix(root).unwrap_or(p);
    r.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Bytes of pixel data a file in a native (uncompressed) transfer syntax must hold.
fn native_pixel_bytes(h: &InstanceHeader) -> Option<u64> {
    const NATIVE: [&str; 3] = [
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.2",
    ];
    if !NATIVE.contains(&h.transfer_syntax.trim_end_matches('\0').trim()) || h.bits_allocated == 0 {
        return None;
    }
    let bits = u64::from(h.rows)
        * u64::from(h.columns)
        * u64::from(h.number_of_frames.max(1))
        * u64::from(h.samples_per_pixel.max(1))
        * u64::from(h.bits_allocated);
    Some(bits.div_ceil(8))
}

thread_local! {
    /// Each scanning thread keeps one read-only connection to the index (reopened for another index).
    static READER: std::cell::RefCell<Option<(PathBuf, Option<Index>)>> = const { std::cell::RefCell::new(None) };
}

fn with_reader<T>(path: &Path, f: impl FnOnce(Option<&Index>) -> T) -> T {
    READER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(p, _)| p != path) {
            *slot = Some((path.to_path_buf(), Index::open_read_only(path).ok()));
        }
        f(slot.as_ref().and_then(|(_, ix)| ix.as_ref()))
    })
}

fn scan_series(
    root: &Path,
    sd: &SeriesDir,
    stored: Option<&Index>,
    description: Option<SeriesKind>,
) -> SeriesScan {
    let (study, series) = (sd.study, sd.series);
    let f =
        |kind, instance, msg: String| Finding::new(kind, Some(study), Some(series), instance, msg);
    let mut findings = Vec::new();
    let folder = format!("{}/{}/{}", sd.split, study, series);

    let mut stored_files: HashMap<String, StoredFile> = stored
        .and_then(|ix| ix.series_files(sd.split, study, series).ok())
        .unwrap_or_default();
    let mut changed = false;
    let (mut files_read, mut files_reused, mut files_unreadable, mut bytes) = (0, 0, 0, 0);
    let mut records: Vec<InstanceRecord> = Vec::new();
    let entries = match std::fs::read_dir(&sd.path) {
        Ok(rd) => rd.filter_map(Result::ok).collect::<Vec<_>>(),
        Err(e) => {
            findings.push(f(
                FindingKind::UnreadableFile,
                None,
                format!("{folder}: cannot list: {e}"),
            ));
            Vec::new()
        }
    };
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = e.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let rel = rel_path(root, &path);
        let stem = name.strip_suffix(".dcm").unwrap_or(&name);
        let file_number = parse_id(stem).and_then(|n| i64::try_from(n).ok());
        if file_number.is_none() || !name.ends_with(".dcm") {
            findings.push(f(
                FindingKind::BadFileName,
                None,
                format!("{rel}: file name is not <instance number>.dcm"),
            ));
        }
        let (size, mtime) = (meta.len(), mtime_ns(&meta));
        bytes += size;
        let (header, error) = match stored_files.remove(&rel) {
            Some(s) if s.size == size && s.mtime_ns == mtime => {
                files_reused += 1;
                (s.header, s.error)
            }
            _ => {
                changed = true;
                files_read += 1;
                match read_header(&path) {
                    Ok(h) => (Some(h), None),
                    // Name the file relative to the root: the message travels with the index.
                    Err(e) => (
                        None,
                        Some(e.to_string().replace(&path.display().to_string(), &rel)),
                    ),
                }
            }
        };
        records.push(InstanceRecord {
            path: rel,
            file_number,
            size,
            mtime_ns: mtime,
            header,
            error,
            place: None,
        });
    }
    if !stored_files.is_empty() {
        changed = true; // files were removed
    }
    records.sort_by(|a, b| a.file_number.cmp(&b.file_number).then(a.path.cmp(&b.path)));

    if records.is_empty() {
        findings.push(f(
            FindingKind::EmptySeriesFolder,
            None,
            format!("{folder} holds no files"),
        ));
    }

    let mut slices = Vec::new();
    let mut slice_owner: HashMap<i64, usize> = HashMap::new();
    let (mut study_uid_bad, mut series_uid_bad, mut no_geometry) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut instances = HashMap::new();
    let mut transfer_syntaxes = BTreeMap::new();
    let (mut trs, mut tes, mut tis) = (Vec::new(), Vec::new(), Vec::new());
    let mut readable: Vec<&InstanceHeader> = Vec::new();
    for (ri, r) in records.iter().enumerate() {
        let inst = r.file_number;
        if let Some(err) = &r.error {
            files_unreadable += 1;
            findings.push(f(FindingKind::UnreadableFile, inst, err.clone()));
            continue;
        }
        let Some(h) = &r.header else { continue };
        if let Some(need) = native_pixel_bytes(h) {
            if r.size < need {
                findings.push(f(
                    FindingKind::TruncatedFile,
                    inst,
                    format!(
                        "{}: {} bytes, less than the {need} bytes of its uncompressed pixel data",
                        r.path, r.size
                    ),
                ));
            }
        }
        readable.push(h);
        *transfer_syntaxes
            .entry(h.transfer_syntax.clone())
            .or_insert(0) += 1;
        if let (Some(n), Some(hn)) = (inst, h.instance_number) {
            if n != hn {
                findings.push(f(
                    FindingKind::InstanceNumberMismatch,
                    inst,
                    format!("{}: InstanceNumber {hn} differs from the file name", r.path),
                ));
            }
        } else if inst.is_some() && h.instance_number.is_none() {
            findings.push(f(
                FindingKind::InstanceNumberMismatch,
                inst,
                format!("{}: no InstanceNumber in the header", r.path),
            ));
        }
        // a folder named by the UID's derived id (`discus ingest`, `discus deid`) matches it too
        if h.study_instance_uid.trim() != study.to_string()
            && discus_core::ids::id_from_uid(&h.study_instance_uid) != study
        {
            study_uid_bad.push(inst);
        }
        if h.series_instance_uid.trim() != series.to_string()
            && discus_core::ids::id_from_uid(&h.series_instance_uid) != series
        {
            series_uid_bad.push(inst);
        }
        if let Some(v) = h.repetition_time {
            trs.push(v);
        }
        if let Some(v) = h.echo_time {
            tes.push(v);
        }
        if let Some(v) = h.inversion_time {
            tis.push(v);
        }
        let number = inst.or(h.instance_number);
        match SliceGeometry::from_header(h) {
            Ok(g) => {
                if let Some(n) = number {
                    instances.insert(n, (g.rows, g.columns));
                    slice_owner.insert(n, ri);
                    slices.push(SliceInput {
                        instance_number: n,
                        geometry: g,
                    });
                }
            }
            Err(e) => {
                if let Some(n) = inst {
                    instances.insert(n, (u32::from(h.rows), u32::from(h.columns)));
                }
                no_geometry.push((inst, e.to_string()));
            }
        }
    }
    let n_readable = readable.len() as u64;
    let manufacturer = mode(
        readable
            .iter()
            .filter_map(|h| h.manufacturer.clone())
            .filter(|s| !s.trim().is_empty()),
    );
    let field_strength = mode(
        readable
            .iter()
            .filter_map(|h| h.magnetic_field_strength)
            .map(|v| (v * 100.0).round() as i64),
    )
    .map(|v| v as f64 / 100.0);
    let header_description = mode(readable.iter().filter_map(|h| h.series_description.clone()));
    drop(readable);
    let mut uid_finding = |bad: &Vec<Option<i64>>, kind, what: &str, folder_kind: &str| {
        if !bad.is_empty() {
            findings.push(f(
                kind,
                bad[0],
                format!(
                    "{folder}: {} of {n_readable} files have a {what} other than the {folder_kind} folder name",
                    bad.len()
                ),
            ));
        }
    };
    uid_finding(
        &study_uid_bad,
        FindingKind::StudyUidMismatch,
        "StudyInstanceUID",
        "study",
    );
    uid_finding(
        &series_uid_bad,
        FindingKind::SeriesUidMismatch,
        "SeriesInstanceUID",
        "series",
    );
    if let Some((inst, why)) = no_geometry.first() {
        findings.push(f(
            FindingKind::MissingGeometry,
            *inst,
            format!(
                "{folder}: {} of {n_readable} files have no usable geometry (first: {why})",
                no_geometry.len()
            ),
        ));
    }

    // Instance numbering, by file name (what the label files refer to).
    let mut numbers: Vec<i64> = records.iter().filter_map(|r| r.file_number).collect();
    numbers.sort_unstable();
    numbers.dedup();
    if let (Some(&lo), Some(&hi)) = (numbers.first(), numbers.last()) {
        if lo != 1 {
            findings.push(f(
                FindingKind::InstanceNumberOffset,
                Some(lo),
                format!("{folder}: instance numbers start at {lo} (not 1)"),
            ));
        }
        let missing = (hi - lo + 1) as usize - numbers.len();
        if missing > 0 {
            let first_gap = numbers
                .windows(2)
                .find(|w| w[1] != w[0] + 1)
                .map(|w| w[0] + 1);
            findings.push(f(
                FindingKind::InstanceNumberGaps,
                first_gap,
                format!(
                    "{folder}: {missing} instance numbers missing between {lo} and {hi} (first: {})",
                    first_gap.unwrap_or(lo)
                ),
            ));
        }
    }

    // Stacks.
    let stacks: Vec<Stack> = assemble_stacks(slices, &StackOptions::default());
    for (si, s) in stacks.iter().enumerate() {
        for (k, sl) in s.slices.iter().enumerate() {
            if let Some(&ri) = slice_owner.get(&sl.instance_number) {
                records[ri].place = Some((si, k));
            }
        }
        if s.duplicate_positions > 0 {
            findings.push(f(
                FindingKind::DuplicateSlicePositions,
                s.slices.first().map(|x| x.instance_number),
                format!(
                    "{folder}: stack {si} has {} slices at the same position as another",
                    s.duplicate_positions
                ),
            ));
        } else if !s.uniform_spacing {
            findings.push(f(
                FindingKind::IrregularSliceSpacing,
                s.slices.first().map(|x| x.instance_number),
                format!(
                    "{folder}: stack {si}: slice spacing varies (median {:.2} mm)",
                    s.slice_spacing.unwrap_or(0.0)
                ),
            ));
        }
    }
    if stacks.len() > 1 {
        let r0 = *stacks[0].reference();
        let max_angle = stacks
            .iter()
            .map(|s| s.reference().normal_angle(&r0).to_degrees())
            .fold(0.0f64, f64::max);
        let oriented = stacks.iter().any(|s| {
            let r = s.reference();
            crate::geometry::dot(r.row_dir, r0.row_dir)
                < StackOptions::default().orientation_tolerance_rad.cos()
                || crate::geometry::dot(r.col_dir, r0.col_dir)
                    < StackOptions::default().orientation_tolerance_rad.cos()
        });
        let sizes: BTreeSet<(u32, u32)> = stacks.iter().map(|s| (s.rows, s.columns)).collect();
        let desc = stacks
            .iter()
            .map(|s| {
                format!(
                    "{} {}x{} x{}",
                    s.plane().as_str(),
                    s.rows,
                    s.columns,
                    s.len()
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        if oriented {
            findings.push(f(
                FindingKind::MixedOrientation,
                None,
                format!(
                    "{folder}: {} stacks of different orientation (up to {max_angle:.1} degrees apart): {desc}",
                    stacks.len()
                ),
            ));
        }
        if sizes.len() > 1 || !oriented {
            findings.push(f(
                FindingKind::MixedMatrixSize,
                None,
                format!(
                    "{folder}: {} stacks of different matrix size or pixel spacing: {desc}",
                    stacks.len()
                ),
            ));
        }
    }
    let main = stacks.iter().max_by_key(|s| s.len());
    let plane = main.map(|s| s.plane());
    let matrix = main.map(|s| (s.rows, s.columns));
    let (tr, te) = (median(&mut trs), median(&mut tes));
    let ti = median(&mut tis);

    // Description against header.
    if let Some(kind) = description {
        if let Some(p) = plane {
            let ok = match kind {
                SeriesKind::SagittalT1 | SeriesKind::SagittalT2Stir => p == Plane::Sagittal,
                SeriesKind::AxialT2 => p == Plane::Axial,
            };
            if !ok {
                findings.push(f(
                    FindingKind::DescriptionPlaneMismatch,
                    None,
                    format!(
                        "{folder}: described as {kind} but its slices are {}",
                        p.as_str()
                    ),
                ));
            }
        }
        let contrast = infer_contrast(tr, te, ti);
        let clash = match (kind, contrast) {
            (SeriesKind::SagittalT1, Some(Contrast::T2 | Contrast::Stir)) => true,
            (SeriesKind::SagittalT2Stir | SeriesKind::AxialT2, Some(Contrast::T1)) => true,
            (SeriesKind::AxialT2, Some(Contrast::Stir)) => false,
            _ => false,
        };
        if clash {
            let fmt = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into());
            findings.push(f(
                FindingKind::DescriptionContrastMismatch,
                None,
                format!(
                    "{folder}: described as {kind} but TR {} ms, TE {} ms, TI {} ms look {:?}",
                    fmt(tr),
                    fmt(te),
                    fmt(ti),
                    contrast.expect("clash implies a contrast")
                ),
            ));
        }
    }

    let row = SeriesRow {
        split: sd.split.to_string(),
        study_id: study,
        series_id: series,
        n_files: records.len(),
        n_readable: n_readable as usize,
        description: header_description,
        plane: plane.map(|p| p.as_str().to_string()),
        manufacturer: manufacturer.clone(),
        field_strength,
        repetition_time: tr,
        echo_time: te,
        inversion_time: ti,
    };
    let summary = SeriesSummary {
        n_files: records.len() as u64,
        n_readable,
        instances,
        matrix,
        manufacturer,
        field_strength,
        transfer_syntaxes,
    };
    SeriesScan {
        key: (sd.split, study, series),
        summary,
        write: SeriesWrite {
            row,
            stacks,
            instances: changed.then_some(records),
        },
        findings,
        bytes,
        files_read,
        files_reused,
        files_unreadable,
    }
}

// ---------------------------------------------------------------------------------------------
// CSV files

#[derive(Default)]
struct CsvData {
    /// (split, study, series) -> kind
    descriptions: HashMap<(&'static str, u64, u64), SeriesKind>,
    desc_rows: Vec<(String, SeriesDescription)>,
    /// Splits whose descriptions file was read.
    desc_read: HashSet<&'static str>,
    labels: Option<Vec<StudyLabels>>,
    points: Option<Vec<LabelPoint>>,
}

fn csv_findings<T>(
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

fn read_csvs(root: &Path, splits: &[&'static str], findings: &mut Vec<Finding>) -> CsvData {
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
    let train_images = splits.contains(&"train_images");
    for file in ["train.csv", "train_label_coordinates.csv"] {
        let path = root.join(file);
        if !path.exists() {
            if train_images {
                findings.push(Finding::new(
                    FindingKind::MissingLabelsCsv,
                    None,
                    None,
                    None,
                    format!("{file} is missing beside train_images"),
                ));
            }
            continue;
        }
        if file == "train.csv" {
            d.labels = csv_findings(file, read_train(&path), findings);
        } else {
            d.points = csv_findings(file, read_coordinates(&path), findings);
        }
    }
    d
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
                "{}: neither train_images nor test_images exists",
                root.display()
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

fn check_joins(
    csv: &CsvData,
    study_dirs: &BTreeSet<(&'static str, u64)>,
    splits: &[&'static str],
    summaries: &HashMap<(&'static str, u64, u64), SeriesSummary>,
    findings: &mut Vec<Finding>,
) {
    let push = |findings: &mut Vec<Finding>, kind, st: u64, se: Option<u64>, inst, msg: String| {
        findings.push(Finding::new(kind, Some(st), se, inst, msg))
    };
    // Descriptions against folders.
    for &(split, study, series) in summaries.keys() {
        if csv.desc_read.contains(split) && !csv.descriptions.contains_key(&(split, study, series))
        {
            push(
                findings,
                FindingKind::SeriesWithoutDescription,
                study,
                Some(series),
                None,
                format!("{split}/{study}/{series} has no row in the descriptions file"),
            );
        }
    }
    for &(split, study, series) in csv.descriptions.keys() {
        if splits.contains(&split) && !summaries.contains_key(&(split, study, series)) {
            push(
                findings,
                FindingKind::DescriptionWithoutFolder,
                study,
                Some(series),
                None,
                format!("described series has no folder {split}/{study}/{series}"),
            );
        }
    }
    // Series per study by kind.
    let mut per_study: BTreeMap<(&str, u64), [Vec<u64>; 3]> = BTreeMap::new();
    for &(split, study) in study_dirs {
        per_study.entry((split, study)).or_default();
    }
    for (&(split, study, series), &kind) in &csv.descriptions {
        if splits.contains(&split) {
            per_study.entry((split, study)).or_default()[kind as usize].push(series);
        }
    }
    for ((split, study), kinds) in &per_study {
        if !csv.desc_read.contains(split) {
            continue;
        }
        for (k, kind) in SeriesKind::ALL.iter().enumerate() {
            if kinds[k].is_empty() {
                let fk = match kind {
                    SeriesKind::SagittalT1 => FindingKind::MissingSagittalT1,
                    SeriesKind::SagittalT2Stir => FindingKind::MissingSagittalT2Stir,
                    SeriesKind::AxialT2 => FindingKind::MissingAxialT2,
                };
                push(
                    findings,
                    fk,
                    *study,
                    None,
                    None,
                    format!("{split}/{study} has no {kind} series"),
                );
            }
        }
        let ax = &kinds[SeriesKind::AxialT2 as usize];
        if ax.len() > 1 {
            push(
                findings,
                FindingKind::MultipleAxialSeries,
                *study,
                None,
                None,
                format!("{split}/{study} has {} Axial T2 series", ax.len()),
            );
        }
    }

    // Points.
    let labels: HashMap<u64, &StudyLabels> = csv
        .labels
        .iter()
        .flatten()
        .map(|l| (l.study.0, l))
        .collect();
    let mut seen: HashMap<(u64, Condition, Level), usize> = HashMap::new();
    let mut series_of: BTreeMap<(u64, Condition), BTreeSet<u64>> = BTreeMap::new();
    let train = "train_images";
    for p in csv.points.iter().flatten() {
        let (st, se) = (p.study.0, p.series.0);
        let what = format!(
            "point {} {} on {st}/{se} instance {} at ({}, {})",
            p.condition.words(),
            p.level.words(),
            p.instance,
            p.x,
            p.y
        );
        let inst = Some(i64::from(p.instance));
        *seen.entry((st, p.condition, p.level)).or_default() += 1;
        // Levels split across series: only series of the kind this condition belongs on (a point on
        // another kind is reported as such).
        if csv.descriptions.get(&(train, st, se)) == Some(&p.condition.series_kind()) {
            series_of.entry((st, p.condition)).or_default().insert(se);
        }
        if let Some(kind) = csv.descriptions.get(&(train, st, se)) {
            if *kind != p.condition.series_kind() {
                push(
                    findings,
                    FindingKind::PointOnWrongSeriesType,
                    st,
                    Some(se),
                    inst,
                    format!(
                        "{what}: the series is described as {kind}, {} points belong on {}",
                        p.condition.words(),
                        p.condition.series_kind()
                    ),
                );
            }
        }
        match summaries.get(&(train, st, se)) {
            None => push(
                findings,
                FindingKind::PointOnMissingSeries,
                st,
                Some(se),
                inst,
                format!("{what}: no folder train_images/{st}/{se}"),
            ),
            Some(s) => match s.instances.get(&i64::from(p.instance)) {
                None => push(
                    findings,
                    FindingKind::PointOnMissingInstance,
                    st,
                    Some(se),
                    inst,
                    format!("{what}: no readable file {}.dcm in the series", p.instance),
                ),
                Some(&(rows, cols)) => {
                    let inside = p.x >= -0.5
                        && p.x <= cols as f64 - 0.5
                        && p.y >= -0.5
                        && p.y <= rows as f64 - 0.5;
                    if !inside {
                        push(
                            findings,
                            FindingKind::PointOutsideImage,
                            st,
                            Some(se),
                            inst,
                            format!("{what}: outside the {cols}x{rows} (columns x rows) image"),
                        );
                    }
                }
            },
        }
        let graded = labels
            .get(&st)
            .map(|l| l.get(p.condition, p.level).is_some())
            .unwrap_or(false);
        if csv.labels.is_some() && !graded {
            push(
                findings,
                FindingKind::PointWithoutLabel,
                st,
                Some(se),
                inst,
                format!("{what}: no grade in train.csv"),
            );
        }
    }
    for (&(st, c, l), &n) in &seen {
        if n > 1 {
            push(
                findings,
                FindingKind::DuplicatePoint,
                st,
                None,
                None,
                format!("{n} points for {st} {} {}", c.words(), l.words()),
            );
        }
    }
    for ((st, c), series) in &series_of {
        if series.len() > 1 {
            push(
                findings,
                FindingKind::LevelsSplitAcrossSeries,
                *st,
                None,
                None,
                format!(
                    "{st}: {} points lie on {} series ({})",
                    c.words(),
                    series.len(),
                    series
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
    // Labels against points and images.
    if let Some(lab) = &csv.labels {
        let train_studies: BTreeSet<u64> = study_dirs
            .iter()
            .filter(|(s, _)| *s == train)
            .map(|(_, id)| *id)
            .collect();
        for l in lab {
            let st = l.study.0;
            if csv.points.is_some() {
                for col in LabelColumn::all() {
                    if l.grades[col.index()].is_some()
                        && !seen.contains_key(&(st, col.condition, col.level))
                    {
                        push(
                            findings,
                            FindingKind::LabelWithoutPoint,
                            st,
                            None,
                            None,
                            format!("{st} {}: graded but no point", col.name()),
                        );
                    }
                }
            }
            if splits.contains(&train) && !train_studies.contains(&st) {
                push(
                    findings,
                    FindingKind::LabelsWithoutImages,
                    st,
                    None,
                    None,
                    format!("{st} is in train.csv but has no folder under train_images"),
                );
            }
        }
        for st in &train_studies {
            if !labels.contains_key(st) {
                push(
                    findings,
                    FindingKind::StudyWithoutLabels,
                    *st,
                    None,
                    None,
                    format!("train_images/{st} has no row in train.csv"),
                );
            }
        }
    }
}

fn shape(
    csv: &CsvData,
    study_dirs: &BTreeSet<(&'static str, u64)>,
    summaries: &HashMap<(&'static str, u64, u64), SeriesSummary>,
) -> Shape {
    let mut s = Shape {
        studies: study_dirs.len() as u64,
        series: summaries.len() as u64,
        ..Shape::default()
    };
    let mut slices: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut patterns: BTreeMap<(&str, u64), [u32; 3]> =
        study_dirs.iter().map(|&k| (k, [0; 3])).collect();
    for (&(split, study, series), sum) in summaries {
        s.files += sum.n_files;
        let kind = csv.descriptions.get(&(split, study, series));
        let name = kind.map(|k| k.as_str()).unwrap_or("none").to_string();
        if let Some(k) = kind {
            if let Some(p) = patterns.get_mut(&(split, study)) {
                p[*k as usize] += 1;
            }
        }
        *s.series_per_kind.entry(name.clone()).or_default() += 1;
        slices
            .entry(name.clone())
            .or_default()
            .push(sum.n_readable as f64);
        if let Some((r, c)) = sum.matrix {
            *s.matrix_sizes
                .entry(name.clone())
                .or_default()
                .entry(format!("{r}x{c}"))
                .or_default() += 1;
        }
        *s.vendors
            .entry(sum.manufacturer.clone().unwrap_or_else(|| "unknown".into()))
            .or_default() += 1;
        *s.field_strengths
            .entry(
                sum.field_strength
                    .map(|v| format!("{v}"))
                    .unwrap_or_else(|| "unknown".into()),
            )
            .or_default() += 1;
        for (ts, n) in &sum.transfer_syntaxes {
            *s.transfer_syntaxes.entry(ts.clone()).or_default() += n;
        }
    }
    for (_, p) in patterns {
        *s.series_count_patterns
            .entry(format!("({},{},{})", p[0], p[1], p[2]))
            .or_default() += 1;
    }
    s.slices_per_series = slices
        .into_iter()
        .filter_map(|(k, mut v)| MinMedMax::of(&mut v).map(|m| (k, m)))
        .collect();
    if let Some(labels) = &csv.labels {
        s.labelled_studies = labels.len() as u64;
        s.labels = LabelColumn::all()
            .iter()
            .map(|c| {
                let mut lc = LabelCounts {
                    condition: c.condition,
                    level: c.level,
                    normal_mild: 0,
                    moderate: 0,
                    severe: 0,
                    missing: 0,
                };
                for l in labels {
                    match l.grades[c.index()] {
                        None => lc.missing += 1,
                        Some(discus_core::Severity::NormalMild) => lc.normal_mild += 1,
                        Some(discus_core::Severity::Moderate) => lc.moderate += 1,
                        Some(discus_core::Severity::Severe) => lc.severe += 1,
                    }
                }
                lc
            })
            .collect();
        let severe = labels
            .iter()
            .filter(|l| {
                Level::ALL.iter().any(|&lv| {
                    l.get(Condition::SpinalCanalStenosis, lv) == Some(discus_core::Severity::Severe)
                })
            })
            .count();
        s.severe_spinal_share = (!labels.is_empty()).then(|| severe as f64 / labels.len() as f64);
    }
    s.points = csv.points.as_ref().map(|p| p.len() as u64).unwrap_or(0);
    s
}

// ---------------------------------------------------------------------------------------------
// HTML

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn count_table(title: &str, m: &BTreeMap<String, u64>) -> String {
    let total: u64 = m.values().sum::<u64>().max(1);
    let mut rows: Vec<(&String, &u64)> = m.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut h = format!(
        "<h3>{}</h3><table><tr><th></th><th>count</th><th></th></tr>",
        esc(title)
    );
    for (k, n) in rows {
        let w = (*n as f64 / total as f64 * 200.0).round();
        h += &format!(
            "<tr><td>{}</td><td class=n>{n}</td><td><span class=bar style=\"width:{w}px\"></span></td></tr>",
            esc(k)
        );
    }
    h + "</table>"
}

/// A self-contained HTML page (no external resources) with the shape tables and the findings.
pub fn render_html(r: &Report) -> String {
    let s = &r.shape;
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=utf-8><title>discus validate</title><style>\
         body{font:14px system-ui,sans-serif;margin:2em;max-width:1100px}\
         table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}\
         td.n{text-align:right;font-variant-numeric:tabular-nums}.bar{display:inline-block;height:10px;background:#4a7bd0}\
         .error{color:#b00020}.warning{color:#a66300}.info{color:#555}details{margin:.3em 0}\
         </style></head><body>",
    );
    h += &format!(
        "<h1>discus validate</h1><p>{}: {} files in {} series of {} studies; {} headers read, {} from the index, {:.1} s.</p>",
        esc(&r.root.display().to_string()),
        r.scan.files,
        r.scan.series,
        s.studies,
        r.scan.files_read,
        r.scan.files_reused,
        r.scan.seconds
    );
    h += "<h2>Dataset card</h2>";
    match &r.card {
        None => {
            h += "<p class=warning>no dataset.toml: licence and permitted uses unknown</p>";
        }
        Some(c) => {
            let uses: Vec<&str> = c
                .licence
                .permitted_uses
                .iter()
                .map(|u| u.as_str())
                .collect();
            let mut rows = vec![
                ("name", c.name.clone()),
                ("source", c.source.clone()),
                ("licence", c.licence.name.clone()),
                ("permitted uses", uses.join(", ")),
                (
                    "citation required",
                    if c.licence.citation_required {
                        "yes"
                    } else {
                        "no"
                    }
                    .to_string(),
                ),
                (
                    "de-identification",
                    format!(
                        "{}{}",
                        if c.deidentification.applied {
                            "applied"
                        } else {
                            "not applied"
                        },
                        c.deidentification
                            .method
                            .as_ref()
                            .map(|m| format!(" ({m})"))
                            .unwrap_or_default()
                    ),
                ),
            ];
            if !c.sites.is_empty() {
                rows.push(("sites", c.sites.join(", ")));
            }
            for cite in c.citations() {
                rows.push(("cite", cite));
            }
            h += "<table>";
            for (k, v) in rows {
                h += &format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
            }
            h += "</table>";
        }
    }
    h += &format!(
        "<h2>Findings</h2><p><span class=error>{} errors</span>, <span class=warning>{} warnings</span>, <span class=info>{} info</span></p>",
        r.count(FindingSeverity::Error),
        r.count(FindingSeverity::Warning),
        r.count(FindingSeverity::Info)
    );
    let mut groups: Vec<_> = r.by_kind().into_iter().collect();
    groups.sort_by_key(|(k, _)| (k.severity(), *k));
    for (kind, list) in groups {
        h += &format!(
            "<details><summary class={sev}><b>{sev}</b> {kind} ({n})</summary><table><tr><th>study</th><th>series</th><th>instance</th><th>message</th></tr>",
            sev = kind.severity().as_str(),
            n = list.len()
        );
        for f in list.iter().take(1000) {
            let o = |v: Option<String>| v.unwrap_or_default();
            h += &format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                o(f.study.map(|x| x.to_string())),
                o(f.series.map(|x| x.to_string())),
                o(f.instance.map(|x| x.to_string())),
                esc(&f.message)
            );
        }
        if list.len() > 1000 {
            h += &format!(
                "<tr><td colspan=4>... and {} more (see the JSON report)</td></tr>",
                list.len() - 1000
            );
        }
        h += "</table></details>";
    }
    h += "<h2>Shape</h2>";
    h += &count_table("Series per type", &s.series_per_kind);
    h += &count_table(
        "Studies by (Sagittal T1, Sagittal T2/STIR, Axial T2) series",
        &s.series_count_patterns,
    );
    h += "<h3>Slices per series</h3><table><tr><th>type</th><th>series</th><th>min</th><th>median</th><th>max</th></tr>";
    for (k, m) in &s.slices_per_series {
        h += &format!(
            "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            esc(k),
            m.count,
            m.min,
            m.median,
            m.max
        );
    }
    h += "</table>";
    for (k, m) in &s.matrix_sizes {
        h += &count_table(&format!("Matrix sizes (rows x columns), {k}"), m);
    }
    h += &count_table("Vendors (series)", &s.vendors);
    h += &count_table("Field strength, tesla (series)", &s.field_strengths);
    h += &count_table("Transfer syntaxes (files)", &s.transfer_syntaxes);
    if !s.labels.is_empty() {
        h += &format!(
            "<h3>Labels: {} studies, {} points</h3><p>Normal/Mild / Moderate / Severe / missing</p><table><tr><th>level</th>",
            s.labelled_studies, s.points
        );
        for c in Condition::ALL {
            h += &format!("<th>{}</th>", c.words());
        }
        h += "</tr>";
        for lv in Level::ALL {
            h += &format!("<tr><td>{}</td>", lv.key());
            for c in Condition::ALL {
                let x = &s.labels[c.index() * 5 + lv.index()];
                h += &format!(
                    "<td class=n>{}/{}/{}/{}</td>",
                    x.normal_mild, x.moderate, x.severe, x.missing
                );
            }
            h += "</tr>";
        }
        h += "</table>";
        if let Some(share) = s.severe_spinal_share {
            h += &format!(
                "<p>Studies with at least one Severe spinal level: {:.1}%</p>",
                share * 100.0
            );
        }
    }
    h + "</body></html>\n"
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
