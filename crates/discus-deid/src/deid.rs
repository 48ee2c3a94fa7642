//! De-identifying one DICOM object: every element at every depth and the file meta, by the action
//! [`crate::table::resolve`] gives it.

use crate::keys::{shift_date, Key};
use crate::table::{resolve, Action, Options, Table};
use dicom_core::header::Header;
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_object::mem::InMemElement;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use serde::Serialize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Reads one input file in memory for de-identification (and for verification, which must read
/// inputs exactly as they were de-identified): discus's one DICOM reader,
/// [`discus_data::dicom::open_dicom_bytes`], which checks every length against the file before
/// dicom-rs allocates and catches dicom-rs panics. `path` is only used in error messages.
pub fn read_dicom(bytes: &[u8], path: &Path) -> Result<DefaultDicomObject, DeidError> {
    discus_data::dicom::open_dicom_bytes(bytes, path).map_err(|e| DeidError::Read(e.to_string()))
}

/// The message of a caught panic (dicom-rs on corrupt data).
fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    let what = if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown cause".into()
    };
    format!("the DICOM library failed: {what}")
}

/// discus's implementation class UID (a 2.25 UUID-derived UID fixed for this tool).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.226381622379361254399012389517614730021";
/// discus's implementation version name (at most 16 characters).
pub const IMPLEMENTATION_VERSION_NAME: &str = "DISCUS_DEID_0_1";
/// The text written to De-identification Method (0012,0063).
pub const METHOD_TEXT: &str = "DICOM PS3.15 E.1 Basic Profile; discus deid";

/// Private attributes kept when [`Options::keep_safe_private`] is set: `(private creator, element
/// byte, meaning)`. Diffusion acquisition parameters that lumbar research uses and that carry no
/// identity (numbers only). Every other private attribute is removed.
pub const SAFE_PRIVATE: &[(&str, u16, u8, &str)] = &[
    (
        "SIEMENS CSA HEADER",
        0x0019,
        0x0C,
        "diffusion b-value (not present in every file)",
    ),
    ("SIEMENS MR HEADER", 0x0019, 0x0C, "diffusion b-value"),
    (
        "SIEMENS MR HEADER",
        0x0019,
        0x0D,
        "diffusion directionality",
    ),
    (
        "SIEMENS MR HEADER",
        0x0019,
        0x0E,
        "diffusion gradient direction",
    ),
    ("GEMS_ACQU_01", 0x0019, 0x9C, "pulse sequence name"),
];

/// Patient's Name (0010,0010).
pub const TAG_PATIENT_NAME: Tag = Tag(0x0010, 0x0010);
/// Patient ID (0010,0020).
pub const TAG_PATIENT_ID: Tag = Tag(0x0010, 0x0020);
/// SOP Class UID (0008,0016).
pub const TAG_SOP_CLASS_UID: Tag = Tag(0x0008, 0x0016);
/// SOP Instance UID (0008,0018).
pub const TAG_SOP_INSTANCE_UID: Tag = Tag(0x0008, 0x0018);
/// Study Instance UID (0020,000D).
pub const TAG_STUDY_UID: Tag = Tag(0x0020, 0x000D);
/// Series Instance UID (0020,000E).
pub const TAG_SERIES_UID: Tag = Tag(0x0020, 0x000E);
/// Burned In Annotation (0028,0301).
pub const TAG_BURNED_IN: Tag = Tag(0x0028, 0x0301);
/// Patient Identity Removed (0012,0062).
pub const TAG_PATIENT_IDENTITY_REMOVED: Tag = Tag(0x0012, 0x0062);
/// De-identification Method (0012,0063).
pub const TAG_DEID_METHOD: Tag = Tag(0x0012, 0x0063);
/// De-identification Method Code Sequence (0012,0064).
pub const TAG_DEID_METHOD_CODES: Tag = Tag(0x0012, 0x0064);
/// Longitudinal Temporal Information Modified (0028,0303).
pub const TAG_LONGITUDINAL_MODIFIED: Tag = Tag(0x0028, 0x0303);
/// Pixel Data (7FE0,0010).
pub const TAG_PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);

/// Why a file needs a person's look before release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flag {
    /// Burned In Annotation (0028,0301) is YES: the pixels may show identifying text.
    BurnedInAnnotation,
    /// The SOP class is Secondary Capture: screenshots and scans often show identifying text.
    SecondaryCapture,
}

