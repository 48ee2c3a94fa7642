//! JPEG-LS decoding (ITU-T T.87 / ISO/IEC 14495-1), in Rust: lossless and near-lossless (NEAR),
//! regular and run mode, the LSE coding-parameter presets (MAXVAL, T1-T3, RESET), 2- to 16-bit
//! samples, one to four components in every interleave mode (none, line, sample).
//!
//! Not decoded (a clear [`StreamError::Unsupported`]): restart intervals (DRI), mapping tables
//! (palettes, LSE 2/3 used by a scan), oversize dimensions (LSE 4), point transforms, subsampled
//! components, and the HP colour transforms (which DICOM does not allow).
//!
//! The arithmetic follows T.87 Annex A step by step; where the standard leaves a choice to the
//! implementation (the order of the context index, how the line edges are initialised) this does
//! what CharLS, the reference implementation used by DCMTK, GDCM and pydicom, does. Bit-exact on the
//! NEMA WG04 JPEG-LS files (`tests/conformance.rs`).

use super::jpeg_stream::{
    self, invalid, is_sof, BitReader, BitStuffing, Decoder, Image, Markers, Standard, StreamError,
};
use super::pixels::ImageAttrs;
use super::DicomError;
use std::path::Path;

/// The bits of a JPEG-LS scan.
type Bits<'a> = BitReader<'a, BitStuffing>;

/// T.87 A.7.1.2: the run-length order for each RUNindex.
const J: [u32; 32] = [
    0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13,
    14, 15,
];

/// LSE ID=1 values as given (0 = the default).
#[derive(Default, Clone, Copy)]
struct Presets {
    maxval: i32,
    t1: i32,
    t2: i32,
    t3: i32,
    reset: i32,
}

struct Frame {
    precision: u8,
    width: usize,
    height: usize,
    ids: Vec<u8>,
}

/// Decodes one JPEG-LS code stream (SOI ... EOI).
pub(super) fn decode(data: &[u8]) -> Result<Image, StreamError> {
    let mut markers = Markers::new(data)?;
    let mut frame: Option<Frame> = None;
    let mut presets = Presets::default();
    let mut mapping_tables = false;
    let mut out: Vec<u16> = Vec::new();
    let mut done: Vec<bool> = Vec::new();
    loop {
        let marker = markers.next_marker()?;
        let code = marker.code;
        let Some(seg) = marker.segment else {
            match code {
                0xD9 => break, // EOI
                0xD8 => return Err(invalid("a second SOI marker")),
                0xD0..=0xD7 => return Err(invalid("a restart marker outside a scan")),
                _ => continue, // TEM
            }
        };
        match code {
            0xF7 => {
                if frame.is_some() {
                    return Err(invalid("a second SOF55 frame header"));
                }
                let f = parse_frame(seg)?;
                out = vec![0u16; f.width * f.height * f.ids.len()];
                done = vec![false; f.ids.len()];
                frame = Some(f);
            }
            0xF8 => parse_lse(seg, &mut presets, &mut mapping_tables)?,
            0xDA => {
                let f = frame
                    .as_ref()
                    .ok_or_else(|| invalid("SOS before the SOF55 frame header"))?;
                let scan = parse_scan(seg, f)?;
                if scan.mapping && mapping_tables {
                    return Err(StreamError::Unsupported("mapping tables".into()));
                }
                for &c in &scan.comps {
                    if done[c] {
                        return Err(invalid("a component coded twice"));
                    }
                    done[c] = true;
                }
                // The scan's entropy-coded data runs to the next marker: 0xFF followed by a byte
                // with its high bit set (inside the scan, 0xFF is followed by a stuffed 0 bit).
                let params = Params::new(f.precision, scan.near, presets)?;
                let mut bits = markers.scan_bits::<BitStuffing>();
                decode_scan(&mut bits, f, &scan, &params, &mut out)?;
                markers.skip_scan(&bits);
                if markers.at_end() {
                    break; // no EOI: accepted if every component was decoded
                }
            }
            0xDD if seg.len() >= 2 && (seg[0] != 0 || seg[1] != 0) => {
                return Err(StreamError::Unsupported("restart intervals (DRI)".into()));
            }
            code if is_sof(code) => {
                return Err(invalid(format!(
                    "a JPEG (not JPEG-LS) frame header SOF{}",
                    code - 0xC0
                )));
            }
            _ => {} // APPn, COM, and others: skipped
        }
    }
    let f = frame.ok_or_else(|| invalid("no SOF55 frame header"))?;
    if done.iter().any(|d| !d) {
        return Err(StreamError::Truncated("a component has no scan"));
    }
    Ok(Image {
        width: f.width as u32,
        height: f.height as u32,
        components: f.ids.len() as u16,
        precision: f.precision,
        samples: out,
    })
}

