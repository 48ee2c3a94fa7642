//! The `discus reads` workflows as library calls: a typed request, a typed result, and the text
//! the command prints, written to any [`Write`]. The command line only parses arguments and
//! prints.

use crate::analysis::{
    adjudications, blinded_findings, consensus, AgreementReport, ConsensusLabel, ConsensusRule,
    Disagreement, FindingReads,
};
use crate::geometry::SliceLookup;
use crate::import::{
    import_reader, reader_labels, write_labels, Catalog, ImportError, ImportReport, ImportRequest,
    Label,
};
use crate::predictions::{import_predictions, is_predictions, predictions_dir, PredictionsRequest};
use crate::store::{ImportOutcome, ReadEvent, ReadsStore, RoundKind, StoreError, StoredRead};
use discus_core::agreement::{Estimate, Metric, Statistic, Weights};
use discus_core::fsio::atomic_write;
use discus_core::governance::{check_sources, GovernanceError, Use};
use discus_core::layout::Layout;
use discus_core::progress::Progress;
use serde::Serialize;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why a reads workflow failed; every variant names the store or file.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The store has no reader of that name.
    #[error("no reader {reader:?} in {}", store.display())]
    NoReader {
        /// The reader asked for.
        reader: String,
        /// The store file.
        store: PathBuf,
    },
    /// The store has no round of that name.
    #[error("no round {round:?} in {}", store.display())]
    NoRound {
        /// The round asked for.
        round: String,
        /// The store file.
        store: PathBuf,
    },
    /// The selection holds no blinded reads.
    #[error("no blinded reads in {}", store.display())]
    NoBlindedReads {
        /// The store file.
        store: PathBuf,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Labels could not be written.
    #[error(transparent)]
    Labels(#[from] ImportError),
    /// The dataset's licence does not permit the use, or its card is unreadable.
    #[error(transparent)]
    Governance(#[from] GovernanceError),
    /// A readers folder could not be listed.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A readers folder holds no reader sub-folder with a train.csv.
    #[error("{}: no reader folders with a train.csv", path.display())]
    NoReaders {
        /// The folder.
        path: PathBuf,
    },
    /// An output file could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// Which blinded reads a workflow looks at.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only this blinded round (`None`: every blinded round; a reader's latest read counts).
    pub round: Option<String>,
    /// Only these readers (`None`: all).
    pub readers: Option<Vec<String>>,
}

/// The current reads of the store and the blinded findings of the selection.
pub fn select(
    store: &ReadsStore,
    selection: &Selection,
) -> Result<(Vec<StoredRead>, Vec<FindingReads>), WorkflowError> {
    if let Some(r) = &selection.round {
        if store.find_round(r)?.is_none() {
            return Err(WorkflowError::NoRound {
                round: r.clone(),
                store: store.path().to_path_buf(),
            });
        }
    }
    let reads = store.current_reads(None)?;
    let findings = blinded_findings(
        &reads,
        selection.round.as_deref(),
        selection.readers.as_deref(),
    );
    Ok((reads, findings))
}

/// One reader's files to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderFiles {
    /// The reader's name (the sub-folder's name).
    pub reader: String,
    /// Its train.csv.
    pub train: PathBuf,
    /// Its train_label_coordinates.csv, when present.
    pub coordinates: Option<PathBuf>,
}

/// The readers of a `--readers-dir` folder: one sub-folder per reader, named for the reader, holding
/// train.csv and optionally train_label_coordinates.csv; sorted by path.
pub fn reader_folders(dir: &Path) -> Result<Vec<ReaderFiles>, WorkflowError> {
    let read_err = |source| WorkflowError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| Layout::new(p).train_csv().is_file())
        .collect();
    entries.sort();
    if entries.is_empty() {
        return Err(WorkflowError::NoReaders {
            path: dir.to_path_buf(),
        });
    }
    Ok(entries
        .into_iter()
        .filter_map(|p| {
            let reader = p.file_name()?.to_string_lossy().into_owned();
            let layout = Layout::new(&p);
            let coords = layout.coordinates_csv();
            Some(ReaderFiles {
                reader,
                train: layout.train_csv(),
                coordinates: coords.is_file().then_some(coords),
            })
        })
        .collect())
}

