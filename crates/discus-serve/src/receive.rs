//! What happens to one received instance, whichever way it came (C-STORE or STOW-RS): it was
//! streamed to a temporary file under `<data_dir>/tmp`; here its header is read, it is checked
//! against the limits and the node's own outputs, and it is moved into the instance store.

use crate::node::Node;
use crate::store::{instance_rel_path, NewInstance};
use discus_data::header::InstanceHeader;
use std::path::Path;

/// An instance taken in.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    /// SOP Class UID.
    pub sop_class: String,
    /// SOP Instance UID.
    pub sop_uid: String,
    /// Study Instance UID.
    pub study_uid: String,
    /// `Some(why)` when the instance is accepted but not used as input (an SR, a segmentation,
    /// something discus produced).
    pub ignored: Option<&'static str>,
}

/// Why an instance was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refused {
    /// Not a readable DICOM instance (STOW: 400; C-STORE: 0xC000).
    #[error("not a DICOM instance: {0}")]
    NotDicom(String),
    /// It belongs to another study than the one posted to (STOW: 409 with failure 0xA900).
    #[error("the instance belongs to another study than the request's")]
    OtherStudy {
        /// SOP Class UID.
        sop_class: String,
        /// SOP Instance UID.
        sop_uid: String,
    },
    /// A cap was hit (C-STORE: 0xA700 out of resources; STOW: failure 0xA700).
    #[error("{what}")]
    Limit {
        /// Which cap.
        what: String,
        /// SOP Class UID.
        sop_class: String,
        /// SOP Instance UID.
        sop_uid: String,
    },
    /// The node could not store it (disk, database).
    #[error("could not store the instance: {0}")]
    Io(String),
}

/// SR storage classes all start with this.
const SR_CLASS_PREFIX: &str = "1.2.840.10008.5.1.4.1.1.88.";
/// Segmentation Storage.
const SEG_CLASS: &str = "1.2.840.10008.5.1.4.1.1.66.4";

/// Why an instance is not an input (or `None` when it is): structured reports, segmentations,
/// presentation states and key objects, and anything discus produced (Manufacturer or Series
/// Description starting with `discus`).
pub fn ignored_input(h: &InstanceHeader) -> Option<&'static str> {
    if h.sop_class_uid.starts_with(SR_CLASS_PREFIX) {
        return Some("structured report");
    }
    if h.sop_class_uid == SEG_CLASS {
        return Some("segmentation");
    }
    match h.modality.as_deref().map(str::trim) {
        Some("SR") => return Some("structured report"),
        Some("SEG") => return Some("segmentation"),
        Some("PR") | Some("KO") => return Some("presentation state or key object"),
        _ => {}
    }
    let by_discus = |s: &Option<String>| {
        s.as_deref()
            .is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("discus"))
    };
    if by_discus(&h.manufacturer) || by_discus(&h.series_description) {
        return Some("produced by discus");
    }
    None
}

/// Takes in the instance in `tmp` (removed or moved in every case). `study`: the study the
/// request was addressed to (STOW-RS `/studies/{uid}`).
pub fn take(node: &Node, tmp: &Path, study: Option<&str>) -> Result<Taken, Refused> {
    let r = take_inner(node, tmp, study);
    if tmp.exists() {
        let _ = std::fs::remove_file(tmp);
    }
    node.metrics.count_instance(&r);
    r
}

fn take_inner(node: &Node, tmp: &Path, study: Option<&str>) -> Result<Taken, Refused> {
    let h = discus_data::dicom::read_header(tmp).map_err(|e| {
        // The error names the temporary file only: no identifiers.
        Refused::NotDicom(e.to_string())
    })?;
    if h.sop_instance_uid.is_empty() || h.study_instance_uid.is_empty() {
        return Err(Refused::NotDicom(
            "no SOP Instance UID or Study Instance UID".into(),
        ));
    }
    let (sop_class, sop_uid) = (h.sop_class_uid.clone(), h.sop_instance_uid.clone());
    if let Some(s) = study {
        if s != h.study_instance_uid {
            return Err(Refused::OtherStudy { sop_class, sop_uid });
        }
    }
    let taken = Taken {
        sop_class: sop_class.clone(),
        sop_uid: sop_uid.clone(),
        study_uid: h.study_instance_uid.clone(),
        ignored: ignored_input(&h),
    };
    if taken.ignored.is_some() {
        return Ok(taken);
    }
    let store = &node.store;
    let io = |e: &dyn std::fmt::Display| Refused::Io(e.to_string());
    let limits = &node.config.limits;
    let known = store.has_instance(&sop_uid).map_err(|e| io(&e))?;
    if !known {
        let n = store
            .study_instance_count(&h.study_instance_uid)
            .map_err(|e| io(&e))?;
        if n >= limits.max_instances_per_study {
            return Err(Refused::Limit {
                what: format!(
                    "the study already has {n} instances (limits.max_instances_per_study)"
                ),
                sop_class,
                sop_uid,
            });
        }
    }
    let size = std::fs::metadata(tmp).map_err(|e| io(&e))?.len();
    let used = store.disk_bytes().map_err(|e| io(&e))?;
    if used + size > limits.max_disk_bytes {
        return Err(Refused::Limit {
            what: format!(
                "{used} bytes of instances are stored; limits.max_disk_bytes is {}",
                limits.max_disk_bytes
            ),
            sop_class,
            sop_uid,
        });
    }
    let rel = instance_rel_path(&h.study_instance_uid, &sop_uid);
    let dest = node.data_dir.join(&rel);
    if let Some(p) = dest.parent() {
        std::fs::create_dir_all(p).map_err(|e| io(&e))?;
    }
    std::fs::rename(tmp, &dest).map_err(|e| io(&e))?;
    store
        .add_instance(&NewInstance {
            sop_uid: &sop_uid,
            study_uid: &h.study_instance_uid,
            series_uid: &h.series_instance_uid,
            path: &rel,
            bytes: size,
        })
        .map_err(|e| io(&e))?;
    Ok(taken)
}
