//! The reads store: an append-only log of reading events in one SQLite file.
//!
//! # Durability and concurrency
//! The file is opened in WAL mode with `synchronous=FULL` and a busy timeout
//! ([`BUSY_TIMEOUT`]); every write is one `BEGIN IMMEDIATE` transaction, so two processes recording at
//! once queue for the write lock instead of failing, and a process killed mid-write leaves the store
//! as it was before that transaction.
//!
//! # Schema (version 1)
//! | table | columns | meaning |
//! |---|---|---|
//! | `meta` | `key` PK, `value` | `schema_version` |
//! | `readers` | `id` PK, `name` UNIQUE, `created_at` | one row per reader (adjudicators are readers too) |
//! | `rounds` | `id` PK, `name` UNIQUE, `kind` (`blinded` / `adjudication`), `created_at` | reading rounds |
//! | `imports` | `id` PK, `reader_id`, `round_id`, `content_hash`, `source`, `imported_at`, `n_events`; UNIQUE(`reader_id`, `round_id`, `content_hash`) | one row per imported file pair; makes re-import a no-op |
//! | `events` | `id` PK (increasing), `study_id`, `condition`, `level`, `reader_id`, `round_id`, `grade` (NULL = not graded), `series_id`, `instance_number`, `x`, `y` (NULL = no point), `recorded_at`, `import_id` (NULL when recorded directly), `note` | every read ever recorded, never updated or deleted |
//!
//! Conditions and levels are stored by their keys (`spinal_canal_stenosis`, `l4_l5`), grades by
//! their train.csv spelling. Times are seconds since the Unix epoch (UTC). The *current* read of a
//! reader in a round for a finding is the event with the largest `id` for that
//! `(study, condition, level, reader, round)`.

use discus_core::progress::Progress;
use discus_core::{Condition, Level, RowId, SeriesId, Severity, StudyId};
use discus_data::sqlite::{self, Durability, SqliteError, SqliteOptions};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a writer waits for another process's write transaction before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS readers (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rounds (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('blinded', 'adjudication')), created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS imports (
    id INTEGER PRIMARY KEY, reader_id INTEGER NOT NULL REFERENCES readers(id),
    round_id INTEGER NOT NULL REFERENCES rounds(id), content_hash TEXT NOT NULL,
    source TEXT NOT NULL, imported_at INTEGER NOT NULL, n_events INTEGER NOT NULL,
    UNIQUE (reader_id, round_id, content_hash));
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    study_id INTEGER NOT NULL, condition TEXT NOT NULL, level TEXT NOT NULL,
    reader_id INTEGER NOT NULL REFERENCES readers(id), round_id INTEGER NOT NULL REFERENCES rounds(id),
    grade TEXT, series_id INTEGER, instance_number INTEGER, x REAL, y REAL,
    recorded_at INTEGER NOT NULL, import_id INTEGER REFERENCES imports(id), note TEXT);
CREATE INDEX IF NOT EXISTS events_key ON events (round_id, reader_id, study_id, condition, level);
";

/// A store error, naming the store file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An SQLite operation failed.
    #[error("reads store {path}: {source}")]
    Sql {
        /// The store file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The store or a request is invalid: another schema version, a bad stored value, an empty
    /// reader or round name, a round of another kind.
    #[error("reads store {path}: {message}")]
    Invalid {
        /// The store file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The store's folder could not be created.
    #[error("reads store {path}: cannot create its folder: {source}")]
    Io {
        /// The store file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The import was cancelled through its progress handle; nothing of it was recorded.
    #[error("reads store {path}: import cancelled; nothing of it was recorded")]
    Cancelled {
        /// The store file.
        path: PathBuf,
    },
}

/// Where a dataset's reads store lives by default: `<dataset>/.discus/reads.sqlite`.
pub fn default_store_path(dataset: &Path) -> PathBuf {
    discus_core::layout::Layout::new(dataset)
        .discus_dir()
        .join("reads.sqlite")
}

/// Number of reads written between cancellation checks of an import.
const IMPORT_CHUNK: usize = 256;

/// A reader's id in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReaderId(pub i64);

/// A round's id in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RoundId(pub i64);

/// What a round is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundKind {
    /// Independent reads, each reader blind to the others.
    Blinded,
    /// Decisions on the findings the blinded reads disagreed on.
    Adjudication,
}

impl RoundKind {
    /// The kind as stored in the `rounds.kind` column: `"blinded"` or `"adjudication"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RoundKind::Blinded => "blinded",
            RoundKind::Adjudication => "adjudication",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "blinded" => Some(RoundKind::Blinded),
            "adjudication" => Some(RoundKind::Adjudication),
            _ => None,
        }
    }
}

