//! # discus-deid
//!
//! De-identification of DICOM files by the Basic Application Level Confidentiality Profile of DICOM
//! PS3.15 Annex E (every attribute of Table E.1-1, compiled in from `table_e1_1.csv`), with the
//! options Retain Longitudinal Temporal Information with Modified Dates, Retain Patient
//! Characteristics, Retain Device Identity, Retain UIDs and Clean Descriptors; and a verifier that
//! proves it by scanning every output byte for every identifying value of the input.
//!
//! - [`table`]: the standard's table as data and the action discus takes for each attribute.
//! - [`keys`]: the site's secret key; UIDs map to `2.25.<HMAC-SHA256(key, uid) as a 128-bit
//!   decimal>`, so the same UID maps the same way in every file and run with the same key; dates
//!   shift by a keyed per-patient offset of 1 to 10 years back, which keeps intervals.
//! - [`deid`]: one object: every element at every depth, the file meta (Media Storage SOP Instance
//!   UID follows the new SOP Instance UID; implementation UID/name replaced; AE titles dropped),
//!   private attributes removed (a small safe list kept when asked), Patient Identity Removed,
//!   De-identification Method and its code sequence (exactly the options applied) written. Pixel data
//!   is never touched; burned-in annotation and secondary capture are flagged.
//! - [`run`](mod@run): a folder, in parallel, resumable, with the site-private old-to-new map kept outside
//!   the output and a dataset card (`dataset.toml`) written into it.
//! - [`verify`](mod@verify): the leak scan.
//! - [`ingest`]: the de-identifier as the rewriter of `discus ingest --deid`.
//!
//! ```
//! use discus_deid::deid::Deidentifier;
//! use discus_deid::keys::Key;
//! use discus_deid::table::Options;
//! use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
//! use dicom_object::{meta::FileMetaTableBuilder, InMemDicomObject};
//!
//! let mut obj = InMemDicomObject::new_empty();
//! obj.put(DataElement::new(Tag(0x0010, 0x0010), VR::PN, PrimitiveValue::from("Doe^Jane")));
//! obj.put(DataElement::new(Tag(0x0010, 0x0020), VR::LO, PrimitiveValue::from("MRN-12345")));
//! obj.put(DataElement::new(Tag(0x0008, 0x0020), VR::DA, PrimitiveValue::from("20240301")));
//! obj.put(DataElement::new(Tag(0x0008, 0x0016), VR::UI, PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.4")));
//! obj.put(DataElement::new(Tag(0x0008, 0x0018), VR::UI, PrimitiveValue::from("1.2.3.4.5")));
//! let meta = FileMetaTableBuilder::new()
//!     .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.4")
//!     .media_storage_sop_instance_uid("1.2.3.4.5")
//!     .transfer_syntax("1.2.840.10008.1.2.1")
//!     .build()
//!     .unwrap();
//! let options = Options { retain_longitudinal_modified_dates: true, ..Options::default() };
//! let deid = Deidentifier::new(Key::from_bytes([42; 32]), options);
//! let out = deid.deidentify(obj.with_exact_meta(meta)).unwrap().object;
//! let text = |t| out.element(t).unwrap().to_str().unwrap().to_string();
//! assert!(text(Tag(0x0010, 0x0010)).starts_with("DEID-"));        // name -> pseudonym
//! assert_ne!(text(Tag(0x0008, 0x0020)), "20240301");              // date shifted
//! assert!(text(Tag(0x0008, 0x0018)).starts_with("2.25."));        // UID mapped
//! assert_eq!(out.meta().media_storage_sop_instance_uid().trim_end_matches('\0'), text(Tag(0x0008, 0x0018)));
//! assert_eq!(text(Tag(0x0012, 0x0062)), "YES");
//! ```

pub mod deid;
pub mod ingest;
pub mod keys;
pub mod run;
pub mod table;
pub mod text;
pub mod verify;

pub use deid::{Deidentifier, Flag};
pub use keys::Key;
pub use run::{run, RunConfig, RunReport};
pub use table::Options;
pub use verify::{verify, VerifyReport};
