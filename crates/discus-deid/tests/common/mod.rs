//! Test fixtures: small MR-like DICOM files with identifiers planted where de-identifiers leak
//! (nested sequences three levels deep, the file meta, private tags, dates inside sequences,
//! free-text descriptions, referenced-instance sequences), built by the tests with fixed values.
#![allow(dead_code)]

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;
use std::path::{Path, PathBuf};

pub const MR_CLASS: &str = "1.2.840.10008.5.1.4.1.1.4";
pub const SC_CLASS: &str = "1.2.840.10008.5.1.4.1.1.7";

/// The shared data folder (DISCUS_SHARED_DIR, default `<workspace>/../shared`).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("DISCUS_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// One planted patient.
#[derive(Debug, Clone)]
pub struct Patient {
    pub name: &'static str,
    pub id: &'static str,
    pub birth_date: &'static str,
    pub other_id: &'static str,
    pub accession: &'static str,
    pub institution: &'static str,
    pub physician: &'static str,
}

pub const P1: Patient = Patient {
    name: "Müller^Hans-Peter^^Dr.",
    id: "MRN00471147",
    birth_date: "19610314",
    other_id: "NHS4857773456",
    accession: "ACC7731902",
    institution: "St. Elsewhere Spine Clinic",
    physician: "Quimby^Roberta",
};

pub const P2: Patient = Patient {
    name: "Okonkwo^Adaeze",
    id: "PID-88213",
    birth_date: "19790922",
    other_id: "OTH99120",
    accession: "ACC5521873",
    institution: "Riverside General Hospital",
    physician: "Farnsworth^Hubert",
};

fn s(tag: Tag, vr: VR, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(v))
}

fn sq(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::new(items, Length::UNDEFINED))
}

/// One instance to build.
#[derive(Debug, Clone)]
pub struct Instance {
    pub patient: Patient,
    pub study_uid: String,
    pub study_date: String,
    pub series_uid: String,
    pub series_number: i32,
    pub sop_uid: String,
    pub for_uid: String,
    pub instance_number: i32,
    /// SOP instance UIDs this instance references (Referenced Image Sequence, Source Image Sequence).
    pub references: Vec<String>,
    pub burned_in: bool,
    pub sop_class: &'static str,
    pub transfer_syntax: &'static str,
}

/// Fixed pseudo-random pixel bytes (xorshift, seeded per instance).
pub fn pixels(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x & 0x0FFF) as u8 // 12-bit-ish MR samples, low byte
        })
        .collect()
}

