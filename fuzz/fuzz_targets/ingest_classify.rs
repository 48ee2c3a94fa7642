//! The ingest series classifier (`discus_data::ingest::classify`) on a series of instance headers
//! built from the input: orientations near and far from the three planes, TR/TE/TI from protocol
//! ranges to NaN and infinities, descriptions and Image Types of arbitrary text.
//!
//! Beyond "no panic", it checks the classifier's rules (module documentation of `classify`):
//! - a kind needs a plane and matches it (sagittal kinds on sagittal slices, Axial T2 on axial);
//!   without a plane the series is other whatever its description says;
//! - the basis agrees with the evidence (physics: a contrast from TR/TE/TI; orientation and
//!   description: no timing claim and the description names the contrast);
//! - the description is only a hint: without descriptions, a physics decision stands and no
//!   description-only kind appears;
//! - instance order does not matter (plane vote and timing medians), and the slice plane does not
//!   change when the row cosines are negated;
//! - the description hint does not depend on ASCII case.
#![no_main]

use discus_data::header::InstanceHeader;
use discus_data::ingest::classify::{
    classify_series, scout_instance, scout_series, series_contrast, series_plane, slice_plane,
    Basis, DescriptionHint,
};
use discus_data::ingest::is_dicomdir;
use discus_data::geometry::Plane;
use discus_core::types::SeriesKind;
use discus_fuzz::guard;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// A number from the input: mostly in the ranges scanners write, sometimes any bit pattern.
fn number(u: &mut Unstructured<'_>) -> Result<f64> {
    Ok(match u.int_in_range(0u8..=7)? {
        // Timings in ms (0.25 ms steps up to ~8 s), lengths, field strengths.
        0..=3 => f64::from(u.int_in_range(0u16..=32000)?) / 4.0,
        4 => f64::from(u.arbitrary::<i16>()?) / 64.0,
        5 => *u.choose(&[
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MAX,
            1e-300,
            100.0,
            300.0,
            1000.0,
            1500.0,
            30.0,
            50.0,
        ])?,
        _ => f64::from_bits(u.arbitrary::<u64>()?),
    })
}

/// Image Orientation (Patient): a standard plane tilted by an angle about one axis, or any numbers.
fn orientation(u: &mut Unstructured<'_>) -> Result<[f64; 6]> {
    if u.ratio(1u8, 4)? {
        let mut v = [0.0; 6];
        for x in &mut v {
            *x = number(u)?;
        }
        return Ok(v);
    }
    // Sagittal, coronal, axial (DICOM PS3.3 C.7.6.2.1.1, LPS), tilted by up to +-90 degrees.
    let base: [[f64; 6]; 3] = [
        [0.0, 1.0, 0.0, 0.0, 0.0, -1.0],
        [1.0, 0.0, 0.0, 0.0, 0.0, -1.0],
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
    ];
    let b = *u.choose(&base)?;
    let deg = f64::from(u.int_in_range(-900i16..=900)?) / 10.0;
    let (s, c) = deg.to_radians().sin_cos();
    // Rotate both cosines about the x, y or z axis.
    let axis = u.int_in_range(0u8..=2)?;
    let rot = |v: [f64; 3]| match axis {
        0 => [v[0], c * v[1] - s * v[2], s * v[1] + c * v[2]],
        1 => [c * v[0] + s * v[2], v[1], -s * v[0] + c * v[2]],
        _ => [c * v[0] - s * v[1], s * v[0] + c * v[1], v[2]],
    };
    let r = rot([b[0], b[1], b[2]]);
    let k = rot([b[3], b[4], b[5]]);
    Ok([r[0], r[1], r[2], k[0], k[1], k[2]])
}

/// A short text: a vendor-like description or Image Type, or any UTF-8 string.
fn text(u: &mut Unstructured<'_>) -> Result<Option<String>> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => None,
        1 => Some(u.arbitrary::<String>()?),
        _ => {
            const WORDS: [&str; 24] = [
                "SAG", "AX", "AXIAL", "TRA", "_tra", "COR", "T1", "T2", "STIR", "tirm", "t2_tirm",
                "TSE", "FSE", "LOC", "SCOUT", "SURVEY", "PILOT", "3PLANE", "3-PLANE", "LOCALIZER",
                "ORIGINAL\\PRIMARY\\M\\ND", "DERIVED", "FLAIR", "PD",
            ];
            let n = u.int_in_range(1u8..=4)?;
            let mut s = String::new();
            for _ in 0..n {
                s.push_str(u.choose(&WORDS)?);
                s.push(*u.choose(&[' ', '_', '\\', '-'])?);
            }
            Some(s)
        }
    })
}

fn optional(u: &mut Unstructured<'_>) -> Result<Option<f64>> {
    Ok(if u.ratio(1u8, 6)? { None } else { Some(number(u)?) })
}

