//! The crop cache: the training samples of a dataset ([`StudySample`]: localiser inputs, grader
//! crops, point-localiser crops, label points), cut once and reread by later training runs.
//!
//! A cache is a folder:
//! - `manifest.json`: the key ([`CacheKey`]: format version, discus version, the preprocessing
//!   parameters and the source datasets, each with the size and modification time of its label
//!   files) and the finished shards, each with its studies and their series ids;
//! - `shard-NNNNN.f32`: every value of a shard's samples, little-endian `f32`, one after the other;
//! - `shard-NNNNN.json`: where each sample's arrays lie in the `.f32` file (offset and length in
//!   values) and the rest of the sample (`f64` values as their bit patterns, so that they read back
//!   exactly).
//!
//! **Sharded and resumable**: studies are cut [`CacheOptions::shard_studies`] at a time; a shard's
//! two files are written (temporary name, then renamed) before the manifest lists it, and the
//! manifest is rewritten the same way after each shard. An interrupted build leaves a consistent
//! cache of the shards finished so far; the next build with the same key cuts only the rest.
//! **Invalidated** by any change of the key: a different parameter, discus version or source
//! (changed label files) discards the shards and starts again.
//! **Random access**: reading a sample reads only its byte ranges of the `.f32` file (positioned
//! reads; memory-mapping would need `unsafe`, which the workspace forbids), so a cache larger than
//! memory can be read study by study.

use crate::prep::{study_sample, CropExample, PointExample, Preprocessing, StudySample};
use crate::{io_err, ModelError};
use discus_core::{Condition, ConditionGroup, Level, StudyId};
use discus_data::dataset::Dataset;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The `format` of a cache manifest.
pub const CACHE_FORMAT: &str = "discus-crop-cache";
/// The version of the cache layout this build reads and writes.
pub const CACHE_VERSION: u32 = 2;
/// The manifest file of a cache folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// One source dataset as the key sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceKey {
    /// The dataset root (absolute).
    pub root: PathBuf,
    /// Size in bytes and modification time (seconds since the Unix epoch) of each label file that
    /// exists (`train.csv`, the coordinates, the series descriptions), by file name.
    pub label_files: BTreeMap<String, (u64, u64)>,
}

/// What a cache's samples depend on: a cache is reused only for an equal key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheKey {
    /// Always [`CACHE_FORMAT`].
    pub format: String,
    /// [`CACHE_VERSION`].
    pub version: u32,
    /// The discus version that cut the crops.
    pub discus_version: String,
    /// The preprocessing parameters.
    pub preprocessing: Preprocessing,
    /// The source datasets, in order.
    pub sources: Vec<SourceKey>,
}

/// A finished shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// Its number (the files are `shard-NNNNN.*`).
    pub number: usize,
    /// Its studies: source index, study id, and the series ids of the study.
    pub studies: Vec<(usize, StudyId, Vec<u64>)>,
    /// Studies of this shard that could not be cut, with the reason.
    pub skipped: Vec<(StudyId, String)>,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// What the samples depend on.
    pub key: CacheKey,
    /// Studies per shard.
    pub shard_studies: usize,
    /// Finished shards, in order.
    pub shards: Vec<ShardEntry>,
}

/// How to build a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheOptions {
    /// Studies per shard.
    pub shard_studies: usize,
    /// Stop after writing this many new shards (a deliberate interruption, for tests and for
    /// building a large cache in sessions); `None` builds it all.
    pub max_new_shards: Option<usize>,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            shard_studies: 64,
            max_new_shards: None,
        }
    }
}

/// What [`build`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheBuild {
    /// Shards that were already there and reused.
    pub reused_shards: usize,
    /// Shards written by this call.
    pub new_shards: usize,
    /// Studies cut by this call.
    pub studies_cut: usize,
    /// Whether every labelled study of every source is in the cache now.
    pub complete: bool,
    /// Whether an existing cache was discarded because its key differed (and why).
    pub invalidated: Option<String>,
}

