//! `discus ingest` on a PACS-style export of a synthetic cohort: files renamed at random, folders
//! shuffled, two studies mixed in one folder, plus a scout (by Image Type), a three-plane localiser
//! series, a CT image, a duplicate, a truncated file, files that are not DICOM and DICOMDIRs. The
//! ingest must rebuild the cohort's series kinds and instance files exactly (the truth is the
//! cohort's own `train_series_descriptions.csv` and files, written by discus-synth), report each odd
//! file by kind, resume without rewriting, and with `--deid` give the same ids as `discus deid` run
//! on the cohort itself, whose CSVs must then name the new folders.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use discus_core::formats::{read_coordinates, read_series_descriptions, read_train};
use discus_core::ids::id_from_uid;
use discus_core::layout::{Layout, Split};
use discus_core::types::{SeriesId, SeriesKind, StudyId};
use discus_synth::{generate, SynthConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

mod common;
use common::{run_os, shared_dir};

/// The Series Instance UID of the series whose Instance Numbers repeat.
const RENUM_SERIES: &str = "1.2.826.0.1.3680043.99.4";

fn files_under(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// splitmix64: deterministic "random" file names.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn put(obj: &mut dicom_object::DefaultDicomObject, tag: dicom_core::Tag, vr: VR, v: &str) {
    let value = if v.contains('\\') {
        PrimitiveValue::Strs(v.split('\\').map(String::from).collect())
    } else {
        PrimitiveValue::from(v)
    };
    obj.put(DataElement::new(tag, vr, value));
}

/// A copy of `from` with some attributes changed, written to `to`.
fn modified(from: &Path, to: &Path, changes: &[(dicom_core::Tag, VR, &str)]) {
    let mut obj = dicom_object::open_file(from).unwrap();
    for (tag, vr, v) in changes {
        put(&mut obj, *tag, *vr, v);
    }
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    obj.write_to_file(to).unwrap();
}

/// A minimal DICOMDIR (PS3.10 Media Storage Directory Storage) written with dicom-object.
fn write_dicomdir(to: &Path) {
    use dicom_object::{meta::FileMetaTableBuilder, InMemDicomObject};
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(
        tags::FILE_SET_ID,
        VR::CS,
        PrimitiveValue::from("EXPORT"),
    ));
    obj.put(DataElement::new(
        tags::OFFSET_OF_THE_FIRST_DIRECTORY_RECORD_OF_THE_ROOT_DIRECTORY_ENTITY,
        VR::UL,
        PrimitiveValue::from(0u32),
    ));
    obj.put(DataElement::new(
        tags::OFFSET_OF_THE_LAST_DIRECTORY_RECORD_OF_THE_ROOT_DIRECTORY_ENTITY,
        VR::UL,
        PrimitiveValue::from(0u32),
    ));
    obj.put(DataElement::new(
        tags::FILE_SET_CONSISTENCY_FLAG,
        VR::US,
        PrimitiveValue::from(0u16),
    ));
    obj.put(DataElement::new(
        tags::DIRECTORY_RECORD_SEQUENCE,
        VR::SQ,
        dicom_core::value::DataSetSequence::<InMemDicomObject>::empty(),
    ));
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .media_storage_sop_class_uid("1.2.840.10008.1.3.10")
                .media_storage_sop_instance_uid("1.2.3.4.5.6.7")
                .transfer_syntax("1.2.840.10008.1.2.1"),
        )
        .unwrap();
    file.write_to_file(to).unwrap();
}

fn shared_dicomdir() -> PathBuf {
    shared_dir().join("data/dicom/pydicom/dicomdirtests/DICOMDIR")
}

/// The cohort's truth: (study, series) -> (kind, instance file names).
type Truth = BTreeMap<(u64, u64), (SeriesKind, BTreeSet<String>)>;

