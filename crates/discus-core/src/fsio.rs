//! Atomic file writes: everything discus writes goes to a temporary name in the same folder first and
//! is renamed into place, so a reader never sees half a file and an interrupted run leaves the old one.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A new empty file beside `path` under a name unique to this call (so to each thread and
/// process), for writers that need a path rather than a [`Write`]: write it, then
/// `persist(path)` renames it into place. Dropped without persisting, it is removed.
pub fn temp_beside(path: &Path) -> std::io::Result<tempfile::TempPath> {
    let parent = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(p) => p,
        None => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(parent)?
        .into_temp_path())
}

/// An absolute version of `p` with the part that exists resolved (symbolic links, `..`) and the rest
/// kept as written; used to tell whether one path lies inside another before either exists.
pub fn absolute(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
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

/// Writes `bytes` to `path` atomically (temporary file, flush to disk, rename).
/// Creates the parent folder if needed.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    atomic_write_with(path, |w| w.write_all(bytes))
}

/// Like [`atomic_write`], for content produced by a writer callback. The temporary file has a
/// unique name (the `tempfile` crate), so threads and processes writing the same path at once never
/// share one; the last rename wins.
pub fn atomic_write_with(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let parent = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(p) => {
            std::fs::create_dir_all(p)?;
            p
        }
        None => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Removed on drop unless persisted.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(parent)?;
    let (file, tmp_path) = tmp.into_parts();
    let mut w = std::io::BufWriter::new(file);
    write(&mut w)?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    drop(f);
    tmp_path.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writers_of_one_path_never_mix_or_leave_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..20 {
                        atomic_write(path, &vec![b'a' + t; 100_000]).unwrap();
                    }
                });
            }
        });
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 100_000);
        assert!(bytes.iter().all(|b| *b == bytes[0]));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.csv"]);
    }

    #[test]
    fn temporaries_beside_a_path_are_unique_per_thread_and_removed_unless_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.bin");
        let names: Vec<PathBuf> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|t| {
                    let path = &path;
                    s.spawn(move || {
                        let tmp = temp_beside(path).unwrap();
                        std::fs::write(&tmp, [t]).unwrap();
                        let name = tmp.to_path_buf();
                        if t == 3 {
                            tmp.persist(path).unwrap();
                        }
                        name
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), 8, "{names:?}");
        assert!(names.iter().all(|n| n.parent() == Some(dir.path())));
        assert_eq!(std::fs::read(&path).unwrap(), [3]);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["state.bin"]);
    }
}