type Span = (u64, u64);

/// An `f64` stored as its bit pattern: JSON numbers do not always read back to the same `f64`.
type Bits = u64;

fn bits(v: f64) -> Bits {
    v.to_bits()
}

fn unbits(b: Bits) -> f64 {
    f64::from_bits(b)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPoint {
    level: Level,
    candidates: usize,
    data: Span,
    targets: Vec<Option<(usize, Bits, Bits)>>,
    slice_mm: Bits,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSample {
    study: StudyId,
    localiser: Option<(Span, [(Bits, Bits); 5])>,
    crops: Vec<(ConditionGroup, Span, Condition, Level, usize)>,
    points_mm: Vec<(Condition, Level, [Bits; 3])>,
    foraminal: Vec<StoredPoint>,
    subarticular: Vec<StoredPoint>,
}

fn label_files(root: &Path) -> Result<SourceKey, ModelError> {
    let layout = discus_core::layout::Layout::new(root);
    let mut files = BTreeMap::new();
    for p in [
        layout.train_csv(),
        layout.coordinates_csv(),
        layout.descriptions_csv(discus_core::layout::Split::Train),
    ] {
        if let Ok(m) = std::fs::metadata(&p) {
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.insert(name, (m.len(), t));
        }
    }
    Ok(SourceKey {
        root: discus_core::fsio::absolute(root),
        label_files: files,
    })
}

/// The key of a cache of `datasets` cut with `pre`.
pub fn cache_key(datasets: &[PathBuf], pre: &Preprocessing) -> Result<CacheKey, ModelError> {
    Ok(CacheKey {
        format: CACHE_FORMAT.into(),
        version: CACHE_VERSION,
        discus_version: env!("CARGO_PKG_VERSION").into(),
        preprocessing: *pre,
        sources: datasets
            .iter()
            .map(|d| label_files(d))
            .collect::<Result<_, _>>()?,
    })
}

fn shard_files(dir: &Path, number: usize) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("shard-{number:05}.f32")),
        dir.join(format!("shard-{number:05}.json")),
    )
}

fn read_manifest(dir: &Path) -> Result<Option<Manifest>, ModelError> {
    let p = dir.join(MANIFEST_FILE);
    if !p.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(&p).map_err(io_err(&p))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ModelError::BadModel {
            path: p,
            what: format!("not a crop-cache manifest: {e}"),
        })
}

fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), ModelError> {
    let p = dir.join(MANIFEST_FILE);
    let bytes = serde_json::to_vec_pretty(m).expect("manifest serialises");
    discus_core::fsio::atomic_write(&p, &bytes).map_err(io_err(&p))
}

fn push(values: &mut Vec<f32>, data: &[f32]) -> Span {
    let at = values.len() as u64;
    values.extend_from_slice(data);
    (at, data.len() as u64)
}

fn store(s: &StudySample, values: &mut Vec<f32>) -> StoredSample {
    let point = |p: &PointExample, values: &mut Vec<f32>| StoredPoint {
        level: p.level,
        candidates: p.candidates,
        data: push(values, &p.data),
        targets: p
            .targets
            .iter()
            .map(|t| t.map(|(k, r, c)| (k, bits(r), bits(c))))
            .collect(),
        slice_mm: bits(p.slice_mm),
    };
    StoredSample {
        study: s.study,
        localiser: s
            .localiser
            .as_ref()
            .map(|(x, t)| (push(values, x), t.map(|(r, c)| (bits(r), bits(c))))),
        crops: s
            .crops
            .iter()
            .flat_map(|(g, ex)| ex.iter().map(move |e| (*g, e)))
            .map(|(g, e)| (g, push(values, &e.data), e.condition, e.level, e.grade))
            .collect(),
        points_mm: s
            .points_mm
            .iter()
            .map(|((c, l), p)| (*c, *l, p.map(bits)))
            .collect(),
        foraminal: s
            .foraminal_points
            .iter()
            .map(|p| point(p, values))
            .collect(),
        subarticular: s
            .subarticular_points
            .iter()
            .map(|p| point(p, values))
            .collect(),
    }
}