fn parse_frame(seg: &[u8]) -> Result<Frame, StreamError> {
    if seg.len() < 6 {
        return Err(StreamError::Truncated("SOF55"));
    }
    let precision = seg[0];
    let height = u16::from_be_bytes([seg[1], seg[2]]) as usize;
    let width = u16::from_be_bytes([seg[3], seg[4]]) as usize;
    let nf = seg[5] as usize;
    if !(2..=16).contains(&precision) {
        return Err(invalid(format!("sample precision {precision}")));
    }
    if height == 0 {
        return Err(StreamError::Unsupported(
            "the number of lines defined later (DNL) or by LSE ID=4".into(),
        ));
    }
    if width == 0 || nf == 0 || nf > 4 {
        return Err(invalid(format!("{width} columns, {nf} components")));
    }
    if seg.len() < 6 + 3 * nf {
        return Err(StreamError::Truncated("SOF55 components"));
    }
    let mut ids = Vec::with_capacity(nf);
    for i in 0..nf {
        let c = &seg[6 + 3 * i..9 + 3 * i];
        if c[1] != 0x11 {
            return Err(StreamError::Unsupported(format!(
                "subsampled component (sampling factors {:#04x})",
                c[1]
            )));
        }
        ids.push(c[0]);
    }
    Ok(Frame {
        precision,
        width,
        height,
        ids,
    })
}

fn parse_lse(seg: &[u8], p: &mut Presets, mapping: &mut bool) -> Result<(), StreamError> {
    match seg.first() {
        Some(1) => {
            if seg.len() < 11 {
                return Err(StreamError::Truncated("LSE coding parameters"));
            }
            let v = |i: usize| u16::from_be_bytes([seg[i], seg[i + 1]]) as i32;
            *p = Presets {
                maxval: v(1),
                t1: v(3),
                t2: v(5),
                t3: v(7),
                reset: v(9),
            };
            Ok(())
        }
        Some(2) | Some(3) => {
            *mapping = true;
            Ok(())
        }
        Some(4) => Err(StreamError::Unsupported(
            "oversize image dimensions (LSE ID=4)".into(),
        )),
        Some(id) => Err(invalid(format!("LSE ID {id}"))),
        None => Err(StreamError::Truncated("LSE")),
    }
}

struct Scan {
    /// Indices of the scan's components in the frame.
    comps: Vec<usize>,
    near: i32,
    ilv: u8,
    mapping: bool,
}

fn parse_scan(seg: &[u8], f: &Frame) -> Result<Scan, StreamError> {
    let ns = *seg.first().ok_or(StreamError::Truncated("SOS"))? as usize;
    if ns == 0 || ns > f.ids.len() || seg.len() < 1 + 2 * ns + 3 {
        return Err(invalid(format!("SOS with {ns} components")));
    }
    let mut comps = Vec::with_capacity(ns);
    let mut mapping = false;
    for i in 0..ns {
        let id = seg[1 + 2 * i];
        let c = f
            .ids
            .iter()
            .position(|&x| x == id)
            .ok_or_else(|| invalid(format!("SOS names component {id}, not in the frame")))?;
        comps.push(c);
        mapping |= seg[2 + 2 * i] != 0;
    }
    let near = seg[1 + 2 * ns] as i32;
    let ilv = seg[2 + 2 * ns];
    let pt = seg[3 + 2 * ns] & 0x0F;
    if pt != 0 {
        return Err(StreamError::Unsupported(format!("point transform {pt}")));
    }
    match (ilv, ns) {
        (0, 1) | (1, _) | (2, _) => {}
        (0, _) => {
            return Err(invalid(
                "interleave mode 0 with several components in a scan",
            ))
        }
        _ => return Err(invalid(format!("interleave mode {ilv}"))),
    }
    Ok(Scan {
        comps,
        near,
        ilv,
        mapping,
    })
}