/// Where the reads of `discus reads import` come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportSources {
    /// Readers' CSV files: one reader's (`--reader --train [--coordinates]`), or every reader of a
    /// `--readers-dir`.
    Readers(Vec<ReaderFiles>),
    /// A model's predictions as one reader: the output folder of `discus predict`.
    Predictions {
        /// The reader's name, e.g. `ai:<model name>`.
        reader: String,
        /// The `discus predict` output folder.
        dir: PathBuf,
    },
}

impl ImportSources {
    /// The sources that `discus reads import`'s options name: for `reader`, its `predictions` (or a
    /// `train` that is a `discus predict` output, when no `coordinates` are given), else its
    /// `train` and `coordinates`; without a reader, every reader of `readers_dir`. `Ok(None)` when
    /// the options name none of these.
    pub fn from_options(
        reader: Option<&str>,
        train: Option<&Path>,
        coordinates: Option<&Path>,
        predictions: Option<&Path>,
        readers_dir: Option<&Path>,
    ) -> Result<Option<ImportSources>, WorkflowError> {
        let predictions = match (predictions, train) {
            (Some(p), _) => Some(p),
            (None, Some(t)) if coordinates.is_none() && is_predictions(t) => Some(t),
            _ => None,
        };
        Ok(match (reader, predictions, train, readers_dir) {
            (Some(reader), Some(p), _, _) => Some(ImportSources::Predictions {
                reader: reader.to_string(),
                dir: predictions_dir(p),
            }),
            (Some(reader), None, Some(train), _) => {
                Some(ImportSources::Readers(vec![ReaderFiles {
                    reader: reader.to_string(),
                    train: train.to_path_buf(),
                    coordinates: coordinates.map(Path::to_path_buf),
                }]))
            }
            (_, _, _, Some(dir)) => Some(ImportSources::Readers(reader_folders(dir)?)),
            _ => None,
        })
    }
}

/// `discus reads import`: reads from files or predictions into a round of the store.
#[derive(Debug, Clone)]
pub struct ImportBatchRequest {
    /// What to import.
    pub sources: ImportSources,
    /// The round's name (created when new).
    pub round: String,
    /// The round's kind; must match the stored kind when the round exists.
    pub round_kind: RoundKind,
    /// Seconds since the epoch to record; `None` takes the clock.
    pub at: Option<i64>,
}

/// One reader's import: what was recorded, or why not.
#[derive(Debug)]
pub struct ReaderImport {
    /// The reader's name.
    pub reader: String,
    /// What was recorded, or the error.
    pub result: Result<ImportReport, ImportError>,
}

impl ReaderImport {
    /// True when the reader's files were refused (bad lines, a wrong header): nothing of this
    /// reader is recorded, and the batch goes on with the next reader.
    pub fn refused(&self) -> bool {
        matches!(
            self.result,
            Err(ImportError::Rows { .. }) | Err(ImportError::Format(_))
        )
    }

    /// The error that stopped the batch (the store, a file that cannot be read), if this is it.
    pub fn fatal(&self) -> Option<&ImportError> {
        match &self.result {
            Err(e) if !self.refused() => Some(e),
            _ => None,
        }
    }
}

/// What `discus reads import` did, reader by reader in order. A fatal error ([`ReaderImport::fatal`])
/// stopped the batch and is the last entry.
#[derive(Debug)]
pub struct ImportBatch {
    /// Whether the sources were predictions (one reader) rather than CSV files.
    pub predictions: bool,
    /// One entry per reader attempted.
    pub imports: Vec<ReaderImport>,
}

