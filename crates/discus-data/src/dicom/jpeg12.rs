//! 12-bit JPEG extended (ITU-T T.81 process 4: sequential DCT, Huffman coding), which jpeg-decoder
//! does not decode. DICOM transfer syntax 1.2.840.10008.1.2.4.51 with Bits Stored 12, as in NEMA
//! WG04 `JPLY` and pydicom's `JPGExtended.dcm`.
//!
//! Baseline and extended sequential frames (SOF0, SOF1) of 8 or 12 bits, 8- and 16-bit quantisation
//! tables, restart intervals, one to four components: one component with any sampling factors, or
//! several without subsampling (no colour conversion: samples come back as coded). The inverse DCT
//! is computed exactly in double precision and rounded, so results are within 1 of any accurate
//! decoder (libjpeg's integer IDCT differs from the exact one by at most 1).
//!
//! Like libjpeg, a sequential scan header whose spectral selection or successive approximation
//! fields are wrong (Ss/Se/Ah/Al; the WG04 `JPLY` files have Se = 0) is read as the full 0..63
//! scan it must be.

use super::jpeg_stream::{
    self, invalid, is_sof, BitReader, Decoder, Image, Markers, Standard, StreamError,
    ZeroByteStuffing,
};
use super::pixels::ImageAttrs;
use super::DicomError;
use std::path::Path;

/// Natural (row-major) index of the `k`-th coefficient in zig-zag order.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// The frame type (SOFn marker code) and sample precision of a JPEG code stream, if it has a frame
/// header.
pub(super) fn frame_type(data: &[u8]) -> Option<(u8, u8)> {
    let mut markers = Markers::new(data).ok()?;
    loop {
        // The first fragment of a frame may end inside a segment: read what is there.
        let marker = markers.next_marker_cut().ok()?;
        match (marker.code, marker.segment) {
            (code, Some(seg)) if is_sof(code) => return Some((code, *seg.first()?)),
            (0xDA, _) => return None,
            _ => {}
        }
    }
}

/// A Huffman table (T.81 Annex C and F.2.2.3).
#[derive(Clone)]
struct Huffman {
    /// For each code length 1..=16: the largest code (-1 if none), and where its symbols start.
    maxcode: [i32; 17],
    mincode: [i32; 17],
    valptr: [usize; 17],
    values: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8], values: &[u8]) -> Result<Huffman, StreamError> {
        let mut maxcode = [-1i32; 17];
        let mut mincode = [0i32; 17];
        let mut valptr = [0usize; 17];
        let mut code = 0i32;
        let mut k = 0usize;
        for len in 1..=16 {
            let n = counts[len - 1] as usize;
            if n > 0 {
                valptr[len] = k;
                mincode[len] = code;
                code += n as i32;
                k += n;
                maxcode[len] = code - 1;
            }
            if code > (1 << len) {
                return Err(invalid("a Huffman table with too many codes"));
            }
            code <<= 1;
        }
        Ok(Huffman {
            maxcode,
            mincode,
            valptr,
            values: values.to_vec(),
        })
    }
}

/// Huffman decoding of T.81's entropy-coded bits.
impl BitReader<'_, ZeroByteStuffing> {
    fn decode(&mut self, h: &Huffman) -> Result<u8, StreamError> {
        let next = self.peek(16);
        for len in 1..=16u32 {
            let code = (next >> (16 - len)) as i32;
            if code <= h.maxcode[len as usize] {
                self.consume(len);
                let i = h.valptr[len as usize] + (code - h.mincode[len as usize]) as usize;
                return h
                    .values
                    .get(i)
                    .copied()
                    .ok_or_else(|| invalid("a Huffman code without a symbol"));
            }
        }
        Err(if self.overrun() > 8 {
            StreamError::Truncated("entropy-coded data")
        } else {
            invalid("a bit pattern that is no Huffman code")
        })
    }

    /// `s` bits as a signed coefficient difference (T.81 F.2.2.1, EXTEND).
    fn receive_extend(&mut self, s: u8) -> i32 {
        if s == 0 {
            return 0;
        }
        let v = self.bits(s as u32) as i32;
        if v < 1 << (s - 1) {
            v - (1 << s) + 1
        } else {
            v
        }
    }
}

struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
}

/// The inverse DCT basis: `cos((2x + 1) u pi / 16) * C(u) / 2`.
fn idct_table() -> [[f64; 8]; 8] {
    let mut t = [[0.0; 8]; 8];
    for (x, row) in t.iter_mut().enumerate() {
        for (u, v) in row.iter_mut().enumerate() {
            let c = if u == 0 {
                std::f64::consts::FRAC_1_SQRT_2
            } else {
                1.0
            };
            *v = c / 2.0 * (((2 * x + 1) * u) as f64 * std::f64::consts::PI / 16.0).cos();
        }
    }
    t
}

