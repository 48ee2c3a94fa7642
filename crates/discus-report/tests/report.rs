//! The report layer end to end: a page with every part and plot kind, hostile names escaped, the
//! report folder written atomically (no temporary file left), file-like names refused, and the
//! page rendered by headless Chromium without console errors, with every SVG in the DOM.

use discus_core::governance::DatasetCard;
use discus_report::plot::{self, ColourScale, PlotError};
use discus_report::{
    check_report_dir, count_table, figure, html, note, page, section, write_report, ReportError,
};
use std::collections::BTreeMap;
use std::process::Command;

const HOSTILE: &str = "Clinic <B> & \"Co\"";

fn every_plot() -> Vec<Result<discus_report::Markup, PlotError>> {
    vec![
        plot::bar_chart(&plot::BarChart {
            title: "vendors".into(),
            categories: vec![HOSTILE.into(), "SIEMENS".into()],
            series: vec![
                ("A".into(), vec![40.0, 60.0]),
                ("B".into(), vec![0.0, 100.0]),
            ],
            y_desc: "% of series".into(),
            size: (400, 300),
        }),
        plot::histogram(
            &[0.5, 0.6, 0.6, 0.7, f64::NAN],
            0.6,
            10,
            "score",
            "n",
            (400, 300),
        ),
        plot::interval_plot(
            "by site",
            &[plot::IntervalPoint {
                name: HOSTILE.into(),
                value: 0.6,
                interval: [0.5, 0.7],
            }],
            "score",
            (300, 300),
        ),
        plot::line_plot(&plot::LinePlot {
            title: "reliability".into(),
            x_desc: "confidence".into(),
            y_desc: "accuracy".into(),
            x_range: (0.0, 1.0),
            y_range: (0.0, 1.0),
            diagonal: true,
            series: vec![("all".into(), vec![(0.4, 0.3), (0.8, 0.85), (f64::NAN, 1.0)])],
            size: (260, 260),
        }),
        plot::heat_map(&plot::HeatMap {
            rows: vec![HOSTILE.into(), "e".into()],
            columns: vec![HOSTILE.into(), "e".into()],
            values: vec![vec![Some(1.0), None], vec![Some(-0.2), Some(1.0)]],
            scale: ColourScale::red_yellow_green(0.0, 1.0),
            digits: 2,
            legend: "kappa".into(),
            cell: 50,
        }),
    ]
}

#[test]
fn plots_check_their_input() {
    let bad = plot::bar_chart(&plot::BarChart {
        title: String::new(),
        categories: vec!["a".into()],
        series: vec![("A".into(), vec![1.0, 2.0])],
        y_desc: String::new(),
        size: (100, 100),
    });
    assert!(bad.is_err());
    let bad = plot::heat_map(&plot::HeatMap {
        rows: vec!["a".into()],
        columns: vec![],
        values: vec![vec![Some(1.0)]],
        scale: ColourScale::white_red(0.0, 1.0),
        digits: 1,
        legend: String::new(),
        cell: 20,
    });
    assert!(bad.is_err());
    // A plot that could not be drawn becomes a note, not a broken page.
    let f = figure(Err(PlotError("no data <here>".into())), "cap").into_string();
    assert!(f.contains("plot not drawn: no data &lt;here&gt;") && !f.contains("<svg"));
    // The heat map: background + 4 cells + legend swatches.
    let svg = every_plot().pop().unwrap().unwrap().into_string();
    assert_eq!(svg.matches("<rect").count(), 1 + 4 + plot::LEGEND_STEPS);
    assert!(svg.contains("Clinic &lt;B&gt; &amp;") && !svg.contains("<B>"));
}

#[test]
fn report_names_that_say_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["r.html", "r.HTM", "r.json"] {
        let p = dir.path().join(name);
        match check_report_dir(&p) {
            Err(ReportError::NotAFolder { suggestion, .. }) => {
                assert_eq!(suggestion, dir.path().join("r"))
            }
            other => panic!("{name}: {other:?}"),
        }
        let e = write_report(&p, &html! {}, &1).unwrap_err().to_string();
        assert!(e.contains("a report is a folder"), "{e}");
        assert!(!p.exists());
    }
    let file = dir.path().join("existing");
    std::fs::write(&file, b"x").unwrap();
    assert!(check_report_dir(&file).is_err());
    assert!(check_report_dir(&dir.path().join("fine.report")).is_ok());
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[test]
fn a_page_with_every_part_is_written_escaped_and_renders() {
    let mut card = DatasetCard::lumbardisc();
    card.name = HOSTILE.into();
    let mut counts = BTreeMap::new();
    counts.insert(HOSTILE.to_string(), 3u64);
    counts.insert("GE".to_string(), 1u64);
    let body = html! {
        (section(HOSTILE, html! {
            (note(HOSTILE))
            (count_table(HOSTILE, &counts))
            div.plots { @for p in every_plot() { (figure(p, HOSTILE)) } }
        }))
    };
    let page = page(HOSTILE, html! { (HOSTILE) }, Some(&[&card]), body);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rep");
    let mut json = BTreeMap::new();
    json.insert("site", HOSTILE);
    let files = write_report(&out, &page, &json).unwrap();
    assert_eq!(files.html, out.join("index.html"));
    // Only the two files: no temporary left behind.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["index.html", "report.json"]);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files.json).unwrap()).unwrap();
    assert_eq!(v["site"], HOSTILE);
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<B>") && html.contains("Clinic &lt;B&gt; &amp; &quot;Co&quot;"));
    assert!(
        html.contains(&card.licence.name),
        "the provenance box names the licence"
    );
    assert_eq!(html.matches("<style>").count(), 1);
    for outside in ["src=", "<link", "<script", "url("] {
        assert!(!html.contains(outside), "{outside}");
    }
    assert_eq!(html.matches("<svg").count(), 5);

    let Some(chrome) = chromium() else {
        assert!(
            std::env::var("DISCUS_REQUIRE_CROSSCHECKS").as_deref() != Ok("1"),
            "chromium is required"
        );
        println!("skipping the browser check: chromium is not installed");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let dom = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", files.html.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&dom.stderr);
    assert!(dom.status.success(), "chromium failed: {stderr}");
    for bad in [
        "Uncaught",
        "CONSOLE",
        "Failed to load",
        "ERR_FILE_NOT_FOUND",
    ] {
        assert!(!stderr.contains(bad), "{bad} in chromium's log:\n{stderr}");
    }
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(dom.matches("<svg").count(), 5, "{dom}");
    assert!(dom.contains("Clinic &lt;B&gt;"));
}
