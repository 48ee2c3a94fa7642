//! De-identifying a folder: every file under IN_DIR, in parallel, written atomically to
//! `OUT_DIR/<study>/<series>/<instance>.dcm` (new UIDs), resumable, with the site-private mapping
//! written outside OUT_DIR and a dataset card written inside it.
//!
//! **A LumbarDISC dataset keeps its layout.** When IN_DIR holds `train_images/` or `test_images/`
//! (see `discus_core::layout`), the output is a dataset in the same layout:
//! `OUT_DIR/<split>_images/<new study id>/<new series id>/<instance number>.dcm`, where the new ids
//! are `discus_core::ids::id_from_uid` of the new (de-identified) Study and Series Instance UIDs
//! (the same ids `discus ingest --deid` gives) and the instance number is kept from the input's file
//! name. `train.csv`, `train_label_coordinates.csv`, both `*_series_descriptions.csv` and
//! `sample_submission.csv` are rewritten with the new ids, so they match the new folder names. The
//! old-to-new ids go into the map (kinds `study_id`, `series_id`), so a resumed run rewrites the CSVs
//! the same way. An id in a CSV without image files behind it becomes `id_from_uid` of the mapped UID
//! of the id's decimal text (what its files would get if their UIDs were the id, as in the
//! LumbarDISC release). Other files at the top of IN_DIR (e.g. a synthetic cohort's `truth.json`) are
//! not copied, and reported.

use crate::deid::{Deidentifier, Flag};
use crate::keys::{Key, KeyError};
use crate::table::Options;
use discus_core::formats::{self, FormatError};
use discus_core::fsio::atomic_write;
use discus_core::governance::{self, DatasetCard, Deidentification, Licence};
use discus_core::ids::id_from_uid;
use discus_core::layout::{Layout, Split};
use discus_core::progress::Progress;
use discus_core::types::{SeriesId, StudyId};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The folder inside OUT_DIR that holds resume markers (named by a keyed hash of the input path).
pub const MARKER_DIR: &str = ".discus-deid";

/// Worker threads per core: de-identifying is mostly waiting for the disk.
pub const IO_THREADS_PER_CORE: usize = 4;

/// What to de-identify and how.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The input folder of DICOM files (read only).
    pub in_dir: PathBuf,
    /// The output folder for the de-identified files; must not be inside the input folder.
    pub out_dir: PathBuf,
    /// The key file; created (random) when absent. Must be outside OUT_DIR.
    pub key_path: PathBuf,
    /// The old-to-new identifier map (CSV). Must be outside OUT_DIR.
    pub map_path: PathBuf,
    /// The profile options to apply.
    pub options: Options,
}

impl RunConfig {
    /// Default key and map paths beside OUT_DIR: `<OUT_DIR>.deid-key`, `<OUT_DIR>.deid-map.csv`.
    pub fn with_defaults(in_dir: PathBuf, out_dir: PathBuf, options: Options) -> RunConfig {
        let side = |suffix: &str| {
            let mut s = out_dir.as_os_str().to_os_string();
            s.push(suffix);
            PathBuf::from(s)
        };
        RunConfig {
            key_path: side(".deid-key"),
            map_path: side(".deid-map.csv"),
            in_dir,
            out_dir,
            options,
        }
    }
}