/// Where a reader put a finding: pixel `(x = column, y = row)` on one instance of one series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The series the point is on (`series_id`).
    pub series: SeriesId,
    /// The InstanceNumber (0020,0013) of the image the point is on.
    pub instance: u32,
    /// Column, in pixels.
    pub x: f64,
    /// Row, in pixels.
    pub y: f64,
}

/// One read to record: a finding's grade and/or point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadEvent {
    /// The study.
    pub study: StudyId,
    /// The condition read.
    pub condition: Condition,
    /// The level read.
    pub level: Level,
    /// The grade given; `None` when the read only places a point.
    pub grade: Option<Severity>,
    /// Where the finding was placed; `None` when not placed.
    pub point: Option<Point>,
    /// A free-text note, if any.
    pub note: Option<String>,
}

impl ReadEvent {
    /// A read of `condition` at `level` in `study` with no grade, point or note yet.
    pub fn new(study: StudyId, condition: Condition, level: Level) -> Self {
        ReadEvent {
            study,
            condition,
            level,
            grade: None,
            point: None,
            note: None,
        }
    }
    /// The read with `grade` set.
    pub fn grade(mut self, grade: Severity) -> Self {
        self.grade = Some(grade);
        self
    }
    /// The read with `point` set.
    pub fn point(mut self, point: Point) -> Self {
        self.point = Some(point);
        self
    }
    /// The read with a note attached.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// A stored read: the current (latest) event of one reader in one round for one finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRead {
    /// The event's id (`events.id`): later events have larger ids.
    pub event_id: i64,
    /// The finding read.
    #[serde(with = "discus_core::types::row_id_serde::flat")]
    pub key: RowId,
    /// The reader's id.
    pub reader: ReaderId,
    /// The reader's name.
    pub reader_name: String,
    /// The round's id.
    pub round: RoundId,
    /// The round's name.
    pub round_name: String,
    /// The round's kind.
    pub round_kind: RoundKind,
    /// The grade; `None` when not graded.
    pub grade: Option<Severity>,
    /// The point; `None` when not placed.
    pub point: Option<Point>,
    /// When the event was recorded, seconds since the Unix epoch (UTC).
    pub recorded_at: i64,
    /// The free-text note, if any.
    pub note: Option<String>,
}

/// A reader row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reader {
    /// The reader's id.
    pub id: ReaderId,
    /// The reader's unique name.
    pub name: String,
}

/// A round row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    /// The round's id.
    pub id: RoundId,
    /// The round's unique name.
    pub name: String,
    /// What the round is for.
    pub kind: RoundKind,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImportOutcome {
    /// New events were recorded under this import id.
    Imported {
        /// The new import's id (`imports.id`).
        import_id: i64,
        /// Events recorded.
        events: usize,
    },
    /// The same content was already imported for this reader and round: nothing was recorded.
    AlreadyImported {
        /// The id of the earlier identical import.
        import_id: i64,
    },
}

