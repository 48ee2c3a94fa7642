//! The fast header scanner: reads the first kilobytes of a file and walks its top-level elements,
//! skipping (not decoding) everything but the header fields discus needs, and stops at the first
//! element past (0028,1053). Anything unusual (deflate, truncation, encodings that contradict the
//! meta group, malformed sequences) makes it give up with `None`, and dicom-object reads the file.

use super::header::{build_header, parse_numbers, trim_value, Fields};
use super::open::{detect_layout, is_vr, Layout};
use super::{ts, DicomError};
use crate::header::InstanceHeader;
use dicom_core::Tag;
use std::io::Read;
use std::path::Path;

/// The last tag discus reads: Rescale Slope (0028,1053).
const LAST: u32 = 0x0028_1053;
/// Tags whose value discus reads (sorted).
const WANTED: [u32; 37] = [
    0x0008_0008,
    0x0008_0016,
    0x0008_0018,
    0x0008_0060,
    0x0008_0070,
    0x0008_0080,
    0x0008_103E,
    0x0008_1090,
    0x0018_0020,
    0x0018_0050,
    0x0018_0080,
    0x0018_0081,
    0x0018_0082,
    0x0018_0087,
    0x0018_0088,
    0x0020_000D,
    0x0020_000E,
    0x0020_0011,
    0x0020_0013,
    0x0020_0032,
    0x0020_0037,
    0x0020_0052,
    0x0028_0002,
    0x0028_0004,
    0x0028_0008,
    0x0028_0010,
    0x0028_0011,
    0x0028_0030,
    0x0028_0100,
    0x0028_0101,
    0x0028_0102,
    0x0028_0103,
    0x0028_0301,
    0x0028_1050,
    0x0028_1051,
    0x0028_1052,
    0x0028_1053,
];
/// The wanted tags whose dictionary VR is US (binary in implicit VR).
const US_TAGS: [u32; 8] = [
    0x0028_0002,
    0x0028_0010,
    0x0028_0011,
    0x0028_0100,
    0x0028_0101,
    0x0028_0102,
    0x0028_0103,
    0x0028_0301,
];

enum Stop {
    /// The buffer ends before the element does: read more of the file.
    More,
    /// Not something the scanner handles: let dicom-object read it.
    GiveUp,
}

enum Val {
    Text(String),
    Nums(Vec<f64>),
}

struct Found(Vec<(u32, Val)>);

impl Found {
    fn get(&self, tag: Tag) -> Option<&Val> {
        let t = ((tag.0 as u32) << 16) | tag.1 as u32;
        self.0.iter().find(|(k, _)| *k == t).map(|(_, v)| v)
    }
}

impl Fields for Found {
    fn text(&self, tag: Tag) -> Option<String> {
        match self.get(tag)? {
            Val::Text(s) => {
                let joined = s.split('\\').map(trim_value).collect::<Vec<_>>().join("\\");
                (!joined.is_empty()).then_some(joined)
            }
            Val::Nums(v) => {
                let joined = v
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("\\");
                (!joined.is_empty()).then_some(joined)
            }
        }
    }
    fn numbers(&self, tag: Tag) -> Option<Vec<f64>> {
        let v = match self.get(tag)? {
            Val::Text(s) => parse_numbers(s.split('\\'))?,
            Val::Nums(v) => v.clone(),
        };
        (!v.is_empty()).then_some(v)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Enc {
    ExplicitLe,
    ImplicitLe,
    ExplicitBe,
}

struct Cursor<'a> {
    buf: &'a [u8],
    big: bool,
}

impl Cursor<'_> {
    fn u16(&self, at: usize) -> Result<u16, Stop> {
        let b = self.buf.get(at..at + 2).ok_or(Stop::More)?;
        Ok(if self.big {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        })
    }
    fn u32(&self, at: usize) -> Result<u32, Stop> {
        let b = self.buf.get(at..at + 4).ok_or(Stop::More)?;
        Ok(if self.big {
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        } else {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        })
    }
    fn tag(&self, at: usize) -> Result<u32, Stop> {
        Ok(((self.u16(at)? as u32) << 16) | self.u16(at + 2)? as u32)
    }
}

