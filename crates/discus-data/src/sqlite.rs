//! The one place SQLite databases are opened: the dataset index ([`crate::index`]) and the reads
//! store (`discus_reads::store`) both open through [`open`], so their pragmas, journal mode, busy
//! timeout and read-only flags are set in one way.
//!
//! A writable database is created (with its folder) when missing and put in WAL mode, so readers
//! never block the writer; `synchronous` is `NORMAL` (a crash may lose the last transactions,
//! never corrupt the file: right for a cache such as the index) or `FULL` (every commit is on
//! disk: right for the only copy of readers' work). A read-only connection never creates or
//! changes the file. Every connection waits up to its busy timeout for another process's lock.

use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How durable commits are (SQLite's `synchronous` pragma in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `NORMAL`: a power loss may drop the latest commits but never corrupts the database.
    Normal,
    /// `FULL`: a commit is on disk when it returns.
    Full,
}

/// How to open a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Open an existing file read-only (no creation, no pragmas that write).
    pub read_only: bool,
    /// Commit durability of a writable database.
    pub durability: Durability,
    /// Enforce foreign keys.
    pub foreign_keys: bool,
    /// How long to wait for another connection's lock before failing with "database is busy".
    pub busy_timeout: Duration,
}

impl SqliteOptions {
    /// A writable database with the given durability (WAL, 30 s busy timeout, no foreign keys).
    pub fn writable(durability: Durability) -> SqliteOptions {
        SqliteOptions {
            read_only: false,
            durability,
            foreign_keys: false,
            busy_timeout: Duration::from_secs(30),
        }
    }

    /// An existing database, read-only (30 s busy timeout).
    pub fn read_only() -> SqliteOptions {
        SqliteOptions {
            read_only: true,
            ..SqliteOptions::writable(Durability::Normal)
        }
    }
}

/// A database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    /// The database's folder could not be created.
    #[error("{}: {source}", path.display())]
    Io {
        /// The database file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite refused to open the file or to set a pragma.
    #[error("{}: {source}", path.display())]
    Sql {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

/// Opens the database at `path` as `options` say (see the module documentation).
pub fn open(path: &Path, options: &SqliteOptions) -> Result<Connection, SqliteError> {
    let sql = |source| SqliteError::Sql {
        path: path.to_path_buf(),
        source,
    };
    let conn = if options.read_only {
        Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?
    } else {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| SqliteError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        }
        Connection::open(path).map_err(sql)?
    };
    conn.busy_timeout(options.busy_timeout).map_err(sql)?;
    if !options.read_only {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        let sync = match options.durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync).map_err(sql)?;
    }
    if options.foreign_keys {
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(sql)?;
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pragma(conn: &Connection, name: &str) -> String {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| match v {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
        .unwrap()
    }

    /// The pragmas as SQLite reports them back (synchronous: 1 NORMAL, 2 FULL).
    #[test]
    fn pragmas_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/folder/db.sqlite");
        // Read-only never creates the file.
        assert!(matches!(
            open(&path, &SqliteOptions::read_only()),
            Err(SqliteError::Sql { .. })
        ));
        assert!(!path.exists());
        let w = open(
            &path,
            &SqliteOptions {
                foreign_keys: true,
                ..SqliteOptions::writable(Durability::Full)
            },
        )
        .unwrap();
        assert_eq!(pragma(&w, "journal_mode"), "wal");
        assert_eq!(pragma(&w, "synchronous"), "2");
        assert_eq!(pragma(&w, "foreign_keys"), "1");
        assert_eq!(pragma(&w, "busy_timeout"), "30000");
        w.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let n = open(&path, &SqliteOptions::writable(Durability::Normal)).unwrap();
        assert_eq!(pragma(&n, "synchronous"), "1");
        // (foreign_keys is not checked off: rusqlite's bundled SQLite turns it on by default.)
        let r = open(&path, &SqliteOptions::read_only()).unwrap();
        assert_eq!(pragma(&r, "journal_mode"), "wal");
        let e = r.execute("INSERT INTO t VALUES (1)", []).unwrap_err();
        assert!(e.to_string().contains("readonly"), "{e}");
        assert_eq!(
            r.query_row("SELECT count(*) FROM t", [], |x| x.get::<_, i64>(0))
                .unwrap(),
            0
        );
    }
}