pub fn build(inst: &Instance) -> dicom_object::DefaultDicomObject {
    let p = &inst.patient;
    let mut o = InMemDicomObject::new_empty();
    o.put(s(Tag(0x0008, 0x0005), VR::CS, "ISO_IR 100"));
    o.put(s(Tag(0x0008, 0x0016), VR::UI, inst.sop_class));
    o.put(s(Tag(0x0008, 0x0018), VR::UI, &inst.sop_uid));
    o.put(s(Tag(0x0008, 0x0020), VR::DA, &inst.study_date));
    o.put(s(Tag(0x0008, 0x0021), VR::DA, &inst.study_date));
    o.put(s(Tag(0x0008, 0x0022), VR::DA, &shift(&inst.study_date, 1)));
    o.put(s(Tag(0x0008, 0x0030), VR::TM, "101530"));
    o.put(s(Tag(0x0008, 0x0050), VR::SH, p.accession));
    o.put(s(Tag(0x0008, 0x0060), VR::CS, "MR"));
    o.put(s(Tag(0x0008, 0x0070), VR::LO, "ACME Medical"));
    o.put(s(Tag(0x0008, 0x0080), VR::LO, p.institution));
    o.put(s(
        Tag(0x0008, 0x0081),
        VR::ST,
        "12 Harbour Road, Springfield",
    ));
    o.put(s(Tag(0x0008, 0x0090), VR::PN, p.physician));
    o.put(s(Tag(0x0008, 0x1010), VR::SH, "MRSCAN-07"));
    let mut desc = format!("Lumbar MRI {} {}", p.name.replace('^', " "), p.id);
    desc.truncate(64);
    o.put(s(Tag(0x0008, 0x1030), VR::LO, &desc));
    o.put(s(Tag(0x0008, 0x103E), VR::LO, "Sag T2"));
    o.put(s(Tag(0x0010, 0x0010), VR::PN, p.name));
    o.put(s(Tag(0x0010, 0x0020), VR::LO, p.id));
    o.put(s(Tag(0x0010, 0x0030), VR::DA, p.birth_date));
    o.put(s(Tag(0x0010, 0x0040), VR::CS, "M"));
    o.put(s(Tag(0x0010, 0x1010), VR::AS, "062Y"));
    o.put(sq(
        Tag(0x0010, 0x1002),
        vec![InMemDicomObject::from_element_iter([s(
            Tag(0x0010, 0x0020),
            VR::LO,
            p.other_id,
        )])],
    ));
    o.put(s(Tag(0x0018, 0x0050), VR::DS, "4"));
    o.put(s(Tag(0x0018, 0x1000), VR::LO, "SN-4471-XK"));
    o.put(s(Tag(0x0020, 0x000D), VR::UI, &inst.study_uid));
    o.put(s(Tag(0x0020, 0x000E), VR::UI, &inst.series_uid));
    o.put(s(Tag(0x0020, 0x0010), VR::SH, "STUDY-4471"));
    o.put(DataElement::new(
        Tag(0x0020, 0x0011),
        VR::IS,
        PrimitiveValue::from(inst.series_number.to_string()),
    ));
    o.put(DataElement::new(
        Tag(0x0020, 0x0013),
        VR::IS,
        PrimitiveValue::from(inst.instance_number.to_string()),
    ));
    o.put(s(Tag(0x0020, 0x0052), VR::UI, &inst.for_uid));
    o.put(s(
        Tag(0x0020, 0x4000),
        VR::LT,
        &format!(
            "Patient {} seen by {} on {}",
            p.name, p.physician, inst.study_date
        ),
    ));
    // referenced-instance sequences
    if !inst.references.is_empty() {
        let refs: Vec<InMemDicomObject> = inst
            .references
            .iter()
            .map(|u| {
                InMemDicomObject::from_element_iter([
                    s(Tag(0x0008, 0x1150), VR::UI, MR_CLASS),
                    s(Tag(0x0008, 0x1155), VR::UI, u),
                ])
            })
            .collect();
        o.put(sq(Tag(0x0008, 0x1140), refs.clone()));
        o.put(sq(Tag(0x0008, 0x2112), refs));
    }
    // three levels deep: Referenced Series -> Referenced Instance -> Derivation Code, with
    // identifiers, dates and free text planted at the bottom
    let level3 = InMemDicomObject::from_element_iter([
        s(Tag(0x0008, 0x0100), VR::SH, "113076"),
        s(Tag(0x0008, 0x0102), VR::SH, "DCM"),
        s(Tag(0x0008, 0x0104), VR::LO, "Segmentation"),
        s(Tag(0x0010, 0x0010), VR::PN, p.name),
        s(Tag(0x0010, 0x0020), VR::LO, p.id),
        s(Tag(0x0010, 0x0030), VR::DA, p.birth_date),
        s(Tag(0x0008, 0x0020), VR::DA, &inst.study_date),
        s(Tag(0x0008, 0x0050), VR::SH, p.accession),
        s(Tag(0x0008, 0x0080), VR::LO, p.institution),
        s(
            Tag(0x0020, 0x4000),
            VR::LT,
            &format!("deep note about {}", p.name),
        ),
        s(
            Tag(0x0040, 0xA124),
            VR::UI,
            &format!("{}.999", inst.sop_uid),
        ),
    ]);
    let level2 = InMemDicomObject::from_element_iter([
        s(Tag(0x0008, 0x1150), VR::UI, inst.sop_class),
        s(Tag(0x0008, 0x1155), VR::UI, &inst.sop_uid),
        sq(Tag(0x0008, 0x9215), vec![level3]),
    ]);
    let level1 = InMemDicomObject::from_element_iter([
        s(Tag(0x0020, 0x000E), VR::UI, &inst.series_uid),
        sq(Tag(0x0008, 0x114A), vec![level2]),
    ]);
    o.put(sq(Tag(0x0008, 0x1115), vec![level1]));
    // private tags: a creator, a text value with the name and id, a private sequence with a name
    o.put(s(Tag(0x0029, 0x0010), VR::LO, "ACME HOSPITAL PACS"));
    o.put(s(
        Tag(0x0029, 0x1010),
        VR::LO,
        &format!("{} {}", p.id, p.name),
    ));
    o.put(sq(
        Tag(0x0029, 0x1020),
        vec![InMemDicomObject::from_element_iter([s(
            Tag(0x0010, 0x0010),
            VR::PN,
            p.name,
        )])],
    ));
    if inst.burned_in {
        o.put(s(Tag(0x0028, 0x0301), VR::CS, "YES"));
    }
    // image
    o.put(DataElement::new(
        Tag(0x0028, 0x0002),
        VR::US,
        PrimitiveValue::from(1u16),
    ));
    o.put(s(Tag(0x0028, 0x0004), VR::CS, "MONOCHROME2"));
    o.put(DataElement::new(
        Tag(0x0028, 0x0010),
        VR::US,
        PrimitiveValue::from(16u16),
    ));
    o.put(DataElement::new(
        Tag(0x0028, 0x0011),
        VR::US,
        PrimitiveValue::from(16u16),
    ));
    o.put(DataElement::new(
        Tag(0x0028, 0x0100),
        VR::US,
        PrimitiveValue::from(16u16),
    ));
    o.put(DataElement::new(
        Tag(0x0028, 0x0101),
        VR::US,
        PrimitiveValue::from(12u16),
    ));
    o.put(DataElement::new(
        Tag(0x0028, 0x0102),
        VR::US,
        PrimitiveValue::from(11u16),
    ));
    o.put(DataElement::new(
        Tag(0x0028, 0x0103),
        VR::US,
        PrimitiveValue::from(0u16),
    ));
    o.put(DataElement::new(
        Tag(0x7FE0, 0x0010),
        VR::OW,
        PrimitiveValue::U8(
            pixels(
                inst.instance_number as u64 * 7919 + inst.series_number as u64,
                16 * 16 * 2,
            )
            .into(),
        ),
    ));
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(inst.sop_class)
        .media_storage_sop_instance_uid(inst.sop_uid.as_str())
        .transfer_syntax(inst.transfer_syntax)
        .implementation_class_uid("1.2.826.0.1.3680043.9.7777.1")
        .implementation_version_name("HOSPPACS_3")
        .source_application_entity_title("STELSEWHERE_MR")
        .sending_application_entity_title("PACSGATE22")
        .build()
        .unwrap();
    o.with_exact_meta(meta)
}