/// VRs whose explicit-VR encoding has a 4-byte length after two reserved bytes.
pub(super) fn long_length_vr(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"OB"
            | b"OW"
            | b"OF"
            | b"OD"
            | b"OL"
            | b"OV"
            | b"SQ"
            | b"UT"
            | b"UN"
            | b"UC"
            | b"UR"
            | b"SV"
            | b"UV"
    )
}

/// One element header at `at`: (tag, VR if explicit, value length, header size).
fn element(c: &Cursor, at: usize, enc: Enc) -> Result<(u32, [u8; 2], u32, usize), Stop> {
    let tag = c.tag(at)?;
    if tag >> 16 == 0xFFFE || enc == Enc::ImplicitLe {
        return Ok((tag, *b"  ", c.u32(at + 4)?, 8));
    }
    let vr = c.buf.get(at + 4..at + 6).ok_or(Stop::More)?;
    let vr = [vr[0], vr[1]];
    // An unknown VR is read as UN (4-byte length), as dicom-rs does.
    if long_length_vr(&vr) || !is_vr(&vr) {
        Ok((tag, vr, c.u32(at + 8)?, 12))
    } else {
        Ok((tag, vr, c.u16(at + 6)? as u32, 8))
    }
}

/// Skips the value of an undefined-length element starting at `at` (just after its header);
/// returns the position after its sequence delimiter.
fn skip_sequence(c: &Cursor, mut at: usize, enc: Enc, depth: u32) -> Result<usize, Stop> {
    if depth > 32 {
        return Err(Stop::GiveUp);
    }
    loop {
        let tag = c.tag(at)?;
        let len = c.u32(at + 4)?;
        match tag {
            0xFFFE_E0DD => return Ok(at + 8),
            0xFFFE_E000 if len == u32::MAX => {
                at += 8;
                loop {
                    let (t, vr, l, h) = element(c, at, enc)?;
                    if t == 0xFFFE_E00D {
                        at += 8;
                        break;
                    }
                    at += h;
                    if l == u32::MAX {
                        // Explicit UN of undefined length holds implicit VR little endian.
                        let inner = if &vr == b"UN" { Enc::ImplicitLe } else { enc };
                        at = skip_sequence(c, at, inner, depth + 1)?;
                    } else {
                        at += l as usize;
                    }
                }
            }
            0xFFFE_E000 => at += 8 + len as usize,
            _ => return Err(Stop::GiveUp),
        }
    }
}

fn decode_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        // Not UTF-8: the single-byte Latin-1 repertoire most scanners use.
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

fn value(c: &Cursor, tag: u32, vr: [u8; 2], bytes: &[u8], enc: Enc) -> Val {
    let binary: Option<&[u8; 2]> = match &vr {
        b"US" | b"SS" | b"UL" | b"SL" | b"FL" | b"FD" => Some(&vr),
        _ if enc == Enc::ImplicitLe && US_TAGS.contains(&tag) => Some(b"US"),
        _ => None,
    };
    let Some(kind) = binary else {
        return Val::Text(decode_text(bytes));
    };
    let w = match kind {
        b"US" | b"SS" => 2,
        b"FD" => 8,
        _ => 4,
    };
    let nums = bytes
        .chunks_exact(w)
        .map(|b| {
            let mut a = [0u8; 8];
            a[..w].copy_from_slice(b);
            if c.big {
                a[..w].reverse();
            }
            match kind {
                b"US" => u16::from_le_bytes([a[0], a[1]]) as f64,
                b"SS" => i16::from_le_bytes([a[0], a[1]]) as f64,
                b"UL" => u32::from_le_bytes([a[0], a[1], a[2], a[3]]) as f64,
                b"SL" => i32::from_le_bytes([a[0], a[1], a[2], a[3]]) as f64,
                b"FL" => f32::from_le_bytes([a[0], a[1], a[2], a[3]]) as f64,
                _ => f64::from_le_bytes(a),
            }
        })
        .collect();
    Val::Nums(nums)
}