/// The coding parameters of one scan (T.87 A.2 and C.2.4.1.1).
struct Params {
    maxval: i32,
    near: i32,
    range: i32,
    qbpp: u32,
    limit: u32,
    t1: i32,
    t2: i32,
    t3: i32,
    reset: i32,
}

impl Params {
    fn new(precision: u8, near: i32, p: Presets) -> Result<Params, StreamError> {
        let full = (1i32 << precision) - 1;
        let maxval = if p.maxval == 0 { full } else { p.maxval };
        if maxval > full {
            return Err(invalid(format!(
                "MAXVAL {maxval} exceeds {precision}-bit samples"
            )));
        }
        if near > (maxval / 2).min(255) {
            return Err(invalid(format!("NEAR {near} for MAXVAL {maxval}")));
        }
        let range = (maxval + 2 * near) / (2 * near + 1) + 1;
        let ceil_log2 = |v: i32| 32 - ((v - 1) as u32).leading_zeros();
        let qbpp = ceil_log2(range);
        let bpp = ceil_log2(maxval + 1).max(2);
        let limit = 2 * (bpp + bpp.max(8));
        // Default thresholds (C.2.4.1.1.1), with BASIC_T1..3 = 3, 7, 21 written out.
        let clamp = |i: i32, j: i32| if i > maxval || i < j { j } else { i };
        let (d1, d2, d3) = if maxval >= 128 {
            let factor = (maxval.min(4095) + 128) / 256;
            let t1 = clamp(factor + 2 + 3 * near, near + 1);
            let t2 = clamp(factor * (7 - 3) + 3 + 5 * near, t1);
            (t1, t2, clamp(factor * (21 - 4) + 4 + 7 * near, t2))
        } else {
            let factor = 256 / (maxval + 1);
            let t1 = clamp((3 / factor + 3 * near).max(2), near + 1);
            let t2 = clamp((7 / factor + 5 * near).max(3), t1);
            (t1, t2, clamp((21 / factor + 7 * near).max(4), t2))
        };
        let pick = |given: i32, default: i32| if given == 0 { default } else { given };
        let (t1, t2, t3) = (pick(p.t1, d1), pick(p.t2, d2), pick(p.t3, d3));
        if !(near < t1 && t1 <= t2 && t2 <= t3 && t3 <= maxval) {
            return Err(invalid(format!(
                "thresholds T1={t1} T2={t2} T3={t3} for NEAR={near} MAXVAL={maxval}"
            )));
        }
        let reset = pick(p.reset, 64);
        if reset < 3 {
            return Err(invalid(format!("RESET {reset}")));
        }
        Ok(Params {
            maxval,
            near,
            range,
            qbpp,
            limit,
            t1,
            t2,
            t3,
            reset,
        })
    }
}

/// Golomb decoding of T.87's entropy-coded bits.
impl Bits<'_> {
    /// Counts 0 bits up to the next 1 bit (consumed); more than `max` zeros is an error.
    #[inline]
    fn unary(&mut self, max: u32) -> Result<u32, StreamError> {
        self.zeros(max).ok_or_else(|| {
            if self.overrun() > 8 {
                StreamError::Truncated("entropy-coded data")
            } else {
                invalid("a Golomb code longer than LIMIT")
            }
        })
    }

    /// Limited-length Golomb code (T.87 A.5.3).
    #[inline]
    fn golomb(&mut self, k: u32, limit: u32, qbpp: u32) -> Result<i32, StreamError> {
        let escape = limit - qbpp - 1;
        let high = self.unary(escape)?;
        if high == escape {
            return Ok(self.bits(qbpp) as i32 + 1);
        }
        if k > 24 {
            return Err(invalid("Golomb parameter out of range"));
        }
        Ok(((high << k) + self.bits(k)) as i32)
    }
}

/// The Golomb parameter: the least `k` with `N << k >= A` (T.87 A.5.1).
#[inline]
fn golomb_k(n: i32, a: i32) -> u32 {
    let mut k = 0;
    while ((n as i64) << k) < a as i64 {
        k += 1;
    }
    k
}

