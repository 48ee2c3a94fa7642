//! The LumbarDISC CSV files: `train.csv`, `train_label_coordinates.csv`, `*_series_descriptions.csv`
//! and submissions, read and written with exact round-trips.
//!
//! Reading is lenient row by row and strict about the file: an unreadable file or a wrong header is an
//! error ([`FormatError`]); a bad row is kept aside as a [`RowError`] naming its line, so one bad row
//! among thousands is reported and the rest are read. Call [`CsvFile::strict`] where any bad row must
//! stop the work.
//!
//! Writing reproduces the file: the same line ending as was read (CRLF or LF), empty cells for missing
//! values, and numbers printed the way Python (which wrote the real files) prints them, so that reading
//! and writing an unchanged real file gives the same bytes.
//!
//! ```
//! use discus_core::formats::{parse_train, LineEnding};
//! let text = "study_id,spinal_canal_stenosis_l1_l2\r\n7,Severe\r\n";
//! // A file with fewer than the 25 label columns is refused, with the reason.
//! assert!(parse_train(text.as_bytes(), "train.csv".as_ref()).is_err());
//! ```

use crate::fsio::atomic_write;
use crate::types::{
    Condition, LabelColumn, Level, ParseDomainError, RowId, SeriesId, SeriesKind, Severity, StudyId,
};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Line ending of a CSV file, detected from its first line and reproduced on writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum LineEnding {
    /// `\n` line endings.
    #[default]
    Lf,
    /// `\r\n` line endings.
    Crlf,
}

impl LineEnding {
    /// The line ending of the first line of `bytes`; LF when there is no CRLF before the first `\n`.
    pub fn detect(bytes: &[u8]) -> Self {
        match bytes.iter().position(|&b| b == b'\n') {
            Some(i) if i > 0 && bytes[i - 1] == b'\r' => LineEnding::Crlf,
            _ => LineEnding::Lf,
        }
    }
    fn terminator(self) -> csv::Terminator {
        match self {
            LineEnding::Lf => csv::Terminator::Any(b'\n'),
            LineEnding::Crlf => csv::Terminator::CRLF,
        }
    }
}

/// A file-level error: the file cannot be read at all, or its header is not the expected one.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file has no header line.
    #[error("{path}: the file is empty (expected a header line: {expected})")]
    Empty {
        /// The file.
        path: PathBuf,
        /// The expected header, comma-joined.
        expected: String,
    },
    /// The header line is not the expected one.
    #[error("{path}: line 1: bad header: {message}")]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong with the header.
        message: String,
    },
    /// One row could not be read ([`CsvFile::strict`] with exactly one bad row).
    #[error("{path}: line {line}: {message}")]
    Row {
        /// The file.
        path: PathBuf,
        /// The 1-based line the bad row starts on.
        line: u64,
        /// Why the row was refused.
        message: String,
    },
    /// Several rows could not be read ([`CsvFile::strict`]); the first is named.
    #[error("{path}: {count} bad rows; first at line {line}: {message}")]
    Rows {
        /// The file.
        path: PathBuf,
        /// The number of bad rows.
        count: usize,
        /// The 1-based line of the first bad row.
        line: u64,
        /// Why the first bad row was refused.
        message: String,
    },
}

/// One row that could not be read, with its 1-based line number in the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowError {
    /// The 1-based line the row starts on.
    pub line: u64,
    /// Why the row was refused.
    pub message: String,
}

/// The rows of one CSV file, the rows that failed, and the file's line ending.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvFile<T> {
    /// The file the rows were read from.
    pub path: PathBuf,
    /// The rows that were read, in file order.
    pub rows: Vec<T>,
    /// The 1-based line each of `rows` starts on (same length as `rows`).
    pub lines: Vec<u64>,
    /// The rows that could not be read, in file order.
    pub errors: Vec<RowError>,
    /// The file's line ending, reproduced when writing it back.
    pub line_ending: LineEnding,
}

impl<T> CsvFile<T> {
    /// The rows, or an error naming the first bad row when any row failed.
    pub fn strict(self) -> Result<Vec<T>, FormatError> {
        match self.errors.first() {
            None => Ok(self.rows),
            Some(e) if self.errors.len() == 1 => Err(FormatError::Row {
                path: self.path,
                line: e.line,
                message: e.message.clone(),
            }),
            Some(e) => Err(FormatError::Rows {
                path: self.path.clone(),
                count: self.errors.len(),
                line: e.line,
                message: e.message.clone(),
            }),
        }
    }
}

