//! Opening files: layout detection (preamble, bare `DICM`, no meta group), dicom-object with a
//! lenient second try, and error messages without element values.

use super::{fast, header::trim_value, ts, DicomError};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::file::ReadPreamble;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// How the bytes of a file begin.
pub(super) enum Layout {
    /// 128-byte preamble, `DICM`, file meta group.
    Preamble,
    /// `DICM` at offset 0, then the file meta group.
    MagicOnly,
    /// A bare data set in the given transfer syntax (no file meta group).
    NoMeta(&'static str),
}

/// Looks at the first bytes of a file and decides how to read it.
pub(super) fn detect_layout(path: &Path, head: &[u8]) -> Result<Layout, DicomError> {
    if head.len() >= 132 && &head[128..132] == b"DICM" {
        return Ok(Layout::Preamble);
    }
    if head.len() >= 4 && &head[0..4] == b"DICM" {
        return Ok(Layout::MagicOnly);
    }
    if head.len() < 8 {
        return Err(DicomError::NotDicom {
            path: path.to_owned(),
            reason: format!("only {} bytes long", head.len()),
        });
    }
    // A bare data set: its first element is normally in group 0008 (or another low, even group).
    // Explicit VR shows two upper-case letters at bytes 4..6; big endian shows the group reversed.
    let group_le = u16::from_le_bytes([head[0], head[1]]);
    let group_be = u16::from_be_bytes([head[0], head[1]]);
    let plausible = |g: u16| (0x0002..=0x0100).contains(&g) && g % 2 == 0;
    let explicit = is_vr(&head[4..6]);
    if plausible(group_le) {
        return Ok(Layout::NoMeta(if explicit {
            ts::EXPLICIT_VR_LE
        } else {
            ts::IMPLICIT_VR_LE
        }));
    }
    if plausible(group_be) && explicit {
        return Ok(Layout::NoMeta(ts::EXPLICIT_VR_BE));
    }
    Err(DicomError::NotDicom {
        path: path.to_owned(),
        reason: "no DICM magic at offset 128 or 0, and the start is not a DICOM data element"
            .into(),
    })
}

pub(super) fn is_vr(b: &[u8]) -> bool {
    const VRS: [&[u8; 2]; 34] = [
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB",
        b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
        b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
    ];
    VRS.iter().any(|v| &v[..] == b)
}

/// A message for a dicom-rs error and its causes, without anything that could carry element values.
pub(super) fn chain_message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let mut msg = err.to_string();
        // `UnexpectedToken` prints the token, which may hold a value: keep only the kind.
        if msg.starts_with("Unexpected token") {
            msg = "unexpected token in data set".into();
        }
        if msg.len() > 300 {
            msg.truncate(300);
            msg.push('…');
        }
        if parts.last() != Some(&msg) {
            parts.push(msg);
        }
        cur = err.source();
    }
    parts.join(": ")
}

pub(super) fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Opens a DICOM file, reading up to (not including) `until` when given. Files that dicom-object
/// cannot parse get a second, lenient try (see [`open_lenient`]).
pub(super) fn open_object(
    path: &Path,
    until: Option<Tag>,
) -> Result<DefaultDicomObject, DicomError> {
    let bytes = std::fs::read(path).map_err(|source| DicomError::Io {
        path: path.to_owned(),
        source,
    })?;
    open_bytes(path, &bytes, until)
}

/// [`open_object`] for bytes in memory.
pub(super) fn open_bytes(
    path: &Path,
    bytes: &[u8],
    until: Option<Tag>,
) -> Result<DefaultDicomObject, DicomError> {
    let first = check_lengths(path, bytes, until).and_then(|()| open_reader(path, bytes, until));
    match first {
        Err(first @ DicomError::Parse { .. }) => open_lenient(path, bytes).map_err(|_| first),
        other => other,
    }
}