/// The context state of one scan (T.87 A.2.1 and A.7.1).
struct Coder<'p> {
    p: &'p Params,
    /// Gradient quantisation (A.3.3), indexed by `d + maxval`.
    quant: Vec<i8>,
    /// A and N for the 365 regular contexts and the two run-interruption contexts (365, 366).
    a: [i32; 367],
    n: [i32; 367],
    b: [i32; 365],
    c: [i32; 365],
    nn: [i32; 2],
    run_index: usize,
}

impl<'p> Coder<'p> {
    fn new(p: &'p Params) -> Self {
        let quant = (-p.maxval..=p.maxval)
            .map(|d| {
                if d <= -p.t3 {
                    -4
                } else if d <= -p.t2 {
                    -3
                } else if d <= -p.t1 {
                    -2
                } else if d < -p.near {
                    -1
                } else if d <= p.near {
                    0
                } else if d < p.t1 {
                    1
                } else if d < p.t2 {
                    2
                } else if d < p.t3 {
                    3
                } else {
                    4
                }
            })
            .collect();
        let a0 = ((p.range + 32) / 64).max(2);
        Coder {
            p,
            quant,
            a: [a0; 367],
            n: [1; 367],
            b: [0; 365],
            c: [0; 365],
            nn: [0; 2],
            run_index: 0,
        }
    }

    /// The signed context number `(Q1 * 9 + Q2) * 9 + Q3` (0 means run mode).
    #[inline]
    fn context(&self, d1: i32, d2: i32, d3: i32) -> i32 {
        let m = self.p.maxval;
        let q = |d: i32| self.quant[(d + m) as usize] as i32;
        (q(d1) * 9 + q(d2)) * 9 + q(d3)
    }

    /// Rx from a prediction and an error value (A.4.2 with the modulo reduction undone).
    #[inline]
    fn reconstruct(&self, px: i32, err: i32) -> i32 {
        let p = self.p;
        let mut v = px + err * (2 * p.near + 1);
        if v < -p.near {
            v += p.range * (2 * p.near + 1);
        } else if v > p.maxval + p.near {
            v -= p.range * (2 * p.near + 1);
        }
        v.clamp(0, p.maxval)
    }

    /// One sample in regular mode (A.4 to A.6).
    #[inline]
    fn regular(
        &mut self,
        bits: &mut Bits,
        qs: i32,
        ra: i32,
        rb: i32,
        rc: i32,
    ) -> Result<i32, StreamError> {
        let sign = if qs < 0 { -1 } else { 1 };
        let q = qs.unsigned_abs() as usize;
        // Median edge detector.
        let pred = if rc >= ra.max(rb) {
            ra.min(rb)
        } else if rc <= ra.min(rb) {
            ra.max(rb)
        } else {
            ra + rb - rc
        };
        let px = (pred + sign * self.c[q]).clamp(0, self.p.maxval);
        let (a, n) = (self.a[q], self.n[q]);
        let k = golomb_k(n, a);
        let m = bits.golomb(k, self.p.limit, self.p.qbpp)?;
        let mut err = (m >> 1) ^ -(m & 1);
        if k == 0 && self.p.near == 0 && 2 * self.b[q] + n - 1 < 0 {
            err = !err;
        }
        if err.abs() > 65535 {
            return Err(invalid("error value out of range"));
        }
        // Context update (A.6.1) and bias correction (A.6.2).
        // A stays below 2^31 for valid streams (RESET <= 65535 halves it); corrupt ones may not.
        let mut a = a
            .checked_add(err.abs())
            .ok_or_else(|| invalid("context overflow"))?;
        let mut b = self.b[q] + err * (2 * self.p.near + 1);
        let mut n = n;
        if n == self.p.reset {
            a >>= 1;
            b >>= 1;
            n >>= 1;
        }
        n += 1;
        let c = &mut self.c[q];
        if b <= -n {
            b += n;
            if *c > -128 {
                *c -= 1;
            }
            if b <= -n {
                b = -n + 1;
            }
        } else if b > 0 {
            b -= n;
            if *c < 127 {
                *c += 1;
            }
            if b > 0 {
                b = 0;
            }
        }
        self.a[q] = a;
        self.b[q] = b;
        self.n[q] = n;
        Ok(self.reconstruct(px, sign * err))
    }