/// True for a 12-bit sequential DCT code stream (SOF0/SOF1), the one this module is for.
pub(super) fn is_12_bit_sequential(data: &[u8]) -> bool {
    matches!(frame_type(data), Some((0xC0 | 0xC1, 12)))
}

/// Decodes one JPEG code stream (SOI ... EOI) of a sequential Huffman frame.
pub(super) fn decode(data: &[u8]) -> Result<Image, StreamError> {
    let mut markers = Markers::new(data)?;
    let mut qt = [[0u16; 64]; 4];
    let mut dc: [Option<Huffman>; 4] = Default::default();
    let mut ac: [Option<Huffman>; 4] = Default::default();
    let mut restart_interval = 0usize;
    let mut frame: Option<(u8, usize, usize, Vec<Component>)> = None;
    // Each component's samples, padded to whole blocks: (plane, blocks per line, block lines).
    let mut planes: Vec<(Vec<u16>, usize, usize)> = Vec::new();
    let mut decoded: Vec<bool> = Vec::new();
    let basis = idct_table();
    loop {
        let marker = markers.next_marker()?;
        let code = marker.code;
        let Some(seg) = marker.segment else {
            if code == 0xD9 {
                break;
            }
            continue; // RSTn, SOI, TEM: skipped
        };
        match code {
            0xDB => {
                let mut s = seg;
                while !s.is_empty() {
                    let (pq, tq) = ((s[0] >> 4) as usize, (s[0] & 15) as usize);
                    let n = if pq == 0 { 64 } else { 128 };
                    if tq > 3 || pq > 1 || s.len() < 1 + n {
                        return Err(invalid("a bad quantisation table"));
                    }
                    for k in 0..64 {
                        qt[tq][k] = if pq == 0 {
                            s[1 + k] as u16
                        } else {
                            u16::from_be_bytes([s[1 + 2 * k], s[2 + 2 * k]])
                        };
                    }
                    s = &s[1 + n..];
                }
            }
            0xC4 => {
                let mut s = seg;
                while !s.is_empty() {
                    if s.len() < 17 {
                        return Err(invalid("a bad Huffman table"));
                    }
                    let (tc, th) = (s[0] >> 4, (s[0] & 15) as usize);
                    let total: usize = s[1..17].iter().map(|&c| c as usize).sum();
                    if tc > 1 || th > 3 || s.len() < 17 + total {
                        return Err(invalid("a bad Huffman table"));
                    }
                    let table = Huffman::new(&s[1..17], &s[17..17 + total])?;
                    if tc == 0 {
                        dc[th] = Some(table);
                    } else {
                        ac[th] = Some(table);
                    }
                    s = &s[17 + total..];
                }
            }
            0xDD => {
                if seg.len() < 2 {
                    return Err(StreamError::Truncated("DRI"));
                }
                restart_interval = u16::from_be_bytes([seg[0], seg[1]]) as usize;
            }
            0xC0 | 0xC1 => {
                if frame.is_some() {
                    return Err(invalid("a second frame header"));
                }
                if seg.len() < 6 {
                    return Err(StreamError::Truncated("SOF"));
                }
                let p = seg[0];
                let height = u16::from_be_bytes([seg[1], seg[2]]) as usize;
                let width = u16::from_be_bytes([seg[3], seg[4]]) as usize;
                let nf = seg[5] as usize;
                if p != 8 && p != 12 {
                    return Err(invalid(format!("sample precision {p}")));
                }
                if height == 0 {
                    return Err(StreamError::Unsupported(
                        "the number of lines in DNL".into(),
                    ));
                }
                if width == 0 || nf == 0 || nf > 4 || seg.len() < 6 + 3 * nf {
                    return Err(invalid("a bad frame header"));
                }
                let comps: Vec<Component> = (0..nf)
                    .map(|i| Component {
                        id: seg[6 + 3 * i],
                        h: (seg[7 + 3 * i] >> 4) as usize,
                        v: (seg[7 + 3 * i] & 15) as usize,
                        tq: (seg[8 + 3 * i] & 3) as usize,
                    })
                    .collect();
                if comps
                    .iter()
                    .any(|c| !(1..=4).contains(&c.h) || !(1..=4).contains(&c.v))
                {
                    return Err(invalid("a sampling factor outside 1..=4"));
                }
                if nf > 1 && comps.iter().any(|c| c.h != 1 || c.v != 1) {
                    return Err(StreamError::Unsupported("subsampled components".into()));
                }
                let (bw, bh) = (width.div_ceil(8), height.div_ceil(8));
                planes = (0..nf)
                    .map(|_| (vec![0u16; bw * bh * 64], bw, bh))
                    .collect();
                decoded = vec![false; nf];
                frame = Some((p, width, height, comps));
            }
            code if is_sof(code) => {
                return Err(StreamError::Unsupported(format!(
                    "frame type SOF{} (only sequential Huffman DCT is decoded here)",
                    code - 0xC0
                )));
            }
            0xDA => {
                let (p, _, _, comps) = frame
                    .as_ref()
                    .ok_or_else(|| invalid("a scan before the frame header"))?;
                let ns = *seg.first().ok_or(StreamError::Truncated("SOS"))? as usize;
                if ns == 0 || ns > comps.len() || seg.len() < 1 + 2 * ns + 3 {
                    return Err(invalid("a bad scan header"));
                }
                let mut members = Vec::with_capacity(ns);
                for i in 0..ns {
                    let id = seg[1 + 2 * i];
                    let c = comps
                        .iter()
                        .position(|c| c.id == id)
                        .ok_or_else(|| invalid(format!("the scan names component {id}")))?;
                    let (td, ta) = (
                        (seg[2 + 2 * i] >> 4) as usize,
                        (seg[2 + 2 * i] & 15) as usize,
                    );
                    let d = dc.get(td).and_then(|t| t.clone());
                    let a = ac.get(ta).and_then(|t| t.clone());
                    let (Some(d), Some(a)) = (d, a) else {
                        return Err(invalid("a scan uses a Huffman table that is not defined"));
                    };
                    if decoded[c] {
                        return Err(invalid("a component coded twice"));
                    }
                    decoded[c] = true;
                    members.push((c, d, a));
                }
                // Ss, Se, Ah/Al are ignored: a sequential scan always codes coefficients 0..63.
                let mut bits = markers.scan_bits::<ZeroByteStuffing>();
                let (bw, bh) = (planes[members[0].0].1, planes[members[0].0].2);
                let mcus = bw * bh;
                let mut pred = vec![0i64; ns];
                let shift = (1u32 << (p - 1)) as f64;
                let maxval = ((1u32 << p) - 1) as f64;
                let mut block = [0i64; 64];
                for m in 0..mcus {
                    if restart_interval > 0 && m > 0 && m % restart_interval == 0 {
                        bits.restart()?;
                        pred.iter_mut().for_each(|x| *x = 0);
                    }
                    let (bx, by) = (m % bw, m / bw);
                    for (si, (c, dct, act)) in members.iter().enumerate() {
                        let q = &qt[comps[*c].tq];
                        block.fill(0);
                        let t = bits.decode(dct)?;
                        if t > 16 {
                            return Err(invalid("a DC difference category above 16"));
                        }
                        pred[si] += bits.receive_extend(t) as i64;
                        block[0] = pred[si] * q[0] as i64;
                        let mut k = 1;
                        while k < 64 {
                            let rs = bits.decode(act)?;
                            let (r, s) = ((rs >> 4) as usize, rs & 15);
                            if s == 0 {
                                if r == 15 {
                                    k += 16;
                                    continue;
                                }
                                break;
                            }
                            k += r;
                            if k > 63 {
                                return Err(invalid("an AC coefficient past the block's end"));
                            }
                            block[ZIGZAG[k]] = bits.receive_extend(s) as i64 * q[k] as i64;
                            k += 1;
                        }
                        let (plane, pbw, _) = &mut planes[*c];
                        let stride = *pbw * 8;
                        idct(&basis, &block, |x, y, v| {
                            let s = (v.round() + shift).clamp(0.0, maxval);
                            plane[(by * 8 + y) * stride + bx * 8 + x] = s as u16;
                        });
                    }
                    if bits.overrun() > 8 {
                        return Err(StreamError::Truncated("entropy-coded data"));
                    }
                }
                // Continue after the scan: at the next marker that is not a restart marker.
                markers.skip_scan(&bits);
                if markers.at_end() {
                    break; // no EOI
                }
            }
            _ => {} // APPn, COM, DNL and others: skipped
        }
    }
    let (precision, width, height, comps) = frame.ok_or_else(|| invalid("no frame header"))?;
    if decoded.iter().any(|d| !d) {
        return Err(StreamError::Truncated("a component has no scan"));
    }
    let nf = comps.len();
    let mut samples = vec![0u16; width * height * nf];
    for (c, (plane, bw, _)) in planes.iter().enumerate() {
        let stride = bw * 8;
        for y in 0..height {
            for x in 0..width {
                samples[(y * width + x) * nf + c] = plane[y * stride + x];
            }
        }
    }
    Ok(Image {
        width: width as u32,
        height: height as u32,
        components: nf as u16,
        precision,
        samples,
    })
}