/// The reads store.
pub struct ReadsStore {
    conn: Connection,
    path: PathBuf,
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn int(v: u64) -> i64 {
    v as i64
}

impl ReadsStore {
    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// Opens the store, creating the file (and its folder) if needed.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // The only copy of readers' work: every commit on disk before it returns.
        let options = SqliteOptions {
            foreign_keys: true,
            busy_timeout: BUSY_TIMEOUT,
            ..SqliteOptions::writable(Durability::Full)
        };
        let conn = sqlite::open(path, &options).map_err(|e| match e {
            SqliteError::Io { path, source } => StoreError::Io { path, source },
            SqliteError::Sql { path, source } => StoreError::Sql { path, source },
        })?;
        let mut store = ReadsStore {
            conn,
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        tx.execute_batch(SCHEMA).map_err(sql)?;
        let v: Option<String> = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        match v {
            None => {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )
                .map_err(sql)?;
            }
            Some(v) if v == SCHEMA_VERSION.to_string() => {}
            Some(v) => {
                return Err(StoreError::Invalid {
                    path: path.clone(),
                    message: format!(
                        "schema version {v}, this discus reads version {SCHEMA_VERSION}"
                    ),
                })
            }
        }
        tx.commit().map_err(sql)
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The reader of that name, created if new.
    pub fn reader(&mut self, name: &str) -> Result<ReaderId, StoreError> {
        if name.trim().is_empty() {
            return Err(StoreError::Invalid {
                path: self.path.clone(),
                message: "a reader name must not be empty".into(),
            });
        }
        self.conn
            .execute(
                "INSERT OR IGNORE INTO readers (name, created_at) VALUES (?1, ?2)",
                params![name, now_unix()],
            )
            .map_err(self.err())?;
        self.conn
            .query_row("SELECT id FROM readers WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .map(ReaderId)
            .map_err(self.err())
    }

    /// The round of that name, created with `kind` if new; an existing round must have that kind.
    pub fn round(&mut self, name: &str, kind: RoundKind) -> Result<RoundId, StoreError> {
        if name.trim().is_empty() {
            return Err(StoreError::Invalid {
                path: self.path.clone(),
                message: "a round name must not be empty".into(),
            });
        }
        self.conn
            .execute(
                "INSERT OR IGNORE INTO rounds (name, kind, created_at) VALUES (?1, ?2, ?3)",
                params![name, kind.as_str(), now_unix()],
            )
            .map_err(self.err())?;
        let (id, k): (i64, String) = self
            .conn
            .query_row("SELECT id, kind FROM rounds WHERE name = ?1", [name], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(self.err())?;
        if k != kind.as_str() {
            return Err(StoreError::Invalid {
                path: self.path.clone(),
                message: format!("round {name:?} is a {k} round, not {}", kind.as_str()),
            });
        }
        Ok(RoundId(id))
    }

    /// Every reader, in name order.
    pub fn readers(&self) -> Result<Vec<Reader>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT id, name FROM readers ORDER BY name")
            .map_err(self.err())?;
        let rows = st
            .query_map([], |r| {
                Ok(Reader {
                    id: ReaderId(r.get(0)?),
                    name: r.get(1)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Every round, by id.
    pub fn rounds(&self) -> Result<Vec<Round>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT id, name, kind FROM rounds ORDER BY id")
            .map_err(self.err())?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (id, name, kind) = row.map_err(self.err())?;
            let kind = RoundKind::parse(&kind).ok_or_else(|| StoreError::Invalid {
                path: self.path.clone(),
                message: format!("round {name:?} has unknown kind {kind:?}"),
            })?;
            out.push(Round {
                id: RoundId(id),
                name,
                kind,
            });
        }
        Ok(out)
    }

    /// Looks up a round by name without creating it.
    pub fn find_round(&self, name: &str) -> Result<Option<Round>, StoreError> {
        Ok(self.rounds()?.into_iter().find(|r| r.name == name))
    }

    /// Looks up a reader by name without creating it.
    pub fn find_reader(&self, name: &str) -> Result<Option<Reader>, StoreError> {
        Ok(self.readers()?.into_iter().find(|r| r.name == name))
    }

    /// Appends reads by one reader in one round, in one transaction. `at` is the time to record
    /// (seconds since the epoch); `None` takes the clock.
    pub fn record(
        &mut self,
        reader: ReaderId,
        round: RoundId,
        reads: &[ReadEvent],
        at: Option<i64>,
    ) -> Result<usize, StoreError> {
        let at = at.unwrap_or_else(now_unix);
        let path = self.path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        insert_events(&tx, reader, round, reads, at, None).map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(reads.len())
    }

    /// Appends one imported file pair's reads, unless the same content was already imported for
    /// this reader and round. All in one transaction: either every read and the import row are
    /// recorded, or nothing is (also when `progress` is cancelled or the process dies midway).
    /// `progress` counts the reads written.
    #[allow(clippy::too_many_arguments)]
    pub fn record_import(
        &mut self,
        reader: ReaderId,
        round: RoundId,
        content_hash: &str,
        source: &str,
        reads: &[ReadEvent],
        at: Option<i64>,
        progress: &Progress,
    ) -> Result<ImportOutcome, StoreError> {
        let at = at.unwrap_or_else(now_unix);
        let path = self.path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM imports WHERE reader_id = ?1 AND round_id = ?2 AND content_hash = ?3",
                params![reader.0, round.0, content_hash],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        if let Some(import_id) = existing {
            return Ok(ImportOutcome::AlreadyImported { import_id });
        }
        tx.execute(
            "INSERT INTO imports (reader_id, round_id, content_hash, source, imported_at, n_events)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                reader.0,
                round.0,
                content_hash,
                source,
                at,
                reads.len() as i64
            ],
        )
        .map_err(sql)?;
        let import_id = tx.last_insert_rowid();
        progress.stage("recording reads", reads.len() as u64);
        for chunk in reads.chunks(IMPORT_CHUNK) {
            // A cancelled import drops the transaction: nothing of it is recorded.
            progress
                .check()
                .map_err(|_| StoreError::Cancelled { path: path.clone() })?;
            insert_events(&tx, reader, round, chunk, at, Some(import_id)).map_err(sql)?;
            progress.inc(chunk.len() as u64);
        }
        progress
            .check()
            .map_err(|_| StoreError::Cancelled { path: path.clone() })?;
        tx.commit().map_err(sql)?;
        Ok(ImportOutcome::Imported {
            import_id,
            events: reads.len(),
        })
    }

    /// Number of events ever recorded.
    pub fn event_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(self.err())
    }

    /// Number of imports recorded.
    pub fn import_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM imports", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(self.err())
    }

    /// The current reads (latest event per finding, reader and round), of one round or of all,
    /// ordered by study, condition, level, round, reader name.
    pub fn current_reads(&self, round: Option<RoundId>) -> Result<Vec<StoredRead>, StoreError> {
        let q = "
            SELECT e.id, e.study_id, e.condition, e.level, e.reader_id, rd.name, e.round_id, ro.name,
                   ro.kind, e.grade, e.series_id, e.instance_number, e.x, e.y, e.recorded_at, e.note
            FROM events e
            JOIN (SELECT MAX(id) AS id FROM events
                  WHERE (?1 IS NULL OR round_id = ?1)
                  GROUP BY round_id, reader_id, study_id, condition, level) latest ON latest.id = e.id
            JOIN readers rd ON rd.id = e.reader_id
            JOIN rounds ro ON ro.id = e.round_id";
        self.query_reads(q, round.map(|r| r.0))
    }

    /// Every event of one finding, oldest first: the full history of a label.
    pub fn history(&self, key: RowId) -> Result<Vec<StoredRead>, StoreError> {
        let q = "
            SELECT e.id, e.study_id, e.condition, e.level, e.reader_id, rd.name, e.round_id, ro.name,
                   ro.kind, e.grade, e.series_id, e.instance_number, e.x, e.y, e.recorded_at, e.note
            FROM events e
            JOIN readers rd ON rd.id = e.reader_id
            JOIN rounds ro ON ro.id = e.round_id
            WHERE e.study_id = ?1 AND e.condition = ?2 AND e.level = ?3
            ORDER BY e.id";
        let mut st = self.conn.prepare(q).map_err(self.err())?;
        let rows = st
            .query_map(
                params![int(key.study.0), key.condition().key(), key.level().key()],
                raw_row,
            )
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            out.push(self.decode(row.map_err(self.err())?)?);
        }
        Ok(out)
    }