/// The grades of one study: the 25 label columns in train.csv order; `None` is an empty cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudyLabels {
    /// The study (`study_id`).
    pub study: StudyId,
    /// The 25 grades, indexed by [`LabelColumn::index`]; `None` is an empty cell.
    pub grades: [Option<Severity>; 25],
}

impl StudyLabels {
    /// A study with every grade empty.
    pub fn empty(study: StudyId) -> Self {
        StudyLabels {
            study,
            grades: [None; 25],
        }
    }
    /// The grade of `condition` at `level`; `None` when the cell is empty.
    pub fn get(&self, condition: Condition, level: Level) -> Option<Severity> {
        self.grades[LabelColumn { condition, level }.index()]
    }
    /// Sets the grade of `condition` at `level` (`None` empties the cell).
    pub fn set(&mut self, condition: Condition, level: Level, grade: Option<Severity>) {
        self.grades[LabelColumn { condition, level }.index()] = grade;
    }
}

/// One row of train_label_coordinates.csv.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelPoint {
    /// `study_id`.
    pub study: StudyId,
    /// `series_id`: the series the point was placed on.
    pub series: SeriesId,
    /// `instance_number`: the DICOM Instance Number (0020,0013) of the image the point is on.
    pub instance: u32,
    /// `condition`, spelt in words (`Spinal Canal Stenosis`).
    pub condition: Condition,
    /// `level`, spelt in words (`L1/L2`).
    pub level: Level,
    /// Column, in pixels, on that instance.
    pub x: f64,
    /// Row, in pixels, on that instance.
    pub y: f64,
}

/// One row of train_series_descriptions.csv / test_series_descriptions.csv.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesDescription {
    /// `study_id`.
    pub study: StudyId,
    /// `series_id`.
    pub series: SeriesId,
    /// `series_description`: the series kind.
    pub kind: SeriesKind,
}

/// One row of a submission: probabilities of Normal/Mild, Moderate, Severe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmissionRow {
    /// `row_id`: `<study_id>_<condition>_<level>`.
    pub row_id: RowId,
    /// `normal_mild`, `moderate`, `severe`, as given (not necessarily normalised).
    pub probs: [f64; 3],
}

/// The first column of train.csv; the 25 label columns follow in [`LabelColumn::all`] order.
pub const TRAIN_FIRST: &str = "study_id";
/// The header of train_label_coordinates.csv.
pub const COORD_HEADER: [&str; 7] = [
    "study_id",
    "series_id",
    "instance_number",
    "condition",
    "level",
    "x",
    "y",
];
/// The header of `*_series_descriptions.csv`.
pub const DESC_HEADER: [&str; 3] = ["study_id", "series_id", "series_description"];
/// The header of a submission (sample_submission.csv).
pub const SUBMISSION_HEADER: [&str; 4] = ["row_id", "normal_mild", "moderate", "severe"];

/// Formats a float the way Python's `repr` does for the values these files hold: the shortest text
/// that reads back to the same number, with `.0` on whole numbers.
pub fn fmt_float(v: f64) -> String {
    if v.is_finite() && v == v.trunc() && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        // Rust's Debug output is the shortest round-trip representation, as Python's repr.
        let s = format!("{v:?}");
        // Python writes exponents with at least two digits and a sign (1e-07, 1e+16).
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = match e.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', e),
                };
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    }
}

