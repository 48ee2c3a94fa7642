//! Pixel decoding: image attributes, native pixel data, the codecs, and typed stored values.

use super::header::{int_of, text_of, trim_value};
use super::open::{chain_message, open_bytes, panic_message};
use super::rle::rle_decode;
use super::{fast, jpeg12, jpegls, ts, DicomError, PixelValues, StoredPixels};
use dicom_core::value::{PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Decodes the stored pixel values of the DICOM file at `path` (all frames).
///
/// Native (uncompressed, deflated, big endian, implicit VR) pixel data is unpacked here; RLE,
/// JPEG-LS and 12-bit JPEG extended by this module's own decoders; JPEG baseline/lossless (and 8-bit
/// extended) and JPEG 2000 go through dicom-pixeldata's codecs. Values are
/// typed from Bits Allocated (1 and 8 -> 8-bit, 16, 32) and Pixel Representation, then masked or
/// sign-extended to Bits Stored. Errors name the file and the cause; codec panics are caught.
pub fn decode_pixels(path: &Path) -> Result<StoredPixels, DicomError> {
    let bytes = std::fs::read(path).map_err(|source| DicomError::Io {
        path: path.to_owned(),
        source,
    })?;
    decode_pixels_bytes(&bytes, path)
}

/// [`decode_pixels`] for a file already in memory; `path` is only used in error messages.
pub fn decode_pixels_bytes(bytes: &[u8], path: &Path) -> Result<StoredPixels, DicomError> {
    fast::check(path, bytes)?;
    let obj = open_bytes(path, bytes, None)?;
    decode_object(path, &obj)
}

pub(super) struct ImageAttrs {
    pub(super) rows: u32,
    pub(super) columns: u32,
    pub(super) frames: u32,
    pub(super) samples: u16,
    pub(super) bits_allocated: u16,
    pub(super) bits_stored: u16,
    pub(super) pixel_representation: u16,
    pub(super) planar_configuration: u16,
    pub(super) photometric: String,
}

pub(super) fn image_attrs(path: &Path, o: &InMemDicomObject) -> Result<ImageAttrs, DicomError> {
    let required = |tag, name: &'static str| -> Result<i64, DicomError> {
        match o.get(tag) {
            None => Err(DicomError::MissingAttribute {
                path: path.to_owned(),
                attribute: name,
            }),
            Some(_) => int_of(o, tag).ok_or_else(|| DicomError::InvalidAttribute {
                path: path.to_owned(),
                attribute: name,
                reason: "not an integer".into(),
            }),
        }
    };
    let in_range = |v: i64, lo: i64, hi: i64, name: &'static str| -> Result<i64, DicomError> {
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(DicomError::InvalidAttribute {
                path: path.to_owned(),
                attribute: name,
                reason: format!("{v} is outside {lo}..={hi}"),
            })
        }
    };
    let rows = in_range(required(tags::ROWS, "Rows")?, 1, 65535, "Rows")? as u32;
    let columns = in_range(required(tags::COLUMNS, "Columns")?, 1, 65535, "Columns")? as u32;
    let bits_allocated = required(tags::BITS_ALLOCATED, "BitsAllocated")?;
    if ![1, 8, 16, 32].contains(&bits_allocated) {
        return Err(DicomError::Unsupported {
            path: path.to_owned(),
            reason: format!("BitsAllocated {bits_allocated} (only 1, 8, 16 and 32 are decoded)"),
        });
    }
    let bits_stored = match o.get(tags::BITS_STORED) {
        Some(_) => required(tags::BITS_STORED, "BitsStored")?,
        None => bits_allocated,
    };
    let bits_stored = in_range(bits_stored, 1, bits_allocated, "BitsStored")? as u16;
    let pixel_representation = match o.get(tags::PIXEL_REPRESENTATION) {
        Some(_) => in_range(
            required(tags::PIXEL_REPRESENTATION, "PixelRepresentation")?,
            0,
            1,
            "PixelRepresentation",
        )? as u16,
        None => 0,
    };
    let samples = match o.get(tags::SAMPLES_PER_PIXEL) {
        Some(_) => in_range(
            required(tags::SAMPLES_PER_PIXEL, "SamplesPerPixel")?,
            1,
            4,
            "SamplesPerPixel",
        )? as u16,
        None => 1,
    };
    let frames = match o.get(tags::NUMBER_OF_FRAMES) {
        Some(_) => in_range(
            required(tags::NUMBER_OF_FRAMES, "NumberOfFrames")?,
            1,
            u32::MAX as i64,
            "NumberOfFrames",
        )? as u32,
        None => 1,
    };
    let planar_configuration = int_of(o, tags::PLANAR_CONFIGURATION).unwrap_or(0) as u16;
    let photometric = text_of(o, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    Ok(ImageAttrs {
        rows,
        columns,
        frames,
        samples,
        bits_allocated: bits_allocated as u16,
        bits_stored,
        pixel_representation,
        planar_configuration,
        photometric,
    })
}

