//! `discus ingest`: a hospital's PACS export becomes a dataset in the LumbarDISC layout.
//!
//! The export may be any folder tree with any file names (with or without `.dcm`), several studies
//! mixed in one folder, a DICOMDIR or not. [`ingest`] reads every file, keeps the MR image slices
//! of the three LumbarDISC series kinds, and writes them as
//! `<out>/test_images/<study_id>/<series_id>/<instance_number>.dcm` with
//! `test_series_descriptions.csv` and a dataset card, all through [`Layout`].
//!
//! # Decisions
//!
//! - **Split.** Everything goes to `test_images/` and `test_series_descriptions.csv`: an export has
//!   no labels, and the LumbarDISC test split is the unlabelled one. Labels come later (readers,
//!   `discus reads`), and a study can then be moved to the training split.
//! - **Series kinds** come from [`classify`] (orientation and TR/TE/TI; the description is a hint).
//!   Series classified *other* (coronal, axial T1, undecidable) are reported
//!   ([`IngestReport::series`], `written: false`) and **not written**: the layout describes every
//!   series it holds, with one of the three kinds only.
//! - **Skipped files**, each reported with its kind ([`SkipKind`]): DICOMDIR (by name or by its Media
//!   Storage SOP Class, 1.2.840.10008.1.3.10), files that are not DICOM, unreadable or truncated
//!   files (every top-level element, native pixel data included, must fit in the file), non-MR
//!   modalities, objects without an image, multi-frame objects (the layout is one slice per file),
//!   files without Study/Series/SOP Instance UIDs, localisers (Image Type `LOCALIZER`, or a series
//!   in several planes with a few slices each), duplicates (a SOP Instance UID already taken by an
//!   earlier file in path order; the report names it), and files of a study or series whose id
//!   collides.
//! - **Ids** are [`id_from_uid`](discus_core::ids::id_from_uid) of the Study and Series Instance UIDs (of the de-identified UIDs
//!   with a rewriter): the top 53 bits of SHA-256 of the UID, or the UID itself when it is a plain
//!   decimal number (the LumbarDISC release's own UIDs). Collisions are detected against this run
//!   and every earlier run recorded in the map, and reported ([`SkipKind::IdCollision`]), never
//!   merged.
//! - **Instance numbers.** A file is named by its Instance Number when every instance of the series
//!   has one and no two share it; otherwise the series is numbered 1..N in order along the slice
//!   normal (Image Position (Patient) projected on the normal of Image Orientation (Patient); ties by
//!   Instance Number, then SOP Instance UID), and [`SeriesOutcome::numbering`] says so and why; the
//!   files of such a series get that number as their Instance Number too, so that name and header
//!   agree (the only change ingest makes to a file besides de-identification).
//! - **The UID↔id map** ([`MAP_HEADER`]: `kind,original_uid,dataset_uid,id`; kind `study` or
//!   `series`, plus `patient` rows (original id, pseudonym) with de-identification) is written to
//!   [`IngestRequest::map_path`], which must lie outside the dataset. Earlier runs' rows are kept.
//! - **Resuming.** A file whose output exists with identical bytes is not rewritten
//!   ([`IngestReport::unchanged`]); a different one is replaced. Every write is atomic (temporary
//!   name, then rename), so an interrupted run leaves whole files only. The descriptions CSV keeps
//!   earlier runs' rows (this run's win for the same series).
//! - **De-identification.** With an [`InstanceRewriter`] (discus-deid implements it) every kept file
//!   passes through it on the way in; series are classified on the original headers (the basic
//!   profile removes the Series Description), and the ids come from the rewritten UIDs.
//! - **The dataset card** (`dataset.toml`) says the data came from a hospital PACS export through
//!   `discus ingest`, that the licence and permitted uses must be set by the hospital (none are
//!   permitted until then), and what de-identification was applied.
//!
//! Input paths in the report are relative to the source folder: folder names of an export can hold
//! patient names, so the report stays with the site like the map.

pub mod classify;

use crate::dicom::{read_header_complete, DicomError};
use crate::header::InstanceHeader;
use classify::{classify_series, scout_instance, scout_series, slice_plane, Classification};
use discus_core::formats::{self, LineEnding, SeriesDescription};
use discus_core::fsio::atomic_write;
use discus_core::governance::{self, DatasetCard, Deidentification, Licence};
use discus_core::ids::{IdCollision, IdRegistry};
use discus_core::layout::{Layout, Split};
use discus_core::progress::Progress;
use discus_core::types::{SeriesId, SeriesKind, StudyId};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The split ingested data goes to (no labels: the test split).
pub const INGEST_SPLIT: Split = Split::Test;

/// The map file's header.
pub const MAP_HEADER: [&str; 4] = ["kind", "original_uid", "dataset_uid", "id"];

/// The Media Storage SOP Class UID of a DICOMDIR (PS3.10 Media Storage Directory Storage).
pub const DICOMDIR_SOP_CLASS: &str = "1.2.840.10008.1.3.10";

