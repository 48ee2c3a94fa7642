//! The site's secret key and everything derived from it: mapped UIDs, per-patient date offsets,
//! patient pseudonyms and resume markers. All are HMAC-SHA256 under the key, so the same input gives
//! the same output across files and runs with the same key, and nobody without the key can link an
//! output back to its input.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Read;
use std::path::Path;

type HmacSha256 = Hmac<Sha256>;

/// Key file problems.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The key file does not hold 64 hexadecimal digits on one line.
    #[error("key file {path}: expected 64 hexadecimal digits (32 bytes) on one line")]
    Format {
        /// The key file.
        path: String,
    },
}

/// A 32-byte secret key.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Shortest and longest backward date shift, in days (1 to 10 years).
pub const MIN_SHIFT_DAYS: i64 = 366;
/// Longest backward date shift, in days (10 years).
pub const MAX_SHIFT_DAYS: i64 = 3652;

impl Key {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }

    /// A fresh key from the operating system's random source (/dev/urandom).
    pub fn random() -> std::io::Result<Key> {
        let mut b = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
        Ok(Key(b))
    }

    /// Reads the key file, or creates it (random key, mode 0600) when it does not exist.
    /// Returns the key and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Key, bool), KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(io)?;
            return Key::from_hex(text.trim())
                .map(|k| (k, false))
                .ok_or(KeyError::Format {
                    path: path.display().to_string(),
                });
        }
        let key = Key::random().map_err(io)?;
        discus_core::fsio::atomic_write(path, format!("{}\n", key.to_hex()).as_bytes())
            .map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        Ok((key, true))
    }

    /// Parses 64 hexadecimal digits (either case); `None` otherwise.
    pub fn from_hex(s: &str) -> Option<Key> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut b = [0u8; 32];
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Key(b))
    }

    /// The key as 64 lower-case hexadecimal digits, as stored in the key file.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// HMAC-SHA256 of `domain`, a zero byte, then `data`.
    pub fn mac(&self, domain: &str, data: &[u8]) -> [u8; 32] {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(domain.as_bytes());
        m.update(&[0]);
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// The replacement for a UID: `2.25.` and the decimal value of the first 128 bits of
    /// HMAC-SHA256(key, uid). Leading/trailing spaces and NULs are ignored.
    pub fn map_uid(&self, uid: &str) -> String {
        let uid = uid.trim_matches(|c: char| c == '\0' || c == ' ');
        let h = self.mac("uid", uid.as_bytes());
        let v = u128::from_be_bytes(h[..16].try_into().unwrap());
        format!("2.25.{v}")
    }

    /// The per-patient date shift in days (negative: dates move back by 1 to 10 years).
    pub fn date_offset_days(&self, patient_key: &str) -> i64 {
        let h = self.mac("date-offset", patient_key.trim().as_bytes());
        let v = u64::from_be_bytes(h[..8].try_into().unwrap());
        let span = (MAX_SHIFT_DAYS - MIN_SHIFT_DAYS + 1) as u64;
        -(MIN_SHIFT_DAYS + (v % span) as i64)
    }

    /// The pseudonym that replaces a patient id (and name): `DEID-` and 16 hexadecimal digits.
    pub fn pseudonym(&self, patient_key: &str) -> String {
        let h = self.mac("patient", patient_key.trim().as_bytes());
        let hex: String = h[..8].iter().map(|b| format!("{b:02X}")).collect();
        format!("DEID-{hex}")
    }

    /// The name of the resume marker for an input path (relative to the input root).
    pub fn marker_name(&self, rel_input: &str) -> String {
        let h = self.mac("input-path", rel_input.as_bytes());
        h[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the civil-from-days algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Shifts a DICOM date `YYYYMMDD` (or legacy `YYYY.MM.DD`) by `days`; `None` if it is not a valid date.
pub fn shift_date(da: &str, days: i64) -> Option<String> {
    let digits: String = da.chars().filter(|c| *c != '.').collect();
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i64 = digits[0..4].parse().ok()?;
    let m: u32 = digits[4..6].parse().ok()?;
    let d: u32 = digits[6..8].parse().ok()?;
    if !(1..=12).contains(&m) || d == 0 || d > 31 {
        return None;
    }
    let n = days_from_civil(y, m, d);
    if civil_from_days(n) != (y, m, d) {
        return None; // e.g. 31 February
    }
    let (y2, m2, d2) = civil_from_days(n + days);
    if !(0..=9999).contains(&y2) {
        return None;
    }
    Some(format!("{y2:04}{m2:02}{d2:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_matches_known_day_counts() {
        // 2000-03-01 is day 11017 since the Unix epoch; 1970-01-01 is day 0 (POSIX time / 86400).
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        assert_eq!(days_from_civil(2024, 2, 29), 19782);
        assert_eq!(shift_date("20240301", -1).as_deref(), Some("20240229"));
        assert_eq!(shift_date("20230301", -1).as_deref(), Some("20230228"));
        assert_eq!(shift_date("2023.03.01", 365).as_deref(), Some("20240229"));
        assert_eq!(shift_date("20230231", 1), None);
        assert_eq!(shift_date("2023", 1), None);
    }

    #[test]
    fn uids_are_keyed_deterministic_and_valid() {
        let k1 = Key::from_bytes([7; 32]);
        let k2 = Key::from_bytes([8; 32]);
        let u = "1.2.840.113619.2.55.3.604688119.969.1268071029.320";
        assert_eq!(k1.map_uid(u), k1.map_uid(u));
        assert_eq!(k1.map_uid(u), k1.map_uid(&format!("{u}\0")));
        assert_ne!(k1.map_uid(u), k2.map_uid(u));
        let m = k1.map_uid(u);
        assert!(m.starts_with("2.25.") && m.len() <= 64, "{m}");
        let digits = &m[5..];
        assert!(digits.bytes().all(|b| b.is_ascii_digit()));
        assert!(digits == "0" || !digits.starts_with('0'));
    }

    #[test]
    fn date_offsets_are_in_range_and_per_patient() {
        let k = Key::from_bytes([1; 32]);
        let offs: Vec<i64> = (0..200)
            .map(|i| k.date_offset_days(&format!("P{i}")))
            .collect();
        assert!(offs
            .iter()
            .all(|o| (-MAX_SHIFT_DAYS..=-MIN_SHIFT_DAYS).contains(o)));
        assert_eq!(k.date_offset_days("P1"), offs[1]);
        let distinct: std::collections::HashSet<_> = offs.iter().collect();
        assert!(distinct.len() > 150);
    }

    #[test]
    fn key_file_is_created_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("site.key");
        let (k1, created) = Key::load_or_create(&p).unwrap();
        assert!(created);
        let (k2, created) = Key::load_or_create(&p).unwrap();
        assert!(!created);
        assert_eq!(k1.to_hex(), k2.to_hex());
        std::fs::write(&p, "zz").unwrap();
        assert!(matches!(
            Key::load_or_create(&p),
            Err(KeyError::Format { .. })
        ));
    }
}