/// The identifiers of one de-identified instance, old and new (the site-private mapping).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdPairs {
    /// The patient: (Patient ID (0010,0020), or Patient's Name when the ID is empty; the keyed pseudonym).
    pub patient: (String, String),
    /// Study Instance UID (0020,000D): (original, de-identified).
    pub study: (String, String),
    /// Series Instance UID (0020,000E): (original, de-identified).
    pub series: (String, String),
    /// SOP Instance UID (0008,0018): (original, de-identified).
    pub sop_instance: (String, String),
}

/// A de-identified object and what the site needs to know about it.
pub struct Outcome {
    /// The de-identified object, file meta included.
    pub object: DefaultDicomObject,
    /// The identifiers it had and has now.
    pub ids: IdPairs,
    /// Why it needs a person's look before release (empty when it does not).
    pub flags: Vec<Flag>,
}

/// De-identification failures for one object.
#[derive(Debug, thiserror::Error)]
pub enum DeidError {
    /// The new file meta group could not be built; the message says why.
    #[error("cannot build the file meta group: {0}")]
    Meta(String),
    /// The input bytes are not a DICOM file that can be read (the cause, without element values).
    #[error("not a readable DICOM file: {0}")]
    Read(String),
    /// The de-identified object could not be encoded.
    #[error("cannot write the de-identified object: {0}")]
    Write(String),
}

/// The de-identifier: a key and a set of options, applied to one object at a time.
pub struct Deidentifier {
    /// The site's secret key: seeds UID mapping, dummy identifiers and date shifts.
    pub key: Key,
    /// The profile options applied.
    pub options: Options,
}

struct Ctx {
    offset_days: i64,
    pseudonym: String,
    /// Words that must not survive a clean: the object's identifying values (upper-cased).
    words: Vec<String>,
}

pub(crate) fn is_text_vr(vr: VR) -> bool {
    matches!(
        vr,
        VR::AE
            | VR::AS
            | VR::CS
            | VR::DA
            | VR::DS
            | VR::DT
            | VR::IS
            | VR::LO
            | VR::LT
            | VR::PN
            | VR::SH
            | VR::ST
            | VR::TM
            | VR::UC
            | VR::UI
            | VR::UR
            | VR::UT
    )
}

/// The string values of a primitive element (empty for binary VRs and sequences).
pub(crate) fn strings(e: &InMemElement) -> Vec<String> {
    match e.value() {
        Value::Primitive(p) if is_text_vr(e.vr()) => p
            .to_multi_str()
            .iter()
            .map(|s| s.trim_matches(|c| c == ' ' || c == '\0').to_string())
            .collect(),
        Value::Primitive(PrimitiveValue::U8(bytes)) if e.vr() == VR::UN => {
            // unknown VR (implicit private): treat printable bytes as text
            let s: String = bytes.iter().map(|&b| b as char).collect();
            if bytes
                .iter()
                .all(|&b| b == 0 || b == b'\\' || (32..127).contains(&b) || b >= 0xA0)
            {
                s.split('\\')
                    .map(|p| p.trim_matches(|c| c == ' ' || c == '\0').to_string())
                    .collect()
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    }
}

fn top_string(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let e = obj.element_opt(tag).ok().flatten()?;
    let v = strings(e);
    v.into_iter().next().filter(|s| !s.is_empty())
}

fn strs_element(tag: Tag, vr: VR, values: Vec<String>) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::Strs(values.into_iter().collect()))
}

fn seq_element(tag: Tag, items: Vec<InMemDicomObject>) -> InMemElement {
    DataElement::new(tag, VR::SQ, DataSetSequence::new(items, Length::UNDEFINED))
}

