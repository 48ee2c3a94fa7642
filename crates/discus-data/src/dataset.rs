//! The one read path: a LumbarDISC-layout dataset opened through its index.
//!
//! [`Dataset::open`] opens `<root>/.discus/index.sqlite`, scanning the dataset first when the index is
//! missing or stale (see [`Freshness`]); [`Dataset::open_indexed`] uses the index as it is and never
//! touches an image file, so everything but pixels works after the DICOM files are gone (or on a
//! machine that has only the index). From there:
//!
//! - [`Dataset::studies`] / [`Dataset::series`]: studies and series with their kind (from the
//!   descriptions CSV), header description, scanner and protocol;
//! - [`Dataset::stacks`]: a series' stacks with their geometry, assembled from the indexed headers;
//! - [`Dataset::labels`] / [`Dataset::points`]: grades and label points;
//! - [`Dataset::study_meta`] / [`Dataset::slice`]: site metadata and one slice's geometry, from the
//!   index (what evaluation and reads need);
//! - [`Dataset::load_stack`]: a [`Volume`], the only call that decodes pixels, one stack at a time.
//!
//! Nothing here holds a whole dataset in memory: lookups are SQL queries, and volumes are loaded when
//! asked for and dropped by the caller.
//!
//! ```no_run
//! use discus_data::dataset::Dataset;
//! let ds = Dataset::open("/data/rsna".as_ref()).unwrap();
//! for study in ds.studies().unwrap().iter().take(1) {
//!     for series in ds.series(study.study).unwrap() {
//!         let stacks = ds.stacks(&series).unwrap();
//!         let volume = ds.load_stack(&series, &stacks[0]).unwrap();
//!         println!("{} {:?} {} slices", series.series, series.kind, volume.slices());
//!     }
//! }
//! ```

use crate::dicom::{native_frame, OwnedFrame};
use crate::geometry::{SliceGeometry, Stack, Vec3};
use crate::index::{Index, IndexError};
use crate::standardise::{IntensityWindow, StackVoxels, StoredHistogram};
use discus_core::formats::{LabelPoint, SeriesDescription, StudyLabels};
use discus_core::layout::{Layout, Split};
use discus_core::{Condition, Level, SeriesId, SeriesKind, Severity, StudyId};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a dataset could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The index could not be opened or queried.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The index file does not exist (and this call does not build one).
    #[error("{}: no index; run `discus validate {}` (or open the dataset with Dataset::open) to build it", path.display(), root.display())]
    NoIndex {
        /// The dataset root.
        root: PathBuf,
        /// Where the index was expected.
        path: PathBuf,
    },
    /// Scanning the dataset to build or refresh the index failed.
    #[error("{}: scanning the dataset failed: {message}", root.display())]
    Scan {
        /// The dataset root.
        root: PathBuf,
        /// The cause.
        message: String,
    },
    /// The index holds a value this discus cannot read (a different writer, or damage).
    #[error("index {}: {what}", path.display())]
    Corrupt {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A series, stack or instance asked for is not in the index.
    #[error("study {study} series {series}: {what}")]
    NotFound {
        /// Study id.
        study: StudyId,
        /// Series id.
        series: SeriesId,
        /// What is missing.
        what: String,
    },
    /// No image of a study could be read when the index was built.
    #[error("study {study}: no readable image ({}: {message})", path.display())]
    Unreadable {
        /// Study id.
        study: StudyId,
        /// The first unreadable file.
        path: PathBuf,
        /// Why the scan could not read it.
        message: String,
    },
    /// A slice's pixels could not be decoded.
    #[error(transparent)]
    Dicom(#[from] crate::dicom::DicomError),
    /// A slice's pixels do not fit its stack (size, frames, colour).
    #[error("{}: {what}", path.display())]
    BadSlice {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        what: String,
    },
    /// A stack's intensity window could not be computed (no voxel, bad percentiles).
    #[error("study {study} series {series}: intensity window: {source}")]
    Window {
        /// Study id.
        study: StudyId,
        /// Series id.
        series: SeriesId,
        /// The cause.
        source: crate::standardise::StandardiseError,
    },
}

/// Whether [`Dataset::open_with`] scans before opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Freshness {
    /// Scan when the index is missing or stale: when a CSV file or a series folder's entry list
    /// changed since the last scan (a file rewritten in place under the same name is not noticed;
    /// use [`Freshness::Rescan`] for that). An index whose dataset has no image folder left is used
    /// as it is.
    #[default]
    IfStale,
    /// Always scan (incrementally: unchanged files are not re-read).
    Rescan,
    /// Never scan; fail with [`DatasetError::NoIndex`] when there is no index.
    IndexOnly,
}

/// One study of the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyRef {
    /// The image folder holding it.
    pub split: Split,
    /// Its id (the folder name).
    pub study: StudyId,
    /// Number of series folders.
    pub n_series: usize,
}