/// Scans `buf` (the file's first bytes; `eof` when it is the whole file).
/// Scans `buf`; with `check`, walks every top-level element up to encapsulated Pixel Data
/// (verifying lengths only) instead of stopping after (0028,1053).
fn scan(path: &Path, buf: &[u8], eof: bool, check: bool) -> Result<InstanceHeader, Stop> {
    scan_with(path, buf, eof, check, None)
}

/// [`scan`]; with `pixels`, also walks every top-level element (as `check` does) while reading the
/// header fields, and gives the byte range of native (defined-length) little-endian Pixel Data
/// there (`None` when the file has none; encapsulated or big endian data gives up).
fn scan_with(
    path: &Path,
    buf: &[u8],
    eof: bool,
    check: bool,
    mut pixels: Option<&mut Option<std::ops::Range<usize>>>,
) -> Result<InstanceHeader, Stop> {
    let mut collect = !check;
    let check = check || pixels.is_some();
    let layout = match detect_layout(path, buf) {
        Ok(l) => l,
        Err(_) if !eof && buf.len() < 132 => return Err(Stop::More),
        Err(_) => return Err(Stop::GiveUp),
    };
    let le = Cursor { buf, big: false };
    let (mut at, uid) = match layout {
        Layout::NoMeta(uid) => (0usize, uid.to_string()),
        Layout::Preamble | Layout::MagicOnly => {
            let mut at = if matches!(layout, Layout::Preamble) {
                132
            } else {
                4
            };
            let mut uid = None;
            while le.u16(at)? == 0x0002 {
                let (tag, _, len, h) = element(&le, at, Enc::ExplicitLe)?;
                if len == u32::MAX {
                    return Err(Stop::GiveUp);
                }
                let end = at + h + len as usize;
                let bytes = buf.get(at + h..end).ok_or(Stop::More)?;
                if tag == 0x0002_0010 {
                    uid = Some(trim_value(&decode_text(bytes)).to_string());
                }
                // dicom-object reads the whole group by its length: it must fit too.
                if tag == 0x0002_0000 && bytes.len() == 4 {
                    let group = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                    if end + group as usize > buf.len() {
                        return Err(Stop::More);
                    }
                }
                at = end;
            }
            (at, uid.ok_or(Stop::GiveUp)?)
        }
    };
    let enc = match uid.as_str() {
        ts::IMPLICIT_VR_LE => Enc::ImplicitLe,
        ts::EXPLICIT_VR_BE => Enc::ExplicitBe,
        // Deflated data sets are left to dicom-object.
        "1.2.840.10008.1.2.1.99" | "1.2.840.10008.1.2.4.95" | "1.2.840.10008.1.2.4.204" => {
            return Err(Stop::GiveUp)
        }
        _ => Enc::ExplicitLe,
    };
    // The VR encoding the data set really uses (as pydicom and `open_lenient` detect it).
    let enc = match (enc, buf.get(at + 4..at + 6)) {
        (Enc::ExplicitLe, Some(vr)) if !is_vr(vr) => Enc::ImplicitLe,
        (Enc::ImplicitLe, Some(vr)) if is_vr(vr) => Enc::ExplicitLe,
        (e, Some(_)) => e,
        (e, None) if eof => e,
        (_, None) => return Err(Stop::More),
    };
    let c = Cursor {
        buf,
        big: enc == Enc::ExplicitBe,
    };
    let mut found = Found(Vec::with_capacity(WANTED.len()));
    loop {
        if at == buf.len() && eof {
            break; // a data set without pixel data ends with the file
        }
        let tag = c.tag(at)?;
        if tag > LAST && !check {
            break;
        }
        // The header is what the scanner reads up to the first element past (0028,1053).
        collect &= tag <= LAST;
        let (tag, vr, len, h) = element(&c, at, enc)?;
        if check && tag == 0x7FE0_0010 && len == u32::MAX {
            if pixels.is_some() {
                return Err(Stop::GiveUp);
            }
            break; // encapsulated pixel data: the codec checks its fragments
        }
        if tag == 0x7FE0_0010 {
            if let Some(out) = pixels.as_deref_mut() {
                if c.big || !(enc == Enc::ImplicitLe || &vr == b"OW" || &vr == b"OB") {
                    return Err(Stop::GiveUp);
                }
                let start = at + h;
                let end = start + len as usize;
                if end > buf.len() {
                    return Err(Stop::More);
                }
                *out = Some(start..end);
            }
        }
        if tag >> 16 == 0xFFFE {
            return Err(Stop::GiveUp);
        }
        at += h;
        if len == u32::MAX {
            let inner = if &vr == b"UN" { Enc::ImplicitLe } else { enc };
            at = skip_sequence(&c, at, inner, 0)?;
            continue;
        }
        let end = at + len as usize;
        if collect && WANTED.binary_search(&tag).is_ok() {
            let bytes = buf.get(at..end).ok_or(Stop::More)?;
            found.0.push((tag, value(&c, tag, vr, bytes, enc)));
        } else if end > buf.len() {
            return Err(Stop::More);
        }
        at = end;
    }
    Ok(build_header(&uid, &found))
}

