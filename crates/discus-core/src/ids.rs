//! Study and series ids derived from DICOM UIDs.
//!
//! The LumbarDISC layout names folders by numeric ids (`StudyId(u64)`, `SeriesId(u64)`); a hospital's
//! files carry Study/Series Instance UIDs instead. [`id_from_uid`] turns a UID into an id, the same
//! way on every machine and in every run (`discus ingest` and `discus deid` both use it):
//!
//! 1. Padding (spaces, NULs) is trimmed from both ends.
//! 2. A UID that is a plain decimal number from 1 to 2^53 - 1 without a leading zero (as in the
//!    LumbarDISC release, whose Study Instance UID *is* the study id) is its own id, so a LumbarDISC
//!    export ingested again keeps its ids.
//! 3. Any other UID: the first 8 bytes of SHA-256 of its ASCII text, read big-endian, shifted right
//!    by 11 bits, i.e. the top 53 bits of the hash. Ids stay below 2^53, so they are exact in
//!    JavaScript/JSON numbers and in `f64`.
//!
//! With 53 bits, two different UIDs share an id with probability about n²/2^54 (n = 10^5 series:
//! 5·10^-7). That is small but not zero, so nothing relies on it: [`IdRegistry`] remembers which UID
//! each id came from and reports a [`IdCollision`] instead of merging two studies or series.
//!
//! ```
//! use discus_core::ids::{id_from_uid, IdRegistry};
//! assert_eq!(id_from_uid("4003253"), 4003253);                 // a LumbarDISC UID: kept
//! assert_eq!(id_from_uid("1.3.6.1.4.1.9328.50.4.0001"), 3327833925872771); // hashed
//! let mut r = IdRegistry::default();
//! assert_eq!(r.insert("1.2.3").unwrap(), id_from_uid("1.2.3"));
//! assert_eq!(r.insert("1.2.3").unwrap(), id_from_uid("1.2.3")); // the same UID again: fine
//! ```

use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Ids are below this bound (2^53).
pub const ID_BOUND: u64 = 1 << 53;

/// The id of a Study or Series Instance UID (see the module documentation for the rule).
pub fn id_from_uid(uid: &str) -> u64 {
    let uid = uid.trim_matches(|c: char| c == '\0' || c == ' ');
    if let Some(v) = plain_decimal(uid) {
        return v;
    }
    let digest = Sha256::digest(uid.as_bytes());
    let first: [u8; 8] = digest[..8].try_into().expect("SHA-256 has 32 bytes");
    u64::from_be_bytes(first) >> 11
}

/// `Some(value)` when `uid` is 1-16 decimal digits, no leading zero, below [`ID_BOUND`].
fn plain_decimal(uid: &str) -> Option<u64> {
    let ok = !uid.is_empty()
        && uid.len() <= 16
        && uid.bytes().all(|b| b.is_ascii_digit())
        && !uid.starts_with('0');
    ok.then(|| uid.parse::<u64>().ok())
        .flatten()
        .filter(|&v| v < ID_BOUND)
}

/// Two different UIDs that derive the same id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("id {id} derives from two different UIDs ({first} and {second}): the second is not used")]
pub struct IdCollision {
    /// The shared id.
    pub id: u64,
    /// The UID that holds the id.
    pub first: String,
    /// The UID that was refused.
    pub second: String,
}

/// Which UID each id came from; refuses a second UID for the same id.
#[derive(Debug, Clone, Default)]
pub struct IdRegistry {
    by_id: HashMap<u64, String>,
}

impl IdRegistry {
    /// The id of `uid`, remembered; an [`IdCollision`] when another UID already holds that id.
    pub fn insert(&mut self, uid: &str) -> Result<u64, IdCollision> {
        let id = id_from_uid(uid);
        self.insert_as(uid, id)
    }

    /// Registers `uid` under a given `id` (for example one read back from an earlier run's map);
    /// an [`IdCollision`] when another UID already holds it.
    pub fn insert_as(&mut self, uid: &str, id: u64) -> Result<u64, IdCollision> {
        let uid = uid.trim_matches(|c: char| c == '\0' || c == ' ');
        match self.by_id.get(&id) {
            Some(first) if first != uid => Err(IdCollision {
                id,
                first: first.clone(),
                second: uid.to_string(),
            }),
            Some(_) => Ok(id),
            None => {
                self.by_id.insert(id, uid.to_string());
                Ok(id)
            }
        }
    }

    /// The UID that holds `id`, if any.
    pub fn uid_of(&self, id: u64) -> Option<&str> {
        self.by_id.get(&id).map(String::as_str)
    }

    /// How many ids are held.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no id is held.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values computed independently with Python's hashlib:
    /// `int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], 'big') >> 11`.
    #[test]
    fn hashed_ids_match_python_hashlib() {
        for (uid, want) in [
            (
                "1.2.840.113619.2.55.3.604688119.969.1268071029.320",
                7376378195505998u64,
            ),
            ("1.3.6.1.4.1.9328.50.4.0001", 3327833925872771),
            ("2.25.1", 2592880459274735),
            ("", 8011147086339971),
        ] {
            assert_eq!(id_from_uid(uid), want, "{uid}");
            assert!(id_from_uid(uid) < ID_BOUND);
        }
        // padding is not part of the UID
        assert_eq!(id_from_uid("2.25.1\0"), 2592880459274735);
        assert_eq!(id_from_uid(" 2.25.1 "), 2592880459274735);
    }

    #[test]
    fn plain_decimal_uids_are_their_own_ids() {
        assert_eq!(id_from_uid("4003253"), 4003253);
        assert_eq!(id_from_uid("4294540297"), 4294540297);
        assert_eq!(id_from_uid("9007199254740991"), (1 << 53) - 1);
        // not plain: leading zero, 2^53 and above, dots: hashed (and so different)
        for uid in [
            "04003253",
            "9007199254740992",
            "18446744073709551615",
            "1.2",
        ] {
            let v = id_from_uid(uid);
            assert!(v < ID_BOUND);
            assert_ne!(Some(v), uid.parse::<u64>().ok(), "{uid}");
        }
    }

    #[test]
    fn registry_reports_collisions() {
        let mut r = IdRegistry::default();
        assert_eq!(r.insert("1.2.3").unwrap(), id_from_uid("1.2.3"));
        // a forced collision: another UID claiming the same id
        let e = r.insert_as("9.9.9", id_from_uid("1.2.3")).unwrap_err();
        assert_eq!(e.first, "1.2.3");
        assert_eq!(e.second, "9.9.9");
        assert_eq!(r.uid_of(id_from_uid("1.2.3")), Some("1.2.3"));
        assert_eq!(r.len(), 1);
    }
}
