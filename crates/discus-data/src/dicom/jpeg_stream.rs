//! What the two JPEG code-stream decoders share: `jpeg12` (ITU-T T.81, sequential DCT) and
//! `jpegls` (ITU-T T.87). Both streams are a sequence of markers (`0xFF`, fill bytes, a code, and
//! for most codes a length-prefixed segment) around entropy-coded scans; they differ only in how a
//! `0xFF` byte inside a scan is stuffed, which [`Stuffing`] says. Here:
//!
//! - [`Markers`]: the markers and segments of a code stream, and where a scan's entropy-coded data
//!   ends;
//! - [`BitReader`]: the bits of a scan with the stuffing removed (T.81: `FF 00` is `FF`; T.87: the
//!   byte after `FF` carries 7 bits), reading zeros past a marker or the end and counting them;
//! - [`StreamError`] and [`Image`], and [`decode_frames`], which decodes a DICOM pixel sequence
//!   frame by frame and checks each frame against the image attributes.

use super::pixels::{jpeg_frames_of, ImageAttrs};
use super::DicomError;
use std::fmt;
use std::path::Path;

/// The standard a code stream is read by; its name begins the error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Standard {
    /// ITU-T T.81 (JPEG).
    Jpeg,
    /// ITU-T T.87 (JPEG-LS).
    JpegLs,
}

impl fmt::Display for Standard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Standard::Jpeg => "JPEG",
            Standard::JpegLs => "JPEG-LS",
        })
    }
}

/// Why a code stream could not be decoded.
#[derive(Debug, thiserror::Error)]
pub(super) enum StreamError {
    /// The stream ends before the image is complete.
    #[error("the stream ends early ({0})")]
    Truncated(&'static str),
    /// The stream is not valid under its standard.
    #[error("invalid stream: {0}")]
    Invalid(String),
    /// Valid, but using a feature the decoder does not implement.
    #[error("feature not supported: {0}")]
    Unsupported(String),
}

impl StreamError {
    /// The message naming the standard, e.g. "the JPEG-LS stream ends early (run)".
    pub(super) fn message(&self, standard: Standard) -> String {
        match self {
            StreamError::Truncated(what) => format!("the {standard} stream ends early ({what})"),
            StreamError::Invalid(what) => format!("invalid {standard} stream: {what}"),
            StreamError::Unsupported(what) => format!("{standard} feature not supported: {what}"),
        }
    }
}

/// [`StreamError::Invalid`] with `msg`.
pub(super) fn invalid(msg: impl Into<String>) -> StreamError {
    StreamError::Invalid(msg.into())
}

/// A decoded image: samples pixel-interleaved (`rows x columns x components`).
pub(super) struct Image {
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) components: u16,
    /// Bits per sample as coded.
    pub(super) precision: u8,
    pub(super) samples: Vec<u16>,
}

/// True for the codes of a start-of-frame marker (SOF0..SOF15, which leave out DHT, JPG and DAC).
pub(super) fn is_sof(code: u8) -> bool {
    matches!(code, 0xC0..=0xCF) && !matches!(code, 0xC4 | 0xC8 | 0xCC)
}

/// True for the restart markers RST0..RST7.
pub(super) fn is_restart(code: u8) -> bool {
    matches!(code, 0xD0..=0xD7)
}

/// One marker: its code and, unless it is a standalone marker (TEM, RSTn, SOI, EOI), its segment
/// without the two length bytes.
pub(super) struct Marker<'a> {
    pub(super) code: u8,
    pub(super) segment: Option<&'a [u8]>,
}