/// Imports every reader of `req.sources` into `req.round`, checking reads against `catalog` (the
/// dataset) when given. Refused readers are recorded in the result and the others go on; another
/// error stops the batch (see [`ImportBatch`]).
pub fn import(
    store: &mut ReadsStore,
    catalog: Option<&Catalog>,
    req: &ImportBatchRequest,
    progress: &Progress,
) -> ImportBatch {
    let mut imports = Vec::new();
    match &req.sources {
        ImportSources::Predictions { reader, dir } => {
            let r = PredictionsRequest {
                reader,
                round: &req.round,
                round_kind: req.round_kind,
                dir,
                at: req.at,
            };
            imports.push(ReaderImport {
                reader: reader.clone(),
                result: import_predictions(store, catalog, &r, progress),
            });
        }
        ImportSources::Readers(readers) => {
            for f in readers {
                let r = ImportRequest {
                    reader: &f.reader,
                    round: &req.round,
                    round_kind: req.round_kind,
                    train: &f.train,
                    coordinates: f.coordinates.as_deref(),
                    at: req.at,
                };
                let one = ReaderImport {
                    reader: f.reader.clone(),
                    result: import_reader(store, catalog, &r, progress),
                };
                let stop = one.fatal().is_some();
                imports.push(one);
                if stop {
                    break;
                }
            }
        }
    }
    ImportBatch {
        predictions: matches!(req.sources, ImportSources::Predictions { .. }),
        imports,
    }
}

impl ImportBatch {
    /// How many readers' files were refused.
    pub fn refused(&self) -> usize {
        self.imports.iter().filter(|i| i.refused()).count()
    }

    /// Takes out the entry whose error stopped the batch (the last one), if any: its reader and
    /// error.
    pub fn take_fatal(&mut self) -> Option<(String, ImportError)> {
        self.imports.last()?.fatal()?;
        let last = self.imports.pop()?;
        last.result.err().map(|e| (last.reader, e))
    }

    /// Writes one line per recorded reader, as `discus reads import` prints them.
    pub fn write_text(&self, w: &mut impl Write) -> io::Result<()> {
        let (what, same) = if self.predictions {
            ("predicted reads", "same predictions")
        } else {
            ("reads", "same files")
        };
        for i in &self.imports {
            let Ok(r) = &i.result else { continue };
            match &r.outcome {
                ImportOutcome::Imported { events, .. } => writeln!(
                    w,
                    "{}: imported {events} {what} ({} grades, {} points, {} studies) into round {}",
                    r.reader, r.grades, r.points, r.studies, r.round
                )?,
                ImportOutcome::AlreadyImported { .. } => writeln!(
                    w,
                    "{}: already imported ({same}); nothing recorded",
                    r.reader
                )?,
            }
        }
        Ok(())
    }

    /// Writes one `error: reader R: cause` line per refused reader (what the command prints on
    /// stderr, with or without `--json`).
    pub fn write_refusals(&self, w: &mut impl Write) -> io::Result<()> {
        for i in self.imports.iter().filter(|i| i.refused()) {
            if let Err(e) = &i.result {
                writeln!(w, "error: reader {}: {e}", i.reader)?;
            }
        }
        Ok(())
    }

    /// The `--json` output: for predictions, the one reader's report (`None` if it was refused:
    /// only the refusal is printed); for files, a list with each reader's report or
    /// `{"reader", "error"}`.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        let one = |i: &ReaderImport| match &i.result {
            Ok(r) => serde_json::to_value(r).unwrap_or_default(),
            Err(e) => serde_json::json!({"reader": i.reader, "error": e.to_string()}),
        };
        if self.predictions {
            self.imports.iter().find(|i| i.result.is_ok()).map(one)
        } else {
            Some(
                self.imports
                    .iter()
                    .filter(|i| i.fatal().is_none())
                    .map(one)
                    .collect(),
            )
        }
    }
}