/// Errors that stop a whole run (one bad file does not: it is reported in [`RunReport::failed`]).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The run's [`Progress`] was cancelled; what was written is kept (run again to resume).
    #[error("cancelled (the files written so far are kept and in the map; run again to resume)")]
    Cancelled,
    /// The key file could not be read or created.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The key file or identifier map was placed inside the output folder, where it would be released.
    #[error("{what} {path} is inside the output folder {out}: it must stay with the site, apart from the de-identified data")]
    SecretInsideOutput {
        /// Which secret: `"the key file"` or `"the mapping file"`.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The output folder.
        out: PathBuf,
    },
    /// The output folder is, or is inside, the input folder.
    #[error("the output folder {out} must not be inside (or be) the input folder {input}")]
    OutputInsideInput {
        /// The output folder.
        out: PathBuf,
        /// The input folder.
        input: PathBuf,
    },
    /// The identifier map CSV is malformed.
    #[error("{path} line {line}: {message}")]
    Map {
        /// The map file.
        path: PathBuf,
        /// The 1-based line of the problem (1 for the header).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The input's dataset card could not be read or parsed.
    #[error(transparent)]
    Card(#[from] governance::CardError),
}

/// One file that needs a person's look.
#[derive(Debug, Clone, Serialize)]
pub struct Flagged {
    /// The input file (site-side path; not written into OUT_DIR).
    pub input: PathBuf,
    /// The output file, relative to OUT_DIR.
    pub output: PathBuf,
    /// Why it needs a look.
    pub flags: Vec<Flag>,
}

/// One input file that could not be de-identified, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    /// The input file (site-side path).
    pub input: PathBuf,
    /// Why it could not be de-identified.
    pub cause: String,
}

/// The result of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    /// Files found in the input folder (hidden files and folders excluded).
    pub files_seen: usize,
    /// Files de-identified and written by this run.
    pub written: usize,
    /// Skipped because a previous run completed them (output and marker present).
    pub resumed: usize,
    /// Inputs that could not be de-identified, each with its cause.
    pub failed: Vec<Failed>,
    /// Inputs skipped because another input has the same SOP Instance UID.
    pub duplicates: Vec<Duplicate>,
    /// Outputs that need a person's look before release (burned-in annotation, secondary capture).
    pub flagged: Vec<Flagged>,
    /// Whether the key file was created by this run.
    pub key_created: bool,
    /// The key file used.
    pub key_path: PathBuf,
    /// The identifier map written (old-to-new, kept at the site).
    pub map_path: PathBuf,
    /// The dataset card written beside the output.
    pub card_path: PathBuf,
    /// The profile options applied.
    pub options: Options,
    /// Whether IN_DIR was a LumbarDISC dataset whose layout the output keeps.
    pub layout: bool,
    /// The CSV files rewritten with the new ids (layout mode), relative to OUT_DIR.
    pub csv_rewritten: Vec<PathBuf>,
    /// Files at the top of IN_DIR that were not copied (layout mode), relative to IN_DIR.
    pub not_copied: Vec<PathBuf>,
}

impl RunReport {
    /// Whether every input was de-identified (no failures).
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Every regular file under `dir` (sorted; hidden names skipped), not following symbolic links.
pub fn list_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
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

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

enum FileResult {
    Written {
        rows: [(String, String); 3],
        /// Layout mode: (old, new) study id and series id.
        ids: Option<Box<[(String, String); 2]>>,
        flagged: Option<Flagged>,
    },
    Resumed,
    Duplicate(Duplicate),
    Failed(Failed),
}

/// An input whose SOP Instance UID another input of the same run already has: not written again
/// (which of the two is written depends on the order the workers reach them).
#[derive(Debug, Clone, Serialize)]
pub struct Duplicate {
    /// The skipped input file (site-side path).
    pub input: PathBuf,
    /// The output both map to, relative to OUT_DIR.
    pub output: PathBuf,
}

/// The kinds of the mapping file's rows: patient ids, Study and Series Instance UIDs, and (layout
/// mode) the dataset's study and series ids.
pub const MAP_KINDS: [&str; 5] = ["patient", "study", "series", "study_id", "series_id"];

/// The mapping file's rows: `(kind, original, deidentified)`, kind one of [`MAP_KINDS`].
pub type MapRow = (String, String, String);

/// Reads a mapping file written by [`run`].
pub fn read_map(path: &Path) -> Result<BTreeSet<MapRow>, RunError> {
    let mut out = BTreeSet::new();
    if !path.exists() {
        return Ok(out);
    }
    let mut rdr = csv::Reader::from_path(path).map_err(|e| RunError::Map {
        path: path.to_path_buf(),
        line: 1,
        message: e.to_string(),
    })?;
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| RunError::Map {
            path: path.to_path_buf(),
            line: i + 2,
            message: e.to_string(),
        })?;
        if rec.len() != 3 || !MAP_KINDS.contains(&&rec[0]) {
            return Err(RunError::Map {
                path: path.to_path_buf(),
                line: i + 2,
                message:
                    "expected kind (patient|study|series|study_id|series_id),original,deidentified"
                        .into(),
            });
        }
        out.insert((rec[0].to_string(), rec[1].to_string(), rec[2].to_string()));
    }
    Ok(out)
}

