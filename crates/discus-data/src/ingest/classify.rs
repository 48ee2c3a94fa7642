//! The series classifier: Sagittal T1, Sagittal T2/STIR, Axial T2 or other, from the slice
//! orientation and the sequence timing, with the Series Description as a hint only.
//!
//! Reusable on its own (the PACS receiver will call it on the instances of a series as they
//! arrive): [`classify_series`] takes the headers of one series, [`scout_instance`] and
//! [`scout_series`] tell localisers apart.
//!
//! # Rules
//!
//! **Plane** ([`slice_plane`]). The slice normal is the cross product of the row and column
//! direction cosines of Image Orientation (Patient) (0020,0037), normalised. Its largest component
//! names the plane (x: sagittal, y: coronal, z: axial), provided the normal is within 45° of that
//! axis (the component is at least cos 45° ≈ 0.707): per-level axial stacks tilted along a disc
//! (up to ~40° at L5/S1) stay axial, a double-oblique slice is no plane. A series' plane is the
//! plane of most of its instances; instances without a usable orientation do not vote.
//!
//! **Contrast** ([`series_contrast`]). The medians over the series of Repetition Time (TR),
//! Echo Time (TE) and Inversion Time (TI), in ms, go through the validator's [`infer_contrast`]
//! rule: STIR when TI is 100-300 ms (fat nulling: ~150 ms at 1.5 T, ~220-250 ms at 3 T); T1 when
//! TR < 1000 ms and TE < 30 ms and no inversion; T2 when TR >= 1500 ms and TE >= 50 ms. Anything else (proton density, T1 FLAIR with TI ~800 ms,
//! missing values) makes no claim. These are the spec's protocol ranges (anatomy-mr.md 5b: Sagittal
//! T1 TR 400-800 / TE 8-14; T2 TR 3000-5000 / TE 90-110; STIR TE 40-60, TI 150 at 1.5 T and 210-230
//! at 3 T).
//!
//! **Kind.** Sagittal + T1 is `Sagittal T1`; Sagittal + T2 or STIR is `Sagittal T2/STIR`;
//! Axial + T2 is `Axial T2`. Any other known combination (axial T1, axial STIR, coronal anything)
//! is other. When the plane is known but the timing makes no claim, the description may supply the
//! contrast (`T1`, `T2`, `STIR`/`TIRM`) provided it names no plane or the same plane as the
//! geometry: two pieces of evidence, never the description alone. Without a usable orientation a
//! series is other whatever its description says. When the physics decide and the description says
//! something else, the physics win and [`Classification::description_disagrees`] says so.
//!
//! **Description hint** ([`DescriptionHint::parse`]). Upper-cased: a plane from `SAG`, `AX`/`AXIAL`/
//! `TRA` (a word), `COR`; a contrast from `STIR` or `TIRM` (checked first: Siemens calls STIR
//! `t2_tirm`), else `T1`, else `T2`; a localiser from `LOC`, `SCOUT`, `SURVEY`, `PILOT`, `3PLANE`,
//! `3-PLANE`, `LOCALIZER`/`LOCALISER`.
//!
//! **Scouts.** An instance whose Image Type (0008,0008) holds `LOCALIZER` is a scout
//! ([`scout_instance`]). A series whose instances fall in two or more planes with at most
//! [`SCOUT_MAX_PER_PLANE`] slices in each (the classic three-plane localiser) is a scout series
//! ([`scout_series`]).

use crate::geometry::Plane;
use crate::header::InstanceHeader;
use crate::validate::{infer_contrast, Contrast};
use discus_core::types::SeriesKind;
use serde::{Deserialize, Serialize};

/// A slice normal must be within this angle (degrees) of an axis to name a plane.
pub const MAX_OBLIQUE_DEG: f64 = 45.0;

/// A series spanning several planes with at most this many slices in each is a localiser.
pub const SCOUT_MAX_PER_PLANE: usize = 5;

