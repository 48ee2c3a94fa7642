//! `deid verify`: scans every byte of every output file for any identifying value of any input file,
//! in several spellings and encodings, and names the element each hit lies in.
//!
//! The identifying set of an input is the value of every element (at any depth, and in the file
//! meta) that the profile, under the options the output records, removes, empties, replaces, maps
//! or date-shifts, plus every text value of a private element. Each value is searched as written,
//! upper- and lower-case, person names also by component and in "given family" order, dates also as
//! `YYYY-MM-DD`, `YYYY.MM.DD`, `MM/DD/YYYY` and `DD/MM/YYYY`; each spelling in UTF-8, Latin-1 (when
//! it differs) and UTF-16 (little and big endian).
//!
//! What is not searched, and why: times of day (TM: kept under the dates option, and short digit
//! strings that occur by chance); spellings shorter than 4 characters (a 3-letter name component
//! such as "Doe" is still found through the full name, "given family" and "family, given"
//! spellings, but not alone: 3-letter strings occur by chance in codes such as "SIEMENS_RIS");
//! all-digit values shorter than 6 digits (numbers such as series numbers occur everywhere); the
//! dummy values discus itself writes. Inside pixel data (binary samples) only spellings of 8 bytes or
//! more count, since shorter byte strings occur by chance in images. Under Retain UIDs, hits inside
//! UID (UI) elements are not counted (kept UIDs may embed dates; keeping them is what the option
//! means). An all-digit spelling found inside a longer run of digits (the 39-digit decimal of a
//! mapped 2.25 UID holds any 6-digit number by chance every few hundred UIDs) is not counted.

use crate::deid::{is_text_vr, strings, Deidentifier, TAG_DEID_METHOD_CODES, TAG_PIXEL_DATA};
use crate::keys::Key;
use crate::table::{Action, Options, Table};
use aho_corasick::{AhoCorasick, MatchKind};
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::header::Header;
use dicom_core::value::Value;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::mem::InMemElement;
use dicom_object::InMemDicomObject;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Dummy values discus writes; never counted as leaks.
const OWN_DUMMIES: &[&str] = &[
    "ANONYMIZED",
    "19000101",
    "19000101000000",
    "000000",
    "000Y",
    "YES",
    "REMOVED",
    "MODIFIED",
];

/// One identifying value found in an input.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdValue {
    /// The attribute it came from (innermost tag).
    pub tag: Tag,
    /// The attribute's value representation.
    pub vr: VR,
    /// The value, as text.
    pub value: String,
}

/// A spelling of an identifying value that the scan looks for.
#[derive(Debug, Clone)]
struct Pattern {
    bytes: Vec<u8>,
    source: Tag,
    spelling: String,
}

/// One hit: an identifying value of the input found in an output file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Hit {
    /// The output file, relative to OUT_DIR.
    pub file: PathBuf,
    /// Byte offset of the hit in the file.
    pub offset: usize,
    /// The element the hit lies in, as a path: `(0008,1140)[0]/(0008,1155)`; `(preamble)`,
    /// `(not DICOM)` or `(between elements)` otherwise.
    pub element: String,
    /// Which input attribute's value was found (never the value itself).
    pub source: String,
    /// The spelling that matched (e.g. "as written, UTF-8", "name component, upper-case, UTF-16LE").
    pub spelling: String,
}

/// The verification result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Input files read.
    pub inputs_read: usize,
    /// Input files that could not be read (skipped).
    pub inputs_unreadable: usize,
    /// Output files scanned.
    pub outputs_scanned: usize,
    /// Output files (DICOM by name or content) that do not parse: errors too.
    pub outputs_unreadable: Vec<(PathBuf, String)>,
    /// Spellings searched for.
    pub patterns: usize,
    /// Every identifying value found in an output.
    pub hits: Vec<Hit>,
    /// The profile options the outputs record (they decide what counts as identifying).
    pub options: Options,
}

impl VerifyReport {
    /// Whether no identifying value was found and every output parsed.
    pub fn clean(&self) -> bool {
        self.hits.is_empty() && self.outputs_unreadable.is_empty()
    }
}

/// Errors that stop a verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A folder or file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// No input file could be read (the input folder is named).
    #[error("{0}: no input file could be read, so there is nothing to verify against")]
    NoInputs(PathBuf),
}