fn write_map(path: &Path, rows: &BTreeSet<MapRow>) -> Result<(), RunError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| RunError::Map {
        path: path.to_path_buf(),
        line: 0,
        message: e.to_string(),
    };
    w.write_record(["kind", "original", "deidentified"])
        .map_err(csv_err)?;
    for (k, o, n) in rows {
        w.write_record([k, o, n]).map_err(csv_err)?;
    }
    let bytes = w.into_inner().map_err(|e| RunError::Map {
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

/// What a dataset card records about a de-identification with `options`.
pub fn deidentification_record(options: &Options) -> Deidentification {
    Deidentification {
        applied: true,
        method: Some(
            "DICOM PS3.15 E.1 Basic Application Level Confidentiality Profile (discus deid)".into(),
        ),
        options: options
            .method_codes()
            .into_iter()
            .skip(1)
            .map(|(_, m)| m.to_string())
            .collect(),
        by: Some(format!("discus-deid {}", env!("CARGO_PKG_VERSION"))),
        date: None,
    }
}

/// The card written into OUT_DIR: the input's card (if any) as its parent, its licence carried over,
/// and the de-identification that was applied.
pub fn output_card(
    input_card: Option<DatasetCard>,
    out_dir: &Path,
    options: &Options,
) -> DatasetCard {
    let deid = deidentification_record(options);
    match input_card {
        Some(parent) => DatasetCard {
            name: format!("{} (de-identified)", parent.name),
            source: parent.source.clone(),
            date: parent.date.clone(),
            sites: parent.sites.clone(),
            licence: parent.licence.clone(),
            deidentification: deid,
            derived_from: vec![parent],
        },
        None => DatasetCard {
            name: out_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "deidentified".into()),
            source: "a site's DICOM files, de-identified by discus (the input had no dataset card)"
                .into(),
            date: None,
            sites: Vec::new(),
            licence: Licence {
                name: "unspecified: the data owner must set the licence and permitted uses".into(),
                url: None,
                permitted_uses: Vec::new(),
                citation_required: false,
                citation: None,
            },
            deidentification: deid,
            derived_from: Vec::new(),
        },
    }
}

/// De-identifies every file under `config.in_dir` into `config.out_dir`.
///
/// `progress` gets one stage, `de-identifying`, counting input files as they are done (from worker
/// threads). Cancelling it stops the run between files: the files already written stay, their rows
/// are added to the identifier map, and the call returns [`RunError::Cancelled`]; running again
/// resumes.
pub fn run(config: &RunConfig, progress: &Progress) -> Result<RunReport, RunError> {
    let in_abs = discus_core::fsio::absolute(&config.in_dir);
    let out_abs = discus_core::fsio::absolute(&config.out_dir);
    if out_abs.starts_with(&in_abs) {
        return Err(RunError::OutputInsideInput {
            out: config.out_dir.clone(),
            input: config.in_dir.clone(),
        });
    }
    for (what, p) in [
        ("the key file", &config.key_path),
        ("the mapping file", &config.map_path),
    ] {
        if discus_core::fsio::absolute(p).starts_with(&out_abs) {
            return Err(RunError::SecretInsideOutput {
                what,
                path: p.clone(),
                out: config.out_dir.clone(),
            });
        }
    }
    let input_card = governance::load_card(&config.in_dir)?;
    let (key, key_created) = Key::load_or_create(&config.key_path)?;
    let input_layout = Layout::new(&config.in_dir);
    let layout_mode = Split::ALL
        .iter()
        .any(|&sp| input_layout.images(sp).is_dir());
    let (files, not_copied) = if layout_mode {
        layout_inputs(&config.in_dir)?
    } else {
        (
            list_files(&config.in_dir).map_err(io_err(&config.in_dir))?,
            Vec::new(),
        )
    };
    std::fs::create_dir_all(config.out_dir.join(MARKER_DIR)).map_err(io_err(&config.out_dir))?;
    let deid = Deidentifier::new(key, config.options);
    let claimed = Mutex::new(HashSet::new());

    // the work is mostly waiting on the disk (every output is synced before its rename), so run
    // more workers than cores
    let threads = IO_THREADS_PER_CORE * std::thread::available_parallelism().map_or(2, |n| n.get());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| io_err(&config.out_dir)(std::io::Error::other(e)))?;
    progress.stage("de-identifying", files.len() as u64);
    let results: Vec<FileResult> = pool.install(|| {
        files
            .par_iter()
            .filter_map(|path| {
                if progress.is_cancelled() {
                    return None;
                }
                let r = one_file(&deid, config, path, layout_mode, &claimed);
                progress.inc(1);
                Some(r)
            })
            .collect()
    });

    let mut map = read_map(&config.map_path)?;
    let mut report = RunReport {
        files_seen: files.len(),
        key_created,
        key_path: config.key_path.clone(),
        map_path: config.map_path.clone(),
        card_path: config.out_dir.join(governance::CARD_FILE),
        options: config.options,
        layout: layout_mode,
        not_copied,
        ..RunReport::default()
    };
    for r in results {
        match r {
            FileResult::Written { rows, ids, flagged } => {
                report.written += 1;
                for (kind, (old, new)) in ["patient", "study", "series"].iter().zip(rows) {
                    map.insert((kind.to_string(), old, new));
                }
                for (kind, (old, new)) in ["study_id", "series_id"]
                    .iter()
                    .zip(ids.map(|b| *b).into_iter().flatten())
                {
                    map.insert((kind.to_string(), old, new));
                }
                report.flagged.extend(flagged);
            }
            FileResult::Resumed => report.resumed += 1,
            FileResult::Duplicate(d) => report.duplicates.push(d),
            FileResult::Failed(f) => report.failed.push(f),
        }
    }
    write_map(&config.map_path, &map)?;
    if progress.is_cancelled() {
        return Err(RunError::Cancelled);
    }
    if layout_mode {
        rewrite_layout_csvs(&deid, config, &map, &mut report);
    }
    output_card(input_card, &config.out_dir, &config.options).write(&report.card_path)?;
    Ok(report)
}