/// The plane of one slice from its Image Orientation (Patient) (row cosines, then column cosines);
/// `None` when the cosines are degenerate or the normal is more than [`MAX_OBLIQUE_DEG`] from every
/// axis.
pub fn slice_plane(iop: &[f64; 6]) -> Option<Plane> {
    let r = [iop[0], iop[1], iop[2]];
    let c = [iop[3], iop[4], iop[5]];
    let n = [
        r[1] * c[2] - r[2] * c[1],
        r[2] * c[0] - r[0] * c[2],
        r[0] * c[1] - r[1] * c[0],
    ];
    let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
    if !len.is_finite() || len < 0.5 {
        return None;
    }
    let a = n.map(|v| v.abs() / len);
    let max = a[0].max(a[1]).max(a[2]);
    if max < MAX_OBLIQUE_DEG.to_radians().cos() - 1e-9 {
        return None;
    }
    Some(Plane::of_normal(a))
}

/// What a Series Description suggests (a hint: never the only evidence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DescriptionHint {
    /// The plane the description names, if any.
    pub plane: Option<Plane>,
    /// The contrast the description names, if any.
    pub contrast: Option<Contrast>,
    /// Whether the description names a localiser (scout, survey, 3-plane).
    pub localizer: bool,
}

impl DescriptionHint {
    /// Reads a Series Description (see the module documentation for the words).
    pub fn parse(description: &str) -> DescriptionHint {
        let up = description.to_ascii_uppercase();
        let words: Vec<&str> = up
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let has_word = |w: &str| words.contains(&w);
        let plane = if up.contains("SAG") {
            Some(Plane::Sagittal)
        } else if has_word("AX") || up.contains("AXIAL") || has_word("TRA") || up.contains("_TRA") {
            Some(Plane::Axial)
        } else if up.contains("COR") {
            Some(Plane::Coronal)
        } else {
            None
        };
        let contrast = if up.contains("STIR") || up.contains("TIRM") {
            Some(Contrast::Stir)
        } else if up.contains("T1") {
            Some(Contrast::T1)
        } else if up.contains("T2") {
            Some(Contrast::T2)
        } else {
            None
        };
        let localizer = ["LOC", "SCOUT", "SURVEY", "PILOT", "3PLANE", "3-PLANE"]
            .iter()
            .any(|w| up.contains(w));
        DescriptionHint {
            plane,
            contrast,
            localizer,
        }
    }
}

/// What the kind was decided from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Orientation and TR/TE/TI.
    Physics,
    /// Orientation, with the contrast from the description (TR/TE/TI made no claim).
    OrientationAndDescription,
    /// Not one of the three kinds (or not enough evidence): other.
    Other,
}

/// The classifier's answer for one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// The LumbarDISC kind, or `None` for other.
    pub kind: Option<SeriesKind>,
    /// What decided it.
    pub basis: Basis,
    /// The series plane from the geometry.
    pub plane: Option<Plane>,
    /// The contrast from TR/TE/TI.
    pub contrast: Option<Contrast>,
    /// Median TR, TE, TI (ms) over the series.
    pub timing: [Option<f64>; 3],
    /// What the description suggested.
    pub hint: DescriptionHint,
    /// The description names a plane or contrast that contradicts the decided kind.
    pub description_disagrees: bool,
    /// One line saying why, in words.
    pub reason: String,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The medians of TR, TE and TI over the instances, and the contrast they point to.
pub fn series_contrast(headers: &[&InstanceHeader]) -> ([Option<f64>; 3], Option<Contrast>) {
    let tr = median(headers.iter().filter_map(|h| h.repetition_time).collect());
    let te = median(headers.iter().filter_map(|h| h.echo_time).collect());
    let ti = median(headers.iter().filter_map(|h| h.inversion_time).collect());
    ([tr, te, ti], infer_contrast(tr, te, ti))
}

/// Instances per plane (sagittal, coronal, axial) and instances without a usable plane.
fn plane_counts(headers: &[&InstanceHeader]) -> ([usize; 3], usize) {
    let mut counts = [0usize; 3];
    let mut none = 0;
    for h in headers {
        match h.image_orientation_patient.as_ref().and_then(slice_plane) {
            Some(Plane::Sagittal) => counts[0] += 1,
            Some(Plane::Coronal) => counts[1] += 1,
            Some(Plane::Axial) => counts[2] += 1,
            None => none += 1,
        }
    }
    (counts, none)
}

