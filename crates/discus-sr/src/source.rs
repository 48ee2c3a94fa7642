//! The source side of a report, read through [`Dataset`]: the study's patient and study modules
//! and the identity (series, SOP instance, SOP class) of the slices the findings point at.

use crate::write::{SrPoint, StudyContext};
use crate::SrError;
use discus_core::{SeriesId, StudyId};
use discus_data::dataset::Dataset;

fn not_found(study: StudyId, what: String) -> SrError {
    SrError::Source { study, what }
}

/// The Patient and General Study modules of `study`, copied from one of its instances (the first
/// slice of the first stack of its first indexed series).
pub fn study_context(ds: &Dataset, study: StudyId) -> Result<StudyContext, SrError> {
    for series in ds.series(study)? {
        let Some(first) = ds
            .stacks(&series)?
            .into_iter()
            .flat_map(|st| st.slices.into_iter())
            .map(|s| s.instance_number)
            .next()
        else {
            continue;
        };
        let path = ds.slice_file(&series, first)?;
        let bytes = std::fs::read(&path).map_err(|source| SrError::Io {
            path: path.clone(),
            source,
        })?;
        let obj = discus_data::dicom::open_dicom_bytes(&bytes, &path)?;
        let ctx = StudyContext::from_object(&obj);
        if ctx.study_instance_uid.is_empty() {
            return Err(not_found(
                study,
                format!("{}: no Study Instance UID", path.display()),
            ));
        }
        return Ok(ctx);
    }
    Err(not_found(study, "no readable instance in the index".into()))
}

/// The slice `instance` (the number the label files use) of `series` as a report point at
/// `pixel_xy` (column, row; centre of the first pixel at (0, 0)).
pub fn source_point(
    ds: &Dataset,
    study: StudyId,
    series: SeriesId,
    instance: i64,
    pixel_xy: [f64; 2],
) -> Result<SrPoint, SrError> {
    let s = ds
        .find_series(study, series)?
        .ok_or_else(|| not_found(study, format!("series {series} is not in the index")))?;
    let path = ds.slice_file(&s, instance)?;
    let h = discus_data::dicom::read_header(&path)?;
    Ok(SrPoint {
        series_instance_uid: h.series_instance_uid,
        sop_instance_uid: h.sop_instance_uid,
        sop_class_uid: h.sop_class_uid,
        pixel_xy,
    })
}