    /// The length of a run of `Ra` (A.7.1), at most `remaining`.
    #[inline]
    fn run_length(&mut self, bits: &mut Bits, remaining: usize) -> Result<usize, StreamError> {
        let mut len = 0usize;
        while bits.bit() {
            let step = 1usize << J[self.run_index];
            let count = step.min(remaining - len);
            len += count;
            if count == step {
                self.run_index = (self.run_index + 1).min(31);
            }
            if len == remaining {
                break;
            }
            if bits.overrun() > 8 {
                return Err(StreamError::Truncated("run"));
            }
        }
        if len != remaining {
            len += bits.bits(J[self.run_index]) as usize;
        }
        if len > remaining {
            return Err(invalid("a run past the end of the line"));
        }
        Ok(len)
    }

    /// The error value of a run-interruption sample (A.7.2) with context `rt` (RItype).
    #[inline]
    fn run_error(&mut self, bits: &mut Bits, rt: usize) -> Result<i32, StreamError> {
        let ctx = 365 + rt;
        let rti = rt as i32;
        let temp = self.a[ctx].saturating_add((self.n[ctx] >> 1) * rti);
        let k = golomb_k(self.n[ctx], temp);
        let limit = self.p.limit - J[self.run_index] - 1;
        let em = bits.golomb(k, limit, self.p.qbpp)?;
        let t = em + rti;
        let map = t & 1;
        let abs = (t + map) / 2;
        let negative = (k != 0 || 2 * self.nn[rt] >= self.n[ctx]) == (map == 1);
        let err = if negative { -abs } else { abs };
        if err < 0 {
            self.nn[rt] += 1;
        }
        self.a[ctx] = self.a[ctx]
            .checked_add((em + 1 - rti) >> 1)
            .ok_or_else(|| invalid("context overflow"))?;
        if self.n[ctx] == self.p.reset {
            self.a[ctx] >>= 1;
            self.n[ctx] >>= 1;
            self.nn[rt] >>= 1;
        }
        self.n[ctx] += 1;
        Ok(err)
    }

    /// One line of one component. `prev` and `cur` hold `width + 2` samples: index 0 is the sample
    /// before the first (T.87's edge rule), `width + 1` the one after the last.
    fn line(
        &mut self,
        bits: &mut Bits,
        prev: &mut [i32],
        cur: &mut [i32],
    ) -> Result<(), StreamError> {
        let w = prev.len() - 2;
        prev[w + 1] = prev[w];
        cur[0] = prev[1];
        let mut x = 1;
        while x <= w {
            let (ra, rb, rc, rd) = (cur[x - 1], prev[x], prev[x - 1], prev[x + 1]);
            let qs = self.context(rd - rb, rb - rc, rc - ra);
            if qs != 0 {
                cur[x] = self.regular(bits, qs, ra, rb, rc)?;
                x += 1;
                continue;
            }
            let len = self.run_length(bits, w + 1 - x)?;
            cur[x..x + len].fill(ra);
            x += len;
            if x > w {
                break;
            }
            let rb = prev[x];
            cur[x] = if (ra - rb).abs() <= self.p.near {
                let e = self.run_error(bits, 1)?;
                self.reconstruct(ra, e)
            } else {
                let e = self.run_error(bits, 0)?;
                self.reconstruct(rb, if rb < ra { -e } else { e })
            };
            self.run_index = self.run_index.saturating_sub(1);
            x += 1;
        }
        Ok(())
    }

    /// One line of all components, sample-interleaved (ILV=2).
    fn line_interleaved(
        &mut self,
        bits: &mut Bits,
        prev: &mut [Vec<i32>],
        cur: &mut [Vec<i32>],
    ) -> Result<(), StreamError> {
        let nc = prev.len();
        let w = prev[0].len() - 2;
        for c in 0..nc {
            prev[c][w + 1] = prev[c][w];
            cur[c][0] = prev[c][1];
        }
        let mut qs = [0i32; 4];
        let mut x = 1;
        while x <= w {
            let mut all_zero = true;
            for c in 0..nc {
                let (p, q) = (&prev[c], &cur[c]);
                qs[c] = self.context(p[x + 1] - p[x], p[x] - p[x - 1], p[x - 1] - q[x - 1]);
                all_zero &= qs[c] == 0;
            }
            if !all_zero {
                for c in 0..nc {
                    let (ra, rb, rc) = (cur[c][x - 1], prev[c][x], prev[c][x - 1]);
                    cur[c][x] = self.regular(bits, qs[c], ra, rb, rc)?;
                }
                x += 1;
                continue;
            }
            let len = self.run_length(bits, w + 1 - x)?;
            for line in cur.iter_mut() {
                let ra = line[x - 1];
                line[x..x + len].fill(ra);
            }
            x += len;
            if x > w {
                break;
            }
            for c in 0..nc {
                let (ra, rb) = (cur[c][x - 1], prev[c][x]);
                let e = self.run_error(bits, 0)?;
                cur[c][x] = self.reconstruct(rb, if rb < ra { -e } else { e });
            }
            self.run_index = self.run_index.saturating_sub(1);
            x += 1;
        }
        Ok(())
    }
}