/// The identifying values of one input object under `options` (the file meta included).
pub fn identifying_values(
    file: &dicom_object::DefaultDicomObject,
    options: &Options,
) -> Vec<IdValue> {
    let deid = Deidentifier::new(Key::from_bytes([0; 32]), *options);
    let mut out = Vec::new();
    let meta = file.meta();
    let mut meta_vals = vec![(
        Tag(0x0002, 0x0003),
        VR::UI,
        meta.media_storage_sop_instance_uid().to_string(),
    )];
    for (tag, v) in [
        (Tag(0x0002, 0x0016), meta.source_application_entity_title()),
        (Tag(0x0002, 0x0017), meta.sending_application_entity_title()),
        (
            Tag(0x0002, 0x0018),
            meta.receiving_application_entity_title(),
        ),
    ] {
        if let Some(v) = v {
            meta_vals.push((tag, VR::AE, v.to_string()));
        }
    }
    for (tag, vr, v) in meta_vals {
        if tag == Tag(0x0002, 0x0003) && options.retain_uids {
            continue;
        }
        let v = v.trim_matches(|c| c == ' ' || c == '\0').to_string();
        if !v.is_empty() {
            out.push(IdValue { tag, vr, value: v });
        }
    }
    collect(&deid, file, &mut out);
    out
}

fn collect(deid: &Deidentifier, obj: &InMemDicomObject, out: &mut Vec<IdValue>) {
    for e in obj.iter() {
        let tag = e.tag();
        if let Value::Sequence(s) = e.value() {
            for item in s.items() {
                collect(deid, item, out);
            }
            continue;
        }
        if !counts(deid, e) {
            continue;
        }
        for v in strings(e) {
            if !v.is_empty() {
                out.push(IdValue {
                    tag,
                    vr: if e.vr() == VR::UN { VR::LO } else { e.vr() },
                    value: v,
                });
            }
        }
    }
}

fn counts(deid: &Deidentifier, e: &InMemElement) -> bool {
    let tag = e.tag();
    if tag.0 % 2 == 1 {
        // private creators name vendors, not people; private values are identifying
        return tag.1 >= 0x1000 && (is_text_vr(e.vr()) || e.vr() == VR::UN);
    }
    if e.vr() == VR::TM || tag == TAG_DEID_METHOD_CODES {
        return false;
    }
    !matches!(deid.action(tag, e.vr()), Action::Keep | Action::CleanText)
}