pub(super) fn decode_object(
    path: &Path,
    obj: &DefaultDicomObject,
) -> Result<StoredPixels, DicomError> {
    let o: &InMemDicomObject = obj;
    let element = o
        .get(tags::PIXEL_DATA)
        .ok_or_else(|| DicomError::MissingAttribute {
            path: path.to_owned(),
            attribute: "PixelData (7FE0,0010)",
        })?;
    let a = image_attrs(path, o)?;
    let transfer_syntax = trim_value(obj.meta().transfer_syntax()).to_string();
    let bytes_per_sample = (a.bits_allocated as usize).div_ceil(8);
    let pixels_per_frame = a.rows as usize * a.columns as usize;
    // frames x rows x columns x samples x bytes must be addressable (NumberOfFrames can say 2^32)
    let samples_total = (a.frames as usize)
        .checked_mul(pixels_per_frame)
        .and_then(|n| n.checked_mul(a.samples as usize))
        .filter(|n| n.checked_mul(bytes_per_sample).is_some())
        .ok_or_else(|| DicomError::InvalidAttribute {
            path: path.to_owned(),
            attribute: "NumberOfFrames",
            reason: format!(
                "{} frame(s) of {}x{}x{} samples of {} bits is more than memory can address",
                a.frames, a.rows, a.columns, a.samples, a.bits_allocated
            ),
        })?;
    let mut photometric = a.photometric.clone();

    let le_bytes: Vec<u8> = match element.value() {
        Value::PixelSequence(seq) if transfer_syntax == ts::RLE_LOSSLESS => {
            rle_decode(path, &a, seq.offset_table(), seq.fragments())?
        }
        Value::PixelSequence(seq) if ts::is_jpeg_ls(&transfer_syntax) => jpegls::decode_frames(
            path,
            &transfer_syntax,
            &a,
            seq.offset_table(),
            seq.fragments(),
        )?,
        Value::PixelSequence(seq)
            if seq
                .fragments()
                .iter()
                .find(|f| !f.is_empty())
                .is_some_and(|f| jpeg12::is_12_bit_sequential(f)) =>
        {
            jpeg12::decode_frames(
                path,
                &transfer_syntax,
                &a,
                seq.offset_table(),
                seq.fragments(),
            )?
        }
        Value::PixelSequence(_) => {
            let decoded = catch_unwind(AssertUnwindSafe(|| obj.decode_pixel_data()));
            let decoded = match decoded {
                Ok(Ok(d)) => d,
                Ok(Err(e)) => {
                    let reason = chain_message(&e);
                    let known = TransferSyntaxRegistry.get(&transfer_syntax);
                    return Err(match known {
                        Some(t) if !t.can_decode_all() => DicomError::Unsupported {
                            path: path.to_owned(),
                            reason: format!(
                                "pixel data in transfer syntax {} ({}) cannot be decoded",
                                transfer_syntax,
                                t.name()
                            ),
                        },
                        None => DicomError::Unsupported {
                            path: path.to_owned(),
                            reason: format!("unknown transfer syntax {transfer_syntax}"),
                        },
                        _ => DicomError::Decode {
                            path: path.to_owned(),
                            transfer_syntax,
                            reason,
                        },
                    });
                }
                Err(p) => {
                    return Err(DicomError::Decode {
                        path: path.to_owned(),
                        transfer_syntax,
                        reason: format!("the codec failed: {}", panic_message(p)),
                    })
                }
            };
            if a.samples > 1 {
                photometric = decoded.photometric_interpretation().as_str().to_string();
            }
            let data = decoded.into_data();
            let want = samples_total * bytes_per_sample;
            if data.len() < want {
                return Err(DicomError::Decode {
                    path: path.to_owned(),
                    transfer_syntax,
                    reason: format!(
                        "the codec produced {} bytes, {} expected for {} frame(s) of {}x{}x{} at {} bits",
                        data.len(),
                        want,
                        a.frames,
                        a.rows,
                        a.columns,
                        a.samples,
                        a.bits_allocated
                    ),
                });
            }
            let mut data = data;
            data.truncate(want);
            data
        }
        Value::Primitive(p) => native_bytes(path, &a, p, &transfer_syntax, &mut photometric)?,
        Value::Sequence(_) => {
            return Err(DicomError::InvalidAttribute {
                path: path.to_owned(),
                attribute: "PixelData",
                reason: "is a sequence".into(),
            })
        }
    };

    let values = typed_values(&a, &le_bytes);
    Ok(StoredPixels {
        frames: a.frames,
        rows: a.rows,
        columns: a.columns,
        samples_per_pixel: a.samples,
        bits_allocated: a.bits_allocated,
        bits_stored: a.bits_stored,
        pixel_representation: a.pixel_representation,
        photometric_interpretation: photometric,
        values,
    })
}