fn decode_scan(
    bits: &mut Bits,
    f: &Frame,
    scan: &Scan,
    p: &Params,
    out: &mut [u16],
) -> Result<(), StreamError> {
    let (w, nf, nc) = (f.width, f.ids.len(), scan.comps.len());
    let mut coder = Coder::new(p);
    let mut prev = vec![vec![0i32; w + 2]; nc];
    let mut cur = vec![vec![0i32; w + 2]; nc];
    let mut run_index = vec![0usize; nc];
    for y in 0..f.height {
        if scan.ilv == 2 && nc > 1 {
            coder.line_interleaved(bits, &mut prev, &mut cur)?;
        } else {
            for c in 0..nc {
                coder.run_index = run_index[c];
                coder.line(bits, &mut prev[c], &mut cur[c])?;
                run_index[c] = coder.run_index;
            }
        }
        if bits.overrun() > 8 {
            return Err(StreamError::Truncated("entropy-coded data"));
        }
        for (c, &comp) in scan.comps.iter().enumerate() {
            let row = &mut out[y * w * nf..(y + 1) * w * nf];
            for (x, &v) in cur[c][1..=w].iter().enumerate() {
                row[x * nf + comp] = v as u16;
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    Ok(())
}

/// Decodes JPEG-LS pixel data (one code stream per frame) to little-endian interleaved samples of
/// `ceil(BitsAllocated / 8)` bytes, checking each frame against the image attributes.
pub(super) fn decode_frames(
    path: &Path,
    transfer_syntax: &str,
    a: &ImageAttrs,
    offsets: &[u32],
    fragments: &[Vec<u8>],
) -> Result<Vec<u8>, DicomError> {
    let bytes_per_sample = (a.bits_allocated as usize).div_ceil(8);
    let decoder = Decoder {
        standard: Standard::JpegLs,
        decode,
    };
    jpeg_stream::decode_frames(
        path,
        transfer_syntax,
        a,
        offsets,
        fragments,
        decoder,
        bytes_per_sample,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_thresholds_follow_t87() {
        // T.87 C.2.4.1.1.1: 8-bit lossless 3/7/21; 12- and 16-bit (FACTOR 16) 18/67/276; 8-bit
        // NEAR=3: 12/22/42.
        for (precision, near, want) in [
            (8, 0, (3, 7, 21)),
            (12, 0, (18, 67, 276)),
            (16, 0, (18, 67, 276)),
            (8, 3, (12, 22, 42)),
        ] {
            let p = Params::new(precision, near, Presets::default()).unwrap();
            assert_eq!((p.t1, p.t2, p.t3), want, "{precision} bits, NEAR {near}");
            assert_eq!(p.reset, 64);
        }
        // 8-bit lossless: RANGE 256, qbpp 8, LIMIT 32 (T.87 A.2.1).
        let p = Params::new(8, 0, Presets::default()).unwrap();
        assert_eq!((p.range, p.qbpp, p.limit), (256, 8, 32));
        // NEAR above MAXVAL/2 is invalid.
        assert!(Params::new(2, 2, Presets::default()).is_err());
    }

    #[test]
    fn not_jpeg_ls_is_an_error() {
        assert!(matches!(decode(b"hello"), Err(StreamError::Invalid(_))));
        assert!(matches!(
            decode(&[0xFF, 0xD8, 0xFF]),
            Err(StreamError::Truncated(_))
        ));
    }
}