/// Worker threads per core for reading and writing files (mostly waiting on the disk).
pub const IO_THREADS_PER_CORE: usize = 4;

/// What to ingest, and where.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    /// The PACS export (searched recursively; symbolic links are not followed).
    pub source: PathBuf,
    /// The dataset root to write (created when absent; must not be inside `source`).
    pub out: PathBuf,
    /// The UID↔id map (CSV); must be outside `out`.
    pub map_path: PathBuf,
}

/// A file rewritten on its way in (for example de-identified).
#[derive(Debug, Clone)]
pub struct Rewritten {
    /// The new file's bytes.
    pub bytes: Vec<u8>,
    /// The Study Instance UID the new file carries.
    pub study_uid: String,
    /// The Series Instance UID the new file carries.
    pub series_uid: String,
    /// The patient id and its replacement, when the rewriter replaces it (written to the map).
    pub patient: Option<(String, String)>,
}

/// Rewrites every kept file on its way into the dataset (discus-deid's de-identifier is one).
pub trait InstanceRewriter: Sync {
    /// The UID that the rewritten files carry in place of the Study or Series Instance UID `uid`
    /// (the ids are derived from it before any file is rewritten).
    fn map_uid(&self, uid: &str) -> String;
    /// Rewrites one file; `path` is for messages only. The error says why, without identifiers.
    fn rewrite(&self, bytes: &[u8], path: &Path) -> Result<Rewritten, String>;
    /// What the dataset card records about the rewriting.
    fn deidentification(&self) -> Deidentification;
}

/// Why a file was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipKind {
    /// A DICOMDIR (media directory): an index of the export, not an image.
    Dicomdir,
    /// Not a DICOM file.
    NotDicom,
    /// DICOM that cannot be read: truncated, corrupt, unreadable.
    Unreadable,
    /// Modality other than MR (CT, SR, PR, ...).
    NonMr,
    /// An MR object without an image (no rows/columns).
    NotAnImage,
    /// A multi-frame object (the layout holds one slice per file).
    MultiFrame,
    /// No Study, Series or SOP Instance UID.
    MissingUid,
    /// A localiser / scout.
    Scout,
    /// The same SOP Instance UID as an earlier file.
    Duplicate,
    /// The study or series id derived from the UID is already held by another UID.
    IdCollision,
    /// The rewriter (de-identification) failed on the file.
    RewriteFailed,
    /// Writing the output failed.
    WriteFailed,
}

impl SkipKind {
    /// Every kind, in report order.
    pub const ALL: [SkipKind; 12] = [
        SkipKind::Dicomdir,
        SkipKind::NotDicom,
        SkipKind::Unreadable,
        SkipKind::NonMr,
        SkipKind::NotAnImage,
        SkipKind::MultiFrame,
        SkipKind::MissingUid,
        SkipKind::Scout,
        SkipKind::Duplicate,
        SkipKind::IdCollision,
        SkipKind::RewriteFailed,
        SkipKind::WriteFailed,
    ];

    /// The snake_case name (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            SkipKind::Dicomdir => "dicomdir",
            SkipKind::NotDicom => "not_dicom",
            SkipKind::Unreadable => "unreadable",
            SkipKind::NonMr => "non_mr",
            SkipKind::NotAnImage => "not_an_image",
            SkipKind::MultiFrame => "multi_frame",
            SkipKind::MissingUid => "missing_uid",
            SkipKind::Scout => "scout",
            SkipKind::Duplicate => "duplicate",
            SkipKind::IdCollision => "id_collision",
            SkipKind::RewriteFailed => "rewrite_failed",
            SkipKind::WriteFailed => "write_failed",
        }
    }

    /// Whether the kind means something went wrong (as opposed to a file that is rightly left out).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            SkipKind::IdCollision | SkipKind::RewriteFailed | SkipKind::WriteFailed
        )
    }
}

/// One file that was not written, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedFile {
    /// The file, relative to the source folder.
    pub path: PathBuf,
    /// What it is.
    pub kind: SkipKind,
    /// Why, in words.
    pub reason: String,
}

/// How a series' files were numbered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum Numbering {
    /// By the Instance Numbers in the files.
    InstanceNumber,
    /// 1..N along the slice normal, because the Instance Numbers could not be used.
    SliceOrder {
        /// Why the Instance Numbers could not be used.
        reason: String,
    },
}

/// One series found in the export (written or not).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesOutcome {
    /// The study's id.
    pub study_id: StudyId,
    /// The series' id.
    pub series_id: SeriesId,
    /// The kind, or `None` for other.
    pub kind: Option<SeriesKind>,
    /// Whether the series is in the dataset (false for other).
    pub written: bool,
    /// Instances of the series (after scouts and duplicates were set aside).
    pub instances: usize,
    /// How its files were numbered.
    pub numbering: Numbering,
    /// The classifier's answer.
    pub classification: Classification,
}