/// The second try for files dicom-object rejects, as pydicom reads them: a file meta group without
/// its group length element, and a data set whose VR encoding (implicit/explicit) contradicts the
/// transfer syntax in the meta group. Reads the whole data set.
pub(super) fn open_lenient(path: &Path, bytes: &[u8]) -> Result<DefaultDicomObject, DicomError> {
    let parse = |reason: String| DicomError::Parse {
        path: path.to_owned(),
        reason,
    };
    let mut off = match detect_layout(path, bytes)? {
        Layout::Preamble => 132,
        Layout::MagicOnly => 4,
        Layout::NoMeta(_) => return Err(parse("no file meta group".into())),
    };
    // File meta elements: group 0002, explicit VR little endian.
    let mut declared: Option<String> = None;
    while off + 8 <= bytes.len() && u16::from_le_bytes([bytes[off], bytes[off + 1]]) == 0x0002 {
        let element = u16::from_le_bytes([bytes[off + 2], bytes[off + 3]]);
        let vr = &bytes[off + 4..off + 6];
        let (len, header) = if !is_vr(vr) {
            // Implicit VR in the meta group (non-conformant but seen).
            let l = u32::from_le_bytes([
                bytes[off + 4],
                bytes[off + 5],
                bytes[off + 6],
                bytes[off + 7],
            ]);
            (l as usize, 8)
        } else if fast::long_length_vr(vr) {
            if off + 12 > bytes.len() {
                return Err(parse("file meta group ends inside an element".into()));
            }
            let l = u32::from_le_bytes([
                bytes[off + 8],
                bytes[off + 9],
                bytes[off + 10],
                bytes[off + 11],
            ]);
            (l as usize, 12)
        } else {
            (
                u16::from_le_bytes([bytes[off + 6], bytes[off + 7]]) as usize,
                8,
            )
        };
        let end = off
            .checked_add(header + len)
            .filter(|&e| e <= bytes.len() && len != u32::MAX as usize)
            .ok_or_else(|| parse("file meta group ends inside an element".into()))?;
        if element == 0x0010 {
            declared =
                Some(trim_value(&String::from_utf8_lossy(&bytes[off + header..end])).to_string());
        }
        off = end;
    }
    let declared = declared.filter(|s| !s.is_empty()).ok_or_else(|| {
        parse("the file meta group has no Transfer Syntax UID (0002,0010)".into())
    })?;
    let ts = TransferSyntaxRegistry
        .get(&declared)
        .ok_or_else(|| DicomError::Unsupported {
            path: path.to_owned(),
            reason: format!("unknown transfer syntax {declared}"),
        })?;
    if bytes.len() < off + 8 {
        return Err(parse("no data set after the file meta group".into()));
    }
    // Which encoding the data set really uses.
    let explicit = is_vr(&bytes[off + 4..off + 6]);
    let reading_uid =
        if declared == ts::EXPLICIT_VR_BE || ts.endianness() == dicom_encoding::Endianness::Big {
            ts::EXPLICIT_VR_BE
        } else if explicit {
            ts::EXPLICIT_VR_LE
        } else {
            ts::IMPLICIT_VR_LE
        };
    if matches!(
        ts.codec(),
        dicom_encoding::transfer_syntax::Codec::Dataset(_)
    ) {
        return Err(DicomError::Unsupported {
            path: path.to_owned(),
            reason: format!(
                "a non-conformant file meta group with the data set encoding {declared}"
            ),
        });
    }
    let reading_ts = TransferSyntaxRegistry
        .get(reading_uid)
        .expect("the registry knows the native transfer syntaxes");
    let body = &bytes[off..];
    check_dataset_lengths(path, body, reading_ts, None, bytes.len())?;
    let result = catch_unwind(AssertUnwindSafe(|| {
        InMemDicomObject::read_dataset_with_ts(body, reading_ts)
    }));
    let obj = match result {
        Ok(r) => r.map_err(|e| parse_error(path, &e))?,
        Err(p) => {
            return Err(parse(format!(
                "the DICOM parser failed: {}",
                panic_message(p)
            )))
        }
    };
    obj.with_meta(FileMetaTableBuilder::new().transfer_syntax(declared))
        .map_err(|e| {
            parse(format!(
                "cannot rebuild the file meta group: {}",
                chain_message(&e)
            ))
        })
}

/// The most a deflated data set can expand: 1032 bytes out per byte in (RFC 1951's longest match
/// for the fewest bits).
const DEFLATE_MAX_RATIO: u64 = 1032;

fn too_long(path: &Path, what: &str, tag: Tag, len: u32, have: u64) -> DicomError {
    DicomError::Parse {
        path: path.to_owned(),
        reason: format!(
            "{what} ({:04X},{:04X}) claims {len} bytes, more than the {have} the file can hold \
             (a corrupt length, or an encoding that contradicts the transfer syntax)",
            tag.0, tag.1
        ),
    }
}