fn read_all(path: &Path) -> Result<Vec<u8>, FormatError> {
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .map_err(|source| FormatError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(buf)
}

/// Reads the header and hands each record (with its line number) to `row`.
fn parse_rows<T, H>(
    bytes: &[u8],
    path: &Path,
    expected: &str,
    header: impl FnOnce(&csv::StringRecord) -> Result<H, String>,
    mut row: impl FnMut(&H, &csv::StringRecord) -> Result<T, String>,
) -> Result<CsvFile<T>, FormatError> {
    let path_buf = path.to_path_buf();
    // A UTF-8 byte-order mark is tolerated (spreadsheet exports add one).
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(FormatError::Empty {
            path: path_buf,
            expected: expected.to_string(),
        });
    }
    let line_ending = LineEnding::detect(bytes);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    let h = rdr.headers().map_err(|e| FormatError::Header {
        path: path_buf.clone(),
        message: e.to_string(),
    })?;
    let h_state = header(h).map_err(|message| FormatError::Header {
        path: path_buf.clone(),
        message,
    })?;
    let width = h.len();
    let mut rows = Vec::new();
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map(|p| real_line(bytes, p)).unwrap_or(0);
                if record.len() == 1 && record.get(0) == Some("") {
                    continue; // a blank line
                }
                if record.len() != width {
                    errors.push(RowError {
                        line,
                        message: format!("{} cells where the header has {width}", record.len()),
                    });
                    continue;
                }
                match row(&h_state, &record) {
                    Ok(v) => {
                        rows.push(v);
                        lines.push(line);
                    }
                    Err(message) => errors.push(RowError { line, message }),
                }
            }
            Err(e) => {
                let line = e.position().map(|p| real_line(bytes, p)).unwrap_or(0);
                errors.push(RowError {
                    line,
                    message: e.to_string(),
                });
                if !matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) {
                    break;
                }
            }
        }
    }
    Ok(CsvFile {
        path: path_buf,
        rows,
        lines,
        errors,
        line_ending,
    })
}

/// The line a record really starts on. The csv reader counts blank lines before a record into the
/// record's position (its byte offset and line point at the first blank line), so skip them here.
fn real_line(bytes: &[u8], p: &csv::Position) -> u64 {
    let mut line = p.line();
    let mut b = p.byte() as usize;
    while b < bytes.len() && (bytes[b] == b'\n' || bytes[b] == b'\r') {
        line += u64::from(bytes[b] == b'\n');
        b += 1;
    }
    line
}

fn check_header(h: &csv::StringRecord, expected: &[&str]) -> Result<(), String> {
    let got: Vec<&str> = h.iter().collect();
    if got == expected {
        Ok(())
    } else {
        Err(format!(
            "expected columns {} but found {}",
            expected.join(","),
            got.join(",")
        ))
    }
}

fn field(r: &csv::StringRecord, i: usize) -> &str {
    r.get(i).unwrap_or("")
}

fn domain(e: ParseDomainError) -> String {
    e.to_string()
}

fn parse_f64(s: &str, what: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .map_err(|_| format!("{what} {s:?} is not a number"))
}

/// Parses train.csv from bytes. Columns may come in any order; each of the 25 must be there once.
pub fn parse_train(bytes: &[u8], path: &Path) -> Result<CsvFile<StudyLabels>, FormatError> {
    let expected = "study_id and the 25 <condition>_<level> columns";
    parse_rows(
        bytes,
        path,
        expected,
        |h| {
            if h.get(0) != Some(TRAIN_FIRST) {
                return Err(format!(
                    "first column must be study_id, found {:?}",
                    h.get(0).unwrap_or("")
                ));
            }
            let mut seen = [false; 25];
            // header position -> label column index
            let mut order: Vec<usize> = Vec::new();
            for name in h.iter().skip(1) {
                let col = LabelColumn::parse(name).map_err(|e| {
                    format!(
                        "column {name:?} is not a condition and level ({})",
                        e.expected
                    )
                })?;
                if std::mem::replace(&mut seen[col.index()], true) {
                    return Err(format!("column {name:?} appears twice"));
                }
                order.push(col.index());
            }
            let missing: Vec<String> = LabelColumn::all()
                .iter()
                .filter(|c| !seen[c.index()])
                .map(|c| c.name())
                .collect();
            if !missing.is_empty() {
                return Err(format!("missing columns: {}", missing.join(", ")));
            }
            Ok(order)
        },
        |order, r| {
            let study: StudyId = field(r, 0).parse().map_err(domain)?;
            let mut labels = StudyLabels::empty(study);
            for (pos, &col) in order.iter().enumerate() {
                let cell = field(r, pos + 1);
                if !cell.is_empty() {
                    labels.grades[col] = Some(cell.parse().map_err(|e: ParseDomainError| {
                        format!(
                            "{}: {}",
                            LabelColumn::from_index(col).expect("index < 25").name(),
                            e
                        )
                    })?);
                }
            }
            Ok(labels)
        },
    )
}