/// The image files of a LumbarDISC dataset (both splits), and the other entries at its top that are
/// not carried over (the CSVs are rewritten, the card is carried into the output card, hidden
/// entries such as `.discus/` are discus's own).
fn layout_inputs(in_dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), RunError> {
    let layout = Layout::new(in_dir);
    let mut files = Vec::new();
    for split in Split::ALL {
        let dir = layout.images(split);
        if dir.is_dir() {
            files.extend(list_files(&dir).map_err(io_err(&dir))?);
        }
    }
    let handled: Vec<PathBuf> = layout_csvs(&layout)
        .into_iter()
        .chain([layout.card()])
        .chain(Split::ALL.map(|sp| layout.images(sp)))
        .collect();
    let mut not_copied = Vec::new();
    for entry in std::fs::read_dir(in_dir).map_err(io_err(in_dir))? {
        let entry = entry.map_err(io_err(in_dir))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') || handled.contains(&entry.path()) {
            continue;
        }
        not_copied.push(PathBuf::from(name));
    }
    not_copied.sort();
    Ok((files, not_copied))
}

/// The CSV files of a layout that carry ids.
fn layout_csvs(layout: &Layout) -> Vec<PathBuf> {
    vec![
        layout.train_csv(),
        layout.coordinates_csv(),
        layout.descriptions_csv(Split::Train),
        layout.descriptions_csv(Split::Test),
        layout.sample_submission_csv(),
    ]
}