/// One series of the dataset, as the index knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesRef {
    /// The image folder holding it.
    pub split: Split,
    /// Study id.
    pub study: StudyId,
    /// Series id.
    pub series: SeriesId,
    /// Its kind from `*_series_descriptions.csv`, when the CSV has a row for it.
    pub kind: Option<SeriesKind>,
    /// (0008,103E) SeriesDescription of its headers (most common value).
    pub description: Option<String>,
    /// Files in the folder.
    pub n_files: usize,
    /// Files whose header was read.
    pub n_readable: usize,
    /// Plane of its (first) stack: `sagittal`, `axial`, `coronal` or `oblique`.
    pub plane: Option<String>,
    /// (0008,0070) Manufacturer.
    pub manufacturer: Option<String>,
    /// (0018,0087) MagneticFieldStrength, tesla.
    pub field_strength: Option<f64>,
    /// (0018,0080) RepetitionTime, ms.
    pub repetition_time: Option<f64>,
    /// (0018,0081) EchoTime, ms.
    pub echo_time: Option<f64>,
    /// (0018,0082) InversionTime, ms.
    pub inversion_time: Option<f64>,
}

/// Scanner metadata of one study (for site, vendor and field-strength breakdowns).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StudyMeta {
    /// (0008,0080) InstitutionName.
    pub institution: Option<String>,
    /// (0008,0070) Manufacturer.
    pub manufacturer: Option<String>,
    /// (0018,0087) MagneticFieldStrength in tesla (values above 100 are taken as gauss and converted).
    pub field_strength: Option<f64>,
}

/// One slice's placement in the patient.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceInfo {
    /// The slice plane.
    pub geometry: SliceGeometry,
    /// (0020,0052) FrameOfReferenceUID: points on different frames are not comparable.
    pub frame_of_reference: Option<String>,
}

/// One stack's pixels: rescaled (RescaleSlope/Intercept applied) `f32`, `[slice][row][column]` in
/// stack order (along the normal), with the stack's geometry for pixel <-> patient transforms.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// Geometry: slice order, positions, voxel <-> patient transforms.
    pub stack: Stack,
    /// Rows per slice.
    pub rows: usize,
    /// Columns per slice.
    pub columns: usize,
    /// `slices * rows * columns` values.
    pub data: Vec<f32>,
}

impl Volume {
    /// Number of slices.
    pub fn slices(&self) -> usize {
        self.stack.len()
    }

    /// The pixels of slice `k` (stack order), `rows * columns` values row by row.
    pub fn slice(&self, k: usize) -> &[f32] {
        let n = self.rows * self.columns;
        &self.data[k * n..(k + 1) * n]
    }

    /// Value at `(column x, row y)` of slice `k`; `None` outside the volume.
    pub fn get(&self, k: usize, y: usize, x: usize) -> Option<f32> {
        (k < self.slices() && y < self.rows && x < self.columns)
            .then(|| self.data[(k * self.rows + y) * self.columns + x])
    }

    /// Patient position (mm) of voxel `[x, y, k]` (fractional).
    pub fn voxel_to_patient(&self, v: [f64; 3]) -> Vec3 {
        self.stack.voxel_to_patient(v)
    }

    /// Voxel coordinates `[x, y, k]` (fractional) of a patient point.
    pub fn patient_to_voxel(&self, p: Vec3) -> [f64; 3] {
        self.stack.patient_to_voxel(p)
    }
}

/// A dataset opened through its index.
pub struct Dataset {
    layout: Layout,
    index: Index,
}

const FINGERPRINT_KEY: &str = "listing_fingerprint";

fn clean(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim_matches([' ', '\0']).to_string())
        .filter(|s| !s.is_empty())
}

fn tesla(t: Option<f64>) -> Option<f64> {
    t.filter(|t| t.is_finite() && *t > 0.0)
        .map(|t| if t > 100.0 { t / 10_000.0 } else { t })
}

fn split_of(path: &Path, s: &str) -> Result<Split, DatasetError> {
    Split::from_folder(s).ok_or_else(|| DatasetError::Corrupt {
        path: path.to_path_buf(),
        what: format!("unknown split {s:?}"),
    })
}

/// A fingerprint of what a scan would see without reading any file: the CSV files' sizes and
/// modification times, and every series folder's modification time and number of entries.
fn listing_fingerprint(layout: &Layout) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let stamp = |p: &Path, h: &mut std::collections::hash_map::DefaultHasher| {
        if let Ok(m) = std::fs::metadata(p) {
            m.len().hash(h);
            if let Ok(t) = m.modified() {
                t.hash(h);
            }
        } else {
            "absent".hash(h);
        }
    };
    for p in [layout.train_csv(), layout.coordinates_csv(), layout.card()] {
        stamp(&p, &mut h);
    }
    for split in Split::ALL {
        stamp(&layout.descriptions_csv(split), &mut h);
        let images = layout.images(split);
        let Ok(rd) = std::fs::read_dir(&images) else {
            "no images".hash(&mut h);
            continue;
        };
        let mut studies: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        studies.sort();
        for st in studies {
            st.hash(&mut h);
            stamp(&st, &mut h);
            let Ok(rd) = std::fs::read_dir(&st) else {
                continue;
            };
            let mut series: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            series.sort();
            for se in series {
                se.hash(&mut h);
                stamp(&se, &mut h);
                std::fs::read_dir(&se)
                    .map(|r| r.count())
                    .unwrap_or(0)
                    .hash(&mut h);
            }
        }
    }
    format!("{:016x}", h.finish())
}

