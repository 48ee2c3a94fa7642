//! The dataset index: one SQLite file (default `<ROOT>/.discus/index.sqlite`) that remembers every
//! series, stack and instance header of a LumbarDISC-layout dataset, its labels, points and series
//! descriptions, and the findings of the last `discus validate`, so later commands need not rescan
//! 150,000 headers.
//!
//! The file is opened in WAL mode (readers never block the single writer). Every write happens in a
//! transaction that holds whole series (a series' instances, its stacks and its row together), so an
//! interrupted scan leaves a consistent index; the next scan re-reads only files that are new or whose
//! size or modification time changed, and so resumes where the last one stopped.
//!
//! # Schema (version 1)
//! Ids are SQLite INTEGERs (study and series ids fit in 63 bits). `split` is the image folder,
//! `train_images` or `test_images`. Paths are relative to the dataset root, with `/` separators.
//!
//! | table | columns | meaning |
//! |---|---|---|
//! | `meta` | `key` PK, `value` | `schema_version`, `generation` (incremented each completed scan), `provenance` (JSON [`discus_core::governance::Provenance`] with the dataset card, when the dataset has one) |
//! | `series` | `split, study_id, series_id` (PK), `generation`, `n_files`, `n_readable`, `n_stacks`, `description` (from the header), `plane`, `manufacturer`, `field_strength`, `repetition_time`, `echo_time`, `inversion_time` | one row per series folder; `generation` is the last scan that saw it |
//! | `instances` | `path` PK, `split, study_id, series_id`, `file_number` (the file name as a number, NULL if it is not one), `size`, `mtime_ns`, `error` (NULL when the header was read), `instance_number`, `study_uid`, `series_uid`, `sop_uid`, `rows`, `columns`, `ipp_x, ipp_y, ipp_z`, `iop_0..iop_5`, `pixel_spacing_row, pixel_spacing_col`, `slice_thickness`, `transfer_syntax`, `stack_index`, `slice_index`, `header_json` (the full [`InstanceHeader`] as JSON) | one row per file; `stack_index`/`slice_index` place it in its series' stacks (NULL without geometry) |
//! | `stacks` | `split, study_id, series_id, stack_index` (PK), `plane`, `rows`, `columns`, `n_slices`, `slice_spacing`, `uniform_spacing`, `normal_x, normal_y, normal_z`, `first_instance`, `last_instance` | the series' stacks (see [`crate::geometry::assemble_stacks`]) |
//! | `descriptions` | `split, study_id, series_id` (PK), `description` | `*_series_descriptions.csv` |
//! | `labels` | `study_id, condition, level` (PK), `grade` (NULL = missing) | train.csv, one row per cell |
//! | `points` | `study_id, series_id, instance_number, condition, level, x, y` | train_label_coordinates.csv |
//! | `findings` | `kind, severity, study_id, series_id, instance_number, message` | the last validation's findings |
//!
//! Conditions and levels are stored by their keys (`spinal_canal_stenosis`, `l4_l5`); grades and
//! descriptions by their CSV spelling.