/// The markers of one code stream, read in order.
pub(super) struct Markers<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Markers<'a> {
    /// The markers after the SOI that must start `data`.
    pub(super) fn new(data: &'a [u8]) -> Result<Self, StreamError> {
        if data.len() < 2 || data[0] != 0xFF || data[1] != 0xD8 {
            return Err(invalid("no SOI marker at the start"));
        }
        Ok(Markers { data, pos: 2 })
    }

    /// True when every byte has been read (a stream that ends without EOI).
    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The code of the next marker (after its fill bytes) and where its length would start.
    fn code(&self) -> Result<(u8, usize), StreamError> {
        let byte = |pos: usize| {
            self.data
                .get(pos)
                .copied()
                .ok_or(StreamError::Truncated("marker"))
        };
        let mut pos = self.pos;
        if byte(pos)? != 0xFF {
            return Err(invalid(format!("expected a marker at byte {pos}")));
        }
        while byte(pos)? == 0xFF {
            pos += 1;
        }
        Ok((byte(pos)?, pos + 1))
    }

    /// The next marker with its whole segment; a segment longer than the data is
    /// [`StreamError::Truncated`].
    pub(super) fn next_marker(&mut self) -> Result<Marker<'a>, StreamError> {
        self.read_marker(false)
    }

    /// [`next_marker`](Self::next_marker) for a stream that may be cut short (the first fragment
    /// of a frame): a segment running past the data comes back as far as it goes, and reading
    /// stops there.
    pub(super) fn next_marker_cut(&mut self) -> Result<Marker<'a>, StreamError> {
        self.read_marker(true)
    }

    fn read_marker(&mut self, cut: bool) -> Result<Marker<'a>, StreamError> {
        let (code, pos) = self.code()?;
        if code == 0x01 || matches!(code, 0xD0..=0xD9) {
            self.pos = pos;
            return Ok(Marker {
                code,
                segment: None,
            });
        }
        let len = self.length(pos)?;
        if pos + len > self.data.len() && !cut {
            return Err(StreamError::Truncated("marker segment"));
        }
        let end = (pos + len).min(self.data.len());
        self.pos = pos + len;
        Ok(Marker {
            code,
            segment: Some(&self.data[pos + 2..end]),
        })
    }

    fn length(&self, pos: usize) -> Result<usize, StreamError> {
        let (Some(&hi), Some(&lo)) = (self.data.get(pos), self.data.get(pos + 1)) else {
            return Err(StreamError::Truncated("marker"));
        };
        let len = ((hi as usize) << 8) | lo as usize;
        if len < 2 {
            return Err(StreamError::Truncated("marker segment"));
        }
        Ok(len)
    }

    /// The bits of the scan whose header was just read, from the byte after it.
    pub(super) fn scan_bits<S: Stuffing>(&self) -> BitReader<'a, S> {
        BitReader {
            data: self.data,
            pos: self.pos,
            acc: 0,
            n: 0,
            overrun: 0,
            stuffing: S::default(),
        }
    }

    /// Moves past a scan whose bits were read up to `bits`: to the next marker that ends a scan
    /// under `S` ([`Stuffing::ends_scan`]), or to the end of the data.
    pub(super) fn skip_scan<S: Stuffing>(&mut self, bits: &BitReader<'a, S>) {
        let data = self.data;
        self.pos = (bits.pos..data.len().saturating_sub(1))
            .find(|&i| data[i] == 0xFF && S::ends_scan(data[i + 1]))
            .unwrap_or(data.len());
    }
}

/// How a standard stuffs `0xFF` bytes inside entropy-coded data.
pub(super) trait Stuffing: Default {
    /// True when `0xFF` followed by `next` is a marker that ends a scan (the decoder goes back to
    /// reading markers there).
    fn ends_scan(next: u8) -> bool;

    /// The data bits of the byte at `pos` (right-aligned) and how many there are, moving `pos`
    /// past what was read. At a marker or past the end: zero bits, `pos` kept, `overrun` counted.
    fn read(&mut self, data: &[u8], pos: &mut usize, overrun: &mut usize) -> (u8, u32);
}

/// T.81 F.1.2.3: a coded `0xFF` is followed by a stuffed `0x00`; any other byte after `0xFF` makes
/// a marker, where the bit reader stops. Restart markers belong to the scan.
#[derive(Default)]
pub(super) struct ZeroByteStuffing;