/// Reads train.csv (or a reader's grades in the same shape).
pub fn read_train(path: &Path) -> Result<CsvFile<StudyLabels>, FormatError> {
    parse_train(&read_all(path)?, path)
}

/// Parses the bytes of train_label_coordinates.csv; `path` names the file in errors.
pub fn parse_coordinates(bytes: &[u8], path: &Path) -> Result<CsvFile<LabelPoint>, FormatError> {
    parse_rows(
        bytes,
        path,
        &COORD_HEADER.join(","),
        |h| check_header(h, &COORD_HEADER),
        |_, r| {
            let x = parse_f64(field(r, 5), "x")?;
            let y = parse_f64(field(r, 6), "y")?;
            if !x.is_finite() || !y.is_finite() {
                return Err(format!("point ({x}, {y}) is not finite"));
            }
            Ok(LabelPoint {
                study: field(r, 0).parse().map_err(domain)?,
                series: field(r, 1).parse().map_err(domain)?,
                instance: field(r, 2).parse().map_err(|_| {
                    format!(
                        "instance_number {:?} is not a non-negative integer",
                        field(r, 2)
                    )
                })?,
                condition: Condition::from_words(field(r, 3)).map_err(domain)?,
                level: Level::from_words(field(r, 4)).map_err(domain)?,
                x,
                y,
            })
        },
    )
}

/// Reads train_label_coordinates.csv.
pub fn read_coordinates(path: &Path) -> Result<CsvFile<LabelPoint>, FormatError> {
    parse_coordinates(&read_all(path)?, path)
}

/// Parses the bytes of a `*_series_descriptions.csv`; `path` names the file in errors.
pub fn parse_series_descriptions(
    bytes: &[u8],
    path: &Path,
) -> Result<CsvFile<SeriesDescription>, FormatError> {
    parse_rows(
        bytes,
        path,
        &DESC_HEADER.join(","),
        |h| check_header(h, &DESC_HEADER),
        |_, r| {
            Ok(SeriesDescription {
                study: field(r, 0).parse().map_err(domain)?,
                series: field(r, 1).parse().map_err(domain)?,
                kind: field(r, 2).parse().map_err(domain)?,
            })
        },
    )
}

/// Reads train_series_descriptions.csv or test_series_descriptions.csv.
pub fn read_series_descriptions(path: &Path) -> Result<CsvFile<SeriesDescription>, FormatError> {
    parse_series_descriptions(&read_all(path)?, path)
}

/// Parses the bytes of a submission CSV; `path` names the file in errors.
pub fn parse_submission(bytes: &[u8], path: &Path) -> Result<CsvFile<SubmissionRow>, FormatError> {
    parse_rows(
        bytes,
        path,
        &SUBMISSION_HEADER.join(","),
        |h| check_header(h, &SUBMISSION_HEADER),
        |_, r| {
            let row_id: RowId = field(r, 0).parse().map_err(domain)?;
            let mut probs = [0.0; 3];
            for (k, p) in probs.iter_mut().enumerate() {
                *p = parse_f64(field(r, k + 1), SUBMISSION_HEADER[k + 1])
                    .map_err(|m| format!("{row_id}: {m}"))?;
            }
            Ok(SubmissionRow { row_id, probs })
        },
    )
}

/// Reads a submission (or sample_submission.csv).
pub fn read_submission(path: &Path) -> Result<CsvFile<SubmissionRow>, FormatError> {
    parse_submission(&read_all(path)?, path)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FormatError + '_ {
    move |source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn to_bytes(le: LineEnding, header: &[String], rows: impl Iterator<Item = Vec<String>>) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .terminator(le.terminator())
        .from_writer(Vec::new());
    w.write_record(header).expect("writing to memory");
    for r in rows {
        w.write_record(&r).expect("writing to memory");
    }
    w.into_inner().expect("writing to memory")
}

/// train.csv text for `rows`, with the given line ending.
pub fn train_to_bytes(rows: &[StudyLabels], le: LineEnding) -> Vec<u8> {
    let mut header = vec![TRAIN_FIRST.to_string()];
    header.extend(LabelColumn::all().iter().map(|c| c.name()));
    to_bytes(
        le,
        &header,
        rows.iter().map(|s| {
            let mut r = vec![s.study.to_string()];
            r.extend(
                s.grades
                    .iter()
                    .map(|g| g.map(|g| g.as_str().to_string()).unwrap_or_default()),
            );
            r
        }),
    )
}

