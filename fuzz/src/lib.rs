//! Helpers shared by the discus fuzz targets (see `README.md`).
//!
//! - [`guard`]: runs one library call on a fuzz input. discus catches panics that dicom-rs and the
//!   codecs raise on corrupt data and turns them into errors (by design, see
//!   `discus_data::dicom`), so a panic is a finding only when it *escapes* the library call: then
//!   its message and place are printed and the process aborts (libFuzzer records the input).
//!   Panics the library caught are logged once per source location, so the log shows which
//!   dependency paths panic.
//! - [`codec_file`]: a small DICOM file around one compressed fragment, so the codec targets
//!   spend their time inside the codecs instead of in the DICOM parser.

use std::cell::RefCell;
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, Once};

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}
static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
static HOOK: Once = Once::new();

fn install_hook() {
    HOOK.call_once(|| {
        // Replaces libfuzzer-sys's hook (which aborts at once, before the library can catch).
        std::panic::set_hook(Box::new(|info| {
            let place = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_else(|| "unknown place".into());
            let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "(non-string panic payload)".into()
            };
            let text = format!("panicked at {place}: {msg}");
            let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
            if seen.get_or_insert_with(HashSet::new).insert(place) {
                eprintln!("discus-fuzz: {text} (first panic at this place; caught unless reported as ESCAPED below)");
            }
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
        }));
    });
}

/// Runs `f` (one library call on a fuzz input). A panic escaping it prints `ESCAPED` with the panic
/// message and aborts the process, which libFuzzer reports as a crash.
pub fn guard<T>(what: &str, f: impl FnOnce() -> T) -> T {
    install_hook();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => {
            let last = LAST_PANIC.with(|p| p.borrow_mut().take());
            eprintln!(
                "discus-fuzz: ESCAPED from {what}: {}",
                last.as_deref().unwrap_or("(no message)")
            );
            std::process::abort();
        }
    }
}

/// A compressed transfer syntax the codec target builds files for.
#[derive(Debug, Clone, Copy)]
pub struct Codec {
    /// Transfer syntax UID.
    pub uid: &'static str,
    /// Short name (the corpus seeds are named by it).
    pub name: &'static str,
}

/// The compressed transfer syntaxes: selector byte `% CODECS.len()` picks one.
pub const CODECS: [Codec; 9] = [
    Codec {
        uid: "1.2.840.10008.1.2.5",
        name: "rle",
    },
    Codec {
        uid: "1.2.840.10008.1.2.4.50",
        name: "jpeg-baseline",
    },
    Codec {
        uid: "1.2.840.10008.1.2.4.51",
        name: "jpeg-extended",
    },
    Codec {
        uid: "1.2.840.10008.1.2.4.57",
        name: "jpeg-lossless",
    },
    Codec {
        uid: "1.2.840.10008.1.2.4.70",
        name: "jpeg-lossless-sv1",
    },
    Codec {
        uid: "1.2.840.10008.1.2.4.80",
        name: "jpeg-ls-lossless",
    },
    Codec {
        uid: "1.2.840.10008.1.2.4.81",
        name: "jpeg-ls-near",
    },
    Codec {
        uid: "1.2.840.10008.1.2.4.90",
        name: "j2k-lossless",
    },
    Codec {
        uid: "1.2.840.10008.1.2.4.91",
        name: "j2k",
    },
];

/// The photometric interpretations the codec target writes (header byte 1 `% 8`); 3 samples per
/// pixel for all but the first two and the last.
pub const PHOTOMETRICS: [&str; 8] = [
    "MONOCHROME2",
    "MONOCHROME1",
    "RGB",
    "YBR_FULL_422",
    "YBR_FULL",
    "YBR_RCT",
    "YBR_ICT",
    "PALETTE COLOR",
];

/// Length of the header that [`CodecHeader::from_bytes`] reads.
pub const HEADER_LEN: usize = 8;

/// The image attributes the codec target writes, decoded from the first [`HEADER_LEN`] input
/// bytes: `[codec, photometric, bits, bits stored below bits allocated, rows (u16 LE), columns
/// (u16 LE)]`. `bits & 3`: 8, 16, 32 or 8 bits allocated; `bits & 0x80`: signed. Rows and columns
/// are `1 + value % 1024`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecHeader {
    /// Index into [`CODECS`].
    pub codec: usize,
    /// Index into [`PHOTOMETRICS`].
    pub photometric: usize,
    /// Rows (1..=1024).
    pub rows: u16,
    /// Columns (1..=1024).
    pub columns: u16,
    /// Bits allocated (8, 16 or 32).
    pub bits_allocated: u16,
    /// Bits stored (1..=bits allocated).
    pub bits_stored: u16,
    /// Pixel representation (0 unsigned, 1 signed).
    pub pixel_representation: u16,
}

