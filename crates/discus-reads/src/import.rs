//! A reader's reads in and out of the LumbarDISC CSV shapes: a `train.csv` (grades) and a
//! `train_label_coordinates.csv` (points) per reader.
//!
//! # Checks
//! Every row is checked before anything is stored: the CSV shape and spellings (a grade must be
//! `Normal/Mild`, `Moderate` or `Severe`; levels `L1/L2`..`L5/S1`), and, when a [`Catalog`] of the
//! dataset is given, that the study is in the dataset, that the point's series belongs to that study,
//! and that the point lies on the image (from the instance's DICOM header). Each problem names the
//! file and line.
//!
//! # All or nothing
//! An import records every read of the file pair, or nothing. A reader's file is one reading session:
//! importing only its good rows would leave that reader with a partial set of reads that agreement and
//! consensus would silently treat as complete, and after the file is fixed the re-import would then
//! mix two versions. Refusing the whole file (with every bad line listed) keeps the workflow simple:
//! fix the file, run the import again.
//!
//! # Idempotence
//! The import is recorded under a content hash of both files (with the reader and round), in the same
//! transaction as its reads, so running the same import again records nothing, and an import that was
//! interrupted (the process killed) left nothing and can simply be run again. A corrected file has
//! another hash: its reads are appended and, being later, become the reader's current reads.

use crate::geometry::{DatasetSlices, SliceError, SliceLookup};
use crate::store::{
    ImportOutcome, Point, ReadEvent, ReadsStore, RoundKind, StoreError, StoredRead,
};
use discus_core::formats::{
    parse_coordinates, parse_train, write_coordinates, write_train, CsvFile, FormatError,
    LabelPoint, LineEnding, RowError, StudyLabels,
};
use discus_core::layout::Split;
use discus_core::RowId;
use discus_core::{Condition, LabelColumn, Level, SeriesId, Severity, StudyId};
use discus_data::dataset::Dataset;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// One bad line of an input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    /// The input file.
    pub path: PathBuf,
    /// The 1-based line.
    pub line: u64,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: line {}: {}",
            self.path.display(),
            self.line,
            self.message
        )
    }
}

