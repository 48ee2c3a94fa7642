//! De-identification on the way into a dataset: [`Deidentifier`] is an
//! [`InstanceRewriter`] for `discus ingest --deid` (see `discus_data::ingest`).
//!
//! Each file is opened from its bytes, de-identified exactly as `discus deid` does (same key, same
//! new UIDs, pseudonyms and date shifts) and written back to bytes; the ingest derives the dataset's
//! study and series ids from the new UIDs, which [`InstanceRewriter::map_uid`] predicts.

use crate::deid::Deidentifier;
use crate::run::deidentification_record;
use discus_core::governance::Deidentification;
use discus_data::ingest::{InstanceRewriter, Rewritten};
use std::path::Path;

impl InstanceRewriter for Deidentifier {
    fn map_uid(&self, uid: &str) -> String {
        if self.options.retain_uids {
            uid.trim_matches(|c: char| c == '\0' || c == ' ')
                .to_string()
        } else {
            self.key.map_uid(uid)
        }
    }

    fn rewrite(&self, bytes: &[u8], _path: &Path) -> Result<Rewritten, String> {
        let obj = dicom_object::OpenFileOptions::new()
            .read_preamble(dicom_object::file::ReadPreamble::Auto)
            .from_reader(bytes)
            .map_err(|e| format!("not a readable DICOM file: {e}"))?;
        let outcome = self.deidentify(obj).map_err(|e| e.to_string())?;
        let mut buf = Vec::with_capacity(bytes.len() + 1024);
        outcome
            .object
            .write_all(&mut buf)
            .map_err(|e| format!("cannot write the de-identified object: {e}"))?;
        let ids = outcome.ids;
        Ok(Rewritten {
            bytes: buf,
            study_uid: ids.study.1,
            series_uid: ids.series.1,
            patient: Some(ids.patient).filter(|(old, _)| !old.is_empty()),
        })
    }

    fn deidentification(&self) -> Deidentification {
        deidentification_record(&self.options)
    }
}