/// Builds (or resumes, or reuses) the cache of the labelled studies of `datasets` in `dir`.
/// `progress(done, total)` is called after each study cut.
pub fn build(
    dir: &Path,
    datasets: &[PathBuf],
    pre: &Preprocessing,
    options: CacheOptions,
    progress: &dyn Fn(usize, usize),
) -> Result<CacheBuild, ModelError> {
    if options.shard_studies == 0 {
        return Err(ModelError::Request(
            "a crop-cache shard needs at least one study".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let key = cache_key(datasets, pre)?;
    let mut invalidated = None;
    let mut manifest = match read_manifest(dir)? {
        Some(m) if m.key == key && m.shard_studies == options.shard_studies => m,
        old => {
            if let Some(old) = old {
                invalidated = Some(if old.key.preprocessing != key.preprocessing {
                    "the preprocessing parameters changed".to_string()
                } else if old.key.discus_version != key.discus_version
                    || old.key.version != key.version
                {
                    "another discus version cut it".to_string()
                } else if old.key.sources != key.sources {
                    "the source datasets or their labels changed".to_string()
                } else {
                    "the shard size changed".to_string()
                });
                for s in &old.shards {
                    let (a, b) = shard_files(dir, s.number);
                    std::fs::remove_file(&a).ok();
                    std::fs::remove_file(&b).ok();
                }
            }
            let m = Manifest {
                key: key.clone(),
                shard_studies: options.shard_studies,
                shards: Vec::new(),
            };
            write_manifest(dir, &m)?;
            m
        }
    };
    // Every labelled study, in source then train.csv order.
    let mut work: Vec<(usize, StudyId)> = Vec::new();
    let mut opened = Vec::new();
    for (i, root) in datasets.iter().enumerate() {
        let ds = Dataset::open(root)?;
        let labels = ds.labels()?;
        work.extend(labels.iter().map(|l| (i, l.study)));
        opened.push((ds, labels));
    }
    let total = work.len();
    let reused = manifest.shards.len();
    let done_before: usize = manifest.shards.len() * options.shard_studies;
    let mut new_shards = 0usize;
    let mut cut = 0usize;
    for chunk in work
        .chunks(options.shard_studies)
        .skip(manifest.shards.len())
    {
        if options.max_new_shards.is_some_and(|m| new_shards >= m) {
            break;
        }
        let number = manifest.shards.len();
        let mut values: Vec<f32> = Vec::new();
        let mut stored = Vec::new();
        let mut entry = ShardEntry {
            number,
            studies: Vec::new(),
            skipped: Vec::new(),
        };
        for &(src, study) in chunk {
            let (ds, labels) = &opened[src];
            let l = labels
                .iter()
                .find(|l| l.study == study)
                .expect("study from these labels");
            let series: Vec<u64> = ds
                .series(study)
                .map(|v| v.iter().map(|s| s.series.0).collect())
                .unwrap_or_default();
            match study_sample(ds, study, l, pre) {
                Ok(s) => {
                    stored.push(store(&s, &mut values));
                    entry.studies.push((src, study, series));
                }
                Err(e) => entry.skipped.push((study, e.to_string())),
            }
            cut += 1;
            progress(done_before + cut, total);
        }
        let (fv, fj) = shard_files(dir, number);
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        discus_core::fsio::atomic_write(&fv, &bytes).map_err(io_err(&fv))?;
        let idx = serde_json::to_vec(&stored).expect("index serialises");
        discus_core::fsio::atomic_write(&fj, &idx).map_err(io_err(&fj))?;
        manifest.shards.push(entry);
        write_manifest(dir, &manifest)?;
        new_shards += 1;
    }
    Ok(CacheBuild {
        reused_shards: reused,
        new_shards,
        studies_cut: cut,
        complete: manifest.shards.len() == total.div_ceil(options.shard_studies),
        invalidated,
    })
}

/// A finished cache opened for reading.
pub struct CropCache {
    dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

fn read_span(file: &std::fs::File, path: &Path, (at, len): Span) -> Result<Vec<f32>, ModelError> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len as usize * 4];
    file.read_exact_at(&mut buf, at * 4).map_err(io_err(path))?;
    Ok(buf
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

impl CropCache {
    /// Opens the cache in `dir` for `datasets` and `pre`; an error names the folder when there is
    /// no cache or it was cut for another key.
    pub fn open(
        dir: &Path,
        datasets: &[PathBuf],
        pre: &Preprocessing,
    ) -> Result<CropCache, ModelError> {
        let bad = |what: String| ModelError::BadModel {
            path: dir.join(MANIFEST_FILE),
            what,
        };
        let manifest = read_manifest(dir)?.ok_or_else(|| bad("no crop cache here".into()))?;
        if manifest.key != cache_key(datasets, pre)? {
            return Err(bad(
                "the cache was cut for other parameters, sources or discus version".into(),
            ));
        }
        Ok(CropCache {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// Studies skipped while cutting, with the reason.
    pub fn skipped(&self) -> Vec<(StudyId, String)> {
        self.manifest
            .shards
            .iter()
            .flat_map(|s| s.skipped.iter().cloned())
            .collect()
    }

    /// Reads every sample of shard `number` (in the shard's order).
    pub fn shard(&self, number: usize) -> Result<Vec<StudySample>, ModelError> {
        let (fv, fj) = shard_files(&self.dir, number);
        let idx: Vec<StoredSample> =
            serde_json::from_slice(&std::fs::read(&fj).map_err(io_err(&fj))?).map_err(|e| {
                ModelError::BadModel {
                    path: fj.clone(),
                    what: format!("unreadable shard index: {e}"),
                }
            })?;
        let file = std::fs::File::open(&fv).map_err(io_err(&fv))?;
        let point = |p: &StoredPoint| -> Result<PointExample, ModelError> {
            Ok(PointExample {
                level: p.level,
                candidates: p.candidates,
                data: read_span(&file, &fv, p.data)?,
                targets: p
                    .targets
                    .iter()
                    .map(|t| t.map(|(k, r, c)| (k, unbits(r), unbits(c))))
                    .collect(),
                slice_mm: unbits(p.slice_mm),
            })
        };
        idx.iter()
            .map(|s| -> Result<StudySample, ModelError> {
                let mut crops: BTreeMap<ConditionGroup, Vec<CropExample>> = BTreeMap::new();
                for (g, span, condition, level, grade) in &s.crops {
                    crops.entry(*g).or_default().push(CropExample {
                        data: read_span(&file, &fv, *span)?,
                        condition: *condition,
                        level: *level,
                        grade: *grade,
                    });
                }
                Ok(StudySample {
                    study: s.study,
                    localiser: match &s.localiser {
                        Some((span, t)) => Some((
                            read_span(&file, &fv, *span)?,
                            t.map(|(r, c)| (unbits(r), unbits(c))),
                        )),
                        None => None,
                    },
                    crops,
                    points_mm: s
                        .points_mm
                        .iter()
                        .map(|(c, l, p)| ((*c, *l), p.map(unbits)))
                        .collect(),
                    foraminal_points: s.foraminal.iter().map(point).collect::<Result<_, _>>()?,
                    subarticular_points: s
                        .subarticular
                        .iter()
                        .map(point)
                        .collect::<Result<_, _>>()?,
                })
            })
            .collect()
    }

    /// Reads every sample, shard by shard.
    pub fn samples(&self) -> Result<Vec<StudySample>, ModelError> {
        let mut out = Vec::new();
        for s in &self.manifest.shards {
            out.extend(self.shard(s.number)?);
        }
        Ok(out)
    }
}