impl Stuffing for ZeroByteStuffing {
    fn ends_scan(next: u8) -> bool {
        next != 0 && !is_restart(next)
    }

    #[inline]
    fn read(&mut self, data: &[u8], pos: &mut usize, overrun: &mut usize) -> (u8, u32) {
        match data.get(*pos) {
            Some(&0xFF) => match data.get(*pos + 1) {
                Some(0x00) => {
                    *pos += 2;
                    (0xFF, 8)
                }
                _ => {
                    *overrun += 1; // a marker: stay on it
                    (0, 8)
                }
            },
            Some(&v) => {
                *pos += 1;
                (v, 8)
            }
            None => {
                *overrun += 1;
                (0, 8)
            }
        }
    }
}

/// T.87 A.1: after a `0xFF` byte the next byte carries 7 bits (its high bit is a stuffed 0); a
/// `0xFF` followed by a byte with its high bit set is a marker, where the bit reader stops.
#[derive(Default)]
pub(super) struct BitStuffing {
    after_ff: bool,
}

impl Stuffing for BitStuffing {
    fn ends_scan(next: u8) -> bool {
        next >= 0x80
    }

    #[inline]
    fn read(&mut self, data: &[u8], pos: &mut usize, overrun: &mut usize) -> (u8, u32) {
        let b = match data.get(*pos) {
            Some(&0xFF) if data.get(*pos + 1).is_some_and(|&n| Self::ends_scan(n)) => None,
            Some(&b) => {
                *pos += 1;
                Some(b)
            }
            None => None,
        };
        let b = b.unwrap_or_else(|| {
            *overrun += 1;
            0
        });
        let out = if self.after_ff { (b & 0x7F, 7) } else { (b, 8) };
        self.after_ff = b == 0xFF;
        out
    }
}

/// The bits of a scan, most significant first, with `S`'s stuffing removed.
pub(super) struct BitReader<'a, S> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    /// Valid bits at the top of `acc`.
    n: u32,
    /// Zero bytes read past a marker or the end.
    overrun: usize,
    stuffing: S,
}

impl<'a, S: Stuffing> BitReader<'a, S> {
    /// The bits of `data` from its first byte.
    #[cfg(test)]
    pub(super) fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            pos: 0,
            acc: 0,
            n: 0,
            overrun: 0,
            stuffing: S::default(),
        }
    }

    /// How many zero bytes have been read past a marker or the end of the data (the reader looks
    /// ahead by up to 8 bytes, so more than 8 means the scan ran out of data).
    pub(super) fn overrun(&self) -> usize {
        self.overrun
    }

    #[inline]
    fn refill(&mut self) {
        while self.n <= 56 {
            let (v, w) = self
                .stuffing
                .read(self.data, &mut self.pos, &mut self.overrun);
            self.acc |= (v as u64) << (64 - self.n - w);
            self.n += w;
        }
    }

    /// The next `k` bits (at most 32), consumed.
    #[inline]
    pub(super) fn bits(&mut self, k: u32) -> u32 {
        if k == 0 {
            return 0;
        }
        let v = self.peek(k);
        self.consume(k);
        v
    }

    /// The next bit, consumed.
    #[inline]
    pub(super) fn bit(&mut self) -> bool {
        self.bits(1) == 1
    }

    /// The next `k` bits (1 to 32), not consumed.
    #[inline]
    pub(super) fn peek(&mut self, k: u32) -> u32 {
        if self.n < k {
            self.refill();
        }
        (self.acc >> (64 - k)) as u32
    }

    /// Drops `k` bits that [`peek`](Self::peek) has shown.
    #[inline]
    pub(super) fn consume(&mut self, k: u32) {
        self.acc <<= k;
        self.n -= k;
    }

    /// Counts 0 bits up to the next 1 bit (consumed); `None` after more than `max` zeros.
    #[inline]
    pub(super) fn zeros(&mut self, max: u32) -> Option<u32> {
        let mut count = 0;
        loop {
            if self.n == 0 {
                self.refill();
            }
            let lz = self.acc.leading_zeros();
            if lz < self.n {
                count += lz;
                self.acc <<= lz;
                self.acc <<= 1;
                self.n -= lz + 1;
                break;
            }
            count += self.n;
            self.acc = 0;
            self.n = 0;
            if count > max {
                break;
            }
        }
        (count <= max).then_some(count)
    }

    /// Drops the bits left in the current byte and moves past a restart marker (and its fill
    /// bytes); an error if none is there.
    pub(super) fn restart(&mut self) -> Result<(), StreamError> {
        self.acc = 0;
        self.n = 0;
        self.overrun = 0;
        self.stuffing = S::default();
        while self.data.get(self.pos) == Some(&0xFF) && self.data.get(self.pos + 1) == Some(&0xFF) {
            self.pos += 1;
        }
        match (self.data.get(self.pos), self.data.get(self.pos + 1)) {
            (Some(0xFF), Some(&code)) if is_restart(code) => {
                self.pos += 2;
                Ok(())
            }
            _ => Err(invalid("a restart marker is missing")),
        }
    }
}