fn dummy(tag: Tag, vr: VR, key: &Key, old: &[String]) -> InMemElement {
    let s = |v: &str| strs_element(tag, vr, vec![v.to_string()]);
    match vr {
        VR::AE | VR::CS | VR::LO | VR::LT | VR::PN | VR::SH | VR::ST | VR::UC | VR::UT => {
            s("ANONYMIZED")
        }
        VR::AS => s("000Y"),
        VR::DA => s("19000101"),
        VR::DT => s("19000101000000"),
        VR::TM => s("000000"),
        VR::DS | VR::IS => s("0"),
        VR::UI => strs_element(
            tag,
            vr,
            if old.is_empty() {
                vec![key.map_uid("")]
            } else {
                old.iter().map(|u| key.map_uid(u)).collect()
            },
        ),
        VR::UR => s("http://anonymized.invalid/"),
        VR::US => DataElement::new(tag, vr, PrimitiveValue::from(0u16)),
        VR::SS => DataElement::new(tag, vr, PrimitiveValue::from(0i16)),
        VR::UL => DataElement::new(tag, vr, PrimitiveValue::from(0u32)),
        VR::SL => DataElement::new(tag, vr, PrimitiveValue::from(0i32)),
        VR::FL => DataElement::new(tag, vr, PrimitiveValue::from(0f32)),
        VR::FD => DataElement::new(tag, vr, PrimitiveValue::from(0f64)),
        VR::OB | VR::OW | VR::UN => {
            DataElement::new(tag, vr, PrimitiveValue::U8(vec![0u8, 0].into()))
        }
        _ => DataElement::empty(tag, vr),
    }
}

/// Shifts the date part of a DA (or range) / DT value; `None` when it cannot be parsed.
fn shift_value(vr: VR, v: &str, days: i64) -> Option<String> {
    if v.is_empty() {
        return Some(String::new());
    }
    match vr {
        VR::DA => {
            if let Some((a, b)) = v.split_once('-') {
                let a = if a.is_empty() {
                    String::new()
                } else {
                    shift_date(a, days)?
                };
                let b = if b.is_empty() {
                    String::new()
                } else {
                    shift_date(b, days)?
                };
                Some(format!("{a}-{b}"))
            } else {
                shift_date(v, days)
            }
        }
        VR::DT => {
            // `get` is `None` when the value is short or byte 8 is inside a non-ASCII character
            let (date, rest) = (v.get(..8)?, v.get(8..)?);
            Some(format!("{}{rest}", shift_date(date, days)?))
        }
        _ => Some(v.to_string()),
    }
}

/// Where the upper-case word `w` occurs in `v`, compared case-insensitively: the byte range of `v`
/// it covers, widened to whole characters (upper-casing can change a character's length, so
/// positions in an upper-cased copy are not positions in `v`).
fn find_word(v: &str, w: &str) -> Option<std::ops::Range<usize>> {
    if w.is_empty() {
        return None;
    }
    // ASCII upper-casing keeps every byte where it was
    if let Some(p) = v.to_ascii_uppercase().find(w) {
        return Some(p..p + w.len());
    }
    let mut upper = String::with_capacity(v.len());
    // for each byte of `upper`, the byte range of the character of `v` it came from
    let mut origin = Vec::with_capacity(v.len());
    for (i, c) in v.char_indices() {
        for u in c.to_uppercase() {
            upper.push(u);
            origin.extend(std::iter::repeat_n(i..i + c.len_utf8(), u.len_utf8()));
        }
    }
    let p = upper.find(w)?;
    Some(origin[p].start..origin[p + w.len() - 1].end)
}