/// The exact 2-D inverse DCT of one block of dequantised coefficients (row-major), each output
/// sample passed to `put(x, y, value)` before level shift and rounding.
fn idct(basis: &[[f64; 8]; 8], coef: &[i64; 64], mut put: impl FnMut(usize, usize, f64)) {
    let mut tmp = [0f64; 64];
    // Columns: tmp[y][u] = sum_v C(v) cos(..y..v) F[v][u]
    for u in 0..8 {
        for (y, b) in basis.iter().enumerate() {
            let mut s = 0.0;
            for (v, bv) in b.iter().enumerate() {
                s += bv * coef[v * 8 + u] as f64;
            }
            tmp[y * 8 + u] = s;
        }
    }
    for y in 0..8 {
        for (x, b) in basis.iter().enumerate() {
            let mut s = 0.0;
            for (u, bu) in b.iter().enumerate() {
                s += bu * tmp[y * 8 + u];
            }
            put(x, y, s);
        }
    }
}

/// Decodes 12-bit JPEG pixel data (one code stream per frame) to little-endian 16-bit interleaved
/// samples, checking each frame against the image attributes.
pub(super) fn decode_frames(
    path: &Path,
    transfer_syntax: &str,
    a: &ImageAttrs,
    offsets: &[u32],
    fragments: &[Vec<u8>],
) -> Result<Vec<u8>, DicomError> {
    if a.bits_allocated != 16 {
        return Err(DicomError::Decode {
            path: path.to_owned(),
            transfer_syntax: transfer_syntax.to_string(),
            reason: format!("12-bit JPEG samples in BitsAllocated {}", a.bits_allocated),
        });
    }
    let decoder = Decoder {
        standard: Standard::Jpeg,
        decode,
    };
    jpeg_stream::decode_frames(path, transfer_syntax, a, offsets, fragments, decoder, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huffman_codes_of_the_standard_luminance_dc_table() {
        // T.81 Table K.3: categories 0..7 have codes 00, 010, 011, 100, 101, 110, 1110, 11110.
        let counts = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
        let values: Vec<u8> = (0..12).collect();
        let h = Huffman::new(&counts, &values).unwrap();
        // 00 010 011 100 101 110 1110 11110, then padding ones.
        let data = [0b0001_0011, 0b1001_0111, 0b0111_0111, 0b1011_1111];
        let mut b = BitReader::<ZeroByteStuffing>::new(&data);
        for want in 0..8 {
            assert_eq!(b.decode(&h).unwrap(), want);
        }
    }

    #[test]
    fn idct_of_a_dc_block_is_flat_and_of_an_ac_block_is_a_cosine() {
        let basis = idct_table();
        let mut coef = [0i64; 64];
        coef[0] = 80; // DC: F(0,0) / 8 everywhere
        idct(&basis, &coef, |_, _, v| {
            assert!((v - 10.0).abs() < 1e-9, "{v}")
        });
        // F(0,1) = 16: f(x, y) = 16 * (1/(2*sqrt 2)) * (1/2) cos((2x + 1) pi / 16).
        let mut coef = [0i64; 64];
        coef[1] = 16;
        idct(&basis, &coef, |x, _, v| {
            let want = 16.0 / (4.0 * 2f64.sqrt())
                * ((2 * x + 1) as f64 * std::f64::consts::PI / 16.0).cos();
            assert!((v - want).abs() < 1e-9, "{x}: {v} vs {want}");
        });
    }

    #[test]
    fn frame_type_and_refusals() {
        // SOI, SOF1 with 12-bit precision.
        let sof1 = [
            0xFF, 0xD8, 0xFF, 0xC1, 0x00, 0x0B, 12, 0, 8, 0, 8, 1, 1, 0x11, 0,
        ];
        assert_eq!(frame_type(&sof1), Some((0xC1, 12)));
        assert!(is_12_bit_sequential(&sof1));
        let mut sof3 = sof1;
        sof3[3] = 0xC3;
        assert!(!is_12_bit_sequential(&sof3));
        // A progressive frame is refused by name.
        let mut sof2 = sof1;
        sof2[3] = 0xC2;
        assert!(matches!(decode(&sof2), Err(StreamError::Unsupported(_))));
        // The frame header alone: no scan, then the data ends.
        assert!(decode(&sof1).is_err());
    }
}
