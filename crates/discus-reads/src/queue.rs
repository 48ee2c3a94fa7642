//! The assisted-labelling queue: which study a reader reads next, and model pre-reads as proposals.
//!
//! # Order
//! Studies are handed out by a priority per study, highest first (ties: the smaller study id):
//! - [`uncertainty_priority`]: the model's uncertainty, the sum over the study's findings of the
//!   entropy (nats) of the predicted grade probabilities in a `discus predict` folder's
//!   `submission.csv` (each row normalised to sum 1);
//! - [`disagreement_priority`]: the readers' disagreement so far in the round, the sum over the
//!   study's findings of the grade spread (most minus least severe grade, in steps), with a finding
//!   where a reader said Severe counting double.
//!
//! # Leases
//! [`Queue::next`] leases the chosen study to the reader until an expiry time. While a lease is
//! live no other reader of the same round is given that study; a reader asking again gets their
//! live lease back (renewed) rather than a second study. [`Queue::complete`] ends the lease and
//! records the study as read by that reader; a study is handed out until `readers_per_study`
//! readers of the round completed it, never twice to one reader. An expired lease frees the study.
//! Leases and completions are rows of the reads store file, so they survive restarts, and every
//! hand-out is one `BEGIN IMMEDIATE` transaction, so two processes never lease one study twice.
//!
//! # Proposals
//! [`proposals`] turns a prediction folder into a study's pre-reads (each finding's most probable
//! grade, a tie to the more severe, and the model's point when `findings.json` has one).
//! [`Queue::record_assisted`] records the reader's read in the store together with the proposal it
//! answered and whether the reader **accepted** it (same grade, and the same point or none
//! proposed) or **changed** it.
//!
//! | table | columns |
//! |---|---|
//! | `queue_leases` | `round_id`, `study_id`, `reader_id`, `leased_at`, `expires_at`; PK (`round_id`, `study_id`) |
//! | `queue_done` | `round_id`, `reader_id`, `study_id`, `done_at`; PK (`round_id`, `reader_id`, `study_id`) |
//! | `assisted_reads` | `event_id` PK (the read in `events`), `source` (e.g. `ai:<model>`), `proposed_grade`, `proposed_series_id`, `proposed_instance_number`, `proposed_x`, `proposed_y`, `outcome` (`accepted` / `changed`) |

use crate::import::ImportError;
use crate::predictions::{parse_predictions, SUBMISSION_FILE};
use crate::qualify::open_workflow;
use crate::store::{Point, ReadEvent, ReaderId, RoundId, StoreError, StoredRead};
use discus_core::formats::parse_submission;
use discus_core::RowId;
use discus_core::{Severity, StudyId};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

const QUEUE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queue_leases (
    round_id INTEGER NOT NULL REFERENCES rounds(id), study_id INTEGER NOT NULL,
    reader_id INTEGER NOT NULL REFERENCES readers(id), leased_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL, PRIMARY KEY (round_id, study_id));
CREATE TABLE IF NOT EXISTS queue_done (
    round_id INTEGER NOT NULL REFERENCES rounds(id), reader_id INTEGER NOT NULL REFERENCES readers(id),
    study_id INTEGER NOT NULL, done_at INTEGER NOT NULL, PRIMARY KEY (round_id, reader_id, study_id));
CREATE TABLE IF NOT EXISTS assisted_reads (
    event_id INTEGER PRIMARY KEY REFERENCES events(id), source TEXT NOT NULL,
    proposed_grade TEXT, proposed_series_id INTEGER, proposed_instance_number INTEGER,
    proposed_x REAL, proposed_y REAL,
    outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'changed')));
";

/// Errors of the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The reads store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The prediction folder could not be read.
    #[error(transparent)]
    Predictions(#[from] ImportError),
    /// A request is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// The model's uncertainty about one study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyUncertainty {
    /// The study.
    pub study: StudyId,
    /// Findings predicted.
    pub findings: usize,
    /// Sum of the findings' entropies (nats): the queue priority.
    pub entropy: f64,
    /// The largest entropy of one finding (nats).
    pub max_entropy: f64,
}

