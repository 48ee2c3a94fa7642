//! End-to-end de-identification of built fixtures and the shared samples, checked by `verify`, by
//! re-reading every output, by comparing pixels, and by following every relationship.

mod common;

use common::*;
use dicom_core::header::Header;
use dicom_core::value::Value;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_object::{open_file, DefaultDicomObject, InMemDicomObject};
use discus_core::progress::Progress;
use discus_deid::run::{read_map, run, RunConfig};
use discus_deid::table::Options;
use discus_deid::verify::verify;
use discus_deid::Key;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

fn text(o: &InMemDicomObject, tag: Tag) -> Option<String> {
    o.element_opt(tag).ok().flatten().and_then(|e| {
        e.to_str()
            .ok()
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
    })
}

fn outputs(dir: &Path) -> Vec<PathBuf> {
    discus_deid::run::list_files(dir)
        .unwrap()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect()
}

struct Ran {
    _tmp: tempfile::TempDir,
    input: PathBuf,
    out: PathBuf,
    key: Key,
    config: RunConfig,
    report: discus_deid::RunReport,
}

fn deid_cohort(options: Options) -> (Ran, Vec<Instance>) {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let cohort = write_cohort(&input);
    let ran = deid_dir(tmp, input, options);
    (ran, cohort)
}

fn deid_dir(tmp: tempfile::TempDir, input: PathBuf, options: Options) -> Ran {
    let out = tmp.path().join("out");
    let config = RunConfig {
        in_dir: input.clone(),
        out_dir: out.clone(),
        key_path: tmp.path().join("site.key"),
        map_path: tmp.path().join("site-map.csv"),
        options,
    };
    let report = run(&config, &Progress::new()).unwrap();
    let key = Key::load_or_create(&config.key_path).unwrap().0;
    Ran {
        _tmp: tmp,
        input,
        out,
        key,
        config,
        report,
    }
}

/// Output object for an input SOP instance UID, found by following the key's UID mapping.
fn outputs_by_sop(dir: &Path) -> HashMap<String, DefaultDicomObject> {
    outputs(dir)
        .into_iter()
        .map(|p| {
            let o = open_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (text(&o, Tag(0x0008, 0x0018)).unwrap(), o)
        })
        .collect()
}

fn assert_verify_clean(ran: &Ran) {
    let v = verify(&ran.out, &ran.input).unwrap();
    assert!(v.inputs_read > 0 && v.patterns > 0);
    assert!(
        v.clean(),
        "verify found leaks: {:#?} unreadable: {:?}",
        v.hits,
        v.outputs_unreadable
    );
}

fn code_values(o: &InMemDicomObject) -> Vec<String> {
    o.element(Tag(0x0012, 0x0064))
        .unwrap()
        .items()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(text(i, Tag(0x0008, 0x0102)).as_deref(), Some("DCM"));
            text(i, Tag(0x0008, 0x0100)).unwrap()
        })
        .collect()
}

fn has_private(o: &InMemDicomObject) -> bool {
    o.iter()
        .any(|e| e.tag().0 % 2 == 1 || e.items().is_some_and(|items| items.iter().any(has_private)))
}