/// Why an import failed; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// An input file is unreadable or has the wrong header.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// An input file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Some lines are bad; each is listed and nothing was imported.
    #[error("{} bad line(s); nothing was imported:\n{}", .issues.len(), list(.issues))]
    Rows {
        /// Every bad line.
        issues: Vec<Issue>,
    },
    /// The store refused the import.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The dataset the reads refer to cannot be opened or has no series descriptions.
    #[error("{path}: {message}")]
    Dataset {
        /// The dataset root.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

fn list(issues: &[Issue]) -> String {
    const SHOW: usize = 50;
    let mut s: Vec<String> = issues.iter().take(SHOW).map(|i| format!("  {i}")).collect();
    if issues.len() > SHOW {
        s.push(format!("  ... and {} more", issues.len() - SHOW));
    }
    s.join("\n")
}

/// What is known of the dataset the reads are about: its studies and their series (from the series
/// descriptions) and where to find each slice's geometry (for points inside the image).
pub struct Catalog {
    series: HashMap<StudyId, HashSet<SeriesId>>,
    slices: Box<dyn SliceLookup + Send>,
}

impl Catalog {
    /// A catalog from known series and a slice lookup.
    pub fn new(
        series: HashMap<StudyId, HashSet<SeriesId>>,
        slices: Box<dyn SliceLookup + Send>,
    ) -> Self {
        Catalog { series, slices }
    }

    /// The catalog of a LumbarDISC-layout dataset, through its index (built or refreshed when
    /// missing or stale): studies and series from the series descriptions, slice geometry from the
    /// indexed headers.
    pub fn from_dataset(root: &Path) -> Result<Self, ImportError> {
        let bad = |message: String| ImportError::Dataset {
            path: root.to_path_buf(),
            message,
        };
        let ds = Dataset::open(root).map_err(|e| bad(e.to_string()))?;
        let mut series: HashMap<StudyId, HashSet<SeriesId>> = HashMap::new();
        for d in ds.descriptions().map_err(|e| bad(e.to_string()))? {
            series.entry(d.study).or_default().insert(d.series);
        }
        if series.is_empty() {
            return Err(bad(format!(
                "no series descriptions ({} or {})",
                Split::Train.descriptions_file(),
                Split::Test.descriptions_file()
            )));
        }
        Ok(Catalog {
            series,
            slices: Box::new(DatasetSlices::new(ds)),
        })
    }

    /// Whether the study is in the dataset.
    pub fn knows_study(&self, study: StudyId) -> bool {
        self.series.contains_key(&study)
    }

    /// The slice geometry lookup of the dataset's images.
    pub fn slices(&self) -> &(dyn SliceLookup + Send) {
        self.slices.as_ref()
    }

    pub(crate) fn check_point(&self, p: &LabelPoint) -> Result<(), String> {
        let Some(series) = self.series.get(&p.study) else {
            return Err(format!("study {} is not in the dataset", p.study));
        };
        if !series.contains(&p.series) {
            return Err(format!(
                "series {} is not a series of study {}",
                p.series, p.study
            ));
        }
        let point = Point {
            series: p.series,
            instance: p.instance,
            x: p.x,
            y: p.y,
        };
        match self.slices.slice(p.study, &point) {
            Ok(s) if s.geometry.contains_pixel(p.x, p.y) => Ok(()),
            Ok(s) => Err(format!(
                "point ({}, {}) is outside the image of instance {} ({} columns x {} rows)",
                p.x, p.y, p.instance, s.geometry.columns, s.geometry.rows
            )),
            Err(e @ SliceError::NotFound { .. }) | Err(e @ SliceError::Unreadable { .. }) => {
                Err(e.to_string())
            }
        }
    }
}

/// A hash of the import's content, for idempotent re-import (not a security hash): two FNV-1a 64-bit
/// hashes with different offsets over the length-prefixed parts, as 32 hex digits.
pub fn content_hash(parts: &[&[u8]]) -> String {
    let mut h1: u64 = 0xcbf2_9ce4_8422_2325;
    let mut h2: u64 = 0x6c62_272e_07bb_0142;
    let mut feed = |b: u8| {
        h1 = (h1 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        h2 = (h2 ^ u64::from(b))
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(17);
    };
    for p in parts {
        for b in (p.len() as u64).to_le_bytes() {
            feed(b);
        }
        for &b in *p {
            feed(b);
        }
    }
    format!("{h1:016x}{h2:016x}")
}

/// Pairs each parsed row with the line it starts on, and keeps the row errors.
fn with_lines<T>(file: CsvFile<T>) -> (Vec<(u64, T)>, Vec<RowError>) {
    (file.lines.into_iter().zip(file.rows).collect(), file.errors)
}

/// What one import did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    /// The reader's name.
    pub reader: String,
    /// The round's name.
    pub round: String,
    /// Whether anything was recorded, and the import id.
    pub outcome: ImportOutcome,
    /// Studies with at least one read in the files.
    pub studies: usize,
    /// Reads carrying a grade.
    pub grades: usize,
    /// Reads carrying a point.
    pub points: usize,
}

/// One reader's file pair to import.
pub struct ImportRequest<'a> {
    /// The reader's name (created in the store when new).
    pub reader: &'a str,
    /// The round's name (created in the store when new).
    pub round: &'a str,
    /// The round's kind; must match the round's stored kind when it exists.
    pub round_kind: RoundKind,
    /// The reader's grades in train.csv shape.
    pub train: &'a Path,
    /// The reader's points in train_label_coordinates.csv shape, if any.
    pub coordinates: Option<&'a Path>,
    /// Seconds since the epoch to record; `None` takes the clock.
    pub at: Option<i64>,
}