/// `discus reads export`: one reader's current reads of a round.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// The reader's name.
    pub reader: String,
    /// The round's name.
    pub round: String,
    /// The output folder (train.csv, train_label_coordinates.csv).
    pub out: PathBuf,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportResult {
    /// The reader.
    #[serde(skip)]
    pub reader: String,
    /// The train.csv written.
    pub train: PathBuf,
    /// The train_label_coordinates.csv written.
    pub coordinates: PathBuf,
    /// Reads written.
    pub reads: usize,
}

/// Writes one reader's current reads of a round as LumbarDISC CSVs.
pub fn export(store: &ReadsStore, req: &ExportRequest) -> Result<ExportResult, WorkflowError> {
    if store.find_reader(&req.reader)?.is_none() {
        return Err(WorkflowError::NoReader {
            reader: req.reader.clone(),
            store: store.path().to_path_buf(),
        });
    }
    let Some(round) = store.find_round(&req.round)? else {
        return Err(WorkflowError::NoRound {
            round: req.round.clone(),
            store: store.path().to_path_buf(),
        });
    };
    let reads = store.current_reads(Some(round.id))?;
    let labels = reader_labels(&reads, &req.reader, &req.round);
    let (train, coordinates) = write_labels(&req.out, &labels)?;
    Ok(ExportResult {
        reader: req.reader.clone(),
        train,
        coordinates,
        reads: labels.len(),
    })
}

impl ExportResult {
    /// Writes the line `discus reads export` prints.
    pub fn write_text(&self, w: &mut impl Write) -> io::Result<()> {
        writeln!(
            w,
            "{} reads of {} written to {} and {}",
            self.reads,
            self.reader,
            self.train.display(),
            self.coordinates.display()
        )
    }
}

/// `discus reads consensus`: final labels under a rule, with provenance.
#[derive(Debug, Clone)]
pub struct ConsensusRequest {
    /// The reads store file.
    pub store: PathBuf,
    /// The dataset whose card's licence is checked (none: no card to check).
    pub dataset: Option<PathBuf>,
    /// The blinded reads looked at.
    pub selection: Selection,
    /// The rule.
    pub rule: ConsensusRule,
    /// The output folder.
    pub out: PathBuf,
    /// What the labels are for, checked against the dataset's licence before anything is written.
    pub use_: Use,
    /// The program recorded as the maker in the dataset provenance.
    pub made_by: String,
}