#[test]
fn basic_profile_on_planted_cohort() {
    let (ran, cohort) = deid_cohort(Options::default());
    let r = &ran.report;
    assert_eq!(r.files_seen, cohort.len());
    assert_eq!(r.written, cohort.len(), "{:?}", r.failed);
    assert!(r.failed.is_empty());
    assert_verify_clean(&ran);

    let outs = outputs_by_sop(&ran.out);
    assert_eq!(outs.len(), cohort.len());
    let key = &ran.key;
    let mut study_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut series_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut for_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for inst in &cohort {
        let input = build(inst);
        let new_sop = key.map_uid(&inst.sop_uid);
        let o = outs
            .get(&new_sop)
            .expect("output for every input, under the mapped SOP UID");
        // file meta follows the dataset
        assert_eq!(
            o.meta()
                .media_storage_sop_instance_uid()
                .trim_end_matches('\0'),
            new_sop
        );
        assert_eq!(
            o.meta().transfer_syntax().trim_end_matches('\0'),
            inst.transfer_syntax
        );
        assert!(o.meta().source_application_entity_title().is_none());
        assert!(o.meta().sending_application_entity_title().is_none());
        assert_ne!(
            o.meta().implementation_class_uid(),
            input.meta().implementation_class_uid()
        );
        // pixels bit-identical
        assert_eq!(
            o.element(Tag(0x7FE0, 0x0010)).unwrap().to_bytes().unwrap(),
            input
                .element(Tag(0x7FE0, 0x0010))
                .unwrap()
                .to_bytes()
                .unwrap()
        );
        // identity attributes
        assert_eq!(text(o, Tag(0x0012, 0x0062)).as_deref(), Some("YES"));
        assert!(text(o, Tag(0x0012, 0x0063)).is_some());
        assert_eq!(code_values(o), vec!["113100"]);
        assert_eq!(text(o, Tag(0x0028, 0x0303)).as_deref(), Some("REMOVED"));
        assert!(!has_private(o), "private tags survive");
        let pid = text(o, Tag(0x0010, 0x0020)).unwrap();
        assert!(pid.starts_with("DEID-"), "{pid}");
        assert_eq!(
            text(o, Tag(0x0010, 0x0030)).as_deref(),
            Some(""),
            "birth date emptied"
        );
        assert_eq!(
            text(o, Tag(0x0008, 0x0020)).as_deref(),
            Some(""),
            "study date emptied (Z)"
        );
        assert!(
            o.element_opt(Tag(0x0020, 0x4000)).unwrap().is_none(),
            "image comments removed (X)"
        );
        assert!(
            o.element_opt(Tag(0x0010, 0x1002)).unwrap().is_none(),
            "other patient ids removed"
        );
        assert!(
            o.element_opt(Tag(0x0010, 0x1010)).unwrap().is_none(),
            "age removed (X)"
        );
        // unlisted attributes kept
        assert_eq!(
            text(o, Tag(0x0008, 0x0070)).as_deref(),
            Some("ACME Medical")
        );
        assert_eq!(
            text(o, Tag(0x0008, 0x0016)).as_deref(),
            Some(inst.sop_class)
        );
        // three levels deep: the nested identifiers are gone, the nested UIDs mapped
        let l1 = &o.element(Tag(0x0008, 0x1115)).unwrap().items().unwrap()[0];
        assert_eq!(
            text(l1, Tag(0x0020, 0x000E)),
            Some(key.map_uid(&inst.series_uid))
        );
        let l2 = &l1.element(Tag(0x0008, 0x114A)).unwrap().items().unwrap()[0];
        assert_eq!(text(l2, Tag(0x0008, 0x1155)), Some(new_sop.clone()));
        let l3 = &l2.element(Tag(0x0008, 0x9215)).unwrap().items().unwrap()[0];
        assert_eq!(
            text(l3, Tag(0x0008, 0x0104)).as_deref(),
            Some("Segmentation")
        );
        assert_eq!(text(l3, Tag(0x0010, 0x0020)), Some(pid.clone()));
        assert!(l3.element_opt(Tag(0x0020, 0x4000)).unwrap().is_none());
        assert_eq!(text(l3, Tag(0x0008, 0x0080)).as_deref(), Some("ANONYMIZED"));
        assert_eq!(
            text(l3, Tag(0x0040, 0xA124)),
            Some(key.map_uid(&format!("{}.999", inst.sop_uid)))
        );

        study_of
            .entry(inst.study_uid.clone())
            .or_default()
            .insert(text(o, Tag(0x0020, 0x000D)).unwrap());
        series_of
            .entry(inst.series_uid.clone())
            .or_default()
            .insert(text(o, Tag(0x0020, 0x000E)).unwrap());
        for_of
            .entry(inst.for_uid.clone())
            .or_default()
            .insert(text(o, Tag(0x0020, 0x0052)).unwrap());
        // references: follow each to an output instance of the same new study
        for seq in [Tag(0x0008, 0x1140), Tag(0x0008, 0x2112)] {
            let Some(e) = o.element_opt(seq).unwrap() else {
                assert!(inst.references.is_empty());
                continue;
            };
            let items = e.items().unwrap();
            assert_eq!(items.len(), inst.references.len());
            for (item, old_ref) in items.iter().zip(&inst.references) {
                let target_uid = text(item, Tag(0x0008, 0x1155)).unwrap();
                let target = outs
                    .get(&target_uid)
                    .expect("reference resolves to an output instance");
                let old_target = cohort.iter().find(|c| &c.sop_uid == old_ref).unwrap();
                assert_eq!(
                    text(target, Tag(0x0020, 0x0013)),
                    Some(old_target.instance_number.to_string())
                );
                assert_eq!(
                    text(target, Tag(0x0020, 0x000D)),
                    text(o, Tag(0x0020, 0x000D))
                );
                assert_eq!(
                    text(target, Tag(0x0020, 0x0052)),
                    text(o, Tag(0x0020, 0x0052))
                );
            }
        }
    }
    // one new UID per old study / series / frame of reference, and no two old ones share a new one
    for m in [&study_of, &series_of, &for_of] {
        assert!(m.values().all(|s| s.len() == 1), "{m:?}");
        let news: BTreeSet<_> = m.values().flatten().collect();
        assert_eq!(news.len(), m.len());
    }
    // the same patient gets the same pseudonym in both studies; the two patients differ
    let pseud: BTreeSet<String> = outs
        .values()
        .map(|o| text(o, Tag(0x0010, 0x0020)).unwrap())
        .collect();
    assert_eq!(pseud.len(), 2);

    // flags: one burned-in file and one secondary capture, named by the output path
    let flags: Vec<_> = r.flagged.iter().flat_map(|f| f.flags.clone()).collect();
    assert_eq!(flags.len(), 2, "{:?}", r.flagged);
    assert!(flags.contains(&discus_deid::Flag::BurnedInAnnotation));
    assert!(flags.contains(&discus_deid::Flag::SecondaryCapture));

    // the map is outside OUT_DIR and re-links patients, studies and series
    assert!(!ran.config.map_path.starts_with(&ran.out));
    let map = read_map(&ran.config.map_path).unwrap();
    assert!(map.contains(&("patient".into(), P1.id.into(), key.pseudonym(P1.id))));
    assert!(map.contains(&(
        "study".into(),
        cohort[0].study_uid.clone(),
        key.map_uid(&cohort[0].study_uid)
    )));
    assert_eq!(map.iter().filter(|r| r.0 == "series").count(), 5);
    // the card in OUT_DIR records the de-identification; nothing of the map is in OUT_DIR
    let card = discus_core::governance::load_card(&ran.out)
        .unwrap()
        .unwrap();
    assert!(card.deidentification.applied);
    assert!(card.deidentification.options.is_empty());
    assert!(
        card.licence.permitted_uses.is_empty(),
        "no input card: no uses assumed"
    );
    // input file names (which carry the patient's name) do not reach OUT_DIR
    for p in discus_deid::run::list_files(&ran.out).unwrap() {
        assert!(!p.to_string_lossy().contains("Mueller"), "{}", p.display());
    }
}