/// What an ingest run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestReport {
    /// Files found under the source.
    pub files_seen: usize,
    /// Files written (new).
    pub written: usize,
    /// Files written over a different earlier version.
    pub replaced: usize,
    /// Files already in the dataset with identical bytes (resumed).
    pub unchanged: usize,
    /// Files of series classified other (not written; see `series`).
    pub files_in_other_series: usize,
    /// Studies with at least one series written.
    pub studies: usize,
    /// Every series found, in id order.
    pub series: Vec<SeriesOutcome>,
    /// Every file not written, in path order.
    pub skipped: Vec<SkippedFile>,
    /// Series whose id collided with another UID's (their files are in `skipped`).
    pub collisions: Vec<String>,
    /// The dataset root.
    pub out: PathBuf,
    /// The map file.
    pub map_path: PathBuf,
    /// The dataset card.
    pub card_path: PathBuf,
    /// Whether the files were rewritten (de-identified) on the way in.
    pub rewritten: bool,
}

impl IngestReport {
    /// Skipped files per kind.
    pub fn skipped_by_kind(&self) -> BTreeMap<SkipKind, usize> {
        let mut m = BTreeMap::new();
        for s in &self.skipped {
            *m.entry(s.kind).or_insert(0) += 1;
        }
        m
    }

    /// True when nothing went wrong (skipped files that are rightly left out do not count).
    pub fn ok(&self) -> bool {
        self.skipped.iter().all(|s| !s.kind.is_failure())
    }

    /// Writes the report as `discus ingest` prints it: the files not written by kind (at most
    /// `show` named per kind), one line per series, the totals, and where the dataset, map and card
    /// are.
    pub fn write_text(&self, show: usize, w: &mut impl std::io::Write) -> std::io::Result<()> {
        for kind in SkipKind::ALL {
            let files: Vec<_> = self.skipped.iter().filter(|s| s.kind == kind).collect();
            if files.is_empty() {
                continue;
            }
            let level = if kind.is_failure() {
                "error"
            } else {
                "skipped"
            };
            writeln!(w, "{level}: {} file(s) {}:", files.len(), kind.as_str())?;
            for f in files.iter().take(show) {
                writeln!(w, "  {}: {}", f.path.display(), f.reason)?;
            }
            if files.len() > show {
                writeln!(w, "  ... and {} more (see --json)", files.len() - show)?;
            }
        }
        for s in &self.series {
            let kind = s.kind.map_or("other (not written)", |k| k.as_str());
            let numbering = match &s.numbering {
                Numbering::InstanceNumber => String::new(),
                Numbering::SliceOrder { reason } => {
                    format!("; numbered along the slice normal: {reason}")
                }
            };
            let note = if s.classification.description_disagrees || s.kind.is_none() {
                format!(" ({})", s.classification.reason)
            } else {
                String::new()
            };
            writeln!(
                w,
                "series {}/{}: {kind}, {} instances{numbering}{note}",
                s.study_id, s.series_id, s.instances
            )?;
        }
        let skipped: Vec<String> = self
            .skipped_by_kind()
            .iter()
            .map(|(k, n)| format!("{n} {}", k.as_str()))
            .collect();
        writeln!(
            w,
            "{} files: {} written, {} unchanged (resumed), {} replaced, {} in other series, {} skipped ({}); {} studies, {} series written",
            self.files_seen,
            self.written,
            self.unchanged,
            self.replaced,
            self.files_in_other_series,
            self.skipped.len(),
            if skipped.is_empty() { "none".to_string() } else { skipped.join(", ") },
            self.studies,
            self.series.iter().filter(|s| s.written).count()
        )?;
        writeln!(
            w,
            "dataset: {}\nmap (site only): {}\ncard: {}",
            self.out.display(),
            self.map_path.display(),
            self.card_path.display()
        )
    }

    /// Writes the report as `discus ingest --json` prints it (pretty JSON and a newline).
    pub fn write_json(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let s = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        writeln!(w, "{s}")
    }
}