/// Removes every identifying word (case-insensitively) from a text; collapses the spaces left.
fn clean_text(v: &str, words: &[String]) -> String {
    let mut s = v.to_string();
    for w in words {
        // each cut replaces at least two bytes with one space, so this ends
        while let Some(r) = find_word(&s, w) {
            s.replace_range(r, " ");
        }
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text VRs where identifying values get copied (not codes, UIDs, dates or numbers).
fn is_free_text_vr(vr: VR) -> bool {
    matches!(
        vr,
        VR::LO | VR::LT | VR::SH | VR::ST | VR::UT | VR::UC | VR::PN
    )
}

/// Shortest identifying word scrubbed out of kept attributes (and the shortest `verify` looks for).
pub const MIN_COPY_LEN: usize = 4;

fn has_copy(v: &str, words: &[String]) -> bool {
    let upper = v.to_uppercase();
    words
        .iter()
        .any(|w| w.chars().count() >= MIN_COPY_LEN && upper.contains(w.as_str()))
}

fn scrub_copies(v: &str, words: &[String]) -> String {
    let long: Vec<String> = words
        .iter()
        .filter(|w| w.chars().count() >= MIN_COPY_LEN)
        .cloned()
        .collect();
    if has_copy(v, &long) {
        clean_text(v, &long)
    } else {
        v.to_string()
    }
}

fn safe_private_creator(creator: &str, group: u16) -> bool {
    SAFE_PRIVATE
        .iter()
        .any(|(c, g, _, _)| *g == group && c.eq_ignore_ascii_case(creator.trim()))
}

impl Deidentifier {
    /// A de-identifier applying `options` with `key`.
    pub fn new(key: Key, options: Options) -> Deidentifier {
        Deidentifier { key, options }
    }

    /// The action for an element of this object (private tags: removed unless on the safe list).
    pub fn action(&self, tag: Tag, vr: VR) -> Action {
        match Table::get().row(tag) {
            Some(row) => resolve(row, &self.options, vr),
            None => Action::Keep,
        }
    }

    /// De-identifies one whole DICOM file given as bytes, as `discus deid` does each input file:
    /// reads it ([`read_dicom`]), de-identifies it and encodes the result. Returns the outcome and
    /// the bytes of the output file. `path` is only used in error messages. Malformed input is an
    /// error, never a panic or a huge allocation.
    pub fn deidentify_bytes(
        &self,
        bytes: &[u8],
        path: &Path,
    ) -> Result<(Outcome, Vec<u8>), DeidError> {
        let outcome = self.deidentify(read_dicom(bytes, path)?)?;
        let mut buf = Vec::with_capacity(bytes.len() + 4096);
        let write = || {
            outcome
                .object
                .write_all(&mut buf)
                .map_err(|e| DeidError::Write(e.to_string()))
        };
        match catch_unwind(AssertUnwindSafe(write)) {
            Ok(Ok(())) => Ok((outcome, buf)),
            Ok(Err(e)) => Err(e),
            Err(p) => Err(DeidError::Write(panic_message(p))),
        }
    }

    /// De-identifies a whole file object.
    pub fn deidentify(&self, file: DefaultDicomObject) -> Result<Outcome, DeidError> {
        let ts = file
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string();
        let meta_sop = file
            .meta()
            .media_storage_sop_instance_uid()
            .trim_end_matches('\0')
            .to_string();
        let meta_class = file
            .meta()
            .media_storage_sop_class_uid()
            .trim_end_matches('\0')
            .to_string();
        let obj = file.into_inner();

        let patient_id = top_string(&obj, TAG_PATIENT_ID).unwrap_or_default();
        let patient_key = if !patient_id.is_empty() {
            patient_id.clone()
        } else {
            top_string(&obj, TAG_PATIENT_NAME).unwrap_or_default()
        };
        let mut words = Vec::new();
        self.collect_words(&obj, &mut words);
        words.sort_by_key(|w| std::cmp::Reverse(w.len()));
        words.dedup();
        let ctx = Ctx {
            offset_days: self.key.date_offset_days(&patient_key),
            pseudonym: self.key.pseudonym(&patient_key),
            words,
        };

        let mut out = self.process(&obj, &ctx);

        // the attributes that say what was done
        out.put(strs_element(
            TAG_PATIENT_IDENTITY_REMOVED,
            VR::CS,
            vec!["YES".into()],
        ));
        out.put(strs_element(
            TAG_DEID_METHOD,
            VR::LO,
            vec![METHOD_TEXT.into()],
        ));
        let items: Vec<InMemDicomObject> = self
            .options
            .method_codes()
            .into_iter()
            .map(|(value, meaning)| {
                InMemDicomObject::from_element_iter([
                    strs_element(Tag(0x0008, 0x0100), VR::SH, vec![value.into()]),
                    strs_element(Tag(0x0008, 0x0102), VR::SH, vec!["DCM".into()]),
                    strs_element(Tag(0x0008, 0x0104), VR::LO, vec![meaning.into()]),
                ])
            })
            .collect();
        out.put(seq_element(TAG_DEID_METHOD_CODES, items));
        out.put(strs_element(
            TAG_LONGITUDINAL_MODIFIED,
            VR::CS,
            vec![if self.options.retain_longitudinal_modified_dates {
                "MODIFIED"
            } else {
                "REMOVED"
            }
            .into()],
        ));

        // file meta: the instance UID must match the (new) SOP Instance UID
        let old_sop = top_string(&obj, TAG_SOP_INSTANCE_UID).unwrap_or(meta_sop);
        let new_sop = top_string(&out, TAG_SOP_INSTANCE_UID).unwrap_or_else(|| {
            if self.options.retain_uids {
                old_sop.clone()
            } else {
                self.key.map_uid(&old_sop)
            }
        });
        let sop_class = top_string(&obj, TAG_SOP_CLASS_UID).unwrap_or(meta_class);
        // deflate is written as explicit VR little endian, so the output can be scanned byte by byte
        let out_ts = if ts == "1.2.840.10008.1.2.1.99" {
            "1.2.840.10008.1.2.1".to_string()
        } else {
            ts
        };
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(sop_class.as_str())
            .media_storage_sop_instance_uid(new_sop.as_str())
            .transfer_syntax(out_ts.as_str())
            .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
            .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
            .build()
            .map_err(|e| DeidError::Meta(e.to_string()))?;

        let mut flags = Vec::new();
        if top_string(&obj, TAG_BURNED_IN).is_some_and(|v| v.eq_ignore_ascii_case("YES")) {
            flags.push(Flag::BurnedInAnnotation);
        }
        if sop_class.starts_with("1.2.840.10008.5.1.4.1.1.7") {
            flags.push(Flag::SecondaryCapture);
        }
        let pair = |tag: Tag| {
            (
                top_string(&obj, tag).unwrap_or_default(),
                top_string(&out, tag).unwrap_or_default(),
            )
        };
        let ids = IdPairs {
            patient: (patient_key, ctx.pseudonym.clone()),
            study: pair(TAG_STUDY_UID),
            series: pair(TAG_SERIES_UID),
            sop_instance: (old_sop, new_sop),
        };
        Ok(Outcome {
            object: out.with_exact_meta(meta),
            ids,
            flags,
        })
    }

    /// Identifying words of an object (values of the attributes the profile removes or replaces),
    /// upper-cased, for cleaning descriptors.
    fn collect_words(&self, obj: &InMemDicomObject, out: &mut Vec<String>) {
        for e in obj.iter() {
            let tag = e.tag();
            let action = if tag.0 % 2 == 1 {
                Action::Remove
            } else {
                self.action(tag, e.vr())
            };
            if let Value::Sequence(s) = e.value() {
                for item in s.items() {
                    self.collect_words(item, out);
                }
                continue;
            }
            if matches!(action, Action::Keep | Action::CleanText) || e.vr() == VR::TM {
                continue;
            }
            for v in strings(e) {
                let mut push = |w: &str| {
                    let w = w.trim();
                    if w.chars().count() >= 3 {
                        out.push(w.to_uppercase());
                    }
                };
                push(&v);
                if e.vr() == VR::PN {
                    for part in v.split(['^', '=']) {
                        push(part);
                    }
                }
                if e.vr() == VR::DA && v.len() == 8 && v.is_ascii() {
                    push(&format!("{}-{}-{}", &v[..4], &v[4..6], &v[6..]));
                    push(&format!("{}.{}.{}", &v[..4], &v[4..6], &v[6..]));
                    push(&format!("{}/{}/{}", &v[4..6], &v[6..], &v[..4]));
                }
            }
        }
    }

    fn process(&self, obj: &InMemDicomObject, ctx: &Ctx) -> InMemDicomObject {
        // private creators of blocks that hold a safe attribute
        let mut safe_blocks: Vec<(u16, u8)> = Vec::new();
        if self.options.keep_safe_private {
            for e in obj.iter() {
                let t = e.tag();
                if t.0 % 2 == 1 && (0x0010..=0x00FF).contains(&t.1) {
                    if let Some(c) = strings(e).first() {
                        if safe_private_creator(c, t.0) {
                            safe_blocks.push((t.0, t.1 as u8));
                        }
                    }
                }
            }
        }
        let safe_element = |t: Tag| -> bool {
            let block = (t.1 >> 8) as u8;
            let el = (t.1 & 0xFF) as u8;
            safe_blocks.iter().any(|&(g, b)| {
                g == t.0
                    && b == block
                    && obj
                        .element_opt(Tag(g, b as u16))
                        .ok()
                        .flatten()
                        .and_then(|c| strings(c).into_iter().next())
                        .is_some_and(|c| {
                            SAFE_PRIVATE.iter().any(|(sc, sg, se, _)| {
                                *sg == g && *se == el && sc.eq_ignore_ascii_case(c.trim())
                            })
                        })
            })
        };

        let mut out: Vec<InMemElement> = Vec::new();
        for e in obj.iter() {
            let tag = e.tag();
            let vr = e.vr();
            if tag.1 == 0x0000 {
                continue; // group lengths: retired, and wrong after editing
            }
            if tag.0 % 2 == 1 {
                let keep = self.options.keep_safe_private
                    && if (0x0010..=0x00FF).contains(&tag.1) {
                        safe_blocks
                            .iter()
                            .any(|&(g, b)| g == tag.0 && b as u16 == tag.1)
                    } else {
                        tag.1 >= 0x1000 && safe_element(tag)
                    };
                if keep && !matches!(e.value(), Value::Sequence(_)) {
                    out.push(e.clone());
                }
                continue;
            }
            if matches!(
                tag,
                TAG_PATIENT_IDENTITY_REMOVED | TAG_DEID_METHOD | TAG_DEID_METHOD_CODES
            ) {
                continue; // rewritten at the top level
            }
            let action = self.action(tag, vr);
            if action == Action::Remove {
                continue;
            }
            if let Value::Sequence(s) = e.value() {
                let items = if action == Action::Empty {
                    Vec::new()
                } else {
                    s.items().iter().map(|i| self.process(i, ctx)).collect()
                };
                out.push(seq_element(tag, items));
                continue;
            }
            if let Value::PixelSequence(_) = e.value() {
                out.push(e.clone());
                continue;
            }
            let old = strings(e);
            let new = match action {
                Action::Keep
                    if is_free_text_vr(vr) && old.iter().any(|v| has_copy(v, &ctx.words)) =>
                {
                    // an identifying value copied into an attribute the profile keeps (a code
                    // meaning repeating the study description, a name typed into a label):
                    // scrub the copy
                    let cleaned = old.iter().map(|v| scrub_copies(v, &ctx.words)).collect();
                    strs_element(tag, vr, cleaned)
                }
                Action::Keep | Action::Remove => e.clone(),
                Action::Empty | Action::Dummy
                    if tag == TAG_PATIENT_ID || tag == TAG_PATIENT_NAME =>
                {
                    strs_element(tag, vr, vec![ctx.pseudonym.clone()])
                }
                Action::Empty => DataElement::empty(tag, vr),
                Action::Dummy => dummy(tag, vr, &self.key, &old),
                Action::MapUid => {
                    if is_text_vr(vr) || vr == VR::UN {
                        let mapped = old
                            .iter()
                            .map(|u| {
                                if u.is_empty() {
                                    String::new()
                                } else {
                                    self.key.map_uid(u)
                                }
                            })
                            .collect();
                        strs_element(tag, VR::UI, mapped)
                    } else {
                        DataElement::empty(tag, vr)
                    }
                }
                Action::ShiftDate => {
                    let shifted: Option<Vec<String>> = old
                        .iter()
                        .map(|v| shift_value(vr, v, ctx.offset_days))
                        .collect();
                    match shifted {
                        Some(v) => strs_element(tag, vr, v),
                        // not a date discus can shift: nothing of it survives
                        None => DataElement::empty(tag, vr),
                    }
                }
                Action::CleanText => {
                    if is_text_vr(vr) && vr != VR::UI {
                        let cleaned = old.iter().map(|v| clean_text(v, &ctx.words)).collect();
                        strs_element(tag, vr, cleaned)
                    } else {
                        DataElement::empty(tag, vr)
                    }
                }
            };
            out.push(new);
        }
        InMemDicomObject::from_element_iter(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_removes_identifying_words_only() {
        let words = vec![
            "SMITH".to_string(),
            "JOHN".to_string(),
            "2024-03-01".to_string(),
        ];
        assert_eq!(
            clean_text("MRI L-spine John Smith 2024-03-01", &words),
            "MRI L-spine"
        );
        assert_eq!(clean_text("T2 SAG", &words), "T2 SAG");
    }

    #[test]
    fn date_values_shift_including_ranges_and_datetimes() {
        assert_eq!(
            shift_value(VR::DA, "20240301", -1).as_deref(),
            Some("20240229")
        );
        assert_eq!(
            shift_value(VR::DA, "20240301-", -1).as_deref(),
            Some("20240229-")
        );
        assert_eq!(
            shift_value(VR::DT, "20240301120000.5+0100", -1).as_deref(),
            Some("20240229120000.5+0100")
        );
        assert_eq!(shift_value(VR::DA, "garbage", -1), None);
    }
}