fn truth(cohort: &Path) -> Truth {
    let layout = Layout::new(cohort);
    let mut t = Truth::new();
    for d in read_series_descriptions(&layout.descriptions_csv(Split::Train))
        .unwrap()
        .strict()
        .unwrap()
    {
        let dir = layout.series(Split::Train, d.study, d.series);
        let names = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        t.insert((d.study.0, d.series.0), (d.kind, names));
    }
    t
}

/// What a dataset holds: (study, series) -> (kind from its descriptions CSV, instance file names).
fn dataset(root: &Path, split: Split) -> Truth {
    let layout = Layout::new(root);
    let mut t = Truth::new();
    let descs: BTreeMap<(u64, u64), SeriesKind> =
        read_series_descriptions(&layout.descriptions_csv(split))
            .unwrap()
            .strict()
            .unwrap()
            .into_iter()
            .map(|d| ((d.study.0, d.series.0), d.kind))
            .collect();
    for study in std::fs::read_dir(layout.images(split)).unwrap() {
        let study = study.unwrap().path();
        for series in std::fs::read_dir(&study).unwrap() {
            let series = series.unwrap().path();
            let id =
                |p: &Path| -> u64 { p.file_name().unwrap().to_str().unwrap().parse().unwrap() };
            let key = (id(&study), id(&series));
            let names = std::fs::read_dir(&series)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            let kind = *descs
                .get(&key)
                .unwrap_or_else(|| panic!("{key:?} is not described"));
            t.insert(key, (kind, names));
        }
    }
    assert_eq!(
        t.keys().collect::<BTreeSet<_>>(),
        descs.keys().collect::<BTreeSet<_>>(),
        "every described series has a folder"
    );
    t
}

/// `kind,original_uid,dataset_uid,id` rows of an ingest map: (kind, original) -> id.
fn ingest_map(path: &Path) -> BTreeMap<(String, String), String> {
    let mut r = csv::Reader::from_path(path).unwrap();
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        ["kind", "original_uid", "dataset_uid", "id"]
    );
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            ((rec[0].to_string(), rec[1].to_string()), rec[3].to_string())
        })
        .collect()
}