/// The entropy (nats) of a probability triple, normalised to sum 1 first; 0 for an all-zero row.
pub fn entropy(p: [f64; 3]) -> f64 {
    let z: f64 = p.iter().map(|v| v.max(0.0)).sum();
    if z <= 0.0 {
        return 0.0;
    }
    p.iter()
        .map(|v| v.max(0.0) / z)
        .filter(|q| *q > 0.0)
        .map(|q| -q * q.ln())
        .sum()
}

/// Per-study model uncertainty from a `discus predict` folder's `submission.csv`.
pub fn uncertainty(predictions: &Path) -> Result<BTreeMap<StudyId, StudyUncertainty>, QueueError> {
    let sub = predictions.join(SUBMISSION_FILE);
    let bytes = std::fs::read(&sub).map_err(|source| ImportError::Io {
        path: sub.clone(),
        source,
    })?;
    let file = parse_submission(&bytes, &sub).map_err(ImportError::from)?;
    if let Some(e) = file.errors.first() {
        return Err(QueueError::Invalid(format!(
            "{}:{}: {} ({} bad rows)",
            sub.display(),
            e.line,
            e.message,
            file.errors.len()
        )));
    }
    let mut out: BTreeMap<StudyId, StudyUncertainty> = BTreeMap::new();
    for row in &file.rows {
        let study = row.row_id.study;
        let h = entropy(row.probs);
        let u = out.entry(study).or_insert(StudyUncertainty {
            study,
            findings: 0,
            entropy: 0.0,
            max_entropy: 0.0,
        });
        u.findings += 1;
        u.entropy += h;
        u.max_entropy = u.max_entropy.max(h);
    }
    Ok(out)
}

/// Queue priorities by model uncertainty (see the module docs).
pub fn uncertainty_priority(predictions: &Path) -> Result<BTreeMap<StudyId, f64>, QueueError> {
    Ok(uncertainty(predictions)?
        .into_iter()
        .map(|(s, u)| (s, u.entropy))
        .collect())
}

/// Queue priorities by reader disagreement in `round` so far (see the module docs): studies every
/// reader agreed on, or that one reader read, get 0.
pub fn disagreement_priority(reads: &[StoredRead], round: &str) -> BTreeMap<StudyId, f64> {
    let mut out: BTreeMap<StudyId, f64> = BTreeMap::new();
    for f in crate::analysis::blinded_findings(reads, Some(round), None) {
        let grades: Vec<usize> = f.graded().map(|(_, g)| g.index()).collect();
        let spread = match (grades.iter().min(), grades.iter().max()) {
            (Some(lo), Some(hi)) => (hi - lo) as f64,
            _ => 0.0,
        };
        let severe = grades.contains(&Severity::Severe.index()) && spread > 0.0;
        *out.entry(f.key.study).or_default() += spread * if severe { 2.0 } else { 1.0 };
    }
    out
}

/// A study leased to a reader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// The round.
    pub round: RoundId,
    /// The study.
    pub study: StudyId,
    /// The reader holding it.
    pub reader: ReaderId,
    /// When it was (last) leased, seconds since the epoch.
    pub leased_at: i64,
    /// When it expires, seconds since the epoch.
    pub expires_at: i64,
    /// The study's priority when it was handed out.
    pub priority: f64,
}

/// What [`Queue::next`] hands out from.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRequest<'a> {
    /// The round.
    pub round: RoundId,
    /// The reader asking.
    pub reader: ReaderId,
    /// The round's studies.
    pub studies: &'a [StudyId],
    /// Priority per study (higher first); a study without one counts as 0.
    pub priority: &'a BTreeMap<StudyId, f64>,
    /// How many readers of the round read each study.
    pub readers_per_study: usize,
    /// Now, seconds since the epoch.
    pub now: i64,
    /// How long a lease lasts, seconds.
    pub lease_secs: i64,
}