#[test]
fn options_shift_dates_keep_intervals_and_clean_descriptors() {
    let options = Options {
        retain_longitudinal_modified_dates: true,
        retain_patient_characteristics: true,
        retain_device_identity: true,
        clean_descriptors: true,
        ..Options::default()
    };
    let (ran, cohort) = deid_cohort(options);
    assert_eq!(ran.report.written, cohort.len(), "{:?}", ran.report.failed);
    assert_verify_clean(&ran);
    let outs = outputs_by_sop(&ran.out);
    let mut offsets: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    for inst in &cohort {
        let o = &outs[&ran.key.map_uid(&inst.sop_uid)];
        assert_eq!(
            code_values(o),
            vec!["113100", "113105", "113107", "113108", "113109"]
        );
        assert_eq!(text(o, Tag(0x0028, 0x0303)).as_deref(), Some("MODIFIED"));
        let study = text(o, Tag(0x0008, 0x0020)).unwrap();
        let acq = text(o, Tag(0x0008, 0x0022)).unwrap();
        assert_eq!(
            days_between(&study, &acq),
            1,
            "interval within a study kept"
        );
        let off = days_between(&inst.study_date, &study);
        assert!((-3652..=-366).contains(&off), "{off}");
        offsets.entry(inst.patient.id).or_default().insert(off);
        // dates three levels deep shift with the same offset
        let l3 = &o.element(Tag(0x0008, 0x1115)).unwrap().items().unwrap()[0]
            .element(Tag(0x0008, 0x114A))
            .unwrap()
            .items()
            .unwrap()[0]
            .element(Tag(0x0008, 0x9215))
            .unwrap()
            .items()
            .unwrap()[0];
        assert_eq!(text(l3, Tag(0x0008, 0x0020)), Some(study.clone()));
        // times kept (whole-day shift); patient characteristics and device identity kept
        assert_eq!(text(o, Tag(0x0008, 0x0030)).as_deref(), Some("101530"));
        assert_eq!(text(o, Tag(0x0010, 0x0040)).as_deref(), Some("M"));
        assert_eq!(text(o, Tag(0x0010, 0x1010)).as_deref(), Some("062Y"));
        assert_eq!(text(o, Tag(0x0018, 0x1000)).as_deref(), Some("SN-4471-XK"));
        assert_eq!(text(o, Tag(0x0008, 0x1010)).as_deref(), Some("MRSCAN-07"));
        // descriptors cleaned: the words that identify are gone, the rest stays
        assert_eq!(text(o, Tag(0x0008, 0x1030)).as_deref(), Some("Lumbar MRI"));
        assert_eq!(text(o, Tag(0x0008, 0x103E)).as_deref(), Some("Sag T2"));
    }
    // one offset per patient, so the 30 days between patient 1's studies survive
    assert!(offsets.values().all(|s| s.len() == 1), "{offsets:?}");
    let card = discus_core::governance::load_card(&ran.out)
        .unwrap()
        .unwrap();
    assert_eq!(card.deidentification.options.len(), 4);
}

