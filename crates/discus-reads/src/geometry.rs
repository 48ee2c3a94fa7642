//! Where readers' points lie in the patient: each point `(series, instance, x, y)` is taken through its
//! slice's geometry ([`discus_data::geometry::SliceGeometry`], from the instance's DICOM header) into
//! patient coordinates in mm, so two readers' points can be compared even when they marked different
//! slices or different series of the study.
//!
//! Slices are looked up in the dataset's index (`discus_data::dataset::Dataset`), by the instance number
//! the label files use; no DICOM file is read.

use crate::store::Point;
use discus_core::{SeriesId, StudyId};
use discus_data::dataset::{Dataset, DatasetError};
use discus_data::geometry::SliceGeometry;
use std::collections::HashMap;
use std::sync::Mutex;

/// A slice's geometry and its frame of reference (points on different frames are not comparable).
#[derive(Debug, Clone)]
pub struct SliceInfo {
    /// Position, orientation and pixel spacing of the slice.
    pub geometry: SliceGeometry,
    /// FrameOfReferenceUID (0020,0052), when the header has one.
    pub frame_of_reference: Option<String>,
}

/// Why a slice could not be placed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SliceError {
    /// No image with this study, series and instance number is known.
    #[error("study {study} series {series} instance {instance}: no such image in the dataset")]
    NotFound {
        /// The study id.
        study: u64,
        /// The series id.
        series: u64,
        /// The InstanceNumber (0020,0013).
        instance: u32,
    },
    /// The image's header could not be read or lacks the geometry.
    #[error("study {study} series {series} instance {instance}: {message}")]
    Unreadable {
        /// The study id.
        study: u64,
        /// The series id.
        series: u64,
        /// The InstanceNumber (0020,0013).
        instance: u32,
        /// Why.
        message: String,
    },
}

/// Looks up slice geometry, caching what it has read.
pub trait SliceLookup: Sync {
    /// The geometry of the slice `point` lies on, in `study`.
    fn slice(&self, study: StudyId, point: &Point) -> Result<SliceInfo, SliceError>;

    /// The point in patient coordinates (mm), with the slice's frame of reference.
    fn patient_mm(
        &self,
        study: StudyId,
        point: &Point,
    ) -> Result<([f64; 3], Option<String>), SliceError> {
        let s = self.slice(study, point)?;
        Ok((
            s.geometry.pixel_to_patient(point.x, point.y),
            s.frame_of_reference,
        ))
    }

    /// Distance in mm between two points of one study; `None` when the slices lie in different
    /// frames of reference (both known and different).
    fn distance_mm(&self, study: StudyId, a: &Point, b: &Point) -> Result<Option<f64>, SliceError> {
        let (pa, fa) = self.patient_mm(study, a)?;
        let (pb, fb) = self.patient_mm(study, b)?;
        if let (Some(fa), Some(fb)) = (&fa, &fb) {
            if fa != fb {
                return Ok(None);
            }
        }
        Ok(Some(
            ((pa[0] - pb[0]).powi(2) + (pa[1] - pb[1]).powi(2) + (pa[2] - pb[2]).powi(2)).sqrt(),
        ))
    }
}

type Key = (u64, u64, u32);

/// Slice geometry from a dataset's index ([`Dataset::slice`]): no DICOM file is read, so distances
/// can be measured from the index alone. Answers are cached.
pub struct DatasetSlices {
    dataset: Mutex<Dataset>,
    cache: Mutex<HashMap<Key, Result<SliceInfo, SliceError>>>,
}