/// Checks, before dicom-object reads `bytes`, that no length it will act on is longer than the
/// file: dicom-object allocates and zeroes a value's whole declared length before reading it, so a
/// 600-byte file could otherwise take gigabytes. The file meta group is walked with dicom-rs's own
/// element header decoder, the data set with dicom-rs's own token reader (`DataSetReader`), so the
/// lengths checked are exactly the ones dicom-object will use, at every depth (sequences, items,
/// pixel data fragments, undefined-length UN). Stops at Pixel Data when `until` is given. Anything
/// the readers fail on is left to dicom-object to report (it fails at the same place).
fn check_lengths(path: &Path, bytes: &[u8], until: Option<Tag>) -> Result<(), DicomError> {
    let Ok(layout) = detect_layout(path, bytes) else {
        return Ok(());
    };
    let (body, ts_uid, until) = match layout {
        // read_with_layout reads a bare data set whole (no `until`): check all of it
        Layout::NoMeta(uid) => (bytes, uid.to_string(), None),
        Layout::Preamble | Layout::MagicOnly => {
            let start = if matches!(layout, Layout::Preamble) {
                128
            } else {
                0
            };
            let meta_bytes = &bytes[start..];
            check_meta_lengths(path, meta_bytes)?;
            let mut src = meta_bytes;
            let meta = match catch_unwind(AssertUnwindSafe(|| {
                dicom_object::FileMetaTable::from_reader(&mut src)
            })) {
                Ok(Ok(m)) => m,
                _ => return Ok(()),
            };
            (src, trim_value(meta.transfer_syntax()).to_string(), until)
        }
    };
    match TransferSyntaxRegistry.get(&ts_uid) {
        Some(ts) => check_dataset_lengths(path, body, ts, until, bytes.len()),
        None => Ok(()),
    }
}

/// The file meta group part of [`check_lengths`]; `meta` starts at `DICM`. Follows dicom-object's
/// meta reader: the group length element, then elements until that many bytes are read.
fn check_meta_lengths(path: &Path, meta: &[u8]) -> Result<(), DicomError> {
    use dicom_core::header::{HasLength, Header};
    use dicom_encoding::decode::Decode;
    let decoder = dicom_encoding::decode::explicit_le::ExplicitVRLittleEndianDecoder::default();
    let Some(mut r) = meta.get(4..) else {
        return Ok(());
    };
    let Ok((group, _)) = decoder.decode_header(&mut r) else {
        return Ok(());
    };
    if group.tag() != Tag(0x0002, 0x0000) || group.length().get() != Some(4) || r.len() < 4 {
        return Ok(());
    }
    let group_length = u32::from_le_bytes([r[0], r[1], r[2], r[3]]) as u64;
    r = &r[4..];
    let mut read = 0u64;
    while read < group_length {
        let Ok((h, header_len)) = decoder.decode_header(&mut r) else {
            return Ok(());
        };
        let Some(len) = h.length().get() else {
            return Ok(());
        };
        if len as usize > r.len() {
            return Err(too_long(
                path,
                "file meta element",
                h.tag(),
                len,
                meta.len() as u64,
            ));
        }
        r = &r[len as usize..];
        read += header_len as u64 + len as u64;
    }
    Ok(())
}

/// The data set part of [`check_lengths`]: `body` is the data set, encoded as `ts` says; `total`
/// is the file size.
fn check_dataset_lengths(
    path: &Path,
    body: &[u8],
    ts: &dicom_encoding::TransferSyntax,
    until: Option<Tag>,
    total: usize,
) -> Result<(), DicomError> {
    use dicom_encoding::transfer_syntax::Codec;
    use dicom_parser::dataset::{read::DataSetReader, DataToken};
    let (source, limit): (Box<dyn Read + '_>, u64) = match ts.codec() {
        Codec::Dataset(Some(adapter)) => (
            adapter.adapt_reader(Box::new(body)),
            (total as u64).saturating_mul(DEFLATE_MAX_RATIO),
        ),
        Codec::Dataset(None) => return Ok(()),
        _ => (Box::new(body), total as u64),
    };
    let walk = catch_unwind(AssertUnwindSafe(|| -> Option<(Tag, u32)> {
        let reader = DataSetReader::new_with_ts(source, ts).ok()?;
        let mut depth = 0usize;
        for token in reader {
            match token.ok()? {
                DataToken::ElementHeader(h) => {
                    if depth == 0 && until.is_some_and(|u| h.tag >= u) {
                        return None;
                    }
                    if let Some(len) = h.len.get() {
                        if len as u64 > limit {
                            return Some((h.tag, len));
                        }
                    }
                }
                DataToken::SequenceStart { tag, .. } => {
                    if depth == 0 && until.is_some_and(|u| tag >= u) {
                        return None;
                    }
                    depth += 1;
                }
                DataToken::PixelSequenceStart => {
                    if depth == 0 && until.is_some_and(|u| tags::PIXEL_DATA >= u) {
                        return None;
                    }
                    depth += 1;
                }
                DataToken::SequenceEnd => depth = depth.saturating_sub(1),
                DataToken::ItemStart { len } => {
                    if let Some(len) = len.get() {
                        if len as u64 > limit {
                            return Some((Tag(0xFFFE, 0xE000), len));
                        }
                    }
                }
                _ => {}
            }
        }
        None
    }));
    match walk {
        Ok(Some((tag, len))) => Err(too_long(path, "element", tag, len, limit)),
        // Walked cleanly, or stopped where dicom-object will stop (or fail, or panic) too.
        _ => Ok(()),
    }
}