/// Native pixel data as little-endian sample bytes, interleaved, exactly `samples_total` samples.
pub(super) fn native_bytes(
    path: &Path,
    a: &ImageAttrs,
    p: &PrimitiveValue,
    transfer_syntax: &str,
    photometric: &mut String,
) -> Result<Vec<u8>, DicomError> {
    let bps = (a.bits_allocated as usize).div_ceil(8);
    let ppf = a.rows as usize * a.columns as usize;
    let frames = a.frames as usize;
    let spp = a.samples as usize;
    // dicom-object holds OW/OL values as numbers, OB as bytes in file order. Rebuild the bytes in
    // file order, then make each sample little endian.
    // Exception: 8-bit samples in big endian OW words come two per word, the first in the low byte
    // (pydicom reads SC_rgb_small_odd_big_endian.dcm so; dcmconv wrote it so).
    let big = transfer_syntax == ts::EXPLICIT_VR_BE && bps > 1;
    macro_rules! file_order {
        ($v:expr) => {
            if big {
                $v.iter().flat_map(|x| x.to_be_bytes()).collect()
            } else {
                $v.iter().flat_map(|x| x.to_le_bytes()).collect()
            }
        };
    }
    let mut raw: Vec<u8> = match p {
        PrimitiveValue::U8(b) => b.to_vec(),
        PrimitiveValue::U16(v) => file_order!(v),
        PrimitiveValue::I16(v) => file_order!(v),
        PrimitiveValue::U32(v) => file_order!(v),
        PrimitiveValue::I32(v) => file_order!(v),
        PrimitiveValue::Empty => Vec::new(),
        _ => {
            return Err(DicomError::InvalidAttribute {
                path: path.to_owned(),
                attribute: "PixelData",
                reason: "unexpected value type".into(),
            })
        }
    };
    if big {
        for chunk in raw.chunks_exact_mut(bps) {
            chunk.reverse();
        }
    }

    if a.bits_allocated == 1 {
        let total = frames * ppf * spp;
        if raw.len() * 8 < total {
            return Err(short_pixel_data(path, raw.len(), total.div_ceil(8)));
        }
        // Bits are packed LSB first, continuous across frames.
        return Ok((0..total).map(|i| (raw[i / 8] >> (i % 8)) & 1).collect());
    }

    let subsampled =
        spp == 3 && (photometric == "YBR_FULL_422" || photometric == "YBR_PARTIAL_422");
    let frame_bytes = if subsampled {
        // Two pixels share one Cb and one Cr: Y Y Cb Cr.
        if a.columns % 2 != 0 {
            return Err(DicomError::InvalidAttribute {
                path: path.to_owned(),
                attribute: "Columns",
                reason: format!("{} is odd, impossible for {photometric}", a.columns),
            });
        }
        ppf * 2 * bps
    } else {
        ppf * spp * bps
    };
    let want = frames * frame_bytes;
    if raw.len() < want {
        return Err(short_pixel_data(path, raw.len(), want));
    }
    raw.truncate(want);

    if subsampled {
        let mut out = Vec::with_capacity(frames * ppf * 3 * bps);
        for quad in raw.chunks_exact(4 * bps) {
            let (y1, y2, cb, cr) = (
                &quad[0..bps],
                &quad[bps..2 * bps],
                &quad[2 * bps..3 * bps],
                &quad[3 * bps..4 * bps],
            );
            for y in [y1, y2] {
                out.extend_from_slice(y);
                out.extend_from_slice(cb);
                out.extend_from_slice(cr);
            }
        }
        *photometric = photometric.replace("_422", "");
        return Ok(out);
    }

    if spp > 1 && a.planar_configuration == 1 {
        // Each frame holds all of sample 0, then all of sample 1, ...: interleave.
        let mut out = vec![0u8; want];
        for f in 0..frames {
            let src = &raw[f * frame_bytes..(f + 1) * frame_bytes];
            let dst = &mut out[f * frame_bytes..(f + 1) * frame_bytes];
            for s in 0..spp {
                for px in 0..ppf {
                    let from = (s * ppf + px) * bps;
                    let to = (px * spp + s) * bps;
                    dst[to..to + bps].copy_from_slice(&src[from..from + bps]);
                }
            }
        }
        return Ok(out);
    }
    Ok(raw)
}