/// Shifts a YYYYMMDD date by whole days using a plain table of month lengths (test-side arithmetic).
pub fn shift(d: &str, days: i64) -> String {
    let (mut y, mut m, mut dd): (i64, i64, i64) = (
        d[..4].parse().unwrap(),
        d[4..6].parse().unwrap(),
        d[6..].parse().unwrap(),
    );
    let len = |y: i64, m: i64| match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let mut n = days;
    while n > 0 {
        dd += 1;
        if dd > len(y, m) {
            dd = 1;
            m += 1;
            if m > 12 {
                m = 1;
                y += 1;
            }
        }
        n -= 1;
    }
    while n < 0 {
        dd -= 1;
        if dd == 0 {
            m -= 1;
            if m == 0 {
                m = 12;
                y -= 1;
            }
            dd = len(y, m);
        }
        n += 1;
    }
    format!("{y:04}{m:02}{dd:02}")
}

/// Days between two YYYYMMDD dates (b - a), by counting with [`shift`].
pub fn days_between(a: &str, b: &str) -> i64 {
    let (mut lo, hi, sign) = if a <= b {
        (a.to_string(), b, 1)
    } else {
        (b.to_string(), a, -1)
    };
    let mut n = 0;
    while lo.as_str() != hi {
        lo = shift(&lo, 1);
        n += 1;
    }
    n * sign
}

/// Writes the fixture cohort under `dir`: patient 1 with two studies (30 days apart; the first with
/// two series, the second series referencing the first's instances), patient 2 with one study, one
/// burned-in file and one secondary capture, in explicit and implicit VR little endian.
/// Input file names carry the patient's name, as real exports often do.
pub fn write_cohort(dir: &Path) -> Vec<Instance> {
    let mut all = Vec::new();
    let root = "1.2.826.0.1.3680043.9.7777";
    let mut add = |inst: Instance, name: String| {
        let obj = build(&inst);
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        obj.write_to_file(&path).unwrap();
        all.push(inst);
    };
    let base = |p: Patient, study: &str, date: &str, series: &str, sn: i32, i: i32| Instance {
        patient: p,
        study_uid: format!("{root}.{study}"),
        study_date: date.into(),
        series_uid: format!("{root}.{study}.{series}"),
        series_number: sn,
        sop_uid: format!("{root}.{study}.{series}.{i}"),
        for_uid: format!("{root}.{study}.4000"),
        instance_number: i,
        references: vec![],
        burned_in: false,
        sop_class: MR_CLASS,
        transfer_syntax: "1.2.840.10008.1.2.1",
    };
    for i in 1..=3 {
        add(
            base(P1, "1", "20240301", "1", 1, i),
            format!("Mueller_Hans/study1/t2/{i}.dcm"),
        );
    }
    for i in 1..=2 {
        let mut inst = base(P1, "1", "20240301", "2", 2, i);
        inst.references = vec![format!("{root}.1.1.{i}"), format!("{root}.1.1.{}", i + 1)];
        inst.transfer_syntax = "1.2.840.10008.1.2"; // implicit VR little endian
        add(inst, format!("Mueller_Hans/study1/t1/{i}.dcm"));
    }
    for i in 1..=2 {
        add(
            base(P1, "2", "20240331", "1", 1, i),
            format!("Mueller_Hans/study2/{i}.dcm"),
        );
    }
    for i in 1..=2 {
        let mut inst = base(P2, "3", "20231117", "1", 1, i);
        inst.burned_in = i == 2;
        add(inst, format!("Okonkwo/{i}.dcm"));
    }
    let mut sc = base(P2, "3", "20231117", "9", 9, 1);
    sc.sop_class = SC_CLASS;
    add(sc, "Okonkwo/screenshot.dcm".into());
    all
}