fn truncated(path: &Path) -> DicomError {
    DicomError::Parse {
        path: path.to_owned(),
        reason: "the file ends inside a data element (truncated, or a corrupt length)".into(),
    }
}

/// Checks that every top-level element of a whole file in memory fits in it, so that a corrupt
/// length is reported at once (dicom-object would first allocate and zero that many bytes).
pub(super) fn check(path: &Path, bytes: &[u8]) -> Result<(), DicomError> {
    match scan(path, bytes, true, true) {
        Err(Stop::More) => Err(truncated(path)),
        _ => Ok(()),
    }
}

/// The header of a whole file in memory whose every top-level element fits in it, and the byte
/// range of its native little-endian Pixel Data (`None` when it has none); `None` for anything
/// the scanner leaves to dicom-object (encapsulated, big endian or deflated data, truncation).
pub(super) fn scan_native(
    path: &Path,
    bytes: &[u8],
) -> Option<(InstanceHeader, Option<std::ops::Range<usize>>)> {
    let mut range = None;
    let h = scan_with(path, bytes, true, false, Some(&mut range)).ok()?;
    Some((h, range))
}

/// The header of the file at `path`; `None` to let dicom-object read it.
/// The header of a whole file in memory; `None` to let dicom-object read it.
pub(super) fn scan_complete(path: &Path, bytes: &[u8]) -> Option<InstanceHeader> {
    scan(path, bytes, true, false).ok()
}

/// The header of a whole file in memory; `None` to let dicom-object read it.
pub(super) fn read_header_bytes(
    path: &Path,
    bytes: &[u8],
) -> Option<Result<InstanceHeader, DicomError>> {
    match scan(path, bytes, true, false) {
        Ok(h) => Some(Ok(h)),
        Err(Stop::More) => Some(Err(truncated(path))),
        Err(Stop::GiveUp) => None,
    }
}

/// The header of the file at `path`; `None` to let dicom-object read it.
pub(super) fn read_header(path: &Path) -> Option<Result<InstanceHeader, DicomError>> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut buf = Vec::new();
    let mut want = 16 * 1024;
    loop {
        let have = buf.len();
        (&mut file)
            .take((want - have) as u64)
            .read_to_end(&mut buf)
            .ok()?;
        let eof = buf.len() < want;
        match scan(path, &buf, eof, false) {
            Ok(h) => return Some(Ok(h)),
            Err(Stop::More) if eof => return Some(Err(truncated(path))),
            // Headers are kilobytes; past 64 MiB let dicom-object stream the file instead.
            Err(Stop::More) if want < 64 << 20 => want *= 4,
            Err(_) => return None,
        }
    }
}