/// Where an input file of a layout sits: its split, study and series folder names and its instance
/// number (the file name).
fn layout_place(in_dir: &Path, path: &Path) -> Result<(Split, String, String, i64), String> {
    let rel = path.strip_prefix(in_dir).unwrap_or(path);
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let bad = || {
        format!(
            "not at <split>_images/<study_id>/<series_id>/<instance_number>.{}",
            discus_core::layout::INSTANCE_EXT
        )
    };
    if parts.len() != 4 {
        return Err(bad());
    }
    let split = Split::from_folder(&parts[0]).ok_or_else(bad)?;
    let instance = Path::new(&parts[3])
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(bad)?;
    Ok((split, parts[1].clone(), parts[2].clone(), instance))
}

/// Rewrites the ids in the layout's CSV files (see the module documentation).
fn rewrite_layout_csvs(
    deid: &Deidentifier,
    config: &RunConfig,
    map: &BTreeSet<MapRow>,
    report: &mut RunReport,
) {
    // old id -> new id, from this run's and earlier runs' files; one old id must not split in
    // two, and two old ids must not meet in one new id
    let mut ids: [BTreeMap<u64, u64>; 2] = [BTreeMap::new(), BTreeMap::new()];
    let mut fail = |cause: String| {
        report.failed.push(Failed {
            input: config.map_path.clone(),
            cause,
        })
    };
    for (i, kind) in ["study_id", "series_id"].iter().enumerate() {
        let mut back: BTreeMap<u64, u64> = BTreeMap::new();
        for (k, old, new) in map.iter().filter(|(k, _, _)| k == kind) {
            let (Ok(old), Ok(new)) = (old.parse::<u64>(), new.parse::<u64>()) else {
                fail(format!("{k} row {old} -> {new}: not numbers"));
                continue;
            };
            if let Some(prev) = ids[i].insert(old, new) {
                fail(format!(
                    "{k} {old}: its files carry more than one UID (new ids {prev} and {new}); the CSVs use {new}"
                ));
            }
            if let Some(prev) = back.insert(new, old) {
                if prev != old {
                    fail(format!(
                        "{k} collision: {prev} and {old} both become {new} (see discus_core::ids)"
                    ));
                }
            }
        }
    }
    let retain = deid.options.retain_uids;
    let fallback = |old: u64| {
        if retain {
            old
        } else {
            id_from_uid(&deid.key.map_uid(&old.to_string()))
        }
    };
    let study = |s: StudyId| StudyId(ids[0].get(&s.0).copied().unwrap_or_else(|| fallback(s.0)));
    let series = |s: SeriesId| SeriesId(ids[1].get(&s.0).copied().unwrap_or_else(|| fallback(s.0)));
    let input = Layout::new(&config.in_dir);
    let output = Layout::new(&config.out_dir);
    for (from, to) in layout_csvs(&input).into_iter().zip(layout_csvs(&output)) {
        if !from.is_file() {
            continue;
        }
        let name = from
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let result: Result<(), FormatError> = (|| {
            if from == input.train_csv() {
                let f = formats::read_train(&from)?;
                let le = f.line_ending;
                let mut rows = f.strict()?;
                rows.iter_mut().for_each(|r| r.study = study(r.study));
                formats::write_train(&to, &rows, le)
            } else if from == input.coordinates_csv() {
                let f = formats::read_coordinates(&from)?;
                let le = f.line_ending;
                let mut rows = f.strict()?;
                for r in &mut rows {
                    r.study = study(r.study);
                    r.series = series(r.series);
                }
                formats::write_coordinates(&to, &rows, le)
            } else if from == input.sample_submission_csv() {
                let f = formats::read_submission(&from)?;
                let le = f.line_ending;
                let mut rows = f.strict()?;
                rows.iter_mut()
                    .for_each(|r| r.row_id.study = study(r.row_id.study));
                formats::write_submission(&to, &rows, le)
            } else {
                let f = formats::read_series_descriptions(&from)?;
                let le = f.line_ending;
                let mut rows = f.strict()?;
                for r in &mut rows {
                    r.study = study(r.study);
                    r.series = series(r.series);
                }
                formats::write_series_descriptions(&to, &rows, le)
            }
        })();
        match result {
            Ok(()) => report.csv_rewritten.push(PathBuf::from(name)),
            Err(e) => report.failed.push(Failed {
                input: from.clone(),
                cause: format!("not rewritten: {e}"),
            }),
        }
    }
}