use crate::geometry::Stack;
use crate::header::InstanceHeader;
use crate::sqlite::{self, Durability, SqliteError, SqliteOptions};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The schema version this discus writes (stored as `meta.schema_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// An index could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// An SQLite operation failed.
    #[error("index {}: {source}", path.display())]
    Sql {
        /// The index file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The index's folder could not be created.
    #[error("index {}: {source}", path.display())]
    Io {
        /// The index file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The index was written by another schema version.
    #[error("index {}: schema version {found}, this discus writes {SCHEMA_VERSION}; delete the file to rebuild it", path.display())]
    Version {
        /// The index file.
        path: PathBuf,
        /// The version found in it.
        found: i64,
    },
}

impl From<SqliteError> for IndexError {
    fn from(e: SqliteError) -> Self {
        match e {
            SqliteError::Io { path, source } => IndexError::Io { path, source },
            SqliteError::Sql { path, source } => IndexError::Sql { path, source },
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series (
  split TEXT NOT NULL, study_id INTEGER NOT NULL, series_id INTEGER NOT NULL,
  generation INTEGER NOT NULL, n_files INTEGER NOT NULL, n_readable INTEGER NOT NULL,
  n_stacks INTEGER NOT NULL, description TEXT, plane TEXT, manufacturer TEXT, field_strength REAL,
  repetition_time REAL, echo_time REAL, inversion_time REAL,
  PRIMARY KEY (split, study_id, series_id));
CREATE TABLE IF NOT EXISTS instances (
  path TEXT PRIMARY KEY, split TEXT NOT NULL, study_id INTEGER NOT NULL, series_id INTEGER NOT NULL,
  file_number INTEGER, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, error TEXT,
  instance_number INTEGER, study_uid TEXT, series_uid TEXT, sop_uid TEXT, rows INTEGER, columns INTEGER,
  ipp_x REAL, ipp_y REAL, ipp_z REAL, iop_0 REAL, iop_1 REAL, iop_2 REAL, iop_3 REAL, iop_4 REAL, iop_5 REAL,
  pixel_spacing_row REAL, pixel_spacing_col REAL, slice_thickness REAL, transfer_syntax TEXT,
  stack_index INTEGER, slice_index INTEGER, header_json TEXT);
CREATE INDEX IF NOT EXISTS instances_by_series ON instances (split, study_id, series_id);
CREATE TABLE IF NOT EXISTS stacks (
  split TEXT NOT NULL, study_id INTEGER NOT NULL, series_id INTEGER NOT NULL, stack_index INTEGER NOT NULL,
  plane TEXT NOT NULL, rows INTEGER NOT NULL, columns INTEGER NOT NULL, n_slices INTEGER NOT NULL,
  slice_spacing REAL, uniform_spacing INTEGER NOT NULL, normal_x REAL NOT NULL, normal_y REAL NOT NULL,
  normal_z REAL NOT NULL, first_instance INTEGER NOT NULL, last_instance INTEGER NOT NULL,
  PRIMARY KEY (split, study_id, series_id, stack_index));
CREATE TABLE IF NOT EXISTS descriptions (
  split TEXT NOT NULL, study_id INTEGER NOT NULL, series_id INTEGER NOT NULL, description TEXT NOT NULL,
  PRIMARY KEY (split, study_id, series_id));
CREATE TABLE IF NOT EXISTS labels (
  study_id INTEGER NOT NULL, condition TEXT NOT NULL, level TEXT NOT NULL, grade TEXT,
  PRIMARY KEY (study_id, condition, level));
CREATE TABLE IF NOT EXISTS points (
  study_id INTEGER NOT NULL, series_id INTEGER NOT NULL, instance_number INTEGER NOT NULL,
  condition TEXT NOT NULL, level TEXT NOT NULL, x REAL NOT NULL, y REAL NOT NULL);
CREATE TABLE IF NOT EXISTS findings (
  kind TEXT NOT NULL, severity TEXT NOT NULL, study_id INTEGER, series_id INTEGER, instance_number INTEGER,
  message TEXT NOT NULL);
";

/// What the index remembers about one file.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFile {
    /// File size in bytes when it was indexed.
    pub size: u64,
    /// Modification time when it was indexed, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// The header, when it was read.
    pub header: Option<InstanceHeader>,
    /// Why it could not be read, otherwise.
    pub error: Option<String>,
}

/// One file of a series, as the scanner hands it to [`Index::write_series`].
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRecord {
    /// Relative to the dataset root, `/`-separated.
    pub path: String,
    /// The file name as a number, `None` when it is not one.
    pub file_number: Option<i64>,
    /// File size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// The header, when it could be read.
    pub header: Option<InstanceHeader>,
    /// Why the header could not be read, when it could not.
    pub error: Option<String>,
    /// `(stack index, slice index)` within the series.
    pub place: Option<(usize, usize)>,
}

/// The series-level row of the index.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeriesRow {
    /// The image folder: `train_images` or `test_images`.
    pub split: String,
    /// `study_id`: the study folder's name.
    pub study_id: u64,
    /// `series_id`: the series folder's name.
    pub series_id: u64,
    /// Files in the series folder.
    pub n_files: usize,
    /// Files whose header was read.
    pub n_readable: usize,
    /// Series Description (0008,103E) from the headers.
    pub description: Option<String>,
    /// The plane of the series' main stack (`sagittal`, `coronal`, `axial`).
    pub plane: Option<String>,
    /// Manufacturer (0008,0070).
    pub manufacturer: Option<String>,
    /// Magnetic Field Strength (0018,0087), tesla.
    pub field_strength: Option<f64>,
    /// Repetition Time (0018,0080), ms.
    pub repetition_time: Option<f64>,
    /// Echo Time (0018,0081), ms.
    pub echo_time: Option<f64>,
    /// Inversion Time (0018,0082), ms.
    pub inversion_time: Option<f64>,
}

/// Everything written for one series in one transaction.
#[derive(Debug, Clone)]
pub struct SeriesWrite {
    /// The series-level row.
    pub row: SeriesRow,
    /// The series' stacks, in stack-index order.
    pub stacks: Vec<Stack>,
    /// `None` when no file of the series changed since the last scan (only the row is refreshed).
    pub instances: Option<Vec<InstanceRecord>>,
}

/// A row of the `findings` table.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingRow {
    /// The finding kind's snake_case name.
    pub kind: String,
    /// `error`, `warning` or `info`.
    pub severity: String,
    /// The study, when the finding concerns one.
    pub study_id: Option<u64>,
    /// The series, when the finding concerns one.
    pub series_id: Option<u64>,
    /// The InstanceNumber, when the finding concerns one image.
    pub instance_number: Option<i64>,
    /// The finding in words.
    pub message: String,
}

/// The dataset index.
pub struct Index {
    conn: Connection,
    path: PathBuf,
    generation: i64,
}

/// `<root>/.discus/index.sqlite`
pub fn default_index_path(root: &Path) -> PathBuf {
    discus_core::layout::Layout::new(root).index()
}

fn i(v: u64) -> i64 {
    v as i64
}

impl Index {
    fn sql_err(&self) -> impl Fn(rusqlite::Error) -> IndexError + '_ {
        move |source| IndexError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// Opens (creating if needed) the index for writing; WAL mode.
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        let e = |source| IndexError::Sql {
            path: path.to_path_buf(),
            source,
        };
        // A cache: a crash may lose the last commits (they are rescanned), never corrupt it.
        let conn = sqlite::open(path, &SqliteOptions::writable(Durability::Normal))?;
        conn.execute_batch(SCHEMA).map_err(e)?;
        let version: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key='schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(e)?;
        match version.and_then(|v| v.parse::<i64>().ok()) {
            Some(v) if v != SCHEMA_VERSION => {
                return Err(IndexError::Version {
                    path: path.to_path_buf(),
                    found: v,
                })
            }
            Some(_) => {}
            None => {
                conn.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )
                .map_err(e)?;
            }
        }
        let generation: i64 = conn
            .query_row("SELECT value FROM meta WHERE key='generation'", [], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(e)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(Index {
            conn,
            path: path.to_path_buf(),
            generation: generation + 1,
        })
    }

    /// Opens an existing index read-only (for scanner threads and later commands).
    pub fn open_read_only(path: &Path) -> Result<Index, IndexError> {
        let conn = sqlite::open(path, &SqliteOptions::read_only())?;
        Ok(Index {
            conn,
            path: path.to_path_buf(),
            generation: 0,
        })
    }

    /// The index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying connection, for queries the methods here do not cover.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The series that have files in the index: `(split, study, series)`.
    pub fn indexed_series(
        &self,
    ) -> Result<std::collections::HashSet<(String, u64, u64)>, IndexError> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT split, study_id, series_id FROM instances")
            .map_err(self.sql_err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ))
            })
            .map_err(self.sql_err())?;
        rows.collect::<Result<_, _>>().map_err(self.sql_err())
    }

    /// The files the index holds for one series, by relative path.
    pub fn series_files(
        &self,
        split: &str,
        study_id: u64,
        series_id: u64,
    ) -> Result<HashMap<String, StoredFile>, IndexError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT path, size, mtime_ns, error, header_json FROM instances
                 WHERE split = ?1 AND study_id = ?2 AND series_id = ?3",
            )
            .map_err(self.sql_err())?;
        let rows = stmt
            .query_map(params![split, i(study_id), i(series_id)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })
            .map_err(self.sql_err())?;
        let mut out = HashMap::new();
        for row in rows {
            let (path, size, mtime_ns, error, json) = row.map_err(self.sql_err())?;
            // A header that no longer parses (written by another version) is simply re-read.
            let header = json.and_then(|j| serde_json::from_str::<InstanceHeader>(&j).ok());
            if header.is_none() && error.is_none() {
                continue;
            }
            out.insert(
                path,
                StoredFile {
                    size: size as u64,
                    mtime_ns,
                    header,
                    error,
                },
            );
        }
        Ok(out)
    }

    /// Writes several series, each completely (row, stacks and, if changed, instances), in one
    /// transaction.
    pub fn write_series(&mut self, batch: &[SeriesWrite]) -> Result<(), IndexError> {
        let generation = self.generation;
        let path = self.path.clone();
        let e = |source| IndexError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut up_series = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO series VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)",
                )
                .map_err(e)?;
            let mut del_stacks = tx
                .prepare_cached(
                    "DELETE FROM stacks WHERE split=?1 AND study_id=?2 AND series_id=?3",
                )
                .map_err(e)?;
            let mut ins_stack = tx
                .prepare_cached(
                    "INSERT INTO stacks VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)",
                )
                .map_err(e)?;
            let mut del_inst = tx
                .prepare_cached(
                    "DELETE FROM instances WHERE split=?1 AND study_id=?2 AND series_id=?3",
                )
                .map_err(e)?;
            let mut ins_inst = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO instances VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,
                     ?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29,?30)",
                )
                .map_err(e)?;
            for w in batch {
                let r = &w.row;
                let key = params![r.split, i(r.study_id), i(r.series_id)];
                up_series
                    .execute(params![
                        r.split,
                        i(r.study_id),
                        i(r.series_id),
                        generation,
                        r.n_files as i64,
                        r.n_readable as i64,
                        w.stacks.len() as i64,
                        r.description,
                        r.plane,
                        r.manufacturer,
                        r.field_strength,
                        r.repetition_time,
                        r.echo_time,
                        r.inversion_time,
                    ])
                    .map_err(e)?;
                let Some(instances) = &w.instances else {
                    continue;
                };
                del_stacks.execute(key).map_err(e)?;
                for (k, s) in w.stacks.iter().enumerate() {
                    let first = s
                        .slices
                        .iter()
                        .map(|x| x.instance_number)
                        .min()
                        .unwrap_or(0);
                    let last = s
                        .slices
                        .iter()
                        .map(|x| x.instance_number)
                        .max()
                        .unwrap_or(0);
                    ins_stack
                        .execute(params![
                            r.split,
                            i(r.study_id),
                            i(r.series_id),
                            k as i64,
                            s.plane().as_str(),
                            s.rows,
                            s.columns,
                            s.len() as i64,
                            s.slice_spacing,
                            s.uniform_spacing,
                            s.normal[0],
                            s.normal[1],
                            s.normal[2],
                            first,
                            last,
                        ])
                        .map_err(e)?;
                }
                del_inst.execute(key).map_err(e)?;
                for f in instances {
                    let h = f.header.as_ref();
                    let ipp = h.and_then(|h| h.image_position_patient);
                    let iop = h.and_then(|h| h.image_orientation_patient);
                    let ps = h.and_then(|h| h.pixel_spacing);
                    let json = h.map(|h| serde_json::to_string(h).expect("headers serialise"));
                    ins_inst
                        .execute(params![
                            f.path,
                            r.split,
                            i(r.study_id),
                            i(r.series_id),
                            f.file_number,
                            f.size as i64,
                            f.mtime_ns,
                            f.error,
                            h.and_then(|h| h.instance_number),
                            h.map(|h| h.study_instance_uid.as_str()),
                            h.map(|h| h.series_instance_uid.as_str()),
                            h.map(|h| h.sop_instance_uid.as_str()),
                            h.map(|h| h.rows),
                            h.map(|h| h.columns),
                            ipp.map(|v| v[0]),
                            ipp.map(|v| v[1]),
                            ipp.map(|v| v[2]),
                            iop.map(|v| v[0]),
                            iop.map(|v| v[1]),
                            iop.map(|v| v[2]),
                            iop.map(|v| v[3]),
                            iop.map(|v| v[4]),
                            iop.map(|v| v[5]),
                            ps.map(|v| v[0]),
                            ps.map(|v| v[1]),
                            h.and_then(|h| h.slice_thickness),
                            h.map(|h| h.transfer_syntax.as_str()),
                            f.place.map(|p| p.0 as i64),
                            f.place.map(|p| p.1 as i64),
                            json,
                        ])
                        .map_err(e)?;
                }
            }
        }
        tx.commit().map_err(e)
    }

    /// Replaces the CSV-derived tables and the findings, removes series (and their files and stacks)
    /// not seen by this scan, and marks the scan complete, in one transaction.
    pub fn finish_scan(
        &mut self,
        tables: &CsvTables,
        findings: &[FindingRow],
    ) -> Result<(), IndexError> {
        let generation = self.generation;
        let path = self.path.clone();
        let e = |source| IndexError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(e)?;
        tx.execute_batch(
            "DELETE FROM descriptions; DELETE FROM labels; DELETE FROM points; DELETE FROM findings;",
        )
        .map_err(e)?;
        {
            let mut st = tx
                .prepare("INSERT OR REPLACE INTO descriptions VALUES (?1,?2,?3,?4)")
                .map_err(e)?;
            for (split, d) in &tables.descriptions {
                st.execute(params![split, i(d.study.0), i(d.series.0), d.kind.as_str()])
                    .map_err(e)?;
            }
            let mut st = tx
                .prepare("INSERT OR REPLACE INTO labels VALUES (?1,?2,?3,?4)")
                .map_err(e)?;
            for l in &tables.labels {
                for col in discus_core::LabelColumn::all() {
                    st.execute(params![
                        i(l.study.0),
                        col.condition.key(),
                        col.level.key(),
                        l.grades[col.index()].map(|g| g.as_str()),
                    ])
                    .map_err(e)?;
                }
            }
            let mut st = tx
                .prepare("INSERT INTO points VALUES (?1,?2,?3,?4,?5,?6,?7)")
                .map_err(e)?;
            for p in &tables.points {
                st.execute(params![
                    i(p.study.0),
                    i(p.series.0),
                    p.instance,
                    p.condition.key(),
                    p.level.key(),
                    p.x,
                    p.y
                ])
                .map_err(e)?;
            }
            let mut st = tx
                .prepare("INSERT INTO findings VALUES (?1,?2,?3,?4,?5,?6)")
                .map_err(e)?;
            for f in findings {
                st.execute(params![
                    f.kind,
                    f.severity,
                    f.study_id.map(i),
                    f.series_id.map(i),
                    f.instance_number,
                    f.message
                ])
                .map_err(e)?;
            }
        }
        tx.execute(
            "DELETE FROM instances WHERE (split, study_id, series_id) IN
               (SELECT split, study_id, series_id FROM series WHERE generation < ?1)",
            [generation],
        )
        .map_err(e)?;
        tx.execute(
            "DELETE FROM stacks WHERE (split, study_id, series_id) IN
               (SELECT split, study_id, series_id FROM series WHERE generation < ?1)",
            [generation],
        )
        .map_err(e)?;
        tx.execute("DELETE FROM series WHERE generation < ?1", [generation])
            .map_err(e)?;
        tx.execute(
            "INSERT OR REPLACE INTO meta VALUES ('generation', ?1)",
            [generation.to_string()],
        )
        .map_err(e)?;
        tx.commit().map_err(e)?;
        self.generation += 1;
        Ok(())
    }

    /// Sets (or, with `None`, removes) a key of the meta table, e.g. `provenance`: the JSON
    /// [`discus_core::governance::Provenance`] of the dataset the index was made from.
    pub fn set_meta(&mut self, key: &str, value: Option<&str>) -> Result<(), IndexError> {
        let e = |e: rusqlite::Error| IndexError::Sql {
            path: self.path.clone(),
            source: e,
        };
        match value {
            Some(v) => self
                .conn
                .execute("INSERT OR REPLACE INTO meta VALUES (?1, ?2)", [key, v]),
            None => self.conn.execute("DELETE FROM meta WHERE key = ?1", [key]),
        }
        .map_err(e)?;
        Ok(())
    }

    /// A value of the meta table (`provenance`, `schema_version`, `generation`).
    pub fn meta(&self, key: &str) -> Result<Option<String>, IndexError> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| IndexError::Sql {
                path: self.path.clone(),
                source: e,
            })
    }

    /// Every series row (ordered by split, study, series), for commands that work from the index.
    pub fn series_rows(&self) -> Result<Vec<SeriesRow>, IndexError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT split, study_id, series_id, n_files, n_readable, description, plane,
                        manufacturer, field_strength, repetition_time, echo_time, inversion_time
                 FROM series ORDER BY split, study_id, series_id",
            )
            .map_err(self.sql_err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SeriesRow {
                    split: r.get(0)?,
                    study_id: r.get::<_, i64>(1)? as u64,
                    series_id: r.get::<_, i64>(2)? as u64,
                    n_files: r.get::<_, i64>(3)? as usize,
                    n_readable: r.get::<_, i64>(4)? as usize,
                    description: r.get(5)?,
                    plane: r.get(6)?,
                    manufacturer: r.get(7)?,
                    field_strength: r.get(8)?,
                    repetition_time: r.get(9)?,
                    echo_time: r.get(10)?,
                    inversion_time: r.get(11)?,
                })
            })
            .map_err(self.sql_err())?;
        rows.collect::<Result<_, _>>().map_err(self.sql_err())
    }

    /// The readable headers of one series with their paths (relative to the root), by file number.
    pub fn series_headers(
        &self,
        split: &str,
        study_id: u64,
        series_id: u64,
    ) -> Result<Vec<(String, InstanceHeader)>, IndexError> {
        let mut v: Vec<(Option<i64>, String, InstanceHeader)> = Vec::new();
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT path, file_number, header_json FROM instances
                 WHERE split = ?1 AND study_id = ?2 AND series_id = ?3 AND header_json IS NOT NULL",
            )
            .map_err(self.sql_err())?;
        let rows = stmt
            .query_map(params![split, i(study_id), i(series_id)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(self.sql_err())?;
        for row in rows {
            let (path, n, json) = row.map_err(self.sql_err())?;
            if let Ok(h) = serde_json::from_str::<InstanceHeader>(&json) {
                v.push((n, path, h));
            }
        }
        v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        Ok(v.into_iter().map(|(_, p, h)| (p, h)).collect())
    }

    /// The stacks of one series, assembled from the indexed headers (no file is read). Slices are
    /// numbered by file name (the instance number the label files use), else by InstanceNumber.
    pub fn series_stacks(
        &self,
        split: &str,
        study_id: u64,
        series_id: u64,
    ) -> Result<Vec<Stack>, IndexError> {
        let mut numbered: HashMap<String, i64> = HashMap::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT path, file_number FROM instances
                     WHERE split = ?1 AND study_id = ?2 AND series_id = ?3",
                )
                .map_err(self.sql_err())?;
            let rows = stmt
                .query_map(params![split, i(study_id), i(series_id)], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?))
                })
                .map_err(self.sql_err())?;
            for row in rows {
                let (p, n) = row.map_err(self.sql_err())?;
                if let Some(n) = n {
                    numbered.insert(p, n);
                }
            }
        }
        let slices = self
            .series_headers(split, study_id, series_id)?
            .into_iter()
            .filter_map(|(p, h)| {
                let n = numbered.get(&p).copied().or(h.instance_number)?;
                let g = crate::geometry::SliceGeometry::from_header(&h).ok()?;
                Some(crate::geometry::SliceInput {
                    instance_number: n,
                    geometry: g,
                })
            })
            .collect();
        Ok(crate::geometry::assemble_stacks(
            slices,
            &crate::geometry::StackOptions::default(),
        ))
    }

    /// Number of rows in a table (for reports and tests).
    pub fn count(&self, table: Table) -> Result<u64, IndexError> {
        self.conn
            .query_row(&format!("SELECT COUNT(*) FROM {}", table.name()), [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(self.sql_err())
    }
}

/// The tables of the index (see the module doc for their columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// One row per series folder.
    Series,
    /// One row per file.
    Instances,
    /// One row per stack of a series.
    Stacks,
    /// The series descriptions CSVs.
    Descriptions,
    /// train.csv, one row per cell.
    Labels,
    /// train_label_coordinates.csv.
    Points,
    /// The last validation's findings.
    Findings,
}

impl Table {
    /// The SQL name of the table.
    pub fn name(self) -> &'static str {
        match self {
            Table::Series => "series",
            Table::Instances => "instances",
            Table::Stacks => "stacks",
            Table::Descriptions => "descriptions",
            Table::Labels => "labels",
            Table::Points => "points",
            Table::Findings => "findings",
        }
    }
}

/// The CSV-derived content written by [`Index::finish_scan`].
#[derive(Debug, Clone, Default)]
pub struct CsvTables {
    /// `(split, row)`
    pub descriptions: Vec<(String, discus_core::formats::SeriesDescription)>,
    /// train.csv's rows.
    pub labels: Vec<discus_core::formats::StudyLabels>,
    /// train_label_coordinates.csv's rows.
    pub points: Vec<discus_core::formats::LabelPoint>,
}