#[test]
fn retain_uids_keeps_uids_and_verify_accepts_them() {
    let (ran, cohort) = deid_cohort(Options {
        retain_uids: true,
        ..Options::default()
    });
    assert_verify_clean(&ran);
    let outs = outputs_by_sop(&ran.out);
    for inst in &cohort {
        let o = &outs[&inst.sop_uid];
        assert_eq!(text(o, Tag(0x0020, 0x000D)), Some(inst.study_uid.clone()));
        assert_eq!(code_values(o), vec!["113100", "113110"]);
    }
}

#[test]
fn same_key_same_output_across_runs_and_a_new_key_changes_every_uid() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let cohort = write_cohort(&input);
    let cfg = |out: &str, key: &str| RunConfig {
        in_dir: input.clone(),
        out_dir: tmp.path().join(out),
        key_path: tmp.path().join(key),
        map_path: tmp.path().join(format!("{out}.map.csv")),
        options: Options::default(),
    };
    let a = run(&cfg("a", "k1"), &Progress::new()).unwrap();
    let b = run(&cfg("b", "k1"), &Progress::new()).unwrap();
    let c = run(&cfg("c", "k2"), &Progress::new()).unwrap();
    assert!(a.key_created && !b.key_created && c.key_created);
    let files = |d: &str| -> BTreeMap<PathBuf, Vec<u8>> {
        outputs(&tmp.path().join(d))
            .into_iter()
            .map(|p| {
                (
                    p.strip_prefix(tmp.path().join(d)).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(files("a"), files("b"), "same key: byte-identical outputs");
    let (fa, fc) = (files("a"), files("c"));
    assert_eq!(fa.len(), cohort.len());
    assert!(
        fa.keys().all(|k| !fc.contains_key(k)),
        "new key: every path (UIDs) differs"
    );
}

#[test]
fn resume_skips_completed_files_and_redoes_missing_ones() {
    let (ran, cohort) = deid_cohort(Options::default());
    let again = run(&ran.config, &Progress::new()).unwrap();
    assert_eq!((again.written, again.resumed), (0, cohort.len()));
    let victim = outputs(&ran.out).remove(0);
    std::fs::remove_file(&victim).unwrap();
    let third = run(&ran.config, &Progress::new()).unwrap();
    assert_eq!((third.written, third.resumed), (1, cohort.len() - 1));
    assert!(victim.is_file());
    // the map still has every row after resuming
    assert_eq!(read_map(&ran.config.map_path).unwrap().len(), 2 + 3 + 5);
}

/// Cancelling through the Progress handle stops the run between files with `Cancelled`; the
/// files written so far are in the map, and running again finishes the rest.
#[test]
fn cancel_stops_between_files_and_a_rerun_resumes() {
    let (ran, cohort) = deid_cohort(Options::default());
    let out = ran.out.parent().unwrap().join("out2");
    let config = RunConfig::with_defaults(ran.input.clone(), out.clone(), Options::default());

    // Cancelled before it starts: nothing is written.
    let progress = Progress::new();
    progress.cancel();
    let e = run(&config, &progress).unwrap_err();
    assert!(matches!(e, discus_deid::run::RunError::Cancelled), "{e}");
    assert_eq!(outputs(&out).len(), 0);

    // Cancelled by its observer after two files: those (and any in flight) are kept and mapped.
    let me: std::sync::Arc<std::sync::OnceLock<Progress>> = Default::default();
    let handle = me.clone();
    let progress = Progress::with_observer(move |s| {
        if s.stage == "de-identifying" && s.done >= 2 && !s.cancelled {
            if let Some(p) = handle.get() {
                p.cancel();
            }
        }
    });
    me.set(progress.clone()).unwrap();
    let e = run(&config, &progress).unwrap_err();
    assert!(matches!(e, discus_deid::run::RunError::Cancelled), "{e}");
    let written = outputs(&out).len();
    assert!(written >= 2, "{written}");
    assert!(!read_map(&config.map_path).unwrap().is_empty());

    let done = run(&config, &Progress::new()).unwrap();
    assert_eq!(done.written + done.resumed, cohort.len());
    assert_eq!(done.resumed, written);
    assert_eq!(read_map(&config.map_path).unwrap().len(), 2 + 3 + 5);
}

#[test]
fn one_bad_file_is_reported_and_skipped_and_secrets_stay_out_of_out_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let cohort = write_cohort(&input);
    std::fs::write(input.join("notes.txt"), "not dicom").unwrap();
    let mut config =
        RunConfig::with_defaults(input.clone(), tmp.path().join("out"), Options::default());
    let report = run(&config, &Progress::new()).unwrap();
    assert_eq!(report.written, cohort.len());
    assert_eq!(report.failed.len(), 1);
    assert!(report.failed[0].input.ends_with("notes.txt"));
    assert!(
        report.failed[0].cause.contains("not a readable DICOM file"),
        "{}",
        report.failed[0].cause
    );
    assert!(config.key_path.to_string_lossy().ends_with("out.deid-key"));

    config.map_path = config.out_dir.join("map.csv");
    let e = run(&config, &Progress::new()).unwrap_err();
    assert!(e.to_string().contains("inside the output folder"), "{e}");
    let inside = RunConfig::with_defaults(input.clone(), input.join("out"), Options::default());
    assert!(run(&inside, &Progress::new()).is_err());
}

#[test]
fn verify_catches_planted_leaks_with_file_and_tag() {
    let (ran, _cohort) = deid_cohort(Options::default());
    assert_verify_clean(&ran);
    // plant: an upper-cased name component three levels down inside a referenced image item, and
    // the patient id as UTF-16LE in a private tag, and the birth date as YYYY-MM-DD in the meta-less
    // free text of the top level
    let victim = outputs(&ran.out)
        .into_iter()
        .find(|p| {
            open_file(p)
                .unwrap()
                .element_opt(Tag(0x0008, 0x1140))
                .unwrap()
                .is_some()
        })
        .unwrap();
    let mut obj = open_file(&victim).unwrap();
    let mut refs = obj
        .element(Tag(0x0008, 0x1140))
        .unwrap()
        .items()
        .unwrap()
        .to_vec();
    refs[0].put(DataElement::new(
        Tag(0x0020, 0x4000),
        VR::LT,
        PrimitiveValue::from("seen HANS-PETER today"),
    ));
    obj.put(DataElement::new(
        Tag(0x0008, 0x1140),
        VR::SQ,
        dicom_core::value::DataSetSequence::new(refs, dicom_core::Length::UNDEFINED),
    ));
    let utf16: Vec<u8> = P1.id.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    obj.put(DataElement::new(
        Tag(0x0009, 0x0010),
        VR::LO,
        PrimitiveValue::from("LEAKY"),
    ));
    obj.put(DataElement::new(
        Tag(0x0009, 0x1001),
        VR::OB,
        PrimitiveValue::U8(utf16.into()),
    ));
    obj.put(DataElement::new(
        Tag(0x0018, 0x1030),
        VR::LO,
        PrimitiveValue::from("born 1961-03-14"),
    ));
    obj.write_to_file(&victim).unwrap();

    let v = verify(&ran.out, &ran.input).unwrap();
    assert!(!v.clean());
    let rel = victim.strip_prefix(&ran.out).unwrap();
    let found = |element: &str, source: &str, spelling: &str| {
        assert!(
            v.hits.iter().any(|h| h.file == rel
                && h.element == element
                && h.source.starts_with(source)
                && h.spelling.contains(spelling)),
            "no hit of {source} ({spelling}) in {element}: {:#?}",
            v.hits
        )
    };
    found("(0008,1140)[0]/(0020,4000)", "(0010,0010)", "upper-case");
    found("(0009,1001)", "(0010,0020)", "UTF-16LE");
    found("(0018,1030)", "(0010,0030)", "YYYY-MM-DD");
    // nothing else in the other files
    assert!(v.hits.iter().all(|h| h.file == rel));
}

#[test]
fn shared_deid_samples() {
    let src = shared_dir().join("data/deid");
    if !src.is_dir() {
        discus_core::crosscheck::skip(format!(
            "{} not found (set DISCUS_SHARED_DIR)",
            src.display()
        ));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    // copy only the DICOM files (the folder also holds a LICENSE)
    let mut n = 0;
    for p in discus_deid::run::list_files(&src).unwrap() {
        if p.extension().is_some_and(|e| e == "dcm") {
            let to = input.join(p.strip_prefix(&src).unwrap());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&p, &to).unwrap();
            n += 1;
        }
    }
    assert!(n >= 9);
    for options in [
        Options::default(),
        Options {
            retain_longitudinal_modified_dates: true,
            clean_descriptors: true,
            ..Options::default()
        },
    ] {
        let tmp2 = tempfile::tempdir().unwrap();
        let ran = deid_dir(tmp2, input.clone(), options);
        // the two CT slices share one SOP Instance UID: one is written, the other reported
        assert!(ran.report.failed.is_empty(), "{:?}", ran.report.failed);
        assert_eq!(
            ran.report.duplicates.len(),
            1,
            "{:?}",
            ran.report.duplicates
        );
        assert_eq!(ran.report.written, n - 1);
        assert_verify_clean(&ran);
        // every output reads, and its pixels (JPEG fragments) are bit-identical to the input's
        let outs = outputs_by_sop(&ran.out);
        let dup = &ran.report.duplicates[0].input;
        for p in discus_deid::run::list_files(&input).unwrap() {
            if &p == dup {
                continue;
            }
            let i = open_file(&p).unwrap();
            let sop = text(&i, Tag(0x0008, 0x0018)).unwrap();
            let o = &outs[&ran.key.map_uid(&sop)];
            let (a, b) = (
                i.element(Tag(0x7FE0, 0x0010)).unwrap(),
                o.element(Tag(0x7FE0, 0x0010)).unwrap(),
            );
            match (a.value(), b.value()) {
                (Value::PixelSequence(x), Value::PixelSequence(y)) => {
                    assert_eq!(x.fragments(), y.fragments());
                }
                (x, y) => assert_eq!(x, y),
            }
            assert_eq!(o.meta().transfer_syntax(), i.meta().transfer_syntax());
        }
        // the secondary-capture cookies are flagged, not silently passed
        assert!(ran.report.flagged.len() >= 7, "{:?}", ran.report.flagged);
    }
}