#[test]
fn ingest_rebuilds_a_pacs_export_of_a_synthetic_cohort() {
    let tmp = tempfile::tempdir().unwrap();
    let cohort = tmp.path().join("cohort");
    let config = SynthConfig {
        studies: 3,
        sites: 2,
        seed: 23,
        readers: 1,
        quirk_rate: 0.0,
        matrix_scale: 0.2,
        ..Default::default()
    };
    generate(&cohort, &config, &|_| {}).unwrap();
    let truth = truth(&cohort);
    let studies: Vec<u64> = truth
        .keys()
        .map(|k| k.0)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(studies.len(), 3);
    let total: usize = truth.values().map(|(_, n)| n.len()).sum();

    // --- the PACS export -------------------------------------------------------------------
    let export = tmp.path().join("export");
    let cohort_files = files_under(&Layout::new(&cohort).images(Split::Train));
    let mut sagittal_example = None;
    for (i, (rel, bytes)) in cohort_files.iter().enumerate() {
        let study: u64 = rel
            .iter()
            .next()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let h = mix(i as u64 + 1000 * study);
        let name = format!(
            "{:012X}{}",
            h & 0xFFFF_FFFF_FFFF,
            if h % 2 == 0 { ".dcm" } else { "" }
        );
        // studies 0 and 1 mixed in one folder (and a subfolder), study 2 spread over three
        let folder = if study != studies[2] {
            if h % 3 == 0 {
                "PACS/DIR_AB/sub"
            } else {
                "PACS/DIR_AB"
            }
        } else {
            ["c1", "c2/deep/er", "c3"][(h % 3) as usize]
        };
        let to = export.join(folder).join(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(&to, bytes).unwrap();
        let kind = truth[&(
            study,
            rel.iter()
                .nth(1)
                .unwrap()
                .to_str()
                .unwrap()
                .parse()
                .unwrap(),
        )]
            .0;
        if kind == SeriesKind::SagittalT1 && sagittal_example.is_none() {
            sagittal_example = Some(to.clone());
        }
    }
    let src = sagittal_example.unwrap();
    // a scout by Image Type (same series, new SOP Instance UID)
    modified(
        &src,
        &export.join("PACS/loc_single"),
        &[
            (tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\LOCALIZER"),
            (tags::SOP_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.99.1.1"),
        ],
    );
    // a three-plane localiser series: one slice each, sagittal, coronal, axial
    for (k, iop) in ["0\\1\\0\\0\\0\\-1", "1\\0\\0\\0\\0\\-1", "1\\0\\0\\0\\1\\0"]
        .iter()
        .enumerate()
    {
        modified(
            &src,
            &export.join(format!("scout/l{}", k + 1)),
            &[
                (
                    tags::SERIES_INSTANCE_UID,
                    VR::UI,
                    "1.2.826.0.1.3680043.99.2",
                ),
                (
                    tags::SOP_INSTANCE_UID,
                    VR::UI,
                    &format!("1.2.826.0.1.3680043.99.2.{}", k + 1),
                ),
                (tags::IMAGE_ORIENTATION_PATIENT, VR::DS, iop),
                (tags::INSTANCE_NUMBER, VR::IS, &(k + 1).to_string()),
            ],
        );
    }
    // a series whose Instance Numbers repeat (three sagittal T1 slices, all numbered 1): numbered
    // along the slice normal instead, and the files' Instance Numbers follow
    let (t1_study, t1_series) = *truth
        .iter()
        .find(|(_, (k, _))| *k == SeriesKind::SagittalT1)
        .unwrap()
        .0;
    let t1_dir = Layout::new(&cohort).series(Split::Train, StudyId(t1_study), SeriesId(t1_series));
    for (k, inst) in [9, 2, 5].iter().enumerate() {
        modified(
            &t1_dir.join(format!("{inst}.dcm")),
            &export.join(format!("renum/R{k}")),
            &[
                (tags::SERIES_INSTANCE_UID, VR::UI, RENUM_SERIES),
                (
                    tags::SOP_INSTANCE_UID,
                    VR::UI,
                    &format!("{RENUM_SERIES}.{inst}"),
                ),
                (tags::INSTANCE_NUMBER, VR::IS, "1"),
            ],
        );
    }
    // a CT image
    modified(
        &src,
        &export.join("c1/ct_slice.dcm"),
        &[
            (tags::MODALITY, VR::CS, "CT"),
            (
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                "1.2.826.0.1.3680043.99.3",
            ),
            (tags::SOP_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.99.3.1"),
        ],
    );
    // a duplicate (sorts after its original), a truncated copy, files that are not DICOM
    let src_bytes = std::fs::read(&src).unwrap();
    std::fs::create_dir_all(export.join("zz")).unwrap();
    std::fs::write(export.join("zz/dup_copy"), &src_bytes).unwrap();
    std::fs::write(
        export.join("PACS/DIR_AB/trunc_x"),
        &src_bytes[..src_bytes.len() * 6 / 10],
    )
    .unwrap();
    std::fs::write(export.join("notes.txt"), b"exported 2024-03-01 by PACS\n").unwrap();
    std::fs::write(
        export.join("PACS/DIR_AB/thumb.jpg"),
        [
            0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0, 1, 2, 3, 4, 5,
        ],
    )
    .unwrap();
    // DICOMDIRs: a minimal one by name, and pydicom's test DICOMDIR under another name
    write_dicomdir(&export.join("DICOMDIR"));
    let mut expected: BTreeMap<&str, BTreeSet<PathBuf>> = BTreeMap::new();
    let mut expect = |kind, p: &str| {
        expected.entry(kind).or_default().insert(PathBuf::from(p));
    };
    expect("dicomdir", "DICOMDIR");
    if shared_dicomdir().is_file() {
        std::fs::copy(shared_dicomdir(), export.join("PACS/IDX0001")).unwrap();
        expect("dicomdir", "PACS/IDX0001");
    } else {
        eprintln!(
            "note: {} not found; one DICOMDIR only",
            shared_dicomdir().display()
        );
    }
    expect("not_dicom", "notes.txt");
    expect("not_dicom", "PACS/DIR_AB/thumb.jpg");
    expect("unreadable", "PACS/DIR_AB/trunc_x");
    expect("non_mr", "c1/ct_slice.dcm");
    expect("scout", "PACS/loc_single");
    for k in 1..=3 {
        expect("scout", &format!("scout/l{k}"));
    }
    expect("duplicate", "zz/dup_copy");

    // --- ingest ----------------------------------------------------------------------------
    let ds = tmp.path().join("ds");
    let run = |extra: &[&OsStr], out: &Path| {
        let mut args: Vec<&OsStr> = vec![
            "ingest".as_ref(),
            export.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--json".as_ref(),
        ];
        args.extend_from_slice(extra);
        let o = run_os(&args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}\n{}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let report = run(&[], &ds);
    let mut got: BTreeMap<String, BTreeSet<PathBuf>> = BTreeMap::new();
    for s in report["skipped"].as_array().unwrap() {
        got.entry(s["kind"].as_str().unwrap().to_string())
            .or_default()
            .insert(PathBuf::from(s["path"].as_str().unwrap()));
    }
    let expected_s: BTreeMap<String, BTreeSet<PathBuf>> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    assert_eq!(got, expected_s, "every odd file reported by kind");
    assert_eq!(report["written"], total + 3);
    assert_eq!(report["files_in_other_series"], 0);
    assert_eq!(report["studies"], 3);
    let files_seen = report["files_seen"].as_u64().unwrap() as usize;
    assert_eq!(
        files_seen,
        total + 3 + expected.values().map(|v| v.len()).sum::<usize>()
    );
    // the renumbered series: a hashed id (its UID is not a plain number), 1..3 along the normal
    // (sagittal: along x), and each file's Instance Number equal to its name
    let renum_id = id_from_uid(RENUM_SERIES);
    assert_ne!(renum_id.to_string(), RENUM_SERIES);
    let mut got_ds = dataset(&ds, Split::Test);
    let (kind, names) = got_ds.remove(&(t1_study, renum_id)).unwrap();
    assert_eq!(kind, SeriesKind::SagittalT1);
    assert_eq!(names, ["1.dcm", "2.dcm", "3.dcm"].map(String::from).into());
    let renum_dir = Layout::new(&ds).series(Split::Test, StudyId(t1_study), SeriesId(renum_id));
    let xs: Vec<f64> = (1..=3)
        .map(|k| {
            let obj = dicom_object::open_file(renum_dir.join(format!("{k}.dcm"))).unwrap();
            let n = obj
                .element(tags::INSTANCE_NUMBER)
                .unwrap()
                .to_int::<i64>()
                .unwrap();
            assert_eq!(n, k, "Instance Number follows the new name");
            obj.element(tags::IMAGE_POSITION_PATIENT)
                .unwrap()
                .to_multi_float64()
                .unwrap()[0]
        })
        .collect();
    assert!(
        (xs[0] < xs[1] && xs[1] < xs[2]) || (xs[0] > xs[1] && xs[1] > xs[2]),
        "{xs:?} in order along the normal"
    );
    let series_json = report["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["series_id"] == renum_id)
        .unwrap();
    assert_eq!(series_json["numbering"]["from"], "slice_order");

    // the LumbarDISC UIDs are plain numbers, so the ids are the cohort's own: series kinds,
    // instance files and bytes are the cohort's exactly
    assert_eq!(got_ds, truth);
    let mut ds_files = files_under(&Layout::new(&ds).images(Split::Test));
    ds_files.retain(|p, _| !p.starts_with(format!("{t1_study}/{renum_id}")));
    assert_eq!(
        ds_files, cohort_files,
        "every instance file, byte for byte, at its place"
    );
    let map_path = tmp.path().join("ds.ingest-map.csv");
    let map = ingest_map(&map_path);
    for (study, series) in truth.keys() {
        assert_eq!(map[&("study".into(), study.to_string())], study.to_string());
        assert_eq!(
            map[&("series".into(), series.to_string())],
            series.to_string()
        );
    }
    let card = std::fs::read_to_string(Layout::new(&ds).card()).unwrap();
    assert!(
        card.contains("PACS export") && card.contains("hospital must set the licence"),
        "{card}"
    );

    // --- resume: nothing rewritten ---------------------------------------------------------
    let again = run(&[], &ds);
    assert_eq!(again["written"], 0);
    assert_eq!(again["unchanged"], total + 3);

    // --- with --deid: same kinds and counts, new ids through the map -----------------------
    let key = tmp.path().join("site.key");
    let ds2 = tmp.path().join("ds2");
    let map2 = tmp.path().join("site.map.csv");
    let r2 = run(
        &[
            "--deid".as_ref(),
            "--key".as_ref(),
            key.as_os_str(),
            "--map".as_ref(),
            map2.as_os_str(),
        ],
        &ds2,
    );
    assert_eq!(r2["written"], total + 3);
    let m2 = ingest_map(&map2);
    let mapped: Truth = truth
        .iter()
        .map(|((st, se), v)| {
            let st2: u64 = m2[&("study".into(), st.to_string())].parse().unwrap();
            let se2: u64 = m2[&("series".into(), se.to_string())].parse().unwrap();
            assert_ne!((st2, se2), (*st, *se), "de-identified ids are new");
            ((st2, se2), v.clone())
        })
        .collect();
    let mut got2 = dataset(&ds2, Split::Test);
    let renum2: u64 = m2[&("series".into(), RENUM_SERIES.to_string())]
        .parse()
        .unwrap();
    assert!(got2.keys().any(|k| k.1 == renum2));
    got2.retain(|k, _| k.1 != renum2);
    assert_eq!(got2, mapped);
    assert!(
        m2.keys().any(|(k, _)| k == "patient"),
        "the patient pseudonyms are in the site's map"
    );

    // --- discus deid on the cohort keeps the layout; same key, same ids as ingest --deid ----
    let out3 = tmp.path().join("deid");
    let o = run_os(&[
        "deid".as_ref(),
        cohort.as_os_str(),
        out3.as_os_str(),
        "--key".as_ref(),
        key.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r3: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r3["layout"], true);
    assert_eq!(r3["written"], total);
    assert!(r3["not_copied"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "truth.json"));
    let d3 = dataset(&out3, Split::Train);
    assert_eq!(d3, mapped, "the same ids as discus ingest --deid");
    // the CSVs name the new folders: grades, points (on existing instance files), descriptions
    let l3 = Layout::new(&out3);
    let new_studies: BTreeSet<u64> = mapped.keys().map(|k| k.0).collect();
    let train: BTreeSet<u64> = read_train(&l3.train_csv())
        .unwrap()
        .strict()
        .unwrap()
        .iter()
        .map(|r| r.study.0)
        .collect();
    assert_eq!(train, new_studies);
    let old_points = read_coordinates(&Layout::new(&cohort).coordinates_csv())
        .unwrap()
        .strict()
        .unwrap();
    let points = read_coordinates(&l3.coordinates_csv())
        .unwrap()
        .strict()
        .unwrap();
    assert_eq!(points.len(), old_points.len());
    assert!(!points.is_empty());
    for (p, old) in points.iter().zip(&old_points) {
        let st2: u64 = m2[&("study".into(), old.study.0.to_string())]
            .parse()
            .unwrap();
        let se2: u64 = m2[&("series".into(), old.series.0.to_string())]
            .parse()
            .unwrap();
        assert_eq!(
            (p.study.0, p.series.0, p.instance),
            (st2, se2, old.instance)
        );
        assert!(l3
            .instance(Split::Train, p.study, p.series, p.instance as i64)
            .is_file());
    }
}