fn header(u: &mut Unstructured<'_>) -> Result<InstanceHeader> {
    Ok(InstanceHeader {
        image_orientation_patient: if u.ratio(1u8, 8)? {
            None
        } else {
            Some(orientation(u)?)
        },
        repetition_time: optional(u)?,
        echo_time: optional(u)?,
        inversion_time: if u.ratio(1u8, 2)? { None } else { Some(number(u)?) },
        series_description: text(u)?,
        image_type: text(u)?,
        modality: Some("MR".into()),
        ..InstanceHeader::default()
    })
}

/// The series, as the classifier takes it: a few instances, often copies of one protocol.
fn series(u: &mut Unstructured<'_>) -> Result<Vec<InstanceHeader>> {
    let n = u.int_in_range(0u8..=24)?;
    let mut out: Vec<InstanceHeader> = Vec::with_capacity(n.into());
    for _ in 0..n {
        let h = match out.last() {
            // Most instances repeat the protocol, some change a field.
            Some(prev) if u.ratio(2u8, 3)? => {
                let mut h = prev.clone();
                if u.ratio(1u8, 4)? {
                    h.image_orientation_patient = Some(orientation(u)?);
                }
                h
            }
            _ => header(u)?,
        };
        out.push(h);
    }
    Ok(out)
}

fn check(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let hs = series(&mut u)?;
    let refs: Vec<&InstanceHeader> = hs.iter().collect();
    let c = guard("classify_series", || classify_series(&refs));

    assert!(!c.reason.is_empty(), "empty reason");
    assert_eq!(c.kind.is_none(), c.basis == Basis::Other, "kind {c:?}");
    if let Some(k) = c.kind {
        let want = if k.is_sagittal() {
            Plane::Sagittal
        } else {
            Plane::Axial
        };
        assert_eq!(c.plane, Some(want), "kind {k} on another plane: {c:?}");
    }
    if c.plane.is_none() {
        assert_eq!(c.kind, None, "a kind without a plane: {c:?}");
    }
    match c.basis {
        Basis::Physics => assert!(c.contrast.is_some(), "physics without contrast: {c:?}"),
        Basis::OrientationAndDescription => {
            assert!(c.contrast.is_none(), "{c:?}");
            assert!(c.hint.contrast.is_some(), "{c:?}");
        }
        Basis::Other => {}
    }
    assert_eq!(series_plane(&refs), c.plane);
    let (timing, contrast) = series_contrast(&refs);
    assert_eq!(contrast, c.contrast);
    assert_eq!(timing.map(|t| t.map(f64::to_bits)), c.timing.map(|t| t.map(f64::to_bits)));

    // Order does not matter for the evidence (and so for the kind, all descriptions being equal).
    let rev: Vec<&InstanceHeader> = hs.iter().rev().collect();
    let r = classify_series(&rev);
    assert_eq!(r.plane, c.plane, "plane depends on order");
    assert_eq!(r.contrast, c.contrast, "contrast depends on order");
    assert_eq!(
        r.timing.map(|t| t.map(f64::to_bits)),
        c.timing.map(|t| t.map(f64::to_bits)),
        "timing depends on order"
    );
    let same_description = hs
        .iter()
        .filter_map(|h| h.series_description.as_deref())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        <= 1;
    if same_description {
        assert_eq!(r.kind, c.kind, "kind depends on order");
    }

    // The description is a hint: without it a physics decision stands, and nothing else decides.
    let bare: Vec<InstanceHeader> = hs
        .iter()
        .map(|h| InstanceHeader {
            series_description: None,
            ..h.clone()
        })
        .collect();
    let b = classify_series(&bare.iter().collect::<Vec<_>>());
    assert_ne!(b.basis, Basis::OrientationAndDescription, "{b:?}");
    assert!(!b.description_disagrees, "{b:?}");
    if c.basis == Basis::Physics {
        assert_eq!(b.kind, c.kind, "the description changed a physics decision");
    }

    for h in &hs {
        let _ = scout_instance(h);
        if let Some(iop) = h.image_orientation_patient {
            let p = slice_plane(&iop);
            let neg = [-iop[0], -iop[1], -iop[2], iop[3], iop[4], iop[5]];
            assert_eq!(slice_plane(&neg), p, "{iop:?}");
        }
        if let Some(d) = &h.series_description {
            let hint = DescriptionHint::parse(d);
            assert_eq!(DescriptionHint::parse(&d.to_ascii_lowercase()), hint, "{d:?}");
            assert_eq!(DescriptionHint::parse(&d.to_ascii_uppercase()), hint, "{d:?}");
        }
    }
    if let Some(why) = scout_series(&refs) {
        assert!(!why.is_empty());
        assert!(hs.len() >= 2, "one instance is a multi-plane localiser");
    }
    let _: Option<SeriesKind> = c.kind;
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = check(data);
    // The DICOMDIR test ingest applies to every file (here one not named DICOMDIR, so the bytes
    // decide).
    let _ = guard("is_dicomdir", || is_dicomdir("IM000001", data));
});