    fn query_reads(&self, q: &str, round: Option<i64>) -> Result<Vec<StoredRead>, StoreError> {
        let mut st = self.conn.prepare(q).map_err(self.err())?;
        let rows = st.query_map([round], raw_row).map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            out.push(self.decode(row.map_err(self.err())?)?);
        }
        out.sort_by(|a, b| (a.key, a.round, &a.reader_name).cmp(&(b.key, b.round, &b.reader_name)));
        Ok(out)
    }

    fn decode(&self, r: RawRow) -> Result<StoredRead, StoreError> {
        let bad = |message: String| StoreError::Invalid {
            path: self.path.clone(),
            message: format!("event {}: {message}", r.0),
        };
        let condition = Condition::from_key(&r.2).map_err(|e| bad(e.to_string()))?;
        let level = Level::from_key(&r.3).map_err(|e| bad(e.to_string()))?;
        let round_kind =
            RoundKind::parse(&r.8).ok_or_else(|| bad(format!("round kind {:?}", r.8)))?;
        let grade = match &r.9 {
            None => None,
            Some(g) => Some(g.parse::<Severity>().map_err(|e| bad(e.to_string()))?),
        };
        let point = match (r.10, r.11, r.12, r.13) {
            (Some(s), Some(i), Some(x), Some(y)) => Some(Point {
                series: SeriesId(s as u64),
                instance: i as u32,
                x,
                y,
            }),
            _ => None,
        };
        Ok(StoredRead {
            event_id: r.0,
            key: RowId::new(StudyId(r.1 as u64), condition, level),
            reader: ReaderId(r.4),
            reader_name: r.5,
            round: RoundId(r.6),
            round_name: r.7,
            round_kind,
            grade,
            point,
            recorded_at: r.14,
            note: r.15,
        })
    }
}

type RawRow = (
    i64,
    i64,
    String,
    String,
    i64,
    String,
    i64,
    String,
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<f64>,
    Option<f64>,
    i64,
    Option<String>,
);

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
        r.get(13)?,
        r.get(14)?,
        r.get(15)?,
    ))
}

