//! Dataset governance through the binary: `discus synth` writes a card, `discus validate` shows it,
//! and the commands that export derived artifacts (`evaluate`, `reads consensus`) refuse a use the
//! licence forbids (writing nothing) and record the cards they came from.

use discus_core::governance::{DatasetCard, Use, CARD_FILE};

mod common;
use common::{json_file, ok, run, s};

#[test]
fn cards_are_written_shown_checked_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    let data = s(&ds);
    ok(&[
        "synth",
        "--out",
        data,
        "--studies",
        "2",
        "--sites",
        "1",
        "--seed",
        "5",
        "--matrix-scale",
        "0.25",
    ]);

    // synth writes a card: synthetic, every use permitted, no de-identification needed.
    let card = DatasetCard::read(&ds.join(CARD_FILE)).unwrap();
    assert_eq!(card.licence.permitted_uses, Use::ALL.to_vec());
    assert!(!card.licence.citation_required);
    assert!(!card.deidentification.applied);
    assert_eq!(card.sites.len(), 1);
    assert!(card.source.contains("seed 5"), "{}", card.source);
    for u in Use::ALL {
        assert!(card.check_use(u).is_ok());
    }

    // validate shows it, as text and as JSON.
    let text = ok(&["validate", data]);
    assert!(text.contains("dataset card"), "{text}");
    assert!(text.contains(&card.source), "{text}");
    assert!(text.contains(&card.licence.name), "{text}");
    assert!(
        text.contains("research, education, commercial, clinical, redistribution"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&["validate", data, "--json"])).unwrap();
    assert_eq!(v["card"], serde_json::to_value(&card).unwrap());

    // No card: a warning line, still exit 0.
    std::fs::remove_file(ds.join(CARD_FILE)).unwrap();
    let text = ok(&["validate", data]);
    assert!(
        text.contains("no dataset.toml: licence and permitted uses unknown"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&["validate", data, "--json"])).unwrap();
    assert!(v["card"].is_null());

    // A broken card is an error naming the file.
    std::fs::write(ds.join(CARD_FILE), "name = 1\n").unwrap();
    let o = run(&["validate", data]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("bad_dataset_card"), "{out}");
    assert!(out.contains(s(&ds.join(CARD_FILE))), "{out}");

    // The LumbarDISC card: non-commercial.
    let lumbar = DatasetCard::lumbardisc();
    lumbar.write(&ds.join(CARD_FILE)).unwrap();
    let text = ok(&["validate", data]);
    assert!(text.contains(&lumbar.source), "{text}");
    assert!(text.contains("citation required: yes"), "{text}");
    // The index records the card it was made from; an HTML report shows it.
    let ix = discus_data::index::Index::open_read_only(&ds.join(".discus/index.sqlite")).unwrap();
    let meta: discus_core::governance::Provenance =
        serde_json::from_str(&ix.meta("provenance").unwrap().expect("provenance in meta")).unwrap();
    assert_eq!(meta.sources, vec![lumbar.clone()]);
    drop(ix);
    let vrep = tmp.path().join("validate");
    ok(&["validate", data, "--report", s(&vrep)]);
    let page = std::fs::read_to_string(vrep.join("index.html")).unwrap();
    assert!(page.contains("Dataset card") && page.contains("LumbarDISC"));

    let sub = tmp.path().join("sub.csv");
    let train = ds.join("train.csv");
    ok(&[
        "baseline",
        "prior",
        "--labels",
        s(&train),
        "--studies",
        s(&train),
        "--out",
        s(&sub),
    ]);
    let rep = tmp.path().join("rep");
    let evaluate = |use_: &str| {
        run(&[
            "evaluate",
            "--dataset",
            data,
            "--submission",
            s(&sub),
            "--out",
            s(&rep),
            "--resamples",
            "20",
            "--use",
            use_,
        ])
    };
    let o = evaluate("commercial");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refused"), "{err}");
    assert!(err.contains("commercial"), "{err}");
    assert!(err.contains(&lumbar.name), "{err}");
    assert!(!rep.exists(), "nothing written when refused");

    let o = evaluate("research");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = json_file(&rep.join("report.json"));
    assert_eq!(
        report["provenance"]["sources"],
        serde_json::json!([serde_json::to_value(&lumbar).unwrap()])
    );
    let page = std::fs::read_to_string(rep.join("index.html")).unwrap();
    assert!(
        page.contains(&lumbar.licence.name),
        "the HTML report names the licence"
    );
    assert!(report["provenance"]["made_by"]
        .as_str()
        .unwrap()
        .contains("evaluate"));

    // An unknown use is a usage error.
    let o = evaluate("world-domination");
    assert_eq!(o.status.code(), Some(2));

    // Consensus labels: refused for commercial use, provenance recorded for research.
    ok(&[
        "reads",
        "--dataset",
        data,
        "import",
        "--readers-dir",
        s(&ds.join("readers")),
    ]);
    let cons = tmp.path().join("cons");
    let consensus = |use_: &str| {
        run(&[
            "reads",
            "--dataset",
            data,
            "consensus",
            "--rule",
            "majority",
            "--out",
            s(&cons),
            "--use",
            use_,
        ])
    };
    let o = consensus("commercial");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("refused") && err.contains("commercial"),
        "{err}"
    );
    assert!(!cons.exists(), "nothing written when refused");
    let o = consensus("education");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(cons.join("train.csv").is_file());
    assert!(cons.join("provenance.json").is_file());
    let prov = json_file(&cons.join("dataset_provenance.json"));
    assert_eq!(
        prov["sources"],
        serde_json::json!([serde_json::to_value(&lumbar).unwrap()])
    );
    assert!(prov["made_by"].as_str().unwrap().contains("consensus"));
}