/// A code-stream decoder and the standard it reads.
pub(super) struct Decoder {
    pub(super) standard: Standard,
    pub(super) decode: fn(&[u8]) -> Result<Image, StreamError>,
}

/// Decodes a DICOM pixel sequence of code streams (one per frame, in one or more fragments) with
/// `decoder`, to little-endian interleaved samples of `bytes_per_sample` bytes (1, 2 or 4),
/// checking each frame's size and precision against the image attributes.
pub(super) fn decode_frames(
    path: &Path,
    transfer_syntax: &str,
    a: &ImageAttrs,
    offsets: &[u32],
    fragments: &[Vec<u8>],
    decoder: Decoder,
    bytes_per_sample: usize,
) -> Result<Vec<u8>, DicomError> {
    let Decoder { standard, decode } = decoder;
    let fail = |reason: String| DicomError::Decode {
        path: path.to_owned(),
        transfer_syntax: transfer_syntax.to_string(),
        reason,
    };
    let frames = jpeg_frames_of(path, a.frames as usize, offsets, fragments)?;
    let per_frame = a.rows as usize * a.columns as usize * a.samples as usize;
    let mut out = Vec::with_capacity(frames.len() * per_frame * bytes_per_sample);
    for (i, parts) in frames.iter().enumerate() {
        let data = parts.concat();
        let img = decode(&data).map_err(|e| match e {
            StreamError::Unsupported(_) => DicomError::Unsupported {
                path: path.to_owned(),
                reason: format!("frame {i}: {}", e.message(standard)),
            },
            e => fail(format!("frame {i}: {}", e.message(standard))),
        })?;
        if (img.height, img.width, img.components) != (a.rows, a.columns, a.samples) {
            return Err(fail(format!(
                "frame {i}: the code stream is {}x{}x{}, the image attributes say {}x{}x{}",
                img.height, img.width, img.components, a.rows, a.columns, a.samples
            )));
        }
        if img.precision as usize > 8 * bytes_per_sample {
            return Err(fail(format!(
                "frame {i}: {}-bit samples do not fit BitsAllocated {}",
                img.precision, a.bits_allocated
            )));
        }
        match bytes_per_sample {
            1 => out.extend(img.samples.iter().map(|&v| v as u8)),
            2 => out.extend(img.samples.iter().flat_map(|v| v.to_le_bytes())),
            _ => out.extend(img.samples.iter().flat_map(|&v| (v as u32).to_le_bytes())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_skip_fill_bytes_and_give_segments() {
        // SOI, fill + COM "ab", TEM, EOI.
        let data = [
            0xFF, 0xD8, 0xFF, 0xFF, 0xFE, 0x00, 0x04, b'a', b'b', 0xFF, 0x01, 0xFF, 0xD9,
        ];
        let mut m = Markers::new(&data).unwrap();
        let com = m.next_marker().unwrap();
        assert_eq!((com.code, com.segment), (0xFE, Some(&b"ab"[..])));
        let tem = m.next_marker().unwrap();
        assert_eq!((tem.code, tem.segment), (0x01, None));
        assert_eq!(m.next_marker().unwrap().code, 0xD9);
        assert!(m.at_end());
        assert!(matches!(Markers::new(b"xy"), Err(StreamError::Invalid(_))));
        // A segment longer than the data: truncated, unless read as cut.
        let cut = [0xFF, 0xD8, 0xFF, 0xC1, 0x00, 0x0B, 12, 0];
        let mut m = Markers::new(&cut).unwrap();
        assert!(matches!(
            m.next_marker(),
            Err(StreamError::Truncated("marker segment"))
        ));
        let sof = Markers::new(&cut).unwrap().next_marker_cut().unwrap();
        assert_eq!((sof.code, sof.segment), (0xC1, Some(&[12u8, 0][..])));
    }

    #[test]
    fn scans_end_at_the_standards_markers() {
        // T.81: FF 00 and RST0 are inside the scan; EOI ends it.
        let data = [0xFF, 0xD8, 1, 0xFF, 0x00, 0xFF, 0xD0, 2, 0xFF, 0xD9];
        let mut m = Markers::new(&data).unwrap();
        let bits = m.scan_bits::<ZeroByteStuffing>();
        m.skip_scan(&bits);
        assert_eq!(m.next_marker().unwrap().code, 0xD9);
        assert!(m.at_end());
        // T.87: FF 7F is stuffing, FF D9 (high bit set) ends the scan.
        let data = [0xFF, 0xD8, 0xFF, 0x7F, 3, 0xFF, 0xD9];
        let mut m = Markers::new(&data).unwrap();
        let bits = m.scan_bits::<BitStuffing>();
        m.skip_scan(&bits);
        assert_eq!(m.next_marker().unwrap().code, 0xD9);
        // No marker after the scan: the end of the data.
        let data = [0xFF, 0xD8, 5, 6];
        let mut m = Markers::new(&data).unwrap();
        let bits = m.scan_bits::<ZeroByteStuffing>();
        m.skip_scan(&bits);
        assert!(m.at_end());
    }

    #[test]
    fn zero_byte_stuffing_keeps_ff_and_stops_at_a_marker() {
        let data = [0xFF, 0x00, 0xA5, 0xFF, 0xD9];
        let mut b = BitReader::<ZeroByteStuffing>::new(&data);
        assert_eq!(b.bits(16), 0xFFA5);
        // Then the marker: zeros, counted as overrun once the reader looks past it.
        assert_eq!(b.bits(8), 0);
        assert!(b.overrun() > 0);
    }

    #[test]
    fn bit_stuffing_after_ff_drops_one_bit() {
        // 0xFF, then 0x7F carries 7 bits (its stuffed high 0 is dropped), then 0x80.
        let mut b = BitReader::<BitStuffing>::new(&[0xFF, 0x7F, 0x80]);
        assert_eq!(b.bits(15), 0x7FFF);
        assert!(b.bit());
        assert_eq!(b.bits(7), 0);
        // The cache reads ahead (zeros past the end) by at most 8 bytes: not yet a truncation.
        assert!(b.overrun() <= 8);
        // Unary code: three zeros then a one.
        let mut b = BitReader::<BitStuffing>::new(&[0b0001_0000]);
        assert_eq!(b.zeros(10), Some(3));
        assert_eq!(b.zeros(2), None, "more zeros than allowed");
    }

    #[test]
    fn restart_moves_past_fill_bytes_and_the_marker() {
        let data = [0b1010_0000, 0xFF, 0xFF, 0xD3, 0x5A];
        let mut b = BitReader::<ZeroByteStuffing>::new(&data);
        assert_eq!(b.bits(3), 0b101);
        b.restart().unwrap();
        assert_eq!(b.bits(8), 0x5A);
        let mut b = BitReader::<ZeroByteStuffing>::new(&[0x00, 0x12]);
        b.bits(8);
        assert!(b.restart().is_err());
    }
}