/// Errors that stop a whole run (a bad file does not: it is reported and skipped).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The run was cancelled through its progress handle. Every file written so far is complete
    /// (atomic writes), so running again resumes.
    #[error("cancelled; files written so far are complete, and running again resumes")]
    Cancelled,
    /// A folder or file of the run could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The source folder does not exist or is not a folder.
    #[error("{}: not a folder", path.display())]
    NoSource {
        /// The source given.
        path: PathBuf,
    },
    /// The output would be written into the source.
    #[error("the dataset folder {} must not be inside (or be) the source folder {}", out.display(), input.display())]
    OutputInsideSource {
        /// The output folder.
        out: PathBuf,
        /// The source folder.
        input: PathBuf,
    },
    /// The map would be written into the dataset.
    #[error("the map {} is inside the dataset {}: it must stay with the site, apart from the data", map.display(), out.display())]
    MapInsideOutput {
        /// The map path.
        map: PathBuf,
        /// The output folder.
        out: PathBuf,
    },
    /// An earlier run's map cannot be read.
    #[error("{} line {line}: {message}", path.display())]
    Map {
        /// The map path.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// An earlier run's descriptions CSV cannot be read or this one not written.
    #[error(transparent)]
    Format(#[from] formats::FormatError),
    /// The dataset card cannot be written.
    #[error(transparent)]
    Card(#[from] governance::CardError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Every regular file under `dir`, sorted, symbolic links not followed (hidden files included:
/// they are reported like any other file that is not DICOM).
pub fn list_source_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `bytes` (a file named `name`) is a DICOMDIR: by name, or by the Media Storage SOP
/// Class UID in its file meta group.
pub fn is_dicomdir(name: &str, bytes: &[u8]) -> bool {
    if name.eq_ignore_ascii_case("DICOMDIR") {
        return true;
    }
    // (0002,0002) UI in the explicit VR little endian file meta group: tag, "UI", 2-byte length
    let head = &bytes[..bytes.len().min(1024)];
    let marker = b"\x02\x00\x02\x00UI";
    head.windows(marker.len())
        .enumerate()
        .filter(|(_, w)| w == marker)
        .any(|(i, _)| {
            let at = i + marker.len();
            let Some(len) = head.get(at..at + 2) else {
                return false;
            };
            let len = u16::from_le_bytes([len[0], len[1]]) as usize;
            head.get(at + 2..at + 2 + len).is_some_and(|v| {
                v.strip_suffix(b"\0")
                    .or_else(|| v.strip_suffix(b" "))
                    .unwrap_or(v)
                    == DICOMDIR_SOP_CLASS.as_bytes()
            })
        })
}

/// What the first pass keeps of a file that may go into the dataset.
struct Candidate {
    index: usize,
    header: InstanceHeader,
}

enum FirstPass {
    Keep(Box<Candidate>),
    Skip(SkippedFile),
}

fn rel(source: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(source).unwrap_or(path).to_path_buf()
}

/// Reads one file and decides whether it may go in.
fn first_pass(source: &Path, index: usize, path: &Path) -> FirstPass {
    let skip = |kind: SkipKind, reason: String| {
        FirstPass::Skip(SkippedFile {
            path: rel(source, path),
            kind,
            reason,
        })
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return skip(SkipKind::Unreadable, format!("cannot read: {e}")),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if is_dicomdir(&name, &bytes) {
        return skip(
            SkipKind::Dicomdir,
            "a DICOMDIR (the export's index, which lists patient names): not an image".into(),
        );
    }
    let header = match read_header_complete(&bytes, path) {
        Ok(h) => h,
        Err(DicomError::NotDicom { reason, .. }) => {
            return skip(SkipKind::NotDicom, format!("not DICOM: {reason}"))
        }
        Err(e) => {
            let text = e.to_string();
            // the message starts with the path: keep only the cause
            let cause = text
                .strip_prefix(&format!("{}: ", path.display()))
                .unwrap_or(&text)
                .to_string();
            return skip(SkipKind::Unreadable, cause);
        }
    };
    if header.modality.as_deref().map(str::trim) != Some("MR") {
        return skip(
            SkipKind::NonMr,
            format!(
                "modality {} (only MR is ingested)",
                header.modality.as_deref().unwrap_or("missing")
            ),
        );
    }
    if header.rows == 0 || header.columns == 0 {
        return skip(
            SkipKind::NotAnImage,
            "an MR object without an image (no Rows/Columns)".into(),
        );
    }
    if header.number_of_frames > 1 {
        return skip(
            SkipKind::MultiFrame,
            format!(
                "{} frames in one file (the layout holds one slice per file)",
                header.number_of_frames
            ),
        );
    }
    let missing: Vec<&str> = [
        ("Study Instance UID", &header.study_instance_uid),
        ("Series Instance UID", &header.series_instance_uid),
        ("SOP Instance UID", &header.sop_instance_uid),
    ]
    .into_iter()
    .filter(|(_, v)| v.trim().is_empty())
    .map(|(n, _)| n)
    .collect();
    if !missing.is_empty() {
        return skip(SkipKind::MissingUid, format!("no {}", missing.join(", ")));
    }
    if scout_instance(&header) {
        return skip(
            SkipKind::Scout,
            "Image Type says LOCALIZER: a scout, not a diagnostic slice".into(),
        );
    }
    FirstPass::Keep(Box::new(Candidate { index, header }))
}

/// One series as planned for writing.
struct PlannedSeries {
    study_id: u64,
    series_id: u64,
    kind: SeriesKind,
    /// (candidate index into files, instance number)
    files: Vec<(usize, i64)>,
    /// Whether the files' Instance Numbers are rewritten to the numbers (slice-order numbering).
    renumber: bool,
}

/// Numbers a series' instances (see the module documentation). Returns (numbers in the order of
/// `headers`, how).
fn number_instances(headers: &[&InstanceHeader]) -> (Vec<i64>, Numbering) {
    let numbers: Vec<Option<i64>> = headers.iter().map(|h| h.instance_number).collect();
    let missing = numbers.iter().filter(|n| n.is_none()).count();
    let distinct: BTreeSet<i64> = numbers.iter().flatten().copied().collect();
    if missing == 0 && distinct.len() == numbers.len() {
        return (
            numbers.into_iter().flatten().collect(),
            Numbering::InstanceNumber,
        );
    }
    let reason = if missing > 0 {
        format!(
            "Instance Number missing on {missing} of {} files",
            numbers.len()
        )
    } else {
        format!(
            "Instance Numbers repeat ({} distinct values for {} files)",
            distinct.len(),
            numbers.len()
        )
    };
    // the series normal: from the first instance with a usable orientation
    let normal = headers
        .iter()
        .find_map(|h| {
            let o = h.image_orientation_patient?;
            slice_plane(&o)?;
            Some([
                o[1] * o[5] - o[2] * o[4],
                o[2] * o[3] - o[0] * o[5],
                o[0] * o[4] - o[1] * o[3],
            ])
        })
        .unwrap_or([0.0, 0.0, 0.0]);
    let pos = |h: &InstanceHeader| {
        h.image_position_patient
            .map(|p| p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2])
            .unwrap_or(0.0)
    };
    let mut order: Vec<usize> = (0..headers.len()).collect();
    order.sort_by(|&a, &b| {
        pos(headers[a])
            .total_cmp(&pos(headers[b]))
            .then(headers[a].instance_number.cmp(&headers[b].instance_number))
            .then(
                headers[a]
                    .sop_instance_uid
                    .cmp(&headers[b].sop_instance_uid),
            )
    });
    let mut out = vec![0i64; headers.len()];
    for (k, &i) in order.iter().enumerate() {
        out[i] = k as i64 + 1;
    }
    (out, Numbering::SliceOrder { reason })
}

/// The map's rows: (kind, original UID, dataset UID, id), as in [`MAP_HEADER`].
pub type MapRows = BTreeSet<(String, String, String, String)>;

/// Reads an earlier run's map (empty when absent).
pub fn read_map(path: &Path) -> Result<MapRows, IngestError> {
    let mut out = BTreeSet::new();
    if !path.exists() {
        return Ok(out);
    }
    let err = |line: usize, message: String| IngestError::Map {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut rdr = csv::Reader::from_path(path).map_err(|e| err(1, e.to_string()))?;
    let header = rdr.headers().map_err(|e| err(1, e.to_string()))?;
    if header.iter().collect::<Vec<_>>() != MAP_HEADER {
        return Err(err(
            1,
            format!("expected the header {}", MAP_HEADER.join(",")),
        ));
    }
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| err(i + 2, e.to_string()))?;
        if rec.len() != 4 || !["study", "series", "patient"].contains(&&rec[0]) {
            return Err(err(
                i + 2,
                "expected kind (study|series|patient),original_uid,dataset_uid,id".into(),
            ));
        }
        if rec[0] != *"patient" && rec[3].parse::<u64>().is_err() {
            return Err(err(i + 2, "the id is not a number".into()));
        }
        out.insert((
            rec[0].to_string(),
            rec[1].to_string(),
            rec[2].to_string(),
            rec[3].to_string(),
        ));
    }
    Ok(out)
}

fn write_map(path: &Path, rows: &MapRows) -> Result<(), IngestError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| IngestError::Map {
        path: path.to_path_buf(),
        line: 0,
        message: e.to_string(),
    };
    w.write_record(MAP_HEADER).map_err(csv_err)?;
    for (k, o, d, id) in rows {
        w.write_record([k, o, d, id]).map_err(csv_err)?;
    }
    let bytes = w.into_inner().map_err(|e| IngestError::Map {
        path: path.to_path_buf(),
        line: 0,
        message: e.to_string(),
    })?;
    atomic_write(path, &bytes).map_err(io_err(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err(path))?;
    }
    Ok(())
}

/// The card of an ingested dataset.
pub fn ingest_card(out: &Path, deidentification: Option<Deidentification>) -> DatasetCard {
    DatasetCard {
        name: out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "ingested".into()),
        source: "a hospital PACS export, ingested by discus ingest (series classified and \
                 renamed into the LumbarDISC layout)"
            .into(),
        date: None,
        sites: Vec::new(),
        licence: Licence {
            name: "unspecified: the hospital must set the licence and permitted uses".into(),
            url: None,
            permitted_uses: Vec::new(),
            citation_required: false,
            citation: None,
        },
        deidentification: deidentification.unwrap_or_default(),
        derived_from: Vec::new(),
    }
}