/// train_label_coordinates.csv text for `rows`, with the given line ending.
pub fn coordinates_to_bytes(rows: &[LabelPoint], le: LineEnding) -> Vec<u8> {
    to_bytes(
        le,
        &COORD_HEADER.map(String::from),
        rows.iter().map(|p| {
            vec![
                p.study.to_string(),
                p.series.to_string(),
                p.instance.to_string(),
                p.condition.words().to_string(),
                p.level.words().to_string(),
                fmt_float(p.x),
                fmt_float(p.y),
            ]
        }),
    )
}

/// `*_series_descriptions.csv` text for `rows`, with the given line ending.
pub fn series_descriptions_to_bytes(rows: &[SeriesDescription], le: LineEnding) -> Vec<u8> {
    to_bytes(
        le,
        &DESC_HEADER.map(String::from),
        rows.iter().map(|d| {
            vec![
                d.study.to_string(),
                d.series.to_string(),
                d.kind.as_str().to_string(),
            ]
        }),
    )
}

/// Submission CSV text for `rows`, with the given line ending.
pub fn submission_to_bytes(rows: &[SubmissionRow], le: LineEnding) -> Vec<u8> {
    to_bytes(
        le,
        &SUBMISSION_HEADER.map(String::from),
        rows.iter().map(|r| {
            let mut v = vec![r.row_id.to_string()];
            v.extend(r.probs.iter().map(|&p| fmt_float(p)));
            v
        }),
    )
}

/// Writes train.csv atomically.
pub fn write_train(path: &Path, rows: &[StudyLabels], le: LineEnding) -> Result<(), FormatError> {
    atomic_write(path, &train_to_bytes(rows, le)).map_err(io_err(path))
}

/// Writes train_label_coordinates.csv atomically.
pub fn write_coordinates(
    path: &Path,
    rows: &[LabelPoint],
    le: LineEnding,
) -> Result<(), FormatError> {
    atomic_write(path, &coordinates_to_bytes(rows, le)).map_err(io_err(path))
}

/// Writes a *_series_descriptions.csv atomically.
pub fn write_series_descriptions(
    path: &Path,
    rows: &[SeriesDescription],
    le: LineEnding,
) -> Result<(), FormatError> {
    atomic_write(path, &series_descriptions_to_bytes(rows, le)).map_err(io_err(path))
}

