//! The `discus reads` workflows as library calls: a typed request, a typed result, and the text
//! the command prints, written to any [`Write`]. The command line only parses arguments and
//! prints.

use crate::analysis::{
    adjudications, blinded_findings, consensus, AgreementReport, ConsensusLabel, ConsensusRule,
    Disagreement, FindingReads,
};
use crate::geometry::SliceLookup;
use crate::import::{reader_labels, write_labels, ImportError, Label};
use crate::store::{ReadEvent, ReadsStore, RoundKind, StoreError, StoredRead};
use discus_core::agreement::{Estimate, Metric, Statistic, Weights};
use discus_core::fsio::atomic_write;
use discus_core::governance::{check_sources, GovernanceError, Use};
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
        .filter(|p| p.join("train.csv").is_file())
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
            let coords = p.join("train_label_coordinates.csv");
            Some(ReaderFiles {
                reader,
                train: p.join("train.csv"),
                coordinates: coords.is_file().then_some(coords),
            })
        })
        .collect())
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
            std::fs::write(d.join("train.csv"), "study_id\n").unwrap();
            if coords {
                std::fs::write(d.join("train_label_coordinates.csv"), "x\n").unwrap();
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
}
