//! Per-study scanner metadata for site and scanner breakdowns: institution, manufacturer and field
//! strength, taken from the dataset index ([`discus_data::dataset::Dataset::study_meta`]): no DICOM file
//! is read here, so a report can be made from the index alone. Patient identity is never read.

use discus_core::StudyId;
use discus_data::dataset::Dataset;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub use discus_data::dataset::StudyMeta;

/// The breakdowns a report makes, and how each names a study's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Facet {
    /// By (0008,0080) InstitutionName.
    Site,
    /// By (0008,0070) Manufacturer.
    Vendor,
    /// By (0018,0087) MagneticFieldStrength.
    FieldStrength,
}

impl Facet {
    /// Every facet, in report order.
    pub const ALL: [Facet; 3] = [Facet::Site, Facet::Vendor, Facet::FieldStrength];

    /// The facet's heading in reports.
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

/// Metadata of many studies from the index. A study the index cannot answer for is reported (in the
/// second value, with the cause) and left out; a study without images is simply absent.
/// `progress` is called once per study.
pub fn studies_meta(
    dataset: &Dataset,
    studies: &[StudyId],
    progress: &dyn Fn(),
) -> (HashMap<StudyId, StudyMeta>, Vec<String>) {
    let mut map = HashMap::new();
    let mut errors = Vec::new();
    for &s in studies {
        match dataset.study_meta(s) {
            Ok(Some(m)) => {
                map.insert(s, m);
            }
            Ok(None) => {}
            Err(e) => errors.push(format!("study {s}: {e}")),
        }
        progress();
    }
    (map, errors)
}