impl CodecHeader {
    /// Decodes the header bytes.
    pub fn from_bytes(h: &[u8; HEADER_LEN]) -> CodecHeader {
        let bits_allocated = [8, 16, 32, 8][(h[2] & 3) as usize];
        let below = h[3] as u16 % bits_allocated;
        CodecHeader {
            codec: h[0] as usize % CODECS.len(),
            photometric: h[1] as usize % PHOTOMETRICS.len(),
            rows: 1 + u16::from_le_bytes([h[4], h[5]]) % 1024,
            columns: 1 + u16::from_le_bytes([h[6], h[7]]) % 1024,
            bits_allocated,
            bits_stored: bits_allocated - below,
            pixel_representation: (h[2] >> 7) as u16,
        }
    }

    /// The header bytes that decode to `self` (inverse of [`CodecHeader::from_bytes`]).
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let bits = match self.bits_allocated {
            16 => 1,
            32 => 2,
            _ => 0,
        } | ((self.pixel_representation as u8) << 7);
        let r = (self.rows - 1).to_le_bytes();
        let c = (self.columns - 1).to_le_bytes();
        [
            self.codec as u8,
            self.photometric as u8,
            bits,
            (self.bits_allocated - self.bits_stored) as u8,
            r[0],
            r[1],
            c[0],
            c[1],
        ]
    }

    /// Samples per pixel for the photometric interpretation.
    pub fn samples(&self) -> u16 {
        match PHOTOMETRICS[self.photometric] {
            "MONOCHROME1" | "MONOCHROME2" | "PALETTE COLOR" => 1,
            _ => 3,
        }
    }
}

fn element(out: &mut Vec<u8>, group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) {
    let mut v = value.to_vec();
    if v.len() % 2 == 1 {
        v.push(if vr == b"UI" || vr == b"OB" { 0 } else { b' ' });
    }
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&elem.to_le_bytes());
    out.extend_from_slice(vr);
    if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(v.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(&v);
}

/// A DICOM file (preamble, file meta group, explicit VR little endian data set) holding one frame of
/// encapsulated pixel data: an empty Basic Offset Table and `fragment` as the only fragment.
pub fn codec_file(h: &CodecHeader, fragment: &[u8]) -> Vec<u8> {
    const SOP_CLASS: &[u8] = b"1.2.840.10008.5.1.4.1.1.4";
    const SOP_INSTANCE: &[u8] = b"1.2.826.0.1.3680043.2.1143.1";
    let uid = CODECS[h.codec].uid.as_bytes();
    let mut meta = Vec::new();
    element(&mut meta, 0x0002, 0x0001, b"OB", &[0, 1]);
    element(&mut meta, 0x0002, 0x0002, b"UI", SOP_CLASS);
    element(&mut meta, 0x0002, 0x0003, b"UI", SOP_INSTANCE);
    element(&mut meta, 0x0002, 0x0010, b"UI", uid);
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    element(
        &mut out,
        0x0002,
        0x0000,
        b"UL",
        &(meta.len() as u32).to_le_bytes(),
    );
    out.extend_from_slice(&meta);
    element(&mut out, 0x0008, 0x0016, b"UI", SOP_CLASS);
    element(&mut out, 0x0008, 0x0018, b"UI", SOP_INSTANCE);
    element(&mut out, 0x0008, 0x0060, b"CS", b"MR");
    element(&mut out, 0x0028, 0x0002, b"US", &h.samples().to_le_bytes());
    element(
        &mut out,
        0x0028,
        0x0004,
        b"CS",
        PHOTOMETRICS[h.photometric].as_bytes(),
    );
    if h.samples() > 1 {
        element(&mut out, 0x0028, 0x0006, b"US", &0u16.to_le_bytes());
    }
    element(&mut out, 0x0028, 0x0008, b"IS", b"1");
    element(&mut out, 0x0028, 0x0010, b"US", &h.rows.to_le_bytes());
    element(&mut out, 0x0028, 0x0011, b"US", &h.columns.to_le_bytes());
    element(
        &mut out,
        0x0028,
        0x0100,
        b"US",
        &h.bits_allocated.to_le_bytes(),
    );
    element(
        &mut out,
        0x0028,
        0x0101,
        b"US",
        &h.bits_stored.to_le_bytes(),
    );
    element(
        &mut out,
        0x0028,
        0x0102,
        b"US",
        &(h.bits_stored - 1).to_le_bytes(),
    );
    element(
        &mut out,
        0x0028,
        0x0103,
        b"US",
        &h.pixel_representation.to_le_bytes(),
    );
    // Pixel Data, OB, undefined length: Basic Offset Table item (empty), one fragment, delimiter.
    out.extend_from_slice(&[
        0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
    let padded = fragment.len() + fragment.len() % 2;
    out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
    out.extend_from_slice(&(padded as u32).to_le_bytes());
    out.extend_from_slice(fragment);
    if fragment.len() % 2 == 1 {
        out.push(0);
    }
    out.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    out
}