/// One model pre-read of a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The finding.
    pub key: RowId,
    /// The proposed grade (most probable; a tie to the more severe).
    pub grade: Severity,
    /// The predicted probabilities (normal/mild, moderate, severe), as in submission.csv; `None`
    /// when the proposal comes from the AI reader's reads in the store (which keep grades only).
    pub probs: Option<[f64; 3]>,
    /// The model's point, when `findings.json` has one.
    pub point: Option<Point>,
}

/// What the reader did with a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalOutcome {
    /// The read has the proposed grade and the proposed point (or none was proposed).
    Accepted,
    /// The read changed the grade or the point.
    Changed,
}

impl ProposalOutcome {
    /// `"accepted"` or `"changed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalOutcome::Accepted => "accepted",
            ProposalOutcome::Changed => "changed",
        }
    }
    /// Whether `read` accepts `proposal`.
    pub fn of(proposal: &Proposal, read: &ReadEvent) -> ProposalOutcome {
        let same_point = match (proposal.point, read.point) {
            (None, _) => true,
            (Some(p), Some(r)) => p == r,
            (Some(_), None) => false,
        };
        if read.grade == Some(proposal.grade) && same_point {
            ProposalOutcome::Accepted
        } else {
            ProposalOutcome::Changed
        }
    }
}

/// A recorded assisted read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssistedRead {
    /// The read's event id in the store.
    pub event_id: i64,
    /// What the reader did with the proposal.
    pub outcome: ProposalOutcome,
}

/// The model's pre-reads of `study` from a `discus predict` folder, in finding order.
pub fn proposals(predictions: &Path, study: StudyId) -> Result<Vec<Proposal>, QueueError> {
    let (reads, _) = parse_predictions(predictions, None)?;
    let sub = predictions.join(SUBMISSION_FILE);
    let bytes = std::fs::read(&sub).map_err(|source| ImportError::Io {
        path: sub.clone(),
        source,
    })?;
    let file = parse_submission(&bytes, &sub).map_err(ImportError::from)?;
    let probs: BTreeMap<RowId, [f64; 3]> = file
        .rows
        .iter()
        .filter(|r| r.row_id.study == study)
        .map(|r| {
            (
                RowId::new(study, r.row_id.column.condition, r.row_id.column.level),
                r.probs,
            )
        })
        .collect();
    let mut out: Vec<Proposal> = reads
        .into_iter()
        .filter(|r| r.study == study)
        .filter_map(|r| {
            let key = RowId::new(study, r.condition, r.level);
            Some(Proposal {
                key,
                grade: r.grade?,
                probs: Some(*probs.get(&key)?),
                point: r.point,
            })
        })
        .collect();
    out.sort_by_key(|p| p.key);
    Ok(out)
}

/// The pre-reads of `study` by the AI reader named `ai_reader` among the store's current reads
/// (e.g. imported with `discus reads import --reader ai:NAME --predictions DIR`), in finding order:
/// one proposal per graded finding, the latest read when the reader read it in several rounds.
pub fn stored_proposals(reads: &[StoredRead], ai_reader: &str, study: StudyId) -> Vec<Proposal> {
    let mut latest: BTreeMap<RowId, &StoredRead> = BTreeMap::new();
    for r in reads
        .iter()
        .filter(|r| r.reader_name == ai_reader && r.key.study == study && r.grade.is_some())
    {
        let e = latest.entry(r.key).or_insert(r);
        if r.event_id > e.event_id {
            *e = r;
        }
    }
    latest
        .into_values()
        .filter_map(|r| {
            Some(Proposal {
                key: r.key,
                grade: r.grade?,
                probs: None,
                point: r.point,
            })
        })
        .collect()
}

/// The labelling queue on a reads store file.
pub struct Queue {
    conn: Connection,
    path: PathBuf,
}