impl Dataset {
    /// Opens the dataset under `root`, building or refreshing its index when missing or stale.
    pub fn open(root: &Path) -> Result<Dataset, DatasetError> {
        Dataset::open_with(root, Freshness::IfStale, &|_| {})
    }

    /// Opens the dataset from its index alone: no image file is read or listed.
    pub fn open_indexed(root: &Path) -> Result<Dataset, DatasetError> {
        Dataset::open_with(root, Freshness::IndexOnly, &|_| {})
    }

    /// Opens the dataset, scanning first as `freshness` says; `progress` sees the scan's progress.
    pub fn open_with(
        root: &Path,
        freshness: Freshness,
        progress: &(dyn Fn(crate::validate::Progress) + Sync),
    ) -> Result<Dataset, DatasetError> {
        let layout = Layout::new(root);
        let path = layout.index();
        let exists = path.is_file();
        let scan = match freshness {
            Freshness::IndexOnly => {
                if !exists {
                    return Err(DatasetError::NoIndex {
                        root: root.to_path_buf(),
                        path,
                    });
                }
                None
            }
            Freshness::Rescan => Some(listing_fingerprint(&layout)),
            // An index whose dataset has no image folder left (moved, or its images deleted to save
            // space) is used as it is: a scan would only empty it.
            Freshness::IfStale
                if exists && Split::ALL.iter().all(|s| !layout.images(*s).is_dir()) =>
            {
                None
            }
            Freshness::IfStale => {
                let now = listing_fingerprint(&layout);
                let stored = if exists {
                    Index::open_read_only(&path)?.meta(FINGERPRINT_KEY)?
                } else {
                    None
                };
                (stored.as_deref() != Some(now.as_str())).then_some(now)
            }
        };
        if let Some(fingerprint) = scan {
            crate::validate::validate(root, &Default::default(), progress).map_err(|e| {
                DatasetError::Scan {
                    root: root.to_path_buf(),
                    message: e.to_string(),
                }
            })?;
            let mut index = Index::open(&path)?;
            index.set_meta(FINGERPRINT_KEY, Some(&fingerprint))?;
        }
        let index = Index::open_read_only(&path)?;
        Ok(Dataset { layout, index })
    }

    /// The dataset's layout (its paths).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The dataset root.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    /// The index behind it.
    pub fn index(&self) -> &Index {
        &self.index
    }

    fn corrupt(&self, what: String) -> DatasetError {
        DatasetError::Corrupt {
            path: self.index.path().to_path_buf(),
            what,
        }
    }

    fn sql(&self, e: rusqlite::Error) -> DatasetError {
        DatasetError::Index(IndexError::Sql {
            path: self.index.path().to_path_buf(),
            source: e,
        })
    }

    /// Every study with image folders, by split then id.
    pub fn studies(&self) -> Result<Vec<StudyRef>, DatasetError> {
        let mut by: BTreeMap<(Split, StudyId), usize> = BTreeMap::new();
        for r in self.index.series_rows()? {
            let split = split_of(self.index.path(), &r.split)?;
            *by.entry((split, StudyId(r.study_id))).or_default() += 1;
        }
        Ok(by
            .into_iter()
            .map(|((split, study), n_series)| StudyRef {
                split,
                study,
                n_series,
            })
            .collect())
    }