enum WriteResult {
    Written,
    Replaced,
    Unchanged,
    Rewritten(Option<(String, String)>, bool),
    Skip(SkippedFile),
}

/// Ingests `request.source` into `request.out` (see the module documentation). `rewriter`, when
/// given, rewrites (de-identifies) every kept file on the way in. `progress` counts the files of each
/// stage (`reading headers`, then `writing`); cancelling it stops the run between files.
pub fn ingest(
    request: &IngestRequest,
    rewriter: Option<&dyn InstanceRewriter>,
    progress: &Progress,
) -> Result<IngestReport, IngestError> {
    let source = &request.source;
    if !source.is_dir() {
        return Err(IngestError::NoSource {
            path: source.clone(),
        });
    }
    let src_abs = discus_core::fsio::absolute(source);
    let out_abs = discus_core::fsio::absolute(&request.out);
    if out_abs.starts_with(&src_abs) {
        return Err(IngestError::OutputInsideSource {
            out: request.out.clone(),
            input: source.clone(),
        });
    }
    if discus_core::fsio::absolute(&request.map_path).starts_with(&out_abs) {
        return Err(IngestError::MapInsideOutput {
            map: request.map_path.clone(),
            out: request.out.clone(),
        });
    }
    let layout = Layout::new(&request.out);
    let files = list_source_files(source).map_err(io_err(source))?;
    let threads = IO_THREADS_PER_CORE * std::thread::available_parallelism().map_or(2, |n| n.get());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| io_err(&request.out)(std::io::Error::other(e)))?;

    // 1. headers, file by file
    progress.stage("reading headers", files.len() as u64);
    let first: Vec<FirstPass> = pool.install(|| {
        files
            .par_iter()
            .enumerate()
            .map(|(i, p)| {
                let r = first_pass(source, i, p);
                progress.inc(1);
                r
            })
            .collect()
    });
    progress.check().map_err(|_| IngestError::Cancelled)?;
    let mut skipped = Vec::new();
    let mut candidates = Vec::new();
    for r in first {
        match r {
            FirstPass::Keep(c) => candidates.push(*c),
            FirstPass::Skip(s) => skipped.push(s),
        }
    }

    // 2. duplicates (first file in path order wins), then series
    let mut by_sop: HashMap<String, usize> = HashMap::new();
    let mut series: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (ci, c) in candidates.iter().enumerate() {
        let sop = c.header.sop_instance_uid.trim().to_string();
        if let Some(&first) = by_sop.get(&sop) {
            skipped.push(SkippedFile {
                path: rel(source, &files[c.index]),
                kind: SkipKind::Duplicate,
                reason: format!(
                    "same SOP Instance UID as {} (that one is kept)",
                    rel(source, &files[candidates[first].index]).display()
                ),
            });
            continue;
        }
        by_sop.insert(sop, ci);
        let key = (
            c.header.study_instance_uid.trim().to_string(),
            c.header.series_instance_uid.trim().to_string(),
        );
        series.entry(key).or_default().push(ci);
    }

    // 3. ids (registries seeded with earlier runs' map), classification, numbering
    let mut map = read_map(&request.map_path)?;
    let mut study_ids = IdRegistry::default();
    let mut series_ids = IdRegistry::default();
    for (kind, _, dataset_uid, id) in &map {
        let reg = match kind.as_str() {
            "study" => &mut study_ids,
            "series" => &mut series_ids,
            _ => continue,
        };
        let id: u64 = id.parse().expect("read_map checked the ids");
        if let Err(e) = reg.insert_as(dataset_uid, id) {
            return Err(IngestError::Map {
                path: request.map_path.clone(),
                line: 0,
                message: e.to_string(),
            });
        }
    }
    let map_uid = |uid: &str| match rewriter {
        Some(r) => r.map_uid(uid),
        None => uid.to_string(),
    };
    let mut report = IngestReport {
        files_seen: files.len(),
        out: request.out.clone(),
        map_path: request.map_path.clone(),
        card_path: layout.card(),
        rewritten: rewriter.is_some(),
        ..IngestReport::default()
    };
    let mut planned: Vec<PlannedSeries> = Vec::new();
    let collision_skip =
        |skipped: &mut Vec<SkippedFile>, members: &[usize], e: &IdCollision, what: &str| {
            for &ci in members {
                skipped.push(SkippedFile {
                    path: rel(source, &files[candidates[ci].index]),
                    kind: SkipKind::IdCollision,
                    reason: format!("{what} {e}"),
                });
            }
        };
    for ((study_uid, series_uid), members) in &series {
        let headers: Vec<&InstanceHeader> =
            members.iter().map(|&ci| &candidates[ci].header).collect();
        if let Some(why) = scout_series(&headers) {
            for &ci in members {
                skipped.push(SkippedFile {
                    path: rel(source, &files[candidates[ci].index]),
                    kind: SkipKind::Scout,
                    reason: why.clone(),
                });
            }
            continue;
        }
        let ds_study = map_uid(study_uid);
        let ds_series = map_uid(series_uid);
        let study_id = match study_ids.insert(&ds_study) {
            Ok(id) => id,
            Err(e) => {
                report.collisions.push(format!("study: {e}"));
                collision_skip(&mut skipped, members, &e, "study");
                continue;
            }
        };
        let series_id = match series_ids.insert(&ds_series) {
            Ok(id) => id,
            Err(e) => {
                report.collisions.push(format!("series: {e}"));
                collision_skip(&mut skipped, members, &e, "series");
                continue;
            }
        };
        let classification = classify_series(&headers);
        let (numbers, numbering) = number_instances(&headers);
        let written = classification.kind.is_some();
        let renumber = matches!(numbering, Numbering::SliceOrder { .. });
        report.series.push(SeriesOutcome {
            study_id: StudyId(study_id),
            series_id: SeriesId(series_id),
            kind: classification.kind,
            written,
            instances: members.len(),
            numbering,
            classification: classification.clone(),
        });
        match classification.kind {
            Some(kind) => {
                map.insert((
                    "study".into(),
                    study_uid.clone(),
                    ds_study.clone(),
                    study_id.to_string(),
                ));
                map.insert((
                    "series".into(),
                    series_uid.clone(),
                    ds_series.clone(),
                    series_id.to_string(),
                ));
                planned.push(PlannedSeries {
                    study_id,
                    series_id,
                    kind,
                    files: members.iter().copied().zip(numbers).collect(),
                    renumber,
                });
            }
            None => report.files_in_other_series += members.len(),
        }
    }
    report.series.sort_by_key(|s| (s.study_id, s.series_id));

    // 4. write (rewriting on the way), in parallel
    type Job = (usize, PathBuf, (String, String), Option<i64>);
    let jobs: Vec<Job> = planned
        .iter()
        .flat_map(|s| {
            s.files.iter().map(|&(ci, n)| {
                let h = &candidates[ci].header;
                (
                    candidates[ci].index,
                    layout.instance(INGEST_SPLIT, StudyId(s.study_id), SeriesId(s.series_id), n),
                    (
                        map_uid(h.study_instance_uid.trim()),
                        map_uid(h.series_instance_uid.trim()),
                    ),
                    s.renumber.then_some(n),
                )
            })
        })
        .collect();
    progress.stage("writing", jobs.len() as u64);
    let results: Vec<WriteResult> = pool.install(|| {
        jobs.par_iter()
            .map(|(fi, out, expected, renumber)| {
                if progress.is_cancelled() {
                    // Not written; the run ends with Cancelled below.
                    return WriteResult::Unchanged;
                }
                let r = write_one(source, &files[*fi], out, expected, *renumber, rewriter);
                progress.inc(1);
                r
            })
            .collect()
    });
    progress.check().map_err(|_| IngestError::Cancelled)?;
    for r in results {
        match r {
            WriteResult::Written => report.written += 1,
            WriteResult::Replaced => report.replaced += 1,
            WriteResult::Unchanged => report.unchanged += 1,
            WriteResult::Rewritten(patient, replaced) => {
                if replaced {
                    report.replaced += 1;
                } else {
                    report.written += 1;
                }
                if let Some((old, new)) = patient {
                    map.insert(("patient".into(), old, new, String::new()));
                }
            }
            WriteResult::Skip(s) => skipped.push(s),
        }
    }

    // 5. descriptions (earlier runs' rows kept), map, card
    let desc_path = layout.descriptions_csv(INGEST_SPLIT);
    let mut rows: BTreeMap<(StudyId, SeriesId), SeriesKind> = BTreeMap::new();
    let mut le = LineEnding::Lf;
    if desc_path.exists() {
        let old = formats::read_series_descriptions(&desc_path)?;
        le = old.line_ending;
        for d in old.strict()? {
            rows.insert((d.study, d.series), d.kind);
        }
    }
    for s in &planned {
        rows.insert((StudyId(s.study_id), SeriesId(s.series_id)), s.kind);
    }
    let rows: Vec<SeriesDescription> = rows
        .into_iter()
        .map(|((study, series), kind)| SeriesDescription {
            study,
            series,
            kind,
        })
        .collect();
    std::fs::create_dir_all(&request.out).map_err(io_err(&request.out))?;
    formats::write_series_descriptions(&desc_path, &rows, le)?;
    write_map(&request.map_path, &map)?;
    ingest_card(&request.out, rewriter.map(|r| r.deidentification())).write(&layout.card())?;
    report.studies = planned
        .iter()
        .map(|s| s.study_id)
        .collect::<BTreeSet<_>>()
        .len();
    skipped.sort_by(|a, b| a.path.cmp(&b.path).then(a.kind.cmp(&b.kind)));
    report.skipped = skipped;
    Ok(report)
}