/// What a consensus run wrote.
#[derive(Debug, Clone)]
pub struct ConsensusResult {
    /// The rule applied.
    pub rule: ConsensusRule,
    /// One label per finding, with its provenance (`provenance.json`).
    pub labels: Vec<ConsensusLabel>,
    /// Findings left without a grade under the rule.
    pub unresolved: usize,
    /// The train.csv written.
    pub train: PathBuf,
    /// The train_label_coordinates.csv written.
    pub coordinates: PathBuf,
    /// provenance.json.
    pub provenance: PathBuf,
    /// dataset_provenance.json (the dataset cards the labels came from).
    pub dataset_provenance: PathBuf,
    /// The output folder.
    pub out: PathBuf,
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), WorkflowError> {
    atomic_write(path, bytes).map_err(|source| WorkflowError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Checks the use against the dataset's licence (refused: nothing written, the store not even
/// opened), then writes the consensus labels, `provenance.json` and `dataset_provenance.json`.
pub fn consensus_labels(
    req: &ConsensusRequest,
    slices: Option<&dyn SliceLookup>,
) -> Result<ConsensusResult, WorkflowError> {
    let roots: Vec<&Path> = req.dataset.as_deref().into_iter().collect();
    let sources = check_sources(&req.made_by, &roots, req.use_, false)?;
    let store = ReadsStore::open(&req.store)?;
    let (reads, findings) = select(&store, &req.selection)?;
    let adj = adjudications(&reads);
    let labels = consensus(&findings, &adj, req.rule, slices);
    let out_labels: Vec<Label> = labels
        .iter()
        .map(|l| Label {
            key: l.key,
            grade: l.grade,
            point: l.point,
        })
        .collect();
    let (train, coordinates) = write_labels(&req.out, &out_labels)?;
    let provenance = req.out.join("provenance.json");
    let json = serde_json::to_string_pretty(&labels).expect("labels serialise");
    write_file(&provenance, json.as_bytes())?;
    let dataset_provenance = req.out.join("dataset_provenance.json");
    write_file(&dataset_provenance, sources.to_json().as_bytes())?;
    let unresolved = labels.iter().filter(|l| l.grade.is_none()).count();
    Ok(ConsensusResult {
        rule: req.rule,
        labels,
        unresolved,
        train,
        coordinates,
        provenance,
        dataset_provenance,
        out: req.out.clone(),
    })
}

impl ConsensusResult {
    /// The JSON `discus reads consensus --json` prints.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "rule": self.rule.as_str(), "labels": self.labels.len(), "unresolved": self.unresolved,
            "train": self.train, "coordinates": self.coordinates, "provenance": self.provenance,
            "dataset_provenance": self.dataset_provenance,
        })
    }

    /// Writes the line `discus reads consensus` prints.
    pub fn write_text(&self, w: &mut impl Write) -> io::Result<()> {
        writeln!(
            w,
            "{} findings under rule {}: {} labelled, {} unresolved; written to {}",
            self.labels.len(),
            self.rule.as_str(),
            self.labels.len() - self.unresolved,
            self.unresolved,
            self.out.display()
        )
    }
}

/// `discus reads adjudicate`: decisions (or further blinded reads) to record.
#[derive(Debug, Clone)]
pub struct AdjudicateRequest {
    /// The adjudicator (a reader name).
    pub adjudicator: String,
    /// The round to record in.
    pub round: String,
    /// Record as further blinded reads instead of adjudication decisions.
    pub blinded: bool,
    /// The decisions.
    pub events: Vec<ReadEvent>,
    /// Time to record, seconds since the Unix epoch (`None`: now).
    pub at: Option<i64>,
}

/// What an adjudication recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdjudicateResult {
    /// Events recorded (an unchanged read records nothing).
    pub recorded: usize,
    /// The round.
    pub round: String,
    /// The adjudicator.
    pub reader: String,
    /// Recorded as blinded reads.
    pub blinded: bool,
}

/// Records an adjudicator's decisions in an adjudication round (or blinded reads in a blinded one).
pub fn adjudicate(
    store: &mut ReadsStore,
    req: &AdjudicateRequest,
) -> Result<AdjudicateResult, WorkflowError> {
    let kind = if req.blinded {
        RoundKind::Blinded
    } else {
        RoundKind::Adjudication
    };
    let reader = store.reader(&req.adjudicator)?;
    let round = store.round(&req.round, kind)?;
    let recorded = store.record(reader, round, &req.events, req.at)?;
    Ok(AdjudicateResult {
        recorded,
        round: req.round.clone(),
        reader: req.adjudicator.clone(),
        blinded: req.blinded,
    })
}

impl AdjudicateResult {
    /// The JSON `discus reads adjudicate --json` prints.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"recorded": self.recorded, "round": self.round, "reader": self.reader})
    }

    /// Writes the line `discus reads adjudicate` prints.
    pub fn write_text(&self, w: &mut impl Write) -> io::Result<()> {
        writeln!(
            w,
            "recorded {} {} by {} in round {}",
            self.recorded,
            if self.blinded {
                "blinded reads"
            } else {
                "decisions"
            },
            self.reader,
            self.round
        )
    }
}

