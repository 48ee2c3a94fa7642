//! Per-study scanner metadata for site and scanner breakdowns: institution, manufacturer and field
//! strength, read from the header of one DICOM file per study.
//!
//! The lookup is one small function, [`study_meta`], so that it can move to the dataset index when
//! the index records these fields. Patient identity is never read.

use crate::EvalError;
use discus_core::StudyId;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Scanner metadata of one study.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StudyMeta {
    /// (0008,0080) InstitutionName.
    pub institution: Option<String>,
    /// (0008,0070) Manufacturer.
    pub manufacturer: Option<String>,
    /// (0018,0087) MagneticFieldStrength in tesla (values above 100 are taken as gauss and converted).
    pub field_strength: Option<f64>,
}

/// The breakdowns a report makes, and how each names a study's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Facet {
    Site,
    Vendor,
    FieldStrength,
}

impl Facet {
    pub const ALL: [Facet; 3] = [Facet::Site, Facet::Vendor, Facet::FieldStrength];

    pub fn title(self) -> &'static str {
        match self {
            Facet::Site => "site (InstitutionName)",
            Facet::Vendor => "vendor (Manufacturer)",
            Facet::FieldStrength => "field strength",
        }
    }

    /// The group of a study; "unknown" when the images or the field are absent.
    pub fn group(self, meta: Option<&StudyMeta>) -> String {
        let s = meta.and_then(|m| match self {
            Facet::Site => m.institution.clone(),
            Facet::Vendor => m.manufacturer.clone(),
            Facet::FieldStrength => m.field_strength.map(|t| format!("{t:.1} T")),
        });
        s.filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into())
    }
}

/// The folder holding a study's series: `<dataset>/train_images/<study>` or `test_images/<study>`.
pub fn study_dir(dataset: &Path, study: StudyId) -> Option<PathBuf> {
    ["train_images", "test_images"]
        .iter()
        .map(|d| dataset.join(d).join(study.to_string()))
        .find(|p| p.is_dir())
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, EvalError> {
    let io = |source| EvalError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    v.sort();
    Ok(v)
}

/// Reads one study's metadata from the first DICOM file (by name) of its first series (by name).
/// `Ok(None)` when the study has no image folder or no file.
pub fn study_meta(dataset: &Path, study: StudyId) -> Result<Option<StudyMeta>, EvalError> {
    let Some(dir) = study_dir(dataset, study) else {
        return Ok(None);
    };
    for series in sorted_entries(&dir)?.into_iter().filter(|p| p.is_dir()) {
        let file = sorted_entries(&series)?
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("dcm")));
        if let Some(file) = file {
            return read_meta(&file).map(Some);
        }
    }
    Ok(None)
}

/// Reads the three fields from one file's header with `discus_data::dicom::read_header`.
fn read_meta(path: &Path) -> Result<StudyMeta, EvalError> {
    // The error names the file and the cause.
    let h = discus_data::dicom::read_header(path)?;
    let clean = |s: Option<String>| {
        s.map(|s| s.trim_matches([' ', '\0']).to_string())
            .filter(|s| !s.is_empty())
    };
    Ok(StudyMeta {
        institution: clean(h.institution_name),
        manufacturer: clean(h.manufacturer),
        field_strength: h
            .magnetic_field_strength
            .filter(|t| t.is_finite() && *t > 0.0)
            .map(|t| if t > 100.0 { t / 10_000.0 } else { t }),
    })
}

/// Metadata of many studies, read in parallel. A study whose file cannot be read is reported (in the
/// second value, naming the file and the cause) and left out; the rest are read.
/// `progress` is called once per study read (from several threads).
pub fn studies_meta(
    dataset: &Path,
    studies: &[StudyId],
    progress: &(dyn Fn() + Sync),
) -> (HashMap<StudyId, StudyMeta>, Vec<String>) {
    let results: Vec<(StudyId, Result<Option<StudyMeta>, EvalError>)> = studies
        .par_iter()
        .map(|&s| {
            let r = (s, study_meta(dataset, s));
            progress();
            r
        })
        .collect();
    let mut map = HashMap::new();
    let mut errors = Vec::new();
    for (s, r) in results {
        match r {
            Ok(Some(m)) => {
                map.insert(s, m);
            }
            Ok(None) => {}
            Err(e) => errors.push(format!("study {s}: {e}")),
        }
    }
    (map, errors)
}