    /// The series of one study (in either split), by id.
    pub fn series(&self, study: StudyId) -> Result<Vec<SeriesRef>, DatasetError> {
        let conn = self.index.connection();
        let mut st = conn
            .prepare_cached(
                "SELECT s.split, s.series_id, d.description, s.description, s.n_files, s.n_readable,
                        s.plane, s.manufacturer, s.field_strength, s.repetition_time, s.echo_time,
                        s.inversion_time
                 FROM series s LEFT JOIN descriptions d
                   ON d.split = s.split AND d.study_id = s.study_id AND d.series_id = s.series_id
                 WHERE s.study_id = ?1 ORDER BY s.split, s.series_id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map([study.0 as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<f64>>(8)?,
                    r.get::<_, Option<f64>>(9)?,
                    r.get::<_, Option<f64>>(10)?,
                    r.get::<_, Option<f64>>(11)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (split, series, kind, desc, n_files, n_readable, plane, man, fs, tr, te, ti) =
                row.map_err(|e| self.sql(e))?;
            let kind = match kind {
                None => None,
                Some(k) => Some(
                    k.parse::<SeriesKind>()
                        .map_err(|e| self.corrupt(e.to_string()))?,
                ),
            };
            out.push(SeriesRef {
                split: split_of(self.index.path(), &split)?,
                study,
                series: SeriesId(series as u64),
                kind,
                description: desc,
                n_files: n_files as usize,
                n_readable: n_readable as usize,
                plane,
                manufacturer: man,
                field_strength: fs,
                repetition_time: tr,
                echo_time: te,
                inversion_time: ti,
            });
        }
        Ok(out)
    }

    /// One series of a study, if the index has it.
    pub fn find_series(
        &self,
        study: StudyId,
        series: SeriesId,
    ) -> Result<Option<SeriesRef>, DatasetError> {
        Ok(self.series(study)?.into_iter().find(|s| s.series == series))
    }

    /// The stacks of a series with their geometry (from the indexed headers; no file is read).
    pub fn stacks(&self, series: &SeriesRef) -> Result<Vec<Stack>, DatasetError> {
        Ok(self
            .index
            .series_stacks(series.split.folder(), series.study.0, series.series.0)?)
    }

    /// Scanner metadata of a study, from the first readable header (by series id, then file number)
    /// in the index. `None` when the index has no image of the study; [`DatasetError::Unreadable`]
    /// when it has images but none could be read.
    pub fn study_meta(&self, study: StudyId) -> Result<Option<StudyMeta>, DatasetError> {
        let conn = self.index.connection();
        let json: Option<String> = conn
            .query_row(
                "SELECT header_json FROM instances
                 WHERE study_id = ?1 AND header_json IS NOT NULL
                 ORDER BY split, series_id, file_number IS NULL, file_number, path LIMIT 1",
                [study.0 as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let Some(json) = json else {
            // Images that the scan could not read are an error; no images at all is not.
            let unreadable: Option<(String, String)> = conn
                .query_row(
                    "SELECT path, error FROM instances WHERE study_id = ?1 AND error IS NOT NULL
                     ORDER BY split, series_id, file_number IS NULL, file_number, path LIMIT 1",
                    [study.0 as i64],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(|e| self.sql(e))?;
            return match unreadable {
                Some((path, message)) => Err(DatasetError::Unreadable {
                    study,
                    path: self.layout.root().join(path),
                    message,
                }),
                None => Ok(None),
            };
        };
        let h: crate::InstanceHeader =
            serde_json::from_str(&json).map_err(|e| self.corrupt(e.to_string()))?;
        Ok(Some(StudyMeta {
            institution: clean(h.institution_name),
            manufacturer: clean(h.manufacturer),
            field_strength: tesla(h.magnetic_field_strength),
        }))
    }

    /// The geometry of one slice, named as the label files name it (file number = instance).
    pub fn slice(
        &self,
        study: StudyId,
        series: SeriesId,
        instance: i64,
    ) -> Result<SliceInfo, DatasetError> {
        let conn = self.index.connection();
        let json: Option<String> = conn
            .query_row(
                "SELECT header_json FROM instances
                 WHERE study_id = ?1 AND series_id = ?2 AND header_json IS NOT NULL
                   AND (file_number = ?3 OR (file_number IS NULL AND instance_number = ?3))
                 ORDER BY split, file_number IS NULL LIMIT 1",
                params![study.0 as i64, series.0 as i64, instance],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let json = json.ok_or_else(|| DatasetError::NotFound {
            study,
            series,
            what: format!("no readable image with instance number {instance}"),
        })?;
        let h: crate::InstanceHeader =
            serde_json::from_str(&json).map_err(|e| self.corrupt(e.to_string()))?;
        let geometry = SliceGeometry::from_header(&h).map_err(|e| DatasetError::NotFound {
            study,
            series,
            what: format!("instance {instance}: {e}"),
        })?;
        Ok(SliceInfo {
            geometry,
            frame_of_reference: h.frame_of_reference_uid,
        })
    }

    /// Every row of the series descriptions CSVs (as the last scan read them), by split, study, series.
    pub fn descriptions(&self) -> Result<Vec<SeriesDescription>, DatasetError> {
        let conn = self.index.connection();
        let mut st = conn
            .prepare_cached(
                "SELECT study_id, series_id, description FROM descriptions
                 ORDER BY split, study_id, series_id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (study, series, kind) = row.map_err(|e| self.sql(e))?;
            out.push(SeriesDescription {
                study: StudyId(study as u64),
                series: SeriesId(series as u64),
                kind: kind
                    .parse()
                    .map_err(|e: discus_core::types::ParseDomainError| {
                        self.corrupt(e.to_string())
                    })?,
            });
        }
        Ok(out)
    }

    /// Grades of every study in train.csv (as the last scan read it), by study id.
    pub fn labels(&self) -> Result<Vec<StudyLabels>, DatasetError> {
        let conn = self.index.connection();
        let mut st = conn
            .prepare_cached(
                "SELECT study_id, condition, level, grade FROM labels ORDER BY study_id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut by: BTreeMap<StudyId, StudyLabels> = BTreeMap::new();
        for row in rows {
            let (study, c, l, g) = row.map_err(|e| self.sql(e))?;
            let study = StudyId(study as u64);
            let condition =
                condition_of_key(&c).ok_or_else(|| self.corrupt(format!("condition {c:?}")))?;
            let level = level_of_key(&l).ok_or_else(|| self.corrupt(format!("level {l:?}")))?;
            let grade = match g {
                None => None,
                Some(g) => Some(
                    g.parse::<Severity>()
                        .map_err(|e| self.corrupt(e.to_string()))?,
                ),
            };
            by.entry(study)
                .or_insert_with(|| StudyLabels::empty(study))
                .set(condition, level, grade);
        }
        Ok(by.into_values().collect())
    }

    /// Label points of one study (train_label_coordinates.csv as the last scan read it).
    pub fn points(&self, study: StudyId) -> Result<Vec<LabelPoint>, DatasetError> {
        let conn = self.index.connection();
        let mut st = conn
            .prepare_cached(
                "SELECT series_id, instance_number, condition, level, x, y FROM points
                 WHERE study_id = ?1 ORDER BY rowid",
            )
            .map_err(|e| self.sql(e))?;
        let rows = st
            .query_map([study.0 as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, f64>(4)?,
                    r.get::<_, f64>(5)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (series, instance, c, l, x, y) = row.map_err(|e| self.sql(e))?;
            out.push(LabelPoint {
                study,
                series: SeriesId(series as u64),
                instance: u32::try_from(instance)
                    .map_err(|_| self.corrupt(format!("instance number {instance}")))?,
                condition: condition_of_key(&c)
                    .ok_or_else(|| self.corrupt(format!("condition {c:?}")))?,
                level: level_of_key(&l).ok_or_else(|| self.corrupt(format!("level {l:?}")))?,
                x,
                y,
            });
        }
        Ok(out)
    }

    /// The file of one slice of a series (by the instance number the label files use).
    pub fn slice_file(&self, series: &SeriesRef, instance: i64) -> Result<PathBuf, DatasetError> {
        self.slice_path(series, instance)
    }

    /// The file of one slice of a series (its path under the root, as indexed).
    fn slice_path(&self, series: &SeriesRef, instance: i64) -> Result<PathBuf, DatasetError> {
        let conn = self.index.connection();
        let rel: Option<String> = conn
            .query_row(
                "SELECT path FROM instances
                 WHERE split = ?1 AND study_id = ?2 AND series_id = ?3 AND header_json IS NOT NULL
                   AND (file_number = ?4 OR (file_number IS NULL AND instance_number = ?4))
                 ORDER BY file_number IS NULL LIMIT 1",
                params![
                    series.split.folder(),
                    series.study.0 as i64,
                    series.series.0 as i64,
                    instance
                ],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        rel.map(|r| self.layout.root().join(r))
            .ok_or_else(|| DatasetError::NotFound {
                study: series.study,
                series: series.series,
                what: format!("no readable image with instance number {instance}"),
            })
    }

    /// The files of a stack's slices, in stack order: one query for the series, each slice then
    /// resolved as [`Dataset::slice_file`] does (the file named by the number first, else the file
    /// whose header has that InstanceNumber).
    fn stack_paths(&self, series: &SeriesRef, stack: &Stack) -> Result<Vec<PathBuf>, DatasetError> {
        self.slices_paths(
            series,
            &stack
                .slices
                .iter()
                .map(|s| s.instance_number)
                .collect::<Vec<_>>(),
        )
    }

    /// [`Dataset::slice_file`] of several instances of one series, with one query.
    fn slices_paths(
        &self,
        series: &SeriesRef,
        instances: &[i64],
    ) -> Result<Vec<PathBuf>, DatasetError> {
        let conn = self.index.connection();
        let mut stmt = conn
            .prepare_cached(
                "SELECT path, file_number, instance_number FROM instances
                 WHERE split = ?1 AND study_id = ?2 AND series_id = ?3 AND header_json IS NOT NULL
                 ORDER BY rowid",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(
                params![
                    series.split.folder(),
                    series.study.0 as i64,
                    series.series.0 as i64
                ],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                    ))
                },
            )
            .map_err(|e| self.sql(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.sql(e))?;
        let mut by_file: BTreeMap<i64, &str> = BTreeMap::new();
        let mut by_instance: BTreeMap<i64, &str> = BTreeMap::new();
        for (path, file, instance) in &rows {
            match (file, instance) {
                (Some(f), _) => {
                    by_file.entry(*f).or_insert(path);
                }
                (None, Some(i)) => {
                    by_instance.entry(*i).or_insert(path);
                }
                (None, None) => {}
            }
        }
        instances
            .iter()
            .map(|n| {
                by_file
                    .get(n)
                    .or_else(|| by_instance.get(n))
                    .map(|rel| self.layout.root().join(rel))
                    .ok_or_else(|| DatasetError::NotFound {
                        study: series.study,
                        series: series.series,
                        what: format!("no readable image with instance number {n}"),
                    })
            })
            .collect()
    }

    /// Decodes one stack of a series into a [`Volume`]: each slice's stored values, rescaled by its
    /// own RescaleSlope/Intercept, as `f32`. The only call here that reads every pixel of a stack
    /// (see [`Dataset::load_normalised`] for a few slices of one).
    pub fn load_stack(&self, series: &SeriesRef, stack: &Stack) -> Result<Volume, DatasetError> {
        let (rows, columns) = (stack.rows as usize, stack.columns as usize);
        // The paths first (the index connection is not shared between threads), then every file
        // read once into its thread's buffer, its pixels rescaled from the file's bytes (native
        // data) or decoded, slices in parallel.
        let paths = self.stack_paths(series, stack)?;
        let mut data = vec![0f32; stack.len() * rows * columns];
        if rows * columns > 0 {
            use rayon::prelude::*;
            data.par_chunks_mut(rows * columns)
                .zip(paths.par_iter())
                .try_for_each(|(out, path)| {
                    with_file(path, |bytes| {
                        slice_into(path, bytes, rows, columns, out, |x| x)
                    })
                })?;
        }
        Ok(Volume {
            stack: stack.clone(),
            rows,
            columns,
            data,
        })
    }

    /// One stack normalised by its intensity window (`percentiles` of every voxel, exactly as
    /// [`IntensityWindow::of_values`] on [`Dataset::load_stack`]'s volume), holding only the
    /// slices `wanted` (stack order; indices outside the stack are ignored): what a few crops
    /// need. Every slice file is read once, but for native 8/16-bit grey-scale data under one
    /// RescaleSlope/Intercept the window comes from a histogram of the stored values, and only the
    /// wanted slices are rescaled and normalised. Other data (compressed, per-slice rescales) is
    /// decoded whole and the window computed on it; the values are the same either way.
    pub fn load_normalised(
        &self,
        series: &SeriesRef,
        stack: &Stack,
        percentiles: (f64, f64),
        wanted: &[usize],
    ) -> Result<PartialVolume, DatasetError> {
        use rayon::prelude::*;
        let (rows, columns) = (stack.rows as usize, stack.columns as usize);
        let rc = rows * columns;
        let window_err = |source| DatasetError::Window {
            study: series.study,
            series: series.series,
            source,
        };
        let paths = self.stack_paths(series, stack)?;
        let acc = paths
            .par_iter()
            .enumerate()
            .try_fold(StackCount::default, |mut acc, (k, path)| {
                if acc.fallback {
                    return Ok(acc);
                }
                with_file(path, |bytes| {
                    let f = match native_frame(bytes, path) {
                        Some(f)
                            if (f.header.rows as usize, f.header.columns as usize)
                                == (rows, columns) =>
                        {
                            f
                        }
                        _ => {
                            acc.fallback = true;
                            return Ok(());
                        }
                    };
                    let (slope, intercept) = rescale_of(&f.header);
                    let hist = acc
                        .hist
                        .get_or_insert_with(|| StoredHistogram::new(slope, intercept));
                    if (hist.slope, hist.intercept) != (slope, intercept) {
                        acc.fallback = true;
                        return Ok(());
                    }
                    f.count_into(hist);
                    if wanted.contains(&k) {
                        acc.kept.push((k, f.to_owned_frame()));
                    }
                    Ok::<(), DatasetError>(())
                })?;
                Ok::<StackCount, DatasetError>(acc)
            })
            .try_reduce(StackCount::default, |a, b| Ok(a.merge(b)))?;
        let mut slices: Vec<Option<Held>> = vec![None; stack.len()];
        let window = match acc.hist {
            Some(h) if !acc.fallback && rc > 0 => {
                let window = h.window(percentiles.0, percentiles.1).map_err(window_err)?;
                for (k, frame) in acc.kept {
                    slices[k] = Some(Held::Stored {
                        frame,
                        slope: h.slope,
                        intercept: h.intercept,
                    });
                }
                window
            }
            _ => {
                let v = self.load_stack(series, stack)?;
                let window = IntensityWindow::of_values(&v.data, percentiles.0, percentiles.1)
                    .map_err(window_err)?;
                let v = window.normalise_owned(v);
                if rc > 0 {
                    for (k, chunk) in v.data.chunks_exact(rc).enumerate() {
                        slices[k] = Some(Held::Values(chunk.to_vec()));
                    }
                }
                window
            }
        };
        Ok(PartialVolume {
            stack: stack.clone(),
            rows,
            columns,
            window,
            slices,
        })
    }

    /// Adds the slices `wanted` (stack order) to a [`PartialVolume`] of `series`, normalised by its
    /// window; slices already held and indices outside the stack are skipped.
    pub fn load_slices(
        &self,
        series: &SeriesRef,
        part: &mut PartialVolume,
        wanted: &[usize],
    ) -> Result<(), DatasetError> {
        use rayon::prelude::*;
        let mut missing: Vec<usize> = wanted
            .iter()
            .copied()
            .filter(|k| part.slices.get(*k).is_some_and(|s| s.is_none()))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let instances: Vec<i64> = missing
            .iter()
            .map(|k| part.stack.slices[*k].instance_number)
            .collect();
        let paths = self.slices_paths(series, &instances)?;
        let (rows, columns) = (part.rows, part.columns);
        let map = part.window.mapper();
        let loaded = paths
            .par_iter()
            .map(|path| {
                with_file(path, |bytes| {
                    if let Some(f) = native_frame(bytes, path) {
                        if (f.header.rows as usize, f.header.columns as usize) == (rows, columns) {
                            let (slope, intercept) = rescale_of(&f.header);
                            return Ok(Held::Stored {
                                frame: f.to_owned_frame(),
                                slope,
                                intercept,
                            });
                        }
                    }
                    let mut v = vec![0f32; rows * columns];
                    slice_into(path, bytes, rows, columns, &mut v, map)?;
                    Ok(Held::Values(v))
                })
            })
            .collect::<Result<Vec<_>, DatasetError>>()?;
        for (k, v) in missing.into_iter().zip(loaded) {
            part.slices[k] = Some(v);
        }
        Ok(())
    }

    /// The whole normalised [`Volume`] of a [`PartialVolume`] of `series`: the slices it lacks are
    /// read and normalised by its window (the same values as normalising
    /// [`Dataset::load_stack`]'s volume by that window).
    pub fn complete(
        &self,
        series: &SeriesRef,
        mut part: PartialVolume,
    ) -> Result<Volume, DatasetError> {
        let all: Vec<usize> = (0..part.slices.len()).collect();
        self.load_slices(series, &mut part, &all)?;
        let mut data = Vec::with_capacity(part.slices.len() * part.rows * part.columns);
        let mut plane = Vec::new();
        for k in all {
            part.patch(k, 0..part.columns, 0..part.rows, &mut plane);
            data.extend_from_slice(&plane);
        }
        Ok(Volume {
            stack: part.stack,
            rows: part.rows,
            columns: part.columns,
            data,
        })
    }
}

/// What [`Dataset::load_normalised`] gathers over a stack's files (per rayon split, then merged).
#[derive(Default)]
struct StackCount {
    /// The stored values' histogram under the first file's rescale.
    hist: Option<StoredHistogram>,
    /// Some file is not native 8/16-bit grey-scale, or has another rescale: decode everything.
    fallback: bool,
    /// The wanted slices' stored values.
    kept: Vec<(usize, OwnedFrame)>,
}

impl StackCount {
    fn merge(mut self, b: StackCount) -> StackCount {
        self.fallback |= b.fallback;
        self.kept.extend(b.kept);
        match (&mut self.hist, b.hist) {
            (Some(a), Some(b)) if (a.slope, a.intercept) == (b.slope, b.intercept) => a.merge(&b),
            (Some(_), Some(_)) => self.fallback = true,
            (None, b) => self.hist = b,
            (Some(_), None) => {}
        }
        self
    }
}

/// A stack normalised by its intensity window, holding some of its slices
/// ([`Dataset::load_normalised`]); crops read it like a [`Volume`] as long as they stay on the
/// slices it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct PartialVolume {
    /// Geometry: slice order, positions, voxel <-> patient transforms.
    pub stack: Stack,
    /// Rows per slice.
    pub rows: usize,
    /// Columns per slice.
    pub columns: usize,
    /// The window of the whole stack the slices were normalised with.
    pub window: IntensityWindow,
    /// Per slice (stack order): its values, when held.
    slices: Vec<Option<Held>>,
}

/// A slice a [`PartialVolume`] holds.
#[derive(Debug, Clone, PartialEq)]
enum Held {
    /// Normalised values (data the fast path does not read).
    Values(Vec<f32>),
    /// Stored values, rescaled and normalised when a patch is asked for.
    Stored {
        frame: OwnedFrame,
        slope: f64,
        intercept: f64,
    },
}

impl PartialVolume {
    /// Whether slice `k` is held.
    pub fn has(&self, k: usize) -> bool {
        self.slices.get(k).is_some_and(|s| s.is_some())
    }

    /// Number of slices held.
    pub fn held(&self) -> usize {
        self.slices.iter().filter(|s| s.is_some()).count()
    }

    /// The normalised values of slice `k` (`rows * columns`, row by row), when held.
    pub fn slice_values(&self, k: usize) -> Option<Vec<f32>> {
        let mut v = Vec::new();
        self.patch(k, 0..self.columns, 0..self.rows, &mut v)
            .then_some(v)
    }
}

impl StackVoxels for PartialVolume {
    fn stack(&self) -> &Stack {
        &self.stack
    }
    fn rows(&self) -> usize {
        self.rows
    }
    fn columns(&self) -> usize {
        self.columns
    }
    fn patch(
        &self,
        k: usize,
        x: std::ops::Range<usize>,
        y: std::ops::Range<usize>,
        out: &mut Vec<f32>,
    ) -> bool {
        match self.slices.get(k) {
            Some(Some(Held::Values(v))) => {
                out.clear();
                for row in y {
                    out.extend_from_slice(
                        &v[row * self.columns + x.start..row * self.columns + x.end],
                    );
                }
                true
            }
            Some(Some(Held::Stored {
                frame,
                slope,
                intercept,
            })) => {
                frame.map_patch(x, y, *slope, *intercept, self.window.mapper(), out);
                true
            }
            _ => false,
        }
    }
}

thread_local! {
    /// Each thread's file buffer (its capacity kept between files: no allocation per slice).
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads the file at `path` into this thread's buffer and runs `f` on its bytes.
fn with_file<R>(
    path: &Path,
    f: impl FnOnce(&[u8]) -> Result<R, DatasetError>,
) -> Result<R, DatasetError> {
    use std::io::Read;
    let io = |source| {
        DatasetError::from(crate::dicom::DicomError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    READ_BUF.with(|b| {
        let mut buf = b.borrow_mut();
        buf.clear();
        std::fs::File::open(path)
            .and_then(|mut file| file.read_to_end(&mut buf))
            .map_err(io)?;
        f(&buf)
    })
}

/// The RescaleSlope and Intercept a volume applies (1 and 0 when absent or unusable).
fn rescale_of(header: &crate::InstanceHeader) -> (f64, f64) {
    let slope = header
        .rescale_slope
        .filter(|s| s.is_finite() && *s != 0.0)
        .unwrap_or(1.0);
    let intercept = header
        .rescale_intercept
        .filter(|s| s.is_finite())
        .unwrap_or(0.0);
    (slope, intercept)
}

/// One slice file's first frame into `out` (`rows * columns` values): rescaled, then mapped by
/// `map`; native grey-scale data straight from the bytes, anything else through the decoder.
fn slice_into(
    path: &Path,
    bytes: &[u8],
    rows: usize,
    columns: usize,
    out: &mut [f32],
    map: impl Fn(f32) -> f32,
) -> Result<(), DatasetError> {
    if let Some(f) = native_frame(bytes, path) {
        if (f.header.rows as usize, f.header.columns as usize) == (rows, columns) {
            let (slope, intercept) = rescale_of(&f.header);
            f.map_into(&mut out[..rows * columns], slope, intercept, map);
            return Ok(());
        }
    }
    let header = crate::dicom::read_header_bytes(bytes, path)?;
    let px = crate::dicom::decode_pixels_bytes(bytes, path)?;
    rescale_into(path, &header, &px, rows, columns, out)?;
    out[..rows * columns].iter_mut().for_each(|x| *x = map(*x));
    Ok(())
}

/// The first frame of one instance, rescaled, as `f32`, checked against the stack's matrix.
pub fn rescaled_slice(
    path: &Path,
    header: &crate::InstanceHeader,
    px: &crate::dicom::StoredPixels,
    rows: usize,
    columns: usize,
) -> Result<Vec<f32>, DatasetError> {
    let mut out = vec![0f32; rows * columns];
    rescale_into(path, header, px, rows, columns, &mut out)?;
    Ok(out)
}

/// [`rescaled_slice`] into `out` (`rows * columns` values): `stored * slope + intercept` in `f64`,
/// then `f32`, one typed loop per sample type.
fn rescale_into(
    path: &Path,
    header: &crate::InstanceHeader,
    px: &crate::dicom::StoredPixels,
    rows: usize,
    columns: usize,
    out: &mut [f32],
) -> Result<(), DatasetError> {
    let bad = |what: String| DatasetError::BadSlice {
        path: path.to_path_buf(),
        what,
    };
    if px.samples_per_pixel != 1 {
        return Err(bad(format!(
            "{} samples per pixel; a volume needs grey-scale images",
            px.samples_per_pixel
        )));
    }
    if (px.rows as usize, px.columns as usize) != (rows, columns) {
        return Err(bad(format!(
            "{}x{} pixels where the stack has {rows}x{columns}",
            px.rows, px.columns
        )));
    }
    let n = rows * columns;
    if px.values.len() < n {
        return Err(bad(format!(
            "{} pixel values, expected {n}",
            px.values.len()
        )));
    }
    let (slope, intercept) = rescale_of(header);
    fn map<T: Copy + Into<f64>>(src: &[T], out: &mut [f32], slope: f64, intercept: f64) {
        for (o, v) in out.iter_mut().zip(src) {
            *o = ((*v).into() * slope + intercept) as f32;
        }
    }
    use crate::dicom::PixelValues as P;
    let out = &mut out[..n];
    match &px.values {
        P::U8(v) => map(&v[..n], out, slope, intercept),
        P::I8(v) => map(&v[..n], out, slope, intercept),
        P::U16(v) => map(&v[..n], out, slope, intercept),
        P::I16(v) => map(&v[..n], out, slope, intercept),
        P::U32(v) => map(&v[..n], out, slope, intercept),
        P::I32(v) => map(&v[..n], out, slope, intercept),
    }
    Ok(())
}

fn condition_of_key(s: &str) -> Option<Condition> {
    Condition::ALL.into_iter().find(|c| c.key() == s)
}

fn level_of_key(s: &str) -> Option<Level> {
    Level::ALL.into_iter().find(|l| l.key() == s)
}