impl DatasetSlices {
    /// Slice lookups on an opened dataset.
    pub fn new(dataset: Dataset) -> Self {
        DatasetSlices {
            dataset: Mutex::new(dataset),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn load(&self, study: u64, series: u64, instance: u32) -> Result<SliceInfo, SliceError> {
        let ds = self.dataset.lock().unwrap_or_else(|e| e.into_inner());
        match ds.slice(StudyId(study), SeriesId(series), i64::from(instance)) {
            Ok(s) => Ok(SliceInfo {
                geometry: s.geometry,
                frame_of_reference: s.frame_of_reference,
            }),
            Err(DatasetError::NotFound { .. }) => Err(SliceError::NotFound {
                study,
                series,
                instance,
            }),
            Err(e) => Err(SliceError::Unreadable {
                study,
                series,
                instance,
                message: e.to_string(),
            }),
        }
    }
}

impl SliceLookup for DatasetSlices {
    fn slice(&self, study: StudyId, point: &Point) -> Result<SliceInfo, SliceError> {
        let key = (study.0, point.series.0, point.instance);
        if let Some(v) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return v.clone();
        }
        let v = self.load(key.0, key.1, key.2);
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, v.clone());
        v
    }
}

/// Slice geometry given directly (tests, synthetic data held in memory).
#[derive(Default)]
pub struct KnownSlices {
    /// Slice geometry by (study id, series id, InstanceNumber).
    pub slices: HashMap<Key, SliceInfo>,
}

impl KnownSlices {
    /// Records the geometry of one slice (with no frame of reference).
    pub fn insert(&mut self, study: StudyId, series: u64, instance: u32, geometry: SliceGeometry) {
        self.slices.insert(
            (study.0, series, instance),
            SliceInfo {
                geometry,
                frame_of_reference: None,
            },
        );
    }
}

impl SliceLookup for KnownSlices {
    fn slice(&self, study: StudyId, point: &Point) -> Result<SliceInfo, SliceError> {
        self.slices
            .get(&(study.0, point.series.0, point.instance))
            .cloned()
            .ok_or(SliceError::NotFound {
                study: study.0,
                series: point.series.0,
                instance: point.instance,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_across_slices_and_series() {
        // A sagittal slice (normal along x) at x = 0 and x = -4, and an axial slice (normal along z)
        // at z = 30, all with 0.5 mm pixels.
        let sag = |x: f64| {
            SliceGeometry::new(
                [x, -100.0, 50.0],
                [0.0, 1.0, 0.0, 0.0, 0.0, -1.0],
                [0.5, 0.5],
                256,
                256,
            )
            .unwrap()
        };
        let ax = SliceGeometry::new(
            [-64.0, -100.0, 30.0],
            [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            [0.5, 0.5],
            256,
            256,
        )
        .unwrap();
        let study = StudyId(1);
        let mut k = KnownSlices::default();
        k.insert(study, 10, 1, sag(0.0));
        k.insert(study, 10, 2, sag(-4.0));
        k.insert(study, 20, 7, ax);
        let p = |series, instance, x, y| Point {
            series: SeriesId(series),
            instance,
            x,
            y,
        };
        // Same pixel on slices 4 mm apart: 4 mm.
        let d = k
            .distance_mm(study, &p(10, 1, 100.0, 40.0), &p(10, 2, 100.0, 40.0))
            .unwrap()
            .unwrap();
        assert!((d - 4.0).abs() < 1e-9, "{d}");
        // Sagittal pixel (x=100, y=40) on slice x=0: patient (0, -100 + 50, 50 - 20) = (0, -50, 30).
        // Axial pixel (x=128, y=100): patient (-64 + 64, -100 + 50, 30) = (0, -50, 30).
        let d = k
            .distance_mm(study, &p(10, 1, 100.0, 40.0), &p(20, 7, 128.0, 100.0))
            .unwrap()
            .unwrap();
        assert!(d.abs() < 1e-9, "{d}");
        // 3-4-5 in plane: 6 px (3 mm) along y and 8 px (4 mm) along x of the axial slice.
        let d = k
            .distance_mm(study, &p(20, 7, 128.0, 100.0), &p(20, 7, 136.0, 106.0))
            .unwrap()
            .unwrap();
        assert!((d - 5.0).abs() < 1e-9, "{d}");
        assert!(k
            .distance_mm(study, &p(10, 9, 1.0, 1.0), &p(10, 1, 1.0, 1.0))
            .is_err());
    }
}