pub(super) fn open_reader<R: Read>(
    path: &Path,
    mut reader: R,
    until: Option<Tag>,
) -> Result<DefaultDicomObject, DicomError> {
    let mut head = Vec::with_capacity(132);
    (&mut reader)
        .take(132)
        .read_to_end(&mut head)
        .map_err(|source| DicomError::Io {
            path: path.to_owned(),
            source,
        })?;
    let layout = detect_layout(path, &head)?;
    read_with_layout(
        path,
        std::io::Cursor::new(head).chain(reader),
        layout,
        until,
    )
}

pub(super) fn read_with_layout<R: Read>(
    path: &Path,
    reader: R,
    layout: Layout,
    until: Option<Tag>,
) -> Result<DefaultDicomObject, DicomError> {
    let result = catch_unwind(AssertUnwindSafe(|| match layout {
        Layout::Preamble | Layout::MagicOnly => {
            let mut opts = OpenFileOptions::new().read_preamble(if let Layout::Preamble = layout {
                ReadPreamble::Always
            } else {
                ReadPreamble::Never
            });
            if let Some(tag) = until {
                opts = opts.read_until(tag);
            }
            opts.from_reader(reader).map_err(|e| parse_error(path, &e))
        }
        Layout::NoMeta(uid) => {
            let ts = TransferSyntaxRegistry
                .get(uid)
                .expect("the registry knows the native transfer syntaxes");
            let obj = InMemDicomObject::read_dataset_with_ts(reader, ts)
                .map_err(|e| parse_error(path, &e))?;
            obj.with_meta(FileMetaTableBuilder::new().transfer_syntax(uid))
                .map_err(|e| DicomError::Parse {
                    path: path.to_owned(),
                    reason: format!(
                        "file has no meta group and one could not be made: {}",
                        chain_message(&e)
                    ),
                })
        }
    }));
    match result {
        Ok(r) => r,
        Err(p) => Err(DicomError::Parse {
            path: path.to_owned(),
            reason: format!("the DICOM parser failed: {}", panic_message(p)),
        }),
    }
}

pub(super) fn parse_error(path: &Path, e: &dicom_object::ReadError) -> DicomError {
    DicomError::Parse {
        path: path.to_owned(),
        reason: chain_message(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_detection() {
        let p = Path::new("x.dcm");
        let mut pre = vec![0u8; 132];
        pre[128..132].copy_from_slice(b"DICM");
        assert!(matches!(detect_layout(p, &pre), Ok(Layout::Preamble)));
        // (0008,0005) CS, explicit little endian
        let explicit = [0x08, 0x00, 0x05, 0x00, b'C', b'S', 0x0a, 0x00];
        assert!(matches!(
            detect_layout(p, &explicit),
            Ok(Layout::NoMeta(ts::EXPLICIT_VR_LE))
        ));
        let implicit = [0x08, 0x00, 0x05, 0x00, 0x0a, 0x00, 0x00, 0x00];
        assert!(matches!(
            detect_layout(p, &implicit),
            Ok(Layout::NoMeta(ts::IMPLICIT_VR_LE))
        ));
        let big = [0x00, 0x08, 0x00, 0x05, b'C', b'S', 0x00, 0x0a];
        assert!(matches!(
            detect_layout(p, &big),
            Ok(Layout::NoMeta(ts::EXPLICIT_VR_BE))
        ));
        let text = b"hello, this is not a DICOM file at all";
        let e = detect_layout(p, text).err().unwrap();
        assert!(e.to_string().contains("x.dcm"), "{e}");
    }
}