/// Reads, rewrites (optionally) and writes one file unless an identical one is there.
fn write_one(
    source: &Path,
    input: &Path,
    out: &Path,
    expected: &(String, String),
    renumber: Option<i64>,
    rewriter: Option<&dyn InstanceRewriter>,
) -> WriteResult {
    let skip = |kind: SkipKind, reason: String| {
        WriteResult::Skip(SkippedFile {
            path: rel(source, input),
            kind,
            reason,
        })
    };
    let bytes = match std::fs::read(input) {
        Ok(b) => b,
        Err(e) => return skip(SkipKind::Unreadable, format!("cannot read: {e}")),
    };
    let (bytes, patient) = match rewriter {
        None => (bytes, None),
        Some(r) => match r.rewrite(&bytes, input) {
            Ok(rw) => {
                if (rw.study_uid.trim(), rw.series_uid.trim())
                    != (expected.0.as_str(), expected.1.as_str())
                {
                    return skip(
                        SkipKind::RewriteFailed,
                        "the rewritten file's Study/Series Instance UIDs are not the ones its ids were derived from".into(),
                    );
                }
                (rw.bytes, rw.patient)
            }
            Err(e) => return skip(SkipKind::RewriteFailed, e),
        },
    };
    let bytes = match renumber {
        None => bytes,
        Some(n) => match set_instance_number(&bytes, n) {
            Ok(b) => b,
            Err(e) => return skip(SkipKind::RewriteFailed, e),
        },
    };
    let existed = match std::fs::read(out) {
        Ok(old) if old == bytes => return WriteResult::Unchanged,
        Ok(_) => true,
        Err(_) => false,
    };
    if let Err(e) = atomic_write(out, &bytes) {
        return skip(SkipKind::WriteFailed, format!("{}: {e}", out.display()));
    }
    match (rewriter.is_some(), existed) {
        (true, replaced) => WriteResult::Rewritten(patient, replaced),
        (false, true) => WriteResult::Replaced,
        (false, false) => WriteResult::Written,
    }
}