/// The error of a failed statement on the store file at `path`.
fn sql_error(path: &Path) -> impl Fn(rusqlite::Error) -> QueueError + '_ {
    move |source| {
        QueueError::Store(StoreError::Sql {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Opens a `BEGIN IMMEDIATE` transaction on `conn` (the write lock is taken at once, so two
/// processes never interleave a read-then-write).
fn immediate<'c>(conn: &'c mut Connection, path: &Path) -> Result<Transaction<'c>, QueueError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error(path))
}

impl Queue {
    /// Opens the queue tables of the reads store at `path` (creating them if needed).
    pub fn open(path: &Path) -> Result<Queue, QueueError> {
        Ok(Queue {
            conn: open_workflow(path, QUEUE_SCHEMA)?,
            path: path.to_path_buf(),
        })
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> QueueError + '_ {
        sql_error(&self.path)
    }

    /// The next study for the reader (see the module docs): their live lease renewed, or the
    /// highest-priority study no other reader holds, they have not read, and fewer than
    /// `readers_per_study` readers completed; `None` when there is none.
    pub fn next(&mut self, req: &QueueRequest<'_>) -> Result<Option<Lease>, QueueError> {
        if req.lease_secs <= 0 || req.readers_per_study == 0 {
            return Err(QueueError::Invalid(
                "a lease must last at least a second and a study needs at least one reader".into(),
            ));
        }
        let sql = sql_error(&self.path);
        let tx = immediate(&mut self.conn, &self.path)?;
        tx.execute(
            "DELETE FROM queue_leases WHERE round_id = ?1 AND expires_at <= ?2",
            params![req.round.0, req.now],
        )
        .map_err(&sql)?;
        let prio = |s: StudyId| req.priority.get(&s).copied().unwrap_or(0.0);
        let held: Option<(i64, i64)> = tx
            .query_row(
                "SELECT study_id, leased_at FROM queue_leases WHERE round_id = ?1 AND reader_id = ?2
                 ORDER BY leased_at LIMIT 1",
                params![req.round.0, req.reader.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(&sql)?;
        let expires_at = req.now + req.lease_secs;
        if let Some((study, _)) = held {
            tx.execute(
                "UPDATE queue_leases SET leased_at = ?3, expires_at = ?4 WHERE round_id = ?1 AND study_id = ?2",
                params![req.round.0, study, req.now, expires_at],
            )
            .map_err(&sql)?;
            tx.commit().map_err(&sql)?;
            let study = StudyId(study as u64);
            return Ok(Some(Lease {
                round: req.round,
                study,
                reader: req.reader,
                leased_at: req.now,
                expires_at,
                priority: prio(study),
            }));
        }
        let leased: HashSet<u64> = {
            let mut st = tx
                .prepare("SELECT study_id FROM queue_leases WHERE round_id = ?1")
                .map_err(&sql)?;
            let rows = st
                .query_map([req.round.0], |r| r.get::<_, i64>(0))
                .map_err(&sql)?;
            rows.map(|r| r.map(|v| v as u64))
                .collect::<Result<_, _>>()
                .map_err(&sql)?
        };
        let mut done: BTreeMap<u64, usize> = BTreeMap::new();
        let mut mine: HashSet<u64> = HashSet::new();
        {
            let mut st = tx
                .prepare("SELECT study_id, reader_id FROM queue_done WHERE round_id = ?1")
                .map_err(&sql)?;
            let rows = st
                .query_map([req.round.0], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                })
                .map_err(&sql)?;
            for row in rows {
                let (s, rd) = row.map_err(&sql)?;
                *done.entry(s as u64).or_default() += 1;
                if rd == req.reader.0 {
                    mine.insert(s as u64);
                }
            }
        }
        let unique: BTreeSet<StudyId> = req.studies.iter().copied().collect();
        let best = unique
            .into_iter()
            .filter(|s| {
                !leased.contains(&s.0)
                    && !mine.contains(&s.0)
                    && done.get(&s.0).copied().unwrap_or(0) < req.readers_per_study
            })
            .max_by(|a, b| prio(*a).total_cmp(&prio(*b)).then(b.cmp(a)));
        let Some(study) = best else {
            tx.commit().map_err(&sql)?;
            return Ok(None);
        };
        tx.execute(
            "INSERT INTO queue_leases (round_id, study_id, reader_id, leased_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                req.round.0,
                study.0 as i64,
                req.reader.0,
                req.now,
                expires_at
            ],
        )
        .map_err(&sql)?;
        tx.commit().map_err(&sql)?;
        Ok(Some(Lease {
            round: req.round,
            study,
            reader: req.reader,
            leased_at: req.now,
            expires_at,
            priority: prio(study),
        }))
    }

    /// Gives a leased study back unread (nothing happens when the reader holds no such lease).
    pub fn release(
        &mut self,
        round: RoundId,
        reader: ReaderId,
        study: StudyId,
    ) -> Result<(), QueueError> {
        self.conn
            .execute(
                "DELETE FROM queue_leases WHERE round_id = ?1 AND reader_id = ?2 AND study_id = ?3",
                params![round.0, reader.0, study.0 as i64],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// Records that the reader finished the study in the round and ends their lease on it.
    pub fn complete(
        &mut self,
        round: RoundId,
        reader: ReaderId,
        study: StudyId,
        at: i64,
    ) -> Result<(), QueueError> {
        let sql = sql_error(&self.path);
        let tx = immediate(&mut self.conn, &self.path)?;
        tx.execute(
            "INSERT OR IGNORE INTO queue_done (round_id, reader_id, study_id, done_at) VALUES (?1, ?2, ?3, ?4)",
            params![round.0, reader.0, study.0 as i64, at],
        )
        .map_err(&sql)?;
        tx.execute(
            "DELETE FROM queue_leases WHERE round_id = ?1 AND reader_id = ?2 AND study_id = ?3",
            params![round.0, reader.0, study.0 as i64],
        )
        .map_err(&sql)?;
        tx.commit().map_err(&sql)?;
        Ok(())
    }

    /// The live leases of a round at `now`, by study.
    pub fn leases(&self, round: RoundId, now: i64) -> Result<Vec<Lease>, QueueError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT study_id, reader_id, leased_at, expires_at FROM queue_leases
                 WHERE round_id = ?1 AND expires_at > ?2 ORDER BY study_id",
            )
            .map_err(self.sql())?;
        let rows = st
            .query_map(params![round.0, now], |r| {
                Ok(Lease {
                    round,
                    study: StudyId(r.get::<_, i64>(0)? as u64),
                    reader: ReaderId(r.get(1)?),
                    leased_at: r.get(2)?,
                    expires_at: r.get(3)?,
                    priority: 0.0,
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// Records the reader's `read` of a proposed finding in the store's event log, with the
    /// proposal and whether it was accepted or changed, in one transaction. `source` names the
    /// model (e.g. `ai:<model>`).
    pub fn record_assisted(
        &mut self,
        reader: ReaderId,
        round: RoundId,
        proposal: &Proposal,
        read: &ReadEvent,
        source: &str,
        at: i64,
    ) -> Result<AssistedRead, QueueError> {
        let key = RowId::new(read.study, read.condition, read.level);
        if key != proposal.key {
            return Err(QueueError::Invalid(format!(
                "the read ({}) answers another finding than the proposal ({})",
                crate::import::row_id(key),
                crate::import::row_id(proposal.key)
            )));
        }
        let outcome = ProposalOutcome::of(proposal, read);
        let sql = sql_error(&self.path);
        let tx = immediate(&mut self.conn, &self.path)?;
        crate::store::insert_events(&tx, reader, round, std::slice::from_ref(read), at, None)
            .map_err(&sql)?;
        let event_id = tx.last_insert_rowid();
        let pp = proposal.point;
        tx.execute(
            "INSERT INTO assisted_reads (event_id, source, proposed_grade, proposed_series_id,
                 proposed_instance_number, proposed_x, proposed_y, outcome)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                event_id,
                source,
                proposal.grade.as_str(),
                pp.map(|p| p.series.0 as i64),
                pp.map(|p| i64::from(p.instance)),
                pp.map(|p| p.x),
                pp.map(|p| p.y),
                outcome.as_str(),
            ],
        )
        .map_err(&sql)?;
        tx.commit().map_err(&sql)?;
        Ok(AssistedRead { event_id, outcome })
    }

    /// The outcome recorded with an event, when the event was an assisted read.
    pub fn outcome_of(&self, event_id: i64) -> Result<Option<ProposalOutcome>, QueueError> {
        let s: Option<String> = self
            .conn
            .query_row(
                "SELECT outcome FROM assisted_reads WHERE event_id = ?1",
                [event_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql())?;
        Ok(s.map(|s| {
            if s == "accepted" {
                ProposalOutcome::Accepted
            } else {
                ProposalOutcome::Changed
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ReadsStore, RoundKind};
    use discus_core::{Condition, Level, SeriesId};

    #[test]
    fn entropy_matches_hand_values() {
        assert!((entropy([1.0, 0.0, 0.0])).abs() < 1e-15);
        assert!((entropy([1.0, 1.0, 1.0]) - 3f64.ln()).abs() < 1e-12);
        // -(0.5 ln 0.5 + 2 * 0.25 ln 0.25) = 1.5 ln 2
        assert!((entropy([0.5, 0.25, 0.25]) - 1.5 * 2f64.ln()).abs() < 1e-12);
        assert!((entropy([2.0, 1.0, 1.0]) - 1.5 * 2f64.ln()).abs() < 1e-12);
    }

    fn setup() -> (
        tempfile::TempDir,
        ReadsStore,
        Queue,
        RoundId,
        ReaderId,
        ReaderId,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.sqlite");
        let mut s = ReadsStore::open(&p).unwrap();
        let round = s.round("first", RoundKind::Blinded).unwrap();
        let a = s.reader("ann").unwrap();
        let b = s.reader("bob").unwrap();
        let q = Queue::open(&p).unwrap();
        (dir, s, q, round, a, b)
    }

    #[test]
    fn leases_order_exclusivity_expiry_and_restart() {
        let (dir, _s, mut q, round, a, b) = setup();
        let studies = [StudyId(1), StudyId(2), StudyId(3)];
        let prio: BTreeMap<StudyId, f64> =
            [(StudyId(1), 0.5), (StudyId(2), 2.0), (StudyId(3), 1.0)].into();
        let req = |reader, now| QueueRequest {
            round,
            reader,
            studies: &studies,
            priority: &prio,
            readers_per_study: 2,
            now,
            lease_secs: 100,
        };
        let la = q.next(&req(a, 1000)).unwrap().unwrap();
        assert_eq!(la.study, StudyId(2), "most uncertain first");
        // Asking again returns the same lease, renewed.
        let la2 = q.next(&req(a, 1010)).unwrap().unwrap();
        assert_eq!((la2.study, la2.expires_at), (StudyId(2), 1110));
        // Bob never gets study 2 while Ann holds it.
        let lb = q.next(&req(b, 1020)).unwrap().unwrap();
        assert_eq!(lb.study, StudyId(3));
        // The leases survive reopening the store.
        drop(q);
        let mut q = Queue::open(&dir.path().join("r.sqlite")).unwrap();
        let live = q.leases(round, 1030).unwrap();
        assert_eq!(
            live.iter().map(|l| (l.study, l.reader)).collect::<Vec<_>>(),
            vec![(StudyId(2), a), (StudyId(3), b)]
        );
        // Ann finishes study 2; Bob finishes 3 and then gets 2 (second reader), not 3 again.
        q.complete(round, a, StudyId(2), 1040).unwrap();
        q.complete(round, b, StudyId(3), 1041).unwrap();
        let lb2 = q.next(&req(b, 1050)).unwrap().unwrap();
        assert_eq!(lb2.study, StudyId(2));
        // Ann: 2 is done by her and leased to Bob; 3 is next.
        let la3 = q.next(&req(a, 1060)).unwrap().unwrap();
        assert_eq!(la3.study, StudyId(3));
        // Bob's lease on 2 expires at 1150: after that, a third reader could have it, but 2 has
        // two readers once Bob completes. Let Bob's lease lapse instead: Carl gets study 2.
        let mut s = ReadsStore::open(&dir.path().join("r.sqlite")).unwrap();
        let c = s.reader("carl").unwrap();
        let lc = q.next(&req(c, 1100)).unwrap().unwrap();
        assert_eq!(lc.study, StudyId(1), "2 and 3 are leased");
        q.release(round, c, StudyId(1)).unwrap();
        q.complete(round, a, StudyId(3), 1101).unwrap();
        let lc2 = q.next(&req(c, 1151)).unwrap().unwrap();
        assert_eq!(lc2.study, StudyId(2), "Bob's lease on 2 expired at 1150");
        // Study 3 has two readers: nobody else gets it.
        q.complete(round, c, StudyId(2), 1152).unwrap();
        let lc3 = q.next(&req(c, 1153)).unwrap().unwrap();
        assert_eq!(lc3.study, StudyId(1));
        q.complete(round, c, StudyId(1), 1154).unwrap();
        assert!(q.next(&req(c, 1155)).unwrap().is_none());
    }

    #[test]
    fn disagreement_orders_studies() {
        let (_dir, mut s, _q, round, a, b) = setup();
        let c = Condition::SpinalCanalStenosis;
        let ev = |st: u64, l: Level, g: Severity| ReadEvent::new(StudyId(st), c, l).grade(g);
        s.record(
            a,
            round,
            &[
                ev(1, Level::L1L2, Severity::NormalMild),
                ev(2, Level::L1L2, Severity::NormalMild),
                ev(2, Level::L2L3, Severity::Moderate),
                ev(3, Level::L1L2, Severity::Moderate),
            ],
            Some(1),
        )
        .unwrap();
        s.record(
            b,
            round,
            &[
                ev(1, Level::L1L2, Severity::Severe),
                ev(2, Level::L1L2, Severity::Moderate),
                ev(2, Level::L2L3, Severity::NormalMild),
                ev(3, Level::L1L2, Severity::Moderate),
            ],
            Some(1),
        )
        .unwrap();
        let p = disagreement_priority(&s.current_reads(None).unwrap(), "first");
        // Study 1: spread 2, Severe involved: 4. Study 2: 1 + 1 = 2. Study 3: 0.
        assert_eq!(p[&StudyId(1)], 4.0);
        assert_eq!(p[&StudyId(2)], 2.0);
        assert_eq!(p[&StudyId(3)], 0.0);
    }

    #[test]
    fn proposals_from_predictions_and_recorded_outcomes() {
        let (dir, s, mut q, round, a, _b) = setup();
        let pred = dir.path().join("pred");
        std::fs::create_dir_all(pred.join("7")).unwrap();
        std::fs::write(
            pred.join("submission.csv"),
            "row_id,normal_mild,moderate,severe\n\
             7_spinal_canal_stenosis_l1_l2,0.7,0.2,0.1\n\
             7_spinal_canal_stenosis_l2_l3,0.2,0.4,0.4\n\
             8_spinal_canal_stenosis_l1_l2,0.34,0.33,0.33\n",
        )
        .unwrap();
        std::fs::write(
            pred.join("7/findings.json"),
            r#"{"findings":[{"row_id":"7_spinal_canal_stenosis_l1_l2","point":{"series":3,"instance":5,"x":10.0,"y":20.0}}]}"#,
        )
        .unwrap();
        let u = uncertainty(&pred).unwrap();
        let h7 = entropy([0.7, 0.2, 0.1]) + entropy([0.2, 0.4, 0.4]);
        assert!((u[&StudyId(7)].entropy - h7).abs() < 1e-12);
        assert!(u[&StudyId(8)].max_entropy > u[&StudyId(7)].max_entropy);
        let props = proposals(&pred, StudyId(7)).unwrap();
        assert_eq!(props.len(), 2);
        assert_eq!(props[0].grade, Severity::NormalMild);
        assert_eq!(
            props[0].point,
            Some(Point {
                series: SeriesId(3),
                instance: 5,
                x: 10.0,
                y: 20.0
            })
        );
        // A tie goes to the more severe grade.
        assert_eq!(props[1].grade, Severity::Severe);
        assert_eq!(props[1].point, None);
        let accept = ReadEvent::new(StudyId(7), props[0].key.condition(), props[0].key.level())
            .grade(Severity::NormalMild)
            .point(props[0].point.unwrap());
        let r1 = q
            .record_assisted(a, round, &props[0], &accept, "ai:m", 5)
            .unwrap();
        assert_eq!(r1.outcome, ProposalOutcome::Accepted);
        let change = ReadEvent::new(StudyId(7), props[1].key.condition(), props[1].key.level())
            .grade(Severity::Moderate);
        let r2 = q
            .record_assisted(a, round, &props[1], &change, "ai:m", 6)
            .unwrap();
        assert_eq!(r2.outcome, ProposalOutcome::Changed);
        assert_eq!(
            q.outcome_of(r1.event_id).unwrap(),
            Some(ProposalOutcome::Accepted)
        );
        assert_eq!(
            q.outcome_of(r2.event_id).unwrap(),
            Some(ProposalOutcome::Changed)
        );
        // The reads are ordinary reads of the store.
        let cur = s.current_reads(Some(round)).unwrap();
        assert_eq!(cur.len(), 2);
        assert_eq!(cur[1].grade, Some(Severity::Moderate));
        // A read of another finding than the proposal's is refused.
        assert!(q
            .record_assisted(a, round, &props[0], &change, "ai:m", 7)
            .is_err());
    }

    #[test]
    fn stored_proposals_are_the_ai_readers_latest_graded_reads() {
        let (_dir, mut s, _q, round, a, _b) = setup();
        let ai = s.reader("ai:m").unwrap();
        let other = s.round("second", RoundKind::Blinded).unwrap();
        let c = Condition::SpinalCanalStenosis;
        let p = Point {
            series: SeriesId(3),
            instance: 5,
            x: 1.5,
            y: 2.5,
        };
        let ev = |st: u64, l: Level| ReadEvent::new(StudyId(st), c, l);
        s.record(
            ai,
            round,
            &[
                ev(7, Level::L1L2).grade(Severity::Moderate).point(p),
                ev(7, Level::L2L3),
                ev(8, Level::L1L2).grade(Severity::Severe),
            ],
            Some(1),
        )
        .unwrap();
        // A later read of L1/L2 in another round wins; Ann's reads are not proposals.
        s.record(
            ai,
            other,
            &[ev(7, Level::L1L2).grade(Severity::Severe)],
            Some(2),
        )
        .unwrap();
        s.record(
            a,
            round,
            &[ev(7, Level::L3L4).grade(Severity::Severe)],
            Some(3),
        )
        .unwrap();
        let props = stored_proposals(&s.current_reads(None).unwrap(), "ai:m", StudyId(7));
        assert_eq!(props.len(), 1, "ungraded reads propose nothing: {props:?}");
        assert_eq!(props[0].key, RowId::new(StudyId(7), c, Level::L1L2));
        assert_eq!(
            (props[0].grade, props[0].point, props[0].probs),
            (Severity::Severe, None, None)
        );
    }
}