/// Appends `reads` to the `events` table inside `tx` (the one event writer: the store's own
/// records and the workflow tables' reads go through it).
pub(crate) fn insert_events(
    tx: &rusqlite::Transaction<'_>,
    reader: ReaderId,
    round: RoundId,
    reads: &[ReadEvent],
    at: i64,
    import_id: Option<i64>,
) -> rusqlite::Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT INTO events (study_id, condition, level, reader_id, round_id, grade, series_id,
                             instance_number, x, y, recorded_at, import_id, note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    for r in reads {
        let p = r.point;
        st.execute(params![
            int(r.study.0),
            r.condition.key(),
            r.level.key(),
            reader.0,
            round.0,
            r.grade.map(|g| g.as_str()),
            p.map(|p| int(p.series.0)),
            p.map(|p| i64::from(p.instance)),
            p.map(|p| p.x),
            p.map(|p| p.y),
            at,
            import_id,
            r.note,
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(study: u64, level: Level, grade: Severity) -> ReadEvent {
        ReadEvent::new(StudyId(study), Condition::SpinalCanalStenosis, level).grade(grade)
    }

    #[test]
    fn latest_event_wins_and_history_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ReadsStore::open(&dir.path().join("r.sqlite")).unwrap();
        let a = s.reader("ann").unwrap();
        let b = s.reader("bob").unwrap();
        assert_eq!(s.reader("ann").unwrap(), a);
        let r1 = s.round("first", RoundKind::Blinded).unwrap();
        s.record(a, r1, &[ev(1, Level::L4L5, Severity::Moderate)], Some(100))
            .unwrap();
        s.record(b, r1, &[ev(1, Level::L4L5, Severity::Severe)], Some(101))
            .unwrap();
        s.record(
            a,
            r1,
            &[ev(1, Level::L4L5, Severity::NormalMild)],
            Some(102),
        )
        .unwrap();
        let cur = s.current_reads(Some(r1)).unwrap();
        assert_eq!(cur.len(), 2);
        let ann = cur.iter().find(|r| r.reader_name == "ann").unwrap();
        assert_eq!(ann.grade, Some(Severity::NormalMild));
        assert_eq!(ann.recorded_at, 102);
        let key = RowId::new(StudyId(1), Condition::SpinalCanalStenosis, Level::L4L5);
        let h = s.history(key).unwrap();
        assert_eq!(
            h.iter().map(|r| r.grade.unwrap()).collect::<Vec<_>>(),
            vec![Severity::Moderate, Severity::Severe, Severity::NormalMild]
        );
        assert_eq!(s.event_count().unwrap(), 3);
    }

    #[test]
    fn rounds_keep_their_kind() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ReadsStore::open(&dir.path().join("r.sqlite")).unwrap();
        s.round("adj", RoundKind::Adjudication).unwrap();
        let e = s.round("adj", RoundKind::Blinded).unwrap_err().to_string();
        assert!(e.contains("is a adjudication round"), "{e}");
        assert!(s.reader(" ").is_err());
    }

    #[test]
    fn same_import_twice_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ReadsStore::open(&dir.path().join("r.sqlite")).unwrap();
        let a = s.reader("ann").unwrap();
        let r = s.round("first", RoundKind::Blinded).unwrap();
        let reads = [
            ev(1, Level::L1L2, Severity::Severe),
            ev(2, Level::L1L2, Severity::Moderate),
        ];
        let o1 = s
            .record_import(a, r, "h1", "x", &reads, Some(5), &Progress::new())
            .unwrap();
        assert!(matches!(o1, ImportOutcome::Imported { events: 2, .. }));
        let o2 = s
            .record_import(a, r, "h1", "x", &reads, Some(6), &Progress::new())
            .unwrap();
        assert!(matches!(o2, ImportOutcome::AlreadyImported { .. }));
        assert_eq!(s.event_count().unwrap(), 2);
        // The same content for another reader is a different import.
        let b = s.reader("bob").unwrap();
        s.record_import(b, r, "h1", "x", &reads, Some(7), &Progress::new())
            .unwrap();
        assert_eq!(s.event_count().unwrap(), 4);
    }

    #[test]
    fn reopening_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/r.sqlite");
        {
            let mut s = ReadsStore::open(&p).unwrap();
            let a = s.reader("ann").unwrap();
            let r = s.round("first", RoundKind::Blinded).unwrap();
            s.record(a, r, &[ev(3, Level::L5S1, Severity::Severe)], None)
                .unwrap();
        }
        let s = ReadsStore::open(&p).unwrap();
        assert_eq!(s.current_reads(None).unwrap().len(), 1);
        assert!(s.current_reads(None).unwrap()[0].recorded_at > 1_600_000_000);
    }
}
