//! De-identifying a folder: every file under IN_DIR, in parallel, written atomically to
//! `OUT_DIR/<study>/<series>/<instance>.dcm` (new UIDs), resumable, with the site-private mapping
//! written outside OUT_DIR and a dataset card written inside it.

use crate::deid::{Deidentifier, Flag};
use crate::keys::{Key, KeyError};
use crate::table::Options;
use discus_core::fsio::atomic_write;
use discus_core::governance::{self, DatasetCard, Deidentification, Licence};
use rayon::prelude::*;
use serde::Serialize;
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
    pub in_dir: PathBuf,
    pub out_dir: PathBuf,
    /// The key file; created (random) when absent. Must be outside OUT_DIR.
    pub key_path: PathBuf,
    /// The old-to-new identifier map (CSV). Must be outside OUT_DIR.
    pub map_path: PathBuf,
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
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {path} is inside the output folder {out}: it must stay with the site, apart from the de-identified data")]
    SecretInsideOutput {
        what: &'static str,
        path: PathBuf,
        out: PathBuf,
    },
    #[error("the output folder {out} must not be inside (or be) the input folder {input}")]
    OutputInsideInput { out: PathBuf, input: PathBuf },
    #[error("{path} line {line}: {message}")]
    Map {
        path: PathBuf,
        line: usize,
        message: String,
    },
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
    pub flags: Vec<Flag>,
}

/// One input file that could not be de-identified, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    pub input: PathBuf,
    pub cause: String,
}

/// The result of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub files_seen: usize,
    pub written: usize,
    /// Skipped because a previous run completed them (output and marker present).
    pub resumed: usize,
    pub failed: Vec<Failed>,
    /// Inputs skipped because another input has the same SOP Instance UID.
    pub duplicates: Vec<Duplicate>,
    pub flagged: Vec<Flagged>,
    pub key_created: bool,
    pub key_path: PathBuf,
    pub map_path: PathBuf,
    pub card_path: PathBuf,
    pub options: Options,
}

impl RunReport {
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

fn absolute(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    // resolve what exists (symlinks, ..), keep the rest as written
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return abs,
        }
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    for r in rest.into_iter().rev() {
        out.push(r);
    }
    out
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
    pub input: PathBuf,
    /// The output both map to, relative to OUT_DIR.
    pub output: PathBuf,
}

/// The mapping file's rows: `(kind, original, deidentified)`, kind one of patient, study, series.
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
        if rec.len() != 3 || !["patient", "study", "series"].contains(&&rec[0]) {
            return Err(RunError::Map {
                path: path.to_path_buf(),
                line: i + 2,
                message: "expected kind (patient|study|series),original,deidentified".into(),
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

/// The card written into OUT_DIR: the input's card (if any) as its parent, its licence carried over,
/// and the de-identification that was applied.
pub fn output_card(
    input_card: Option<DatasetCard>,
    out_dir: &Path,
    options: &Options,
) -> DatasetCard {
    let deid = Deidentification {
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
    };
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
/// `progress` is called once per input file, after it is done (from worker threads).
pub fn run(config: &RunConfig, progress: &(dyn Fn() + Sync)) -> Result<RunReport, RunError> {
    let in_abs = absolute(&config.in_dir);
    let out_abs = absolute(&config.out_dir);
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
        if absolute(p).starts_with(&out_abs) {
            return Err(RunError::SecretInsideOutput {
                what,
                path: p.clone(),
                out: config.out_dir.clone(),
            });
        }
    }
    let input_card = governance::load_card(&config.in_dir)?;
    let (key, key_created) = Key::load_or_create(&config.key_path)?;
    let files = list_files(&config.in_dir).map_err(io_err(&config.in_dir))?;
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
    let results: Vec<FileResult> = pool.install(|| {
        files
            .par_iter()
            .map(|path| {
                let r = one_file(&deid, config, path, &claimed);
                progress();
                r
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
        ..RunReport::default()
    };
    for r in results {
        match r {
            FileResult::Written { rows, flagged } => {
                report.written += 1;
                for (kind, (old, new)) in ["patient", "study", "series"].iter().zip(rows) {
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
    output_card(input_card, &config.out_dir, &config.options).write(&report.card_path)?;
    Ok(report)
}

/// Writes a resume marker: to a temporary name, then renamed (readers never see half a marker).
/// Not synced: after a crash a lost marker only means that file is de-identified again.
fn write_marker(marker: &Path, out_rel: &Path) -> std::io::Result<()> {
    let tmp = discus_core::fsio::temp_path(marker);
    let tmp = tmp.with_file_name(format!(
        "{}-{:?}",
        tmp.file_name().unwrap().to_string_lossy(),
        std::thread::current().id()
    ));
    std::fs::write(&tmp, out_rel.to_string_lossy().as_bytes())?;
    std::fs::rename(&tmp, marker)
}

fn one_file(
    deid: &Deidentifier,
    config: &RunConfig,
    path: &Path,
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
    let out_rel = PathBuf::from(part(&outcome.ids.study.1, "no-study"))
        .join(part(&outcome.ids.series.1, "no-series"))
        .join(format!(
            "{}.dcm",
            part(&outcome.ids.sop_instance.1, "no-instance")
        ));
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
        flagged: (!outcome.flags.is_empty()).then(|| Flagged {
            input: path.to_path_buf(),
            output: out_rel,
            flags: outcome.flags,
        }),
    }
}