pub(super) fn short_pixel_data(path: &Path, have: usize, want: usize) -> DicomError {
    DicomError::InvalidAttribute {
        path: path.to_owned(),
        attribute: "PixelData",
        reason: format!("holds {have} bytes, {want} expected from the image attributes"),
    }
}

/// Little-endian sample bytes to typed values, with Bits Stored honoured.
pub(super) fn typed_values(a: &ImageAttrs, le: &[u8]) -> PixelValues {
    let signed = a.pixel_representation == 1;
    let ba = if a.bits_allocated == 1 {
        8
    } else {
        a.bits_allocated as u32
    };
    let bs = if a.bits_allocated == 1 {
        8
    } else {
        a.bits_stored as u32
    };
    // Sign extension from bit bs-1 (signed) or masking to bs bits (unsigned), done on 32-bit ints.
    let fix_u = |v: u32| -> u32 {
        if bs >= 32 {
            v
        } else {
            v & ((1u32 << bs) - 1)
        }
    };
    let fix_i = |v: u32| -> i32 {
        let shift = 32 - bs;
        ((v << shift) as i32) >> shift
    };
    match (ba, signed) {
        (8, false) => PixelValues::U8(le.iter().map(|&b| fix_u(b as u32) as u8).collect()),
        (8, true) => PixelValues::I8(le.iter().map(|&b| fix_i(b as u32) as i8).collect()),
        (16, false) => PixelValues::U16(
            le.chunks_exact(2)
                .map(|c| fix_u(u16::from_le_bytes([c[0], c[1]]) as u32) as u16)
                .collect(),
        ),
        (16, true) => PixelValues::I16(
            le.chunks_exact(2)
                .map(|c| fix_i(u16::from_le_bytes([c[0], c[1]]) as u32) as i16)
                .collect(),
        ),
        (_, false) => PixelValues::U32(
            le.chunks_exact(4)
                .map(|c| fix_u(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        ),
        (_, true) => PixelValues::I32(
            le.chunks_exact(4)
                .map(|c| fix_i(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        ),
    }
}

/// The fragments holding each frame: one fragment per frame, all fragments for a single frame, or
/// grouped by the Basic Offset Table.
pub(super) fn frames_of<'a>(
    path: &Path,
    frames: usize,
    offsets: &[u32],
    fragments: &'a [Vec<u8>],
) -> Result<Vec<Vec<&'a [u8]>>, DicomError> {
    if fragments.len() == frames {
        return Ok(fragments.iter().map(|f| vec![f.as_slice()]).collect());
    }
    if frames == 1 {
        return Ok(vec![fragments.iter().map(|f| f.as_slice()).collect()]);
    }
    if offsets.len() != frames {
        return Err(DicomError::InvalidAttribute {
            path: path.to_owned(),
            attribute: "PixelData",
            reason: format!(
                "{} fragments for {} frames and no usable Basic Offset Table",
                fragments.len(),
                frames
            ),
        });
    }
    let mut out: Vec<Vec<&[u8]>> = vec![Vec::new(); frames];
    let mut pos = 0u64;
    for f in fragments {
        let frame = offsets.iter().rposition(|&o| o as u64 <= pos).unwrap_or(0);
        out[frame].push(f.as_slice());
        pos += f.len() as u64 + 8;
    }
    Ok(out)
}

/// [`frames_of`] for JPEG-family code streams: without a usable Basic Offset Table, a fragment that
/// starts with an SOI marker (0xFFD8) starts the next frame.
pub(super) fn jpeg_frames_of<'a>(
    path: &Path,
    frames: usize,
    offsets: &[u32],
    fragments: &'a [Vec<u8>],
) -> Result<Vec<Vec<&'a [u8]>>, DicomError> {
    frames_of(path, frames, offsets, fragments).or_else(|e| {
        let mut out: Vec<Vec<&[u8]>> = Vec::new();
        for f in fragments {
            match out.last_mut() {
                Some(last) if !f.starts_with(&[0xFF, 0xD8]) => last.push(f.as_slice()),
                _ => out.push(vec![f.as_slice()]),
            }
        }
        if out.len() == frames {
            Ok(out)
        } else {
            Err(e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_frames_without_offset_table_split_at_soi() {
        let p = Path::new("x.dcm");
        let frags: Vec<Vec<u8>> = vec![
            vec![0xFF, 0xD8, 1],
            vec![2, 3],
            vec![0xFF, 0xD8, 4],
            vec![5],
        ];
        let f = jpeg_frames_of(p, 2, &[], &frags).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].concat(), vec![0xFF, 0xD8, 1, 2, 3]);
        assert_eq!(f[1].concat(), vec![0xFF, 0xD8, 4, 5]);
        // Three frames declared, two code streams: still the error.
        let e = jpeg_frames_of(p, 3, &[], &frags).unwrap_err();
        assert!(
            e.to_string().contains("no usable Basic Offset Table"),
            "{e}"
        );
    }

    #[test]
    fn bits_stored_sign_extension_and_masking() {
        let mut a = ImageAttrs {
            rows: 1,
            columns: 3,
            frames: 1,
            samples: 1,
            bits_allocated: 16,
            bits_stored: 12,
            pixel_representation: 1,
            planar_configuration: 0,
            photometric: "MONOCHROME2".into(),
        };
        // 0x0FFF is -1 in 12 bits; 0x0800 is -2048; 0xF7FF has junk above bit 11 and is 2047.
        let le = [0xff, 0x0f, 0x00, 0x08, 0xff, 0xf7];
        assert_eq!(
            typed_values(&a, &le),
            PixelValues::I16(vec![-1, -2048, 2047])
        );
        a.pixel_representation = 0;
        assert_eq!(
            typed_values(&a, &le),
            PixelValues::U16(vec![4095, 2048, 2047])
        );
    }
}