/// Parses and checks a reader's files; the reads to record, or every problem found.
pub fn parse_reader_files(
    train: &Path,
    train_bytes: &[u8],
    coordinates: Option<(&Path, &[u8])>,
    catalog: Option<&Catalog>,
) -> Result<Vec<ReadEvent>, ImportError> {
    let mut issues = Vec::new();
    let issue = |path: &Path, line: u64, message: String| Issue {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut reads: BTreeMap<RowId, ReadEvent> = BTreeMap::new();
    let (rows, errors) = with_lines(parse_train(train_bytes, train)?);
    issues.extend(errors.into_iter().map(|e| issue(train, e.line, e.message)));
    let mut seen_studies: HashMap<StudyId, u64> = HashMap::new();
    for (line, row) in rows {
        if let Some(first) = seen_studies.insert(row.study, line) {
            issues.push(issue(
                train,
                line,
                format!("study {} again (first at line {first})", row.study),
            ));
            continue;
        }
        if let Some(c) = catalog {
            if !c.knows_study(row.study) {
                issues.push(issue(
                    train,
                    line,
                    format!("study {} is not in the dataset", row.study),
                ));
                continue;
            }
        }
        for col in LabelColumn::all() {
            if let Some(g) = row.grades[col.index()] {
                let key = RowId::new(row.study, col.condition, col.level);
                reads.insert(
                    key,
                    ReadEvent::new(row.study, col.condition, col.level).grade(g),
                );
            }
        }
    }
    if let Some((path, bytes)) = coordinates {
        let (rows, errors) = with_lines(parse_coordinates(bytes, path)?);
        issues.extend(errors.into_iter().map(|e| issue(path, e.line, e.message)));
        let mut seen: HashMap<RowId, u64> = HashMap::new();
        for (line, p) in rows {
            let key = RowId::new(p.study, p.condition, p.level);
            if let Some(first) = seen.insert(key, line) {
                issues.push(issue(
                    path,
                    line,
                    format!(
                        "a second point for study {} {} {} (first at line {first})",
                        p.study,
                        p.condition.words(),
                        p.level.words()
                    ),
                ));
                continue;
            }
            if let Some(c) = catalog {
                if let Err(m) = c.check_point(&p) {
                    issues.push(issue(path, line, m));
                    continue;
                }
            }
            let point = Point {
                series: p.series,
                instance: p.instance,
                x: p.x,
                y: p.y,
            };
            reads
                .entry(key)
                .or_insert_with(|| ReadEvent::new(p.study, p.condition, p.level))
                .point = Some(point);
        }
    }
    if !issues.is_empty() {
        issues.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
        return Err(ImportError::Rows { issues });
    }
    Ok(reads.into_values().collect())
}

/// Imports one reader's file pair: all or nothing, and a no-op when already imported. `progress`
/// counts the reads recorded; cancelling it rolls the import back.
pub fn import_reader(
    store: &mut ReadsStore,
    catalog: Option<&Catalog>,
    req: &ImportRequest<'_>,
    progress: &discus_core::progress::Progress,
) -> Result<ImportReport, ImportError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| ImportError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let train_bytes = read(req.train)?;
    let coord_bytes = req.coordinates.map(read).transpose()?;
    let reads = parse_reader_files(
        req.train,
        &train_bytes,
        req.coordinates.zip(coord_bytes.as_deref()),
        catalog,
    )?;
    let hash = content_hash(&[
        b"train",
        &train_bytes,
        b"coordinates",
        coord_bytes.as_deref().unwrap_or(b""),
    ]);
    let reader = store.reader(req.reader)?;
    let round = store.round(req.round, req.round_kind)?;
    let source = match req.coordinates {
        Some(c) => format!("{} + {}", req.train.display(), c.display()),
        None => req.train.display().to_string(),
    };
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

/// A label to write: a finding's grade and point.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// The finding.
    pub key: RowId,
    /// Its grade; `None` leaves the train.csv cell empty.
    pub grade: Option<Severity>,
    /// Its point; `None` writes no coordinates row.
    pub point: Option<Point>,
}

/// Labels as the rows of train.csv and train_label_coordinates.csv (studies in id order, points in
/// study, condition, level order).
pub fn labels_to_rows(labels: &[Label]) -> (Vec<StudyLabels>, Vec<LabelPoint>) {
    let mut studies: BTreeMap<StudyId, StudyLabels> = BTreeMap::new();
    let mut points = Vec::new();
    let mut sorted: Vec<&Label> = labels.iter().collect();
    sorted.sort_by_key(|l| l.key);
    for l in sorted {
        let row = studies
            .entry(l.key.study)
            .or_insert_with(|| StudyLabels::empty(l.key.study));
        if l.grade.is_some() {
            row.set(l.key.condition(), l.key.level(), l.grade);
        }
        if let Some(p) = l.point {
            points.push(LabelPoint {
                study: l.key.study,
                series: p.series,
                instance: p.instance,
                condition: l.key.condition(),
                level: l.key.level(),
                x: p.x,
                y: p.y,
            });
        }
    }
    (studies.into_values().collect(), points)
}

/// Writes labels as `<dir>/train.csv` and `<dir>/train_label_coordinates.csv` (atomically).
pub fn write_labels(dir: &Path, labels: &[Label]) -> Result<(PathBuf, PathBuf), ImportError> {
    let (rows, points) = labels_to_rows(labels);
    let layout = discus_core::layout::Layout::new(dir);
    let (t, c) = (layout.train_csv(), layout.coordinates_csv());
    write_train(&t, &rows, LineEnding::Lf)?;
    write_coordinates(&c, &points, LineEnding::Lf)?;
    Ok((t, c))
}

/// The current reads of one reader in one round as labels.
pub fn reader_labels(reads: &[StoredRead], reader: &str, round: &str) -> Vec<Label> {
    reads
        .iter()
        .filter(|r| r.reader_name == reader && r.round_name == round)
        .map(|r| Label {
            key: r.key,
            grade: r.grade,
            point: r.point,
        })
        .collect()
}

/// Parses a finding key from a submission-style row id (`<study>_<condition>_<level>`), ignoring
/// surrounding white space; the error names the bad row id.
pub fn parse_row_id(s: &str) -> Result<RowId, discus_core::types::ParseDomainError> {
    RowId::parse_trimmed(s)
}

