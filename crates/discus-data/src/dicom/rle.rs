//! RLE Lossless (PS3.5 annex G), for every Bits Allocated (dicom-pixeldata stops at 16).

use super::pixels::{frames_of, ImageAttrs};
use super::{ts, DicomError};
use std::path::Path;

/// The most PackBits expands: a 2-byte run of -127 gives 128 bytes.
const RLE_MAX_RATIO: usize = 64;

/// Decodes RLE Lossless pixel data to little-endian interleaved samples.
pub(super) fn rle_decode(
    path: &Path,
    a: &ImageAttrs,
    offsets: &[u32],
    fragments: &[Vec<u8>],
) -> Result<Vec<u8>, DicomError> {
    let bad = |reason: String| DicomError::Decode {
        path: path.to_owned(),
        transfer_syntax: ts::RLE_LOSSLESS.into(),
        reason,
    };
    let bps = (a.bits_allocated as usize).div_ceil(8);
    let spp = a.samples as usize;
    let ppf = a.rows as usize * a.columns as usize;
    let nseg = bps * spp;
    let frames = frames_of(path, a.frames as usize, offsets, fragments)?;
    // the caller checked that this product fits in usize
    let out_len = a.frames as usize * ppf * spp * bps;
    // PackBits turns 2 bytes into at most 128: more than 64 times the data is a corrupt header
    // (a 600-byte file must not make this allocate gigabytes)
    let compressed: usize = fragments.iter().map(|f| f.len()).sum();
    if out_len / RLE_MAX_RATIO > compressed {
        return Err(bad(format!(
            "{compressed} bytes of RLE data cannot hold {out_len} bytes of pixels ({} frame(s) of \
             {}x{}x{spp} samples of {} bits): PackBits expands at most {RLE_MAX_RATIO} times",
            a.frames, a.rows, a.columns, a.bits_allocated
        )));
    }
    let mut out = vec![0u8; out_len];
    let mut segment = Vec::with_capacity(ppf);
    for (fi, parts) in frames.iter().enumerate() {
        let data: std::borrow::Cow<[u8]> = if parts.len() == 1 {
            std::borrow::Cow::Borrowed(parts[0])
        } else {
            std::borrow::Cow::Owned(parts.concat())
        };
        if data.len() < 64 {
            return Err(bad(format!(
                "frame {fi}: RLE header needs 64 bytes, {} present",
                data.len()
            )));
        }
        let word = |i: usize| {
            u32::from_le_bytes([
                data[4 * i],
                data[4 * i + 1],
                data[4 * i + 2],
                data[4 * i + 3],
            ]) as usize
        };
        let count = word(0);
        if count != nseg {
            return Err(bad(format!(
                "frame {fi}: {count} RLE segments, {nseg} expected for {spp} sample(s) of {} bits",
                a.bits_allocated
            )));
        }
        let frame_out = &mut out[fi * ppf * spp * bps..(fi + 1) * ppf * spp * bps];
        for seg in 0..nseg {
            let start = word(1 + seg);
            let end = if seg + 1 < nseg {
                word(2 + seg)
            } else {
                data.len()
            };
            if start < 64 || start > end || end > data.len() {
                return Err(bad(format!(
                    "frame {fi}: RLE segment {seg} offsets {start}..{end} are outside the frame"
                )));
            }
            segment.clear();
            packbits(&data[start..end], ppf, &mut segment);
            if segment.len() < ppf {
                return Err(bad(format!(
                    "frame {fi}: RLE segment {seg} decodes to {} bytes, {ppf} expected",
                    segment.len()
                )));
            }
            // Segments run sample by sample, most significant byte first.
            let sample = seg / bps;
            let byte = bps - 1 - seg % bps;
            for (px, &v) in segment[..ppf].iter().enumerate() {
                frame_out[(px * spp + sample) * bps + byte] = v;
            }
        }
    }
    Ok(out)
}

/// PackBits: a header byte n >= 0 copies n + 1 literal bytes, -127..=-1 repeats the next byte
/// 1 - n times, -128 does nothing. Stops after `want` bytes.
pub(super) fn packbits(src: &[u8], want: usize, out: &mut Vec<u8>) {
    let mut i = 0;
    while i < src.len() && out.len() < want {
        let n = src[i] as i8;
        i += 1;
        if n >= 0 {
            let end = (i + n as usize + 1).min(src.len());
            out.extend_from_slice(&src[i..end]);
            i = end;
        } else if n != -128 {
            if i >= src.len() {
                break;
            }
            let run = 1 + (-(n as i32)) as usize;
            out.extend(std::iter::repeat_n(src[i], run));
            i += 1;
        }
    }
}