/// Writes the agreement report as `discus reads agreement` prints it (`out`: the report folder,
/// when one was written).
pub fn write_agreement_text(
    report: &AgreementReport,
    out: Option<&Path>,
    w: &mut impl Write,
) -> io::Result<()> {
    let v = |e: &Estimate| match (e.value, e.ci_low, e.ci_high) {
        (Some(v), Some(l), Some(h)) => format!("{v:.3} [{l:.3}, {h:.3}]"),
        (Some(v), _, _) => format!("{v:.3}"),
        _ => "undefined".into(),
    };
    writeln!(
        w,
        "{} readers, {} findings, {} studies",
        report.readers.len(),
        report.findings,
        report.studies
    )?;
    writeln!(w, "overall:")?;
    for e in &report.overall.estimates {
        writeln!(w, "  {:<30} {}", e.statistic, v(e))?;
    }
    for p in &report.pairs {
        let k = p
            .estimates
            .iter()
            .find(|e| {
                e.statistic
                    == Statistic::CohenKappa {
                        weights: Weights::Quadratic,
                    }
            })
            .map(v)
            .unwrap_or_default();
        let pts = p.points.as_ref().map_or(String::new(), |pt| {
            format!(
                "; points: median {} mm, {} of {} within {} mm",
                pt.median_mm.map_or("-".into(), |m| format!("{m:.1}")),
                pt.within_tolerance,
                pt.measured,
                pt.tolerance_mm
            )
        });
        writeln!(
            w,
            "{} / {}: {} findings, quadratic kappa {k}{pts}",
            p.a, p.b, p.findings
        )?;
    }
    for g in report.by_condition.iter().chain(&report.by_level) {
        let k = g
            .estimates
            .iter()
            .find(|e| {
                e.statistic
                    == Statistic::KrippendorffAlpha {
                        metric: Metric::Ordinal,
                    }
            })
            .map(v)
            .unwrap_or_default();
        writeln!(
            w,
            "  {:<35} {:>5} findings, ordinal alpha {k}",
            g.group, g.findings
        )?;
    }
    if let Some(out) = out {
        writeln!(w, "report: {}", out.join("index.html").display())?;
    }
    Ok(())
}