fn tag_name(tag: Tag) -> String {
    let name = Table::get()
        .row(tag)
        .map(|r| r.name.clone())
        .or_else(|| {
            StandardDataDictionary
                .by_tag(tag)
                .map(|e| e.alias().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    format!("({:04X},{:04X}) {name}", tag.0, tag.1)
}

fn spellings(v: &IdValue) -> Vec<(String, String)> {
    let mut words: Vec<(String, &'static str)> = vec![(v.value.clone(), "as written")];
    if v.vr != VR::UI {
        words.push((v.value.to_uppercase(), "upper-case"));
        words.push((v.value.to_lowercase(), "lower-case"));
    }
    if v.vr == VR::PN {
        for group in v.value.split('=') {
            let comps: Vec<&str> = group
                .split('^')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            for c in &comps {
                words.push((c.to_string(), "name component"));
                words.push((c.to_uppercase(), "name component, upper-case"));
            }
            if comps.len() >= 2 {
                let given_family = format!("{} {}", comps[1], comps[0]);
                words.push((given_family.to_uppercase(), "given family, upper-case"));
                words.push((format!("{}, {}", comps[0], comps[1]), "family, given"));
                words.push((given_family, "given family"));
            }
        }
    }
    let date = match v.vr {
        VR::DA if v.value.len() == 8 => Some(v.value.as_str()),
        VR::DT => v.value.get(..8),
        _ => None,
    };
    if let Some(d) = date.filter(|d| d.bytes().all(|b| b.is_ascii_digit())) {
        let (y, m, dd) = (&d[..4], &d[4..6], &d[6..8]);
        words.push((d.to_string(), "date part"));
        words.push((format!("{y}-{m}-{dd}"), "date as YYYY-MM-DD"));
        words.push((format!("{y}.{m}.{dd}"), "date as YYYY.MM.DD"));
        words.push((format!("{m}/{dd}/{y}"), "date as MM/DD/YYYY"));
        words.push((format!("{dd}/{m}/{y}"), "date as DD/MM/YYYY"));
    }
    words.retain(|(w, _)| {
        let w = w.trim();
        w.chars().count() >= crate::deid::MIN_COPY_LEN
            && !(w.bytes().all(|b| b.is_ascii_digit()) && w.len() < 6)
            && !OWN_DUMMIES.iter().any(|d| d.eq_ignore_ascii_case(w))
    });
    words
        .into_iter()
        .map(|(w, how)| (w.trim().to_string(), how.to_string()))
        .collect()
}

fn encodings(word: &str) -> Vec<(Vec<u8>, &'static str)> {
    let mut out = vec![(word.as_bytes().to_vec(), "UTF-8")];
    if !word.is_ascii() && word.chars().all(|c| (c as u32) < 256) {
        out.push((word.chars().map(|c| c as u8).collect(), "Latin-1"));
    }
    let le: Vec<u8> = word.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    let be: Vec<u8> = word.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
    out.push((le, "UTF-16LE"));
    out.push((be, "UTF-16BE"));
    out
}

fn patterns(values: &[IdValue]) -> Vec<Pattern> {
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut out: Vec<Pattern> = Vec::new();
    for v in values {
        for (word, how) in spellings(v) {
            for (bytes, enc) in encodings(&word) {
                if seen.contains_key(&bytes) {
                    continue;
                }
                seen.insert(bytes.clone(), out.len());
                out.push(Pattern {
                    bytes,
                    source: v.tag,
                    spelling: format!("{how}, {enc}"),
                });
            }
        }
    }
    out
}

/// A byte range of an output file and the element path it belongs to.
#[derive(Debug, Clone)]
pub struct Span {
    /// Byte offset of the span's first byte.
    pub start: usize,
    /// Byte offset just past the span.
    pub end: usize,
    /// The element path, e.g. `(0008,1140)[0]/(0008,1155)`, or `(preamble)`.
    pub path: String,
    /// Whether the span lies in Pixel Data (7FE0,0010) (or a float/double pixel data element).
    pub pixel_data: bool,
    /// The element's value representation.
    pub vr: VR,
}

struct Walker<'a> {
    b: &'a [u8],
    explicit: bool,
    big: bool,
    spans: Vec<Span>,
}

impl Walker<'_> {
    fn u16(&self, at: usize, big: bool) -> Option<u16> {
        let s: [u8; 2] = self.b.get(at..at + 2)?.try_into().ok()?;
        Some(if big {
            u16::from_be_bytes(s)
        } else {
            u16::from_le_bytes(s)
        })
    }
    fn u32(&self, at: usize, big: bool) -> Option<u32> {
        let s: [u8; 4] = self.b.get(at..at + 4)?.try_into().ok()?;
        Some(if big {
            u32::from_be_bytes(s)
        } else {
            u32::from_le_bytes(s)
        })
    }

    /// Parses elements from `pos` until `end`, or until an item/sequence delimiter; returns the
    /// position after what it consumed (after the delimiter, if one ended it).
    fn dataset(
        &mut self,
        mut pos: usize,
        end: usize,
        prefix: &str,
        explicit: bool,
        big: bool,
        meta_only: bool,
    ) -> Option<usize> {
        while pos + 8 <= end {
            let group = self.u16(pos, big)?;
            let elem = self.u16(pos + 2, big)?;
            if meta_only && group != 0x0002 {
                return Some(pos);
            }
            if group == 0xFFFE && (elem == 0xE00D || elem == 0xE0DD) {
                return Some(pos + 8);
            }
            let tag = Tag(group, elem);
            let (vr, len, header) = if explicit {
                let vr_bytes = self.b.get(pos + 4..pos + 6)?;
                let vr = VR::from_binary([vr_bytes[0], vr_bytes[1]]).unwrap_or(VR::UN);
                let long = matches!(
                    vr,
                    VR::OB
                        | VR::OD
                        | VR::OF
                        | VR::OL
                        | VR::OV
                        | VR::OW
                        | VR::SQ
                        | VR::SV
                        | VR::UC
                        | VR::UR
                        | VR::UT
                        | VR::UN
                        | VR::UV
                );
                if long {
                    (vr, self.u32(pos + 8, big)?, 12)
                } else {
                    (vr, self.u16(pos + 6, big)? as u32, 8)
                }
            } else {
                let vr = match StandardDataDictionary.by_tag(tag).map(|e| e.vr()) {
                    Some(VirtualVr::Exact(v)) => v,
                    _ => VR::UN,
                };
                (vr, self.u32(pos + 4, big)?, 8)
            };
            let path = format!("{prefix}({group:04X},{elem:04X})");
            let value_start = pos + header;
            let undefined = len == 0xFFFF_FFFF;
            let is_sq = vr == VR::SQ || (undefined && tag != TAG_PIXEL_DATA);
            if is_sq {
                // items
                let seq_end = if undefined {
                    end
                } else {
                    value_start + len as usize
                };
                let mut p = value_start;
                let mut index = 0;
                while p + 8 <= seq_end {
                    let g = self.u16(p, big)?;
                    let e = self.u16(p + 2, big)?;
                    let ilen = self.u32(p + 4, big)?;
                    if g == 0xFFFE && e == 0xE0DD {
                        p += 8;
                        break;
                    }
                    if g != 0xFFFE || e != 0xE000 {
                        return None;
                    }
                    let item_prefix = format!("{path}[{index}]/");
                    p = if ilen == 0xFFFF_FFFF {
                        self.dataset(p + 8, seq_end, &item_prefix, explicit, big, false)?
                    } else {
                        let item_end = p + 8 + ilen as usize;
                        self.dataset(p + 8, item_end, &item_prefix, explicit, big, false)?;
                        item_end
                    };
                    index += 1;
                }
                pos = if undefined { p } else { seq_end };
                continue;
            }
            let value_end = if undefined {
                // encapsulated pixel data: fragments until the sequence delimiter
                let mut p = value_start;
                loop {
                    let g = self.u16(p, big)?;
                    let e = self.u16(p + 2, big)?;
                    let flen = self.u32(p + 4, big)? as usize;
                    p += 8;
                    if g == 0xFFFE && e == 0xE0DD {
                        break p;
                    }
                    p += flen;
                }
            } else {
                value_start + len as usize
            };
            if value_end > self.b.len() {
                return None;
            }
            self.spans.push(Span {
                start: pos,
                end: value_end,
                path,
                pixel_data: tag == TAG_PIXEL_DATA || (tag.0 == 0x7FE0 && tag.1 <= 0x0010),
                vr,
            });
            pos = value_end;
        }
        Some(pos)
    }
}

/// The byte spans of every primitive element of a DICOM file (preamble, meta and dataset), or
/// `None` when the bytes are not a DICOM file discus can walk (deflated data sets are not walked).
pub fn element_spans(bytes: &[u8]) -> Option<Vec<Span>> {
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        return None;
    }
    let mut w = Walker {
        b: bytes,
        explicit: true,
        big: false,
        spans: vec![Span {
            start: 0,
            end: 132,
            path: "(preamble)".into(),
            pixel_data: false,
            vr: VR::UN,
        }],
    };
    let after_meta = w.dataset(132, bytes.len(), "", true, false, true)?;
    let ts = w.spans.iter().find(|s| s.path == "(0002,0010)").map(|s| {
        String::from_utf8_lossy(&bytes[s.start + 8..s.end])
            .trim_matches(|c| c == '\0' || c == ' ')
            .to_string()
    })?;
    let (explicit, big) = match ts.as_str() {
        "1.2.840.10008.1.2" => (false, false),
        "1.2.840.10008.1.2.2" => (true, true),
        "1.2.840.10008.1.2.1.99" => return None,
        _ => (true, false),
    };
    w.explicit = explicit;
    w.big = big;
    w.dataset(after_meta, bytes.len(), "", explicit, big, false)?;
    Some(w.spans)
}

fn locate(spans: Option<&[Span]>, offset: usize, len: usize) -> (String, bool, VR) {
    let Some(spans) = spans else {
        return ("(not DICOM)".into(), false, VR::UN);
    };
    // spans are in file order and do not overlap
    let i = spans.partition_point(|s| s.start <= offset);
    if i > 0 {
        let s = &spans[i - 1];
        if offset < s.end {
            let mut path = s.path.clone();
            if offset + len > s.end {
                path.push_str(" (and after)");
            }
            return (path, s.pixel_data, s.vr);
        }
    }
    ("(between elements)".into(), false, VR::UN)
}

/// The options an output folder records: from its dataset card's de-identification, else from the
/// first output file's De-identification Method Code Sequence, else the basic profile alone.
pub fn recorded_options(out_files: &[PathBuf]) -> Options {
    for f in out_files {
        if let Ok(obj) = dicom_object::open_file(f) {
            if let Ok(Some(seq)) = obj.element_opt(TAG_DEID_METHOD_CODES) {
                if let Some(items) = seq.items() {
                    let codes: Vec<String> = items
                        .iter()
                        .filter_map(|i| i.element_opt(Tag(0x0008, 0x0100)).ok().flatten())
                        .filter_map(|e| e.to_str().ok().map(|s| s.to_string()))
                        .collect();
                    let mut o = Options::from_method_codes(codes.iter().map(|s| s.as_str()));
                    o.keep_safe_private = false;
                    return o;
                }
            }
        }
    }
    Options::default()
}

/// Scans every file under `out_dir` for the identifying values of every DICOM file under `in_dir`.
pub fn verify(out_dir: &Path, in_dir: &Path) -> Result<VerifyReport, VerifyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| VerifyError::Io { path, source }
    };
    let inputs = crate::run::list_files(in_dir).map_err(io(in_dir))?;
    let mut outputs = crate::run::list_files(out_dir).map_err(io(out_dir))?;
    // the resume markers are output files too: scan them
    let markers = out_dir.join(crate::run::MARKER_DIR);
    if markers.is_dir() {
        outputs.extend(crate::run::list_files(&markers).map_err(io(&markers))?);
    }
    let dicom_outputs: Vec<PathBuf> = outputs
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .cloned()
        .collect();
    let options = recorded_options(&dicom_outputs);

    let per_input: Vec<Option<Vec<IdValue>>> = inputs
        .par_iter()
        .map(|p| {
            let bytes = std::fs::read(p).ok()?;
            crate::deid::read_dicom(&bytes, p)
                .ok()
                .map(|o| identifying_values(&o, &options))
        })
        .collect();
    let mut report = VerifyReport {
        options,
        ..VerifyReport::default()
    };
    let mut values = Vec::new();
    for v in per_input {
        match v {
            Some(v) => {
                report.inputs_read += 1;
                values.extend(v);
            }
            None => report.inputs_unreadable += 1,
        }
    }
    if report.inputs_read == 0 {
        return Err(VerifyError::NoInputs(in_dir.to_path_buf()));
    }
    values.sort_by(|a, b| (a.tag, &a.value).cmp(&(b.tag, &b.value)));
    values.dedup_by(|a, b| a.value == b.value && a.vr == b.vr);
    let pats = patterns(&values);
    report.patterns = pats.len();
    let ac = AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .build(pats.iter().map(|p| &p.bytes))
        .expect("patterns build");

    type Scanned = Result<(Vec<Hit>, Option<(PathBuf, String)>), VerifyError>;
    let results: Vec<Scanned> = outputs
        .par_iter()
        .map(|path| {
            let bytes = std::fs::read(path).map_err(io(path))?;
            let rel = path.strip_prefix(out_dir).unwrap_or(path).to_path_buf();
            let looks_dicom = bytes.len() >= 132 && &bytes[128..132] == b"DICM";
            let spans = if looks_dicom {
                element_spans(&bytes)
            } else {
                None
            };
            let mut unreadable = None;
            if looks_dicom || path.extension().is_some_and(|e| e == "dcm") {
                if let Err(e) = dicom_object::OpenFileOptions::new()
                    .from_reader(bytes.get(128..).unwrap_or_default())
                {
                    unreadable = Some((rel.clone(), e.to_string()));
                } else if spans.is_none() {
                    unreadable =
                        Some((rel.clone(), "its element structure cannot be walked".into()));
                }
            }
            let mut hits = Vec::new();
            for m in ac.find_overlapping_iter(&bytes) {
                let p = &pats[m.pattern().as_usize()];
                let (element, in_pixels, vr) = locate(spans.as_deref(), m.start(), p.bytes.len());
                if (in_pixels && p.bytes.len() < 8) || (options.retain_uids && vr == VR::UI) {
                    continue;
                }
                // an all-digit value (a numeric id, a date) inside a longer run of digits, such as
                // the 39-digit decimal of a mapped 2.25 UID, is a chance occurrence
                let digit = |i: Option<&u8>| i.is_some_and(|b| b.is_ascii_digit());
                if p.bytes.iter().all(u8::is_ascii_digit)
                    && (digit(m.start().checked_sub(1).and_then(|i| bytes.get(i)))
                        || digit(bytes.get(m.end())))
                {
                    continue;
                }
                hits.push(Hit {
                    file: rel.clone(),
                    offset: m.start(),
                    element,
                    source: tag_name(p.source),
                    spelling: p.spelling.clone(),
                });
            }
            Ok((hits, unreadable))
        })
        .collect();
    for r in results {
        let (hits, unreadable) = r?;
        report.outputs_scanned += 1;
        report.hits.extend(hits);
        report.outputs_unreadable.extend(unreadable);
    }
    Ok(report)
}
