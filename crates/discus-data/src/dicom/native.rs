//! Native pixel data read in place: the first frame of a grey-scale image whose pixels are stored
//! uncompressed in little endian, as 8- or 16-bit samples, taken straight from the file's bytes
//! (no parsed object, no copy of the pixel data, no typed vector). Everything else (compressed,
//! big endian, deflated, colour, 1- or 32-bit, odd attributes) is `None` here and goes through
//! [`decode_pixels_bytes`](super::decode_pixels_bytes). The values are the stored values that
//! `decode_pixels_bytes` returns (masked to, or sign-extended from, Bits Stored); the
//! `native_frames_equal_the_decoder` test (tests/conformance.rs) checks them on every shared test
//! file.

use super::fast;
use crate::header::InstanceHeader;
use crate::standardise::StoredHistogram;
use std::path::Path;

/// How stored values are laid out in native pixel data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Format {
    /// 1 or 2.
    bytes_per_sample: usize,
    /// Pixel Representation 1.
    signed: bool,
    /// Bits Stored (1..=8 * bytes_per_sample).
    bits_stored: u32,
}

impl Format {
    /// Stored value `i` of `bytes`.
    #[inline(always)]
    fn value(&self, bytes: &[u8], i: usize) -> i32 {
        let raw = if self.bytes_per_sample == 2 {
            u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]) as u32
        } else {
            bytes[i] as u32
        };
        fix(raw, self.bits_stored, self.signed)
    }

    /// Every stored value of `bytes` in order, passed to `f`.
    #[inline]
    fn for_each(&self, bytes: &[u8], mut f: impl FnMut(i32)) {
        let bs = self.bits_stored;
        let full = bs == 8 * self.bytes_per_sample as u32;
        match (self.bytes_per_sample, self.signed, full) {
            (2, false, true) => bytes
                .chunks_exact(2)
                .for_each(|c| f(u16::from_le_bytes([c[0], c[1]]) as i32)),
            (2, true, true) => bytes
                .chunks_exact(2)
                .for_each(|c| f(i16::from_le_bytes([c[0], c[1]]) as i32)),
            (1, false, true) => bytes.iter().for_each(|&b| f(b as i32)),
            (1, true, true) => bytes.iter().for_each(|&b| f(b as i8 as i32)),
            (2, signed, false) => bytes
                .chunks_exact(2)
                .for_each(|c| f(fix(u16::from_le_bytes([c[0], c[1]]) as u32, bs, signed))),
            (_, signed, _) => bytes.iter().for_each(|&b| f(fix(b as u32, bs, signed))),
        }
    }
}

/// The first frame of a native grey-scale image, borrowed from the file's bytes.
#[derive(Debug, Clone)]
pub struct NativeFrame<'a> {
    /// The header (the fast scanner's fields).
    pub header: InstanceHeader,
    /// `rows * columns` samples, little endian.
    bytes: &'a [u8],
    format: Format,
}

/// The first frame of the image in `bytes` when it is native grey-scale 8- or 16-bit pixel data in
/// little endian; `None` otherwise (then decode with `decode_pixels_bytes`). `path` is only used
/// by the scanner's messages.
pub fn native_frame<'a>(bytes: &'a [u8], path: &Path) -> Option<NativeFrame<'a>> {
    let (header, range) = fast::scan_native(path, bytes)?;
    let range = range?;
    let bps = match header.bits_allocated {
        8 => 1,
        16 => 2,
        _ => return None,
    };
    let bs = header.bits_stored as u32;
    if header.samples_per_pixel != 1
        || header.pixel_representation > 1
        || header.number_of_frames < 1
        || !(1..=8 * bps as u32).contains(&bs)
    {
        return None;
    }
    let n = header.rows as usize * header.columns as usize * bps;
    if n == 0 || range.len() < n {
        return None;
    }
    let signed = header.pixel_representation == 1;
    Some(NativeFrame {
        header,
        bytes: &bytes[range.start..range.start + n],
        format: Format {
            bytes_per_sample: bps,
            signed,
            bits_stored: bs,
        },
    })
}

impl NativeFrame<'_> {
    /// Number of pixels (rows x columns).
    pub fn len(&self) -> usize {
        self.bytes.len() / self.format.bytes_per_sample
    }

    /// Whether the frame has no pixel (never: `native_frame` refuses an empty image).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The stored values in pixel order, each passed to `f` (as `i32`).
    pub fn for_each(&self, f: impl FnMut(i32)) {
        self.format.for_each(self.bytes, f)
    }

    /// The stored values, rescaled (`stored * slope + intercept` in `f64`, then `f32`, as
    /// `Dataset::load_stack` does) and mapped by `map`, into `out` (`len()` values).
    pub fn map_into(&self, out: &mut [f32], slope: f64, intercept: f64, map: impl Fn(f32) -> f32) {
        let mut o = out.iter_mut();
        self.for_each(|v| {
            if let Some(x) = o.next() {
                *x = map((v as f64 * slope + intercept) as f32);
            }
        });
    }

    /// Counts the stored values into `hist`.
    pub fn count_into(&self, hist: &mut StoredHistogram) {
        let f = self.format;
        if f.bytes_per_sample == 2 {
            if f.signed {
                hist.add_i16_le(self.bytes, f.bits_stored);
            } else {
                hist.add_u16_le(self.bytes, f.bits_stored);
            }
        } else if f.signed {
            let mut vals = Vec::with_capacity(self.len());
            self.for_each(|v| vals.push(v as i16));
            hist.add_i16(vals.into_iter());
        } else {
            let mut vals = Vec::with_capacity(self.len());
            self.for_each(|v| vals.push(v as u16));
            hist.add_u16(vals.into_iter());
        }
    }

    /// An owned copy of the frame's pixel bytes (for converting parts of it later).
    pub fn to_owned_frame(&self) -> OwnedFrame {
        OwnedFrame {
            bytes: self.bytes.to_vec(),
            format: self.format,
            rows: self.header.rows as usize,
            columns: self.header.columns as usize,
        }
    }
}

/// The stored pixel bytes of a [`NativeFrame`], owned: any rectangle of it can be rescaled and
/// mapped later ([`OwnedFrame::map_patch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFrame {
    bytes: Vec<u8>,
    format: Format,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub columns: usize,
}

impl OwnedFrame {
    /// Replaces `out` with columns `x` and rows `y` (inside the frame) of the stored values,
    /// rescaled (`stored * slope + intercept` in `f64`, then `f32`) and mapped by `map`, row by row.
    pub fn map_patch(
        &self,
        x: std::ops::Range<usize>,
        y: std::ops::Range<usize>,
        slope: f64,
        intercept: f64,
        map: impl Fn(f32) -> f32,
        out: &mut Vec<f32>,
    ) {
        out.clear();
        out.reserve(x.len() * y.len());
        let f = self.format;
        for row in y {
            let base = row * self.columns;
            out.extend(
                x.clone().map(|c| {
                    map((f.value(&self.bytes, base + c) as f64 * slope + intercept) as f32)
                }),
            );
        }
    }
}
/// Masking to (unsigned) or sign extension from (signed) `bs` bits, as `decode_pixels` does.
#[inline(always)]
fn fix(v: u32, bs: u32, signed: bool) -> i32 {
    if signed {
        let shift = 32 - bs;
        ((v << shift) as i32) >> shift
    } else {
        (v & ((1u32 << bs) - 1)) as i32
    }
}