/// Writes the disagreements as `discus reads disagreements` prints them (`findings`: how many
/// findings were looked at).
pub fn write_disagreements_text(
    items: &[Disagreement],
    findings: usize,
    w: &mut impl Write,
) -> io::Result<()> {
    for d in items {
        let reads = d
            .grades
            .iter()
            .map(|(r, g)| format!("{r}={}", g.map_or("-", |g| g.as_str())))
            .collect::<Vec<_>>()
            .join(" ");
        writeln!(w, "{}  {}  ({reads})", d.row_id, d.reason)?;
    }
    writeln!(
        w,
        "{} of {} findings need another look",
        items.len(),
        findings
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use discus_core::{Condition, Level, Severity, StudyId};

    #[test]
    fn reader_folders_lists_readers_with_a_train_csv() {
        let dir = tempfile::tempdir().unwrap();
        let e = reader_folders(dir.path()).unwrap_err();
        assert!(matches!(e, WorkflowError::NoReaders { .. }), "{e}");
        for (name, coords) in [("b", true), ("a", false)] {
            let d = dir.path().join(name);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(Layout::new(&d).train_csv(), "study_id\n").unwrap();
            if coords {
                std::fs::write(Layout::new(&d).coordinates_csv(), "x\n").unwrap();
            }
        }
        std::fs::create_dir(dir.path().join("c")).unwrap();
        let r = reader_folders(dir.path()).unwrap();
        let names: Vec<&str> = r.iter().map(|f| f.reader.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(r[0].coordinates.is_none());
        assert!(r[1].coordinates.is_some());
        let missing = dir.path().join("nope");
        assert!(matches!(
            reader_folders(&missing),
            Err(WorkflowError::Read { .. })
        ));
    }

    #[test]
    fn export_names_a_missing_reader_and_round_and_writes_what_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ReadsStore::open(&dir.path().join("reads.sqlite")).unwrap();
        let r = store.reader("ann").unwrap();
        let round = store.round("first", RoundKind::Blinded).unwrap();
        let ev = ReadEvent::new(StudyId(9), Condition::SpinalCanalStenosis, Level::L4L5)
            .grade(Severity::Severe);
        store.record(r, round, &[ev], Some(1)).unwrap();
        let req = |reader: &str, round: &str| ExportRequest {
            reader: reader.into(),
            round: round.into(),
            out: dir.path().join("out"),
        };
        let e = export(&store, &req("bob", "first")).unwrap_err();
        assert!(e.to_string().starts_with("no reader \"bob\" in "), "{e}");
        let e = export(&store, &req("ann", "second")).unwrap_err();
        assert!(e.to_string().starts_with("no round \"second\" in "), "{e}");
        let done = export(&store, &req("ann", "first")).unwrap();
        assert_eq!(done.reads, 1);
        let train = std::fs::read_to_string(&done.train).unwrap();
        let mut lines = train.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let row: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = header
            .iter()
            .position(|h| *h == "spinal_canal_stenosis_l4_l5")
            .unwrap();
        assert_eq!(row[0], "9");
        assert_eq!(row[col], "Severe");
        let mut text = Vec::new();
        done.write_text(&mut text).unwrap();
        assert!(String::from_utf8(text)
            .unwrap()
            .starts_with("1 reads of ann written to "));
    }

    #[test]
    fn import_sources_follow_the_options_and_a_refused_reader_does_not_stop_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        assert_eq!(
            ImportSources::from_options(None, None, None, None, None).unwrap(),
            None
        );
        // A train.csv in the submission shape is a model's predictions.
        let sub = p.join("pred").join("submission.csv");
        std::fs::create_dir_all(sub.parent().unwrap()).unwrap();
        std::fs::write(&sub, "row_id,normal_mild,moderate,severe\n").unwrap();
        assert_eq!(
            ImportSources::from_options(Some("ai:m"), Some(&sub), None, None, None).unwrap(),
            Some(ImportSources::Predictions {
                reader: "ai:m".into(),
                dir: p.join("pred"),
            })
        );
        // Two readers: "a" has a bad header (refused), "b" is imported all the same.
        let readers = p.join("readers");
        let header = std::iter::once("study_id".to_string())
            .chain(discus_core::LabelColumn::all().iter().map(|c| c.name()))
            .collect::<Vec<_>>()
            .join(",");
        for (name, text) in [
            ("a", "study_id\n7\n".to_string()),
            ("b", format!("{header}\n7{}\n", ",Severe".repeat(25))),
        ] {
            std::fs::create_dir_all(readers.join(name)).unwrap();
            std::fs::write(Layout::new(readers.join(name)).train_csv(), text).unwrap();
        }
        let sources = ImportSources::from_options(None, None, None, None, Some(&readers))
            .unwrap()
            .unwrap();
        let mut store = ReadsStore::open(&p.join("reads.sqlite")).unwrap();
        let req = ImportBatchRequest {
            sources,
            round: "first".into(),
            round_kind: RoundKind::Blinded,
            at: Some(1),
        };
        let mut batch = import(&mut store, None, &req, &Progress::new());
        assert_eq!(batch.imports.len(), 2);
        assert!(batch.imports[0].refused());
        assert_eq!(batch.refused(), 1);
        assert!(batch.take_fatal().is_none());
        let mut out = Vec::new();
        batch.write_text(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "b: imported 25 reads (25 grades, 0 points, 1 studies) into round first\n"
        );
        let mut err = Vec::new();
        batch.write_refusals(&mut err).unwrap();
        assert!(String::from_utf8(err)
            .unwrap()
            .starts_with("error: reader a: "));
        let json = batch.to_json().unwrap();
        assert_eq!(json[0]["reader"], "a");
        assert!(json[0]["error"].is_string());
        assert_eq!(json[1]["reader"], "b");
        assert_eq!(json[1]["grades"], 25);
    }
}