/// The row id of a finding.
pub fn row_id(key: RowId) -> String {
    discus_core::RowId::new(key.study, key.condition(), key.level()).to_string()
}

/// Condition and level spelled as in train_label_coordinates.csv, for messages.
pub fn finding_words(key: RowId) -> String {
    let _: (Condition, Level) = (key.condition(), key.level());
    format!(
        "{} {} {}",
        key.study,
        key.condition().words(),
        key.level().words()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::KnownSlices;
    use discus_data::geometry::SliceGeometry;

    fn header() -> String {
        let mut h = vec!["study_id".to_string()];
        h.extend(LabelColumn::all().iter().map(|c| c.name()));
        h.join(",")
    }

    fn row(study: u64, first: &str) -> String {
        let mut cells = vec![study.to_string(), first.to_string()];
        cells.extend(std::iter::repeat_n(String::new(), 24));
        cells.join(",")
    }

    fn catalog() -> Catalog {
        let mut series = HashMap::new();
        series.insert(StudyId(10), HashSet::from([SeriesId(100)]));
        let mut k = KnownSlices::default();
        let g = SliceGeometry::new(
            [0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0, 0.0, -1.0],
            [1.0, 1.0],
            200,
            300,
        )
        .unwrap();
        k.insert(StudyId(10), 100, 3, g);
        Catalog::new(series, Box::new(k))
    }

    const COORD_HEAD: &str = "study_id,series_id,instance_number,condition,level,x,y";

    #[test]
    fn good_files_give_reads() {
        let train = format!("{}\n{}\n", header(), row(10, "Moderate"));
        let coords = format!(
            "{COORD_HEAD}\n10,100,3,Spinal Canal Stenosis,L1/L2,150.5,99.0\n10,100,3,Spinal Canal Stenosis,L2/L3,1.0,2.0\n"
        );
        let reads = parse_reader_files(
            "t.csv".as_ref(),
            train.as_bytes(),
            Some(("c.csv".as_ref(), coords.as_bytes())),
            Some(&catalog()),
        )
        .unwrap();
        assert_eq!(reads.len(), 2);
        assert_eq!(reads[0].grade, Some(Severity::Moderate));
        assert_eq!(reads[0].point.unwrap().x, 150.5);
        // A point without a grade is kept as such.
        assert_eq!(reads[1].grade, None);
        assert!(reads[1].point.is_some());
    }

    #[test]
    fn bad_lines_are_named_and_nothing_is_returned() {
        let train = format!(
            "{}\n{}\n\n{}\n{}\n",
            header(),
            row(10, "Moderate"),
            row(11, "Severe"),
            row(10, "moderate")
        );
        let coords = format!(
            "{COORD_HEAD}\n10,100,3,Spinal Canal Stenosis,L6/L7,1.0,1.0\n10,100,3,Spinal Canal Stenosis,L1/L2,300.0,10.0\n10,999,3,Spinal Canal Stenosis,L3/L4,1.0,1.0\n10,100,4,Spinal Canal Stenosis,L4/L5,1.0,1.0\n"
        );
        let err = parse_reader_files(
            "t.csv".as_ref(),
            train.as_bytes(),
            Some(("c.csv".as_ref(), coords.as_bytes())),
            Some(&catalog()),
        )
        .unwrap_err();
        let ImportError::Rows { issues } = &err else {
            panic!("{err}")
        };
        let text: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
        let has = |file: &str, line: u64, what: &str| {
            assert!(
                text.iter()
                    .any(|t| t.starts_with(&format!("{file}: line {line}: ")) && t.contains(what)),
                "{file}:{line} {what} not in {text:#?}"
            )
        };
        has("t.csv", 4, "study 11 is not in the dataset");
        has("t.csv", 5, "\"moderate\"");
        has("c.csv", 2, "L6/L7");
        has("c.csv", 3, "outside the image");
        has("c.csv", 4, "series 999 is not a series of study 10");
        has("c.csv", 5, "no such image");
        assert_eq!(issues.len(), 6, "{text:#?}");
        assert!(err.to_string().contains("nothing was imported"));
    }

    #[test]
    fn content_hash_depends_on_every_part() {
        let a = content_hash(&[b"ab", b"c"]);
        assert_eq!(a, content_hash(&[b"ab", b"c"]));
        assert_ne!(a, content_hash(&[b"a", b"bc"]));
        assert_ne!(a, content_hash(&[b"ab", b"d"]));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn row_ids_round_trip() {
        let k = parse_row_id("44036939_spinal_canal_stenosis_l3_l4").unwrap();
        assert_eq!(row_id(k), "44036939_spinal_canal_stenosis_l3_l4");
        assert!(parse_row_id("1_spinal_l3_l4").is_err());
    }
}