/// Writes a submission atomically.
pub fn write_submission(
    path: &Path,
    rows: &[SubmissionRow],
    le: LineEnding,
) -> Result<(), FormatError> {
    atomic_write(path, &submission_to_bytes(rows, le)).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.csv")
    }

    fn train_text(le: &str) -> String {
        let mut header = vec!["study_id".to_string()];
        header.extend(LabelColumn::all().iter().map(|c| c.name()));
        let mut s = header.join(",") + le;
        let mut row1 = vec!["4003253".to_string()];
        row1.extend((0..25).map(|i| ["Normal/Mild", "Moderate", "Severe", ""][i % 4].to_string()));
        s += &(row1.join(",") + le);
        let mut row2 = vec!["4294540297".to_string()];
        row2.extend((0..25).map(|_| "Normal/Mild".to_string()));
        s += &(row2.join(",") + le);
        s
    }

    #[test]
    fn train_round_trip_lf_and_crlf() {
        for le in ["\n", "\r\n"] {
            let text = train_text(le);
            let f = parse_train(text.as_bytes(), p()).unwrap();
            assert!(f.errors.is_empty(), "{:?}", f.errors);
            assert_eq!(f.rows.len(), 2);
            assert_eq!(f.rows[0].grades[2], Some(Severity::Severe));
            assert_eq!(f.rows[0].grades[3], None);
            assert_eq!(f.rows[1].study, StudyId(4294540297));
            let out = train_to_bytes(&f.rows, f.line_ending);
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
    }

    #[test]
    fn train_unknown_condition_is_a_header_error() {
        let text =
            train_text("\n").replace("left_neural_foraminal_narrowing_l1_l2", "left_foo_l1_l2");
        let e = parse_train(text.as_bytes(), p()).unwrap_err().to_string();
        assert!(e.contains("left_foo_l1_l2"), "{e}");
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn train_bad_grade_names_line() {
        let text = train_text("\n").replacen("Moderate", "moderate", 1);
        let f = parse_train(text.as_bytes(), p()).unwrap();
        assert_eq!(f.rows.len(), 1);
        assert_eq!(f.errors.len(), 1);
        assert_eq!(f.errors[0].line, 2);
        assert!(f.errors[0].message.contains("moderate"));
        let e = f.strict().unwrap_err().to_string();
        assert!(e.contains("t.csv: line 2"), "{e}");
    }

    #[test]
    fn lines_count_blank_lines() {
        let text = "study_id,series_id,series_description\n\n1,2,Axial T2\r\n\r\n\r\n3,4,Axial T3\n5,6,Sagittal T1\n";
        let f = parse_series_descriptions(text.as_bytes(), p()).unwrap();
        assert_eq!(f.lines, vec![3, 7]);
        assert_eq!(f.errors.len(), 1);
        assert_eq!(f.errors[0].line, 6, "{:?}", f.errors);
    }

    #[test]
    fn empty_file_is_an_error() {
        let e = parse_train(b"", p()).unwrap_err();
        assert!(matches!(e, FormatError::Empty { .. }));
        assert!(parse_coordinates(b"\n", p()).is_err());
    }

    #[test]
    fn coordinates_round_trip() {
        let text = "study_id,series_id,instance_number,condition,level,x,y\r\n\
            4003253,702807833,8,Spinal Canal Stenosis,L1/L2,322.83185840707966,227.9646017699115\r\n\
            4003253,1054713880,4,Left Neural Foraminal Narrowing,L5/S1,187.0,251.5\r\n";
        let f = parse_coordinates(text.as_bytes(), p()).unwrap();
        assert!(f.errors.is_empty());
        assert_eq!(f.line_ending, LineEnding::Crlf);
        assert_eq!(f.rows[1].condition, Condition::LeftNeuralForaminalNarrowing);
        assert_eq!(f.rows[1].level, Level::L5S1);
        assert_eq!(
            String::from_utf8(coordinates_to_bytes(&f.rows, f.line_ending)).unwrap(),
            text
        );
    }

    #[test]
    fn coordinates_bad_rows_are_kept_aside() {
        let text = "study_id,series_id,instance_number,condition,level,x,y\n\
            1,2,3,Spinal Canal Stenosis,L6/L7,1.0,2.0\n\
            1,2,3,Spinal Canal Stenosis,L1/L2,abc,2.0\n\
            1,2,3,Spinal Canal Stenosis,L1/L2,1.5,2.5\n";
        let f = parse_coordinates(text.as_bytes(), p()).unwrap();
        assert_eq!(f.rows.len(), 1);
        assert_eq!(
            f.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert!(f.errors[0].message.contains("L6/L7"));
    }

    #[test]
    fn descriptions_and_submission_round_trip() {
        let d = "study_id,series_id,series_description\n4003253,702807833,Sagittal T2/STIR\n4003253,1,Axial T2\n";
        let f = parse_series_descriptions(d.as_bytes(), p()).unwrap();
        assert_eq!(f.rows[0].kind, SeriesKind::SagittalT2Stir);
        assert_eq!(
            String::from_utf8(series_descriptions_to_bytes(&f.rows, f.line_ending)).unwrap(),
            d
        );

        let s = "row_id,normal_mild,moderate,severe\n44036939_spinal_canal_stenosis_l3_l4,0.3333333333333333,0.3333333333333333,0.3333333333333333\n44036939_spinal_canal_stenosis_l4_l5,1.0,0.0,1e-07\n";
        let f = parse_submission(s.as_bytes(), p()).unwrap();
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(
            String::from_utf8(submission_to_bytes(&f.rows, f.line_ending)).unwrap(),
            s
        );
    }

    #[test]
    fn python_float_format() {
        assert_eq!(fmt_float(300.0), "300.0");
        assert_eq!(fmt_float(0.1), "0.1");
        assert_eq!(fmt_float(1e-7), "1e-07");
        assert_eq!(fmt_float(227.9646017699115), "227.9646017699115");
    }

    #[test]
    fn write_is_atomic_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::layout::TRAIN_CSV);
        let f = parse_train(train_text("\r\n").as_bytes(), p()).unwrap();
        write_train(&path, &f.rows, LineEnding::Crlf).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), train_text("\r\n"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