/// Writes a resume marker: to a temporary name, then renamed (readers never see half a marker).
/// Not synced: after a crash a lost marker only means that file is de-identified again.
fn write_marker(marker: &Path, out_rel: &Path) -> std::io::Result<()> {
    let tmp = discus_core::fsio::temp_beside(marker)?;
    std::fs::write(&tmp, out_rel.to_string_lossy().as_bytes())?;
    tmp.persist(marker).map_err(|e| e.error)?;
    Ok(())
}

fn one_file(
    deid: &Deidentifier,
    config: &RunConfig,
    path: &Path,
    layout_mode: bool,
    claimed: &Mutex<HashSet<PathBuf>>,
) -> FileResult {
    let rel = path
        .strip_prefix(&config.in_dir)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned();
    let marker = config
        .out_dir
        .join(MARKER_DIR)
        .join(deid.key.marker_name(&rel));
    if let Ok(out_rel) = std::fs::read_to_string(&marker) {
        if config.out_dir.join(out_rel.trim()).is_file() {
            return FileResult::Resumed;
        }
    }
    let fail = |cause: String| {
        FileResult::Failed(Failed {
            input: path.to_path_buf(),
            cause,
        })
    };
    if path.file_name().is_some_and(|n| n == "DICOMDIR") {
        return fail(
            "DICOMDIR (a media directory, which lists patient names) is not copied".into(),
        );
    }
    if path.file_name().is_some_and(|n| n == governance::CARD_FILE) {
        return FileResult::Resumed; // the input's card: carried into the output card, not copied
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return fail(format!("cannot read: {e}")),
    };
    let (outcome, buf) = match deid.deidentify_bytes(&bytes, path) {
        Ok(o) => o,
        Err(e) => return fail(e.to_string()),
    };
    drop(bytes);
    let part = |s: &str, fallback: &str| {
        if s.is_empty() || s.contains(['/', '\\']) || s.starts_with('.') {
            fallback.to_string()
        } else {
            s.to_string()
        }
    };
    let mut layout_ids = None;
    let out_rel = if layout_mode {
        let (split, old_study, old_series, instance) = match layout_place(&config.in_dir, path) {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        let study = id_from_uid(&outcome.ids.study.1);
        let series = id_from_uid(&outcome.ids.series.1);
        layout_ids = Some(Box::new([
            (old_study, study.to_string()),
            (old_series, series.to_string()),
        ]));
        PathBuf::from(Layout::relative_instance(
            split,
            StudyId(study),
            SeriesId(series),
            instance,
        ))
    } else {
        PathBuf::from(part(&outcome.ids.study.1, "no-study"))
            .join(part(&outcome.ids.series.1, "no-series"))
            .join(format!(
                "{}.dcm",
                part(&outcome.ids.sop_instance.1, "no-instance")
            ))
    };
    let out_path = config.out_dir.join(&out_rel);
    if !claimed.lock().unwrap().insert(out_rel.clone()) {
        // the same instance again: mark it done so a resumed run does not redo it
        if let Err(e) = write_marker(&marker, &out_rel) {
            return fail(format!("{}: {e}", marker.display()));
        }
        return FileResult::Duplicate(Duplicate {
            input: path.to_path_buf(),
            output: out_rel,
        });
    }
    if let Err(e) = atomic_write(&out_path, &buf) {
        return fail(format!("{}: {e}", out_path.display()));
    }
    if let Err(e) = write_marker(&marker, &out_rel) {
        return fail(format!("{}: {e}", marker.display()));
    }
    let ids = outcome.ids;
    FileResult::Written {
        rows: [ids.patient, ids.study, ids.series],
        ids: layout_ids,
        flagged: (!outcome.flags.is_empty()).then(|| Flagged {
            input: path.to_path_buf(),
            output: out_rel,
            flags: outcome.flags,
        }),
    }
}