/// The file with its Instance Number (0020,0013) set to `n` (for series numbered in slice order, so
/// that the file name and the header agree, as `discus validate` checks).
pub fn set_instance_number(bytes: &[u8], n: i64) -> Result<Vec<u8>, String> {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    let mut obj = dicom_object::OpenFileOptions::new()
        .read_preamble(dicom_object::file::ReadPreamble::Auto)
        .from_reader(bytes)
        .map_err(|e| format!("cannot parse the file to set its Instance Number: {e}"))?;
    obj.put(DataElement::new(
        dicom_dictionary_std::tags::INSTANCE_NUMBER,
        VR::IS,
        PrimitiveValue::from(n.to_string()),
    ));
    let mut out = Vec::with_capacity(bytes.len());
    obj.write_all(&mut out)
        .map_err(|e| format!("cannot write the renumbered file: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_run_stops_with_cancelled_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("export");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("a.txt"), b"not dicom").unwrap();
        let request = IngestRequest {
            source: src,
            out: dir.path().join("ds"),
            map_path: dir.path().join("map.csv"),
        };
        let progress = Progress::new();
        progress.cancel();
        let r = ingest(&request, None, &progress);
        assert!(matches!(r, Err(IngestError::Cancelled)), "{r:?}");
        assert!(!Layout::new(dir.path().join("ds"))
            .images(Split::Test)
            .exists());
        // The same request without cancelling runs (and reports the stray file).
        let report = ingest(&request, None, &Progress::new()).unwrap();
        assert_eq!(report.files_seen, 1);
    }

    #[test]
    fn dicomdir_detection() {
        assert!(is_dicomdir("DICOMDIR", b""));
        assert!(is_dicomdir("dicomdir", b""));
        let mut meta = vec![0u8; 132];
        meta.extend_from_slice(b"\x02\x00\x02\x00UI\x14\x001.2.840.10008.1.3.10\0");
        assert!(is_dicomdir("x", &meta));
        // an even-length UID without padding, followed by the next element (as dcmtk writes it)
        let mut unpadded = vec![0u8; 132];
        unpadded
            .extend_from_slice(b"\x02\x00\x02\x00UI\x14\x001.2.840.10008.1.3.10\x02\x00\x03\x00UI");
        assert!(is_dicomdir("x", &unpadded));
        let mut mr = vec![0u8; 132];
        mr.extend_from_slice(b"\x02\x00\x02\x00UI\x1a\x001.2.840.10008.5.1.4.1.1.4\0");
        assert!(!is_dicomdir("x", &mr));
    }

    fn hd(n: Option<i64>, z: f64, sop: &str) -> InstanceHeader {
        InstanceHeader {
            instance_number: n,
            image_position_patient: Some([0.0, 0.0, z]),
            image_orientation_patient: Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
            sop_instance_uid: sop.into(),
            ..InstanceHeader::default()
        }
    }

    #[test]
    fn numbering_uses_instance_numbers_or_slice_order() {
        let a = [hd(Some(7), 0.0, "a"), hd(Some(5049), 4.0, "b")];
        let (n, how) = number_instances(&a.iter().collect::<Vec<_>>());
        assert_eq!((n, how), (vec![7, 5049], Numbering::InstanceNumber));
        // a repeated number: ordered along the normal (z for axial), 1..N
        let b = [
            hd(Some(1), 8.0, "a"),
            hd(Some(1), -4.0, "b"),
            hd(Some(2), 2.0, "c"),
        ];
        let (n, how) = number_instances(&b.iter().collect::<Vec<_>>());
        assert_eq!(n, vec![3, 1, 2]);
        assert!(matches!(how, Numbering::SliceOrder { reason } if reason.contains("repeat")));
        let c = [hd(None, 1.0, "a"), hd(Some(3), 0.0, "b")];
        let (n, how) = number_instances(&c.iter().collect::<Vec<_>>());
        assert_eq!(n, vec![2, 1]);
        assert!(matches!(how, Numbering::SliceOrder { reason } if reason.contains("missing")));
    }
}