const PLANES: [Plane; 3] = [Plane::Sagittal, Plane::Coronal, Plane::Axial];

/// The plane of most instances (ties: sagittal, then coronal, then axial).
pub fn series_plane(headers: &[&InstanceHeader]) -> Option<Plane> {
    let (counts, _) = plane_counts(headers);
    let best = (0..3).max_by_key(|&i| (counts[i], 3 - i))?;
    (counts[best] > 0).then_some(PLANES[best])
}

/// Whether one instance is a localiser by its Image Type.
pub fn scout_instance(h: &InstanceHeader) -> bool {
    h.image_type.as_deref().is_some_and(|t| {
        t.to_ascii_uppercase()
            .split('\\')
            .any(|v| v.trim() == "LOCALIZER")
    })
}

/// Why a whole series is a localiser, if it is one: instances in two or more planes with at most
/// [`SCOUT_MAX_PER_PLANE`] in each.
pub fn scout_series(headers: &[&InstanceHeader]) -> Option<String> {
    let (counts, _) = plane_counts(headers);
    let planes = counts.iter().filter(|&&c| c > 0).count();
    if planes >= 2 && counts.iter().all(|&c| c <= SCOUT_MAX_PER_PLANE) {
        Some(format!(
            "{} instances in {planes} planes (sagittal {}, coronal {}, axial {}): a multi-plane localiser",
            headers.len(),
            counts[0],
            counts[1],
            counts[2]
        ))
    } else {
        None
    }
}

fn plane_name(p: Option<Plane>) -> &'static str {
    p.map_or("no plane", Plane::as_str)
}

/// Classifies one series from its instances' headers (see the module documentation).
pub fn classify_series(headers: &[&InstanceHeader]) -> Classification {
    let plane = series_plane(headers);
    let (timing, contrast) = series_contrast(headers);
    let description = headers
        .iter()
        .find_map(|h| h.series_description.as_deref())
        .unwrap_or("");
    let hint = DescriptionHint::parse(description);
    let kind_of = |p: Plane, c: Contrast| match (p, c) {
        (Plane::Sagittal, Contrast::T1) => Some(SeriesKind::SagittalT1),
        (Plane::Sagittal, Contrast::T2 | Contrast::Stir) => Some(SeriesKind::SagittalT2Stir),
        (Plane::Axial, Contrast::T2) => Some(SeriesKind::AxialT2),
        _ => None,
    };
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    let timing_text = format!(
        "TR {} / TE {} / TI {} ms",
        fmt(timing[0]),
        fmt(timing[1]),
        fmt(timing[2])
    );
    let (kind, basis, reason) = match (plane, contrast) {
        (None, _) => (
            None,
            Basis::Other,
            "no usable Image Orientation (Patient): the plane is unknown".to_string(),
        ),
        (Some(p), Some(c)) => match kind_of(p, c) {
            Some(k) => (
                Some(k),
                Basis::Physics,
                format!("{} slices, {timing_text} look {c:?}", p.as_str()),
            ),
            None => (
                None,
                Basis::Other,
                format!(
                    "{} slices with {timing_text} ({c:?}) are none of the three kinds",
                    p.as_str()
                ),
            ),
        },
        (Some(p), None) => {
            let plane_ok = hint.plane.is_none_or(|hp| hp == p);
            match hint.contrast.filter(|_| plane_ok).and_then(|c| kind_of(p, c)) {
                Some(k) => (
                    Some(k),
                    Basis::OrientationAndDescription,
                    format!(
                        "{} slices; {timing_text} make no claim; the description {description:?} names the contrast",
                        p.as_str()
                    ),
                ),
                None => (
                    None,
                    Basis::Other,
                    format!(
                        "{} slices; {timing_text} make no claim and the description {description:?} does not settle it",
                        p.as_str()
                    ),
                ),
            }
        }
    };
    let description_disagrees = match kind {
        Some(k) => {
            let want_plane = if k.is_sagittal() {
                Plane::Sagittal
            } else {
                Plane::Axial
            };
            let plane_clash = hint.plane.is_some_and(|hp| hp != want_plane);
            let contrast_clash = hint.contrast.is_some_and(|hc| {
                !matches!(
                    (k, hc),
                    (SeriesKind::SagittalT1, Contrast::T1)
                        | (SeriesKind::SagittalT2Stir, Contrast::T2 | Contrast::Stir)
                        | (SeriesKind::AxialT2, Contrast::T2)
                )
            });
            plane_clash || contrast_clash
        }
        None => false,
    };
    let reason = if description_disagrees {
        format!(
            "{reason}; the description {description:?} says otherwise ({} {:?}) and is overruled",
            plane_name(hint.plane),
            hint.contrast
        )
    } else {
        reason
    };
    Classification {
        kind,
        basis,
        plane,
        contrast,
        timing,
        hint,
        description_disagrees,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LPS direction cosines of the standard planes (DICOM PS3.3 C.7.6.2.1.1).
    const SAG: [f64; 6] = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0];
    const AX: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    const COR: [f64; 6] = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0];

    fn h(iop: [f64; 6], tr: f64, te: f64, ti: Option<f64>, desc: &str) -> InstanceHeader {
        InstanceHeader {
            image_orientation_patient: Some(iop),
            repetition_time: Some(tr),
            echo_time: Some(te),
            inversion_time: ti,
            series_description: Some(desc.into()),
            ..InstanceHeader::default()
        }
    }

    fn classify(hs: &[InstanceHeader]) -> Classification {
        classify_series(&hs.iter().collect::<Vec<_>>())
    }

    /// An axial slice tilted by `deg` about the left-right axis (as a per-level stack along a disc).
    fn tilted_axial(deg: f64) -> [f64; 6] {
        let (s, c) = deg.to_radians().sin_cos();
        [1.0, 0.0, 0.0, 0.0, c, s]
    }

    #[test]
    fn planes_from_orientation() {
        assert_eq!(slice_plane(&SAG), Some(Plane::Sagittal));
        assert_eq!(slice_plane(&AX), Some(Plane::Axial));
        assert_eq!(slice_plane(&COR), Some(Plane::Coronal));
        assert_eq!(slice_plane(&tilted_axial(35.0)), Some(Plane::Axial));
        assert_eq!(slice_plane(&tilted_axial(-40.0)), Some(Plane::Axial));
        // 45 degrees between axial and coronal is still within the bound; a double oblique
        // (normal (1,1,1)/sqrt 3, 54.7 degrees from every axis) is no plane
        assert!(slice_plane(&tilted_axial(44.0)).is_some());
        let d = 1.0 / 2f64.sqrt();
        let e = 1.0 / 6f64.sqrt();
        assert_eq!(slice_plane(&[d, -d, 0.0, e, e, -2.0 * e]), None);
        assert_eq!(slice_plane(&[0.0; 6]), None);
    }

    /// Protocols from the spec (anatomy-mr.md 5b) and vendors' series descriptions.
    #[test]
    fn spec_protocols_classify() {
        let cases: [(InstanceHeader, Option<SeriesKind>, Basis); 9] = [
            // Sagittal T1 TSE, 1.5 T: TR 400-700, TE 8-14
            (
                h(SAG, 550.0, 11.0, None, "SAG T1"),
                Some(SeriesKind::SagittalT1),
                Basis::Physics,
            ),
            // Sagittal T2 TSE: TR 3207, TE 100 (1.5 T); TR 3500, TE 104 (3 T)
            (
                h(SAG, 3207.0, 100.0, None, "t2_tse_sag_384"),
                Some(SeriesKind::SagittalT2Stir),
                Basis::Physics,
            ),
            // Sagittal STIR: TR 3000-5000, TE 40-60, TI 150 (1.5 T) / 210-230 (3 T)
            (
                h(SAG, 4000.0, 50.0, Some(150.0), "SAG STIR"),
                Some(SeriesKind::SagittalT2Stir),
                Basis::Physics,
            ),
            (
                h(SAG, 4500.0, 45.0, Some(220.0), "t2_tirm_sag"),
                Some(SeriesKind::SagittalT2Stir),
                Basis::Physics,
            ),
            // Axial T2 TSE: TR 3213, TE 100, per-level stack tilted 30 degrees
            (
                h(tilted_axial(30.0), 3213.0, 100.0, None, "AX T2"),
                Some(SeriesKind::AxialT2),
                Basis::Physics,
            ),
            // Axial T1 and coronal T2 are not LumbarDISC kinds
            (h(AX, 500.0, 10.0, None, "AX T1"), None, Basis::Other),
            (h(COR, 3500.0, 100.0, None, "COR T2"), None, Basis::Other),
            // proton density (TR 2000, TE 30): TR/TE make no claim; the description names T2 and
            // agrees with the plane, so orientation + description decide
            (
                h(SAG, 2000.0, 30.0, None, "Sag T2 FSE"),
                Some(SeriesKind::SagittalT2Stir),
                Basis::OrientationAndDescription,
            ),
            // T1 FLAIR (TI 800): no claim from timing, and the description names another plane
            (
                h(SAG, 2000.0, 20.0, Some(800.0), "AX T1 FLAIR"),
                None,
                Basis::Other,
            ),
        ];
        for (hd, kind, basis) in cases {
            let c = classify(std::slice::from_ref(&hd));
            assert_eq!((c.kind, c.basis), (kind, basis), "{hd:?}: {}", c.reason);
        }
    }

    #[test]
    fn description_is_never_the_only_evidence() {
        // no orientation: other, whatever the description says
        let mut hd = h(SAG, 550.0, 11.0, None, "SAG T1");
        hd.image_orientation_patient = None;
        assert_eq!(classify(&[hd]).kind, None);
        // a wrong description is overruled by the physics, and flagged
        let c = classify(&[h(SAG, 550.0, 11.0, None, "AX T2")]);
        assert_eq!(c.kind, Some(SeriesKind::SagittalT1));
        assert!(c.description_disagrees, "{}", c.reason);
        let c = classify(&[h(SAG, 550.0, 11.0, None, "SAG T1")]);
        assert!(!c.description_disagrees);
        // no description and no timing claim: other
        let c = classify(&[h(SAG, 2000.0, 30.0, None, "")]);
        assert_eq!(c.kind, None);
    }

    #[test]
    fn description_hints() {
        let d = DescriptionHint::parse("t2_tirm_sag");
        assert_eq!(
            (d.plane, d.contrast),
            (Some(Plane::Sagittal), Some(Contrast::Stir))
        );
        let d = DescriptionHint::parse("T2 AXIAL FRFSE");
        assert_eq!(
            (d.plane, d.contrast),
            (Some(Plane::Axial), Some(Contrast::T2))
        );
        let d = DescriptionHint::parse("t2_tse_tra");
        assert_eq!(d.plane, Some(Plane::Axial));
        assert!(DescriptionHint::parse("3-plane LOC").localizer);
        assert!(DescriptionHint::parse("Survey").localizer);
        assert!(!DescriptionHint::parse("SAG T1").localizer);
    }

    #[test]
    fn scouts() {
        let mut hd = h(SAG, 8.0, 4.0, None, "LOC");
        assert!(!scout_instance(&hd));
        hd.image_type = Some("ORIGINAL\\PRIMARY\\LOCALIZER".into());
        assert!(scout_instance(&hd));
        // three planes, one slice each: a localiser series
        let three = [
            h(SAG, 8.0, 4.0, None, "LOC"),
            h(COR, 8.0, 4.0, None, "LOC"),
            h(AX, 8.0, 4.0, None, "LOC"),
        ];
        assert!(scout_series(&three.iter().collect::<Vec<_>>()).is_some());
        // a real sagittal series with one stray axial slice is not
        let mut many: Vec<InstanceHeader> = (0..15)
            .map(|_| h(SAG, 550.0, 11.0, None, "SAG T1"))
            .collect();
        many.push(h(AX, 550.0, 11.0, None, "SAG T1"));
        let refs: Vec<&InstanceHeader> = many.iter().collect();
        assert!(scout_series(&refs).is_none());
        assert_eq!(series_plane(&refs), Some(Plane::Sagittal));
    }
}
