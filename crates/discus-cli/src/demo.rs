//! `discus demo`: the whole path that exists, on a small synthetic multi-site cohort.
//!
//! The demo has no logic of its own: it runs the other `discus` commands in this process, each
//! parsed from the same command line a user would type (so each step's output, and the line
//! printed before it, shows exactly how to run that step by hand), and stops at the first step
//! that fails.

use anyhow::{bail, Context, Result};
use clap::Args;
use discus_core::layout::{Layout, Split};
use discus_core::StudyId;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Run the whole path on a small synthetic cohort: synthesise, validate, render, de-identify,
/// read agreement and consensus, baselines, scores, an evaluation report and folds; then train a
/// small model on the cohort, predict held-out studies (with explanations and stability), score the
/// predictions and measure the model's agreement with the readers as an AI reader.
///
/// Prints each step as the command that does it, then where everything went.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for everything the demo writes (reused: an unchanged cohort is not written again).
    #[arg(long, default_value = "discus-demo")]
    pub out: PathBuf,
    /// Number of synthetic studies.
    #[arg(long, default_value_t = 12)]
    pub studies: usize,
    /// Number of synthetic sites (vendor, field strength, protocol).
    #[arg(long, default_value_t = 3)]
    pub sites: usize,
    /// Seed of the cohort.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Training epochs of the demo's model (0: skip training, prediction and the findings page).
    #[arg(long, default_value_t = 8)]
    pub epochs: usize,
    /// Held-out studies (another seed, no quirks) the demo's model predicts and is scored on.
    #[arg(long, default_value_t = 4)]
    pub held_out: usize,
}

pub fn run(a: DemoArgs) -> Result<ExitCode> {
    let t0 = Instant::now();
    let out = a.out.clone();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let cohort = out.join("cohort");
    let p = |x: &Path| x.display().to_string();
    let sub = out.join("submissions");

    // 1. A cohort with known truth, three simulated readers and a few of the real data's quirks.
    step(
        "synthesise a cohort",
        &[
            "synth",
            "--out",
            &p(&cohort),
            "--studies",
            &a.studies.to_string(),
            "--sites",
            &a.sites.to_string(),
            "--seed",
            &a.seed.to_string(),
            "--readers",
            "3",
            "--quirks",
            "0.25",
        ],
        Expect::Success,
    )?;

    // 2. Validate it: the injected quirks come back as findings (so exit status 1 is expected).
    step(
        "validate it (the injected quirks are reported as findings)",
        &[
            "validate",
            &p(&cohort),
            "--report",
            &p(&out.join("validate")),
            "--show",
            "3",
        ],
        Expect::Any,
    )?;

    // 3. Contact sheets of two studies from different sites.
    let studies = two_sites(&cohort)?;
    for s in &studies {
        step(
            "render a study",
            &[
                "render",
                &p(&Layout::new(&cohort).study(Split::Train, *s)),
                "--out",
                &p(&out.join("render").join(format!("{s}.png"))),
            ],
            Expect::Success,
        )?;
    }

    // 4. Baselines and their scores.
    let train = Layout::new(&cohort).train_csv();
    for kind in ["uniform", "optimal"] {
        let file = sub.join(format!("prior_{kind}.csv"));
        step(
            "constant baseline",
            &[
                "baseline",
                "prior",
                "--labels",
                &p(&train),
                "--studies",
                &p(&train),
                "--kind",
                kind,
                "--out",
                &p(&file),
            ],
            Expect::Success,
        )?;
        step(
            "score it",
            &["score", "--labels", &p(&train), "--submission", &p(&file)],
            Expect::Success,
        )?;
    }

    // 5. The evaluation report and a reproducible split.
    step(
        "evaluation report",
        &[
            "evaluate",
            "--dataset",
            &p(&cohort),
            "--submission",
            &p(&sub.join("prior_optimal.csv")),
            "--out",
            &p(&out.join("evaluation")),
            "--resamples",
            "200",
        ],
        Expect::Success,
    )?;
    step(
        "a 3-fold split",
        &[
            "split",
            "--dataset",
            &p(&cohort),
            "--folds",
            "3",
            "--out",
            &p(&out.join("folds.csv")),
        ],
        Expect::Success,
    )?;

    // 6. The three simulated readers: agreement, then consensus labels.
    let store = out.join("reads.sqlite");
    let reads = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "reads".into(),
            "--dataset".into(),
            p(&cohort),
            "--store".into(),
            p(&store),
        ];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    };
    step_owned(
        "import the readers' reads",
        reads(&["import", "--readers-dir", &p(&cohort.join("readers"))]),
        Expect::Success,
    )?;
    step_owned(
        "reader agreement",
        reads(&[
            "agreement",
            "--out",
            &p(&out.join("agreement")),
            "--resamples",
            "200",
        ]),
        Expect::Success,
    )?;
    step_owned(
        "consensus labels",
        reads(&[
            "consensus",
            "--rule",
            "median",
            "--out",
            &p(&out.join("consensus")),
        ]),
        Expect::Success,
    )?;

    // 7. De-identify one study and prove nothing identifying survived.
    let one = Layout::new(&cohort).study(Split::Train, studies[0]);
    let deid = out.join("deid");
    step(
        "de-identify a study",
        &[
            "deid",
            &p(&one),
            &p(&deid),
            "--profile",
            "basic",
            "--key",
            &p(&out.join("deid.key")),
            "--map",
            &p(&out.join("deid-map.csv")),
        ],
        Expect::Success,
    )?;
    step(
        "verify the de-identification",
        &["deid", "verify", &p(&deid), "--against", &p(&one)],
        Expect::Success,
    )?;

    // 8. A small model: train on the cohort, predict held-out studies, score, compare with readers.
    let model_dir = out.join("model");
    let held = out.join("held-out");
    let pred = out.join("predictions");
    let mut model_lines: Vec<(&str, PathBuf)> = Vec::new();
    if a.epochs > 0 {
        step(
            "train a small model on the cohort",
            &[
                "train",
                "--dataset",
                &p(&cohort),
                "--epochs",
                &a.epochs.to_string(),
                "--seed",
                &a.seed.to_string(),
                "--out",
                &p(&model_dir),
            ],
            Expect::Success,
        )?;
        step(
            "held-out studies (another seed)",
            &[
                "synth",
                "--out",
                &p(&held),
                "--studies",
                &a.held_out.max(1).to_string(),
                "--sites",
                &a.sites.to_string(),
                "--seed",
                &(a.seed + 1000).to_string(),
                "--readers",
                "1",
            ],
            Expect::Success,
        )?;
        step(
            "predict them, with explanations and stability",
            &[
                "predict",
                "--model",
                &p(&model_dir),
                &p(&held),
                "--out",
                &p(&pred),
                "--explain",
                "--stability",
                "8",
            ],
            Expect::Success,
        )?;
        step(
            "score the predictions against the held-out truth",
            &[
                "score",
                "--labels",
                &p(&Layout::new(&held).train_csv()),
                "--submission",
                &p(&pred.join("submission.csv")),
            ],
            Expect::Success,
        )?;
        // The model as a reader of the training cohort, next to the simulated readers.
        let own = out.join("predictions-cohort");
        step(
            "predict the cohort (for the model-vs-reader agreement)",
            &[
                "predict",
                "--model",
                &p(&model_dir),
                &p(&cohort),
                "--out",
                &p(&own),
                "--no-pages",
            ],
            Expect::Any,
        )?;
        step_owned(
            "import the model's predictions as an AI reader",
            reads(&["import", "--reader", "ai:demo", "--predictions", &p(&own)]),
            Expect::Success,
        )?;
        step_owned(
            "agreement with the AI reader",
            reads(&[
                "agreement",
                "--out",
                &p(&out.join("agreement-ai")),
                "--resamples",
                "200",
            ]),
            Expect::Success,
        )?;
        let first = std::fs::read_dir(&pred)
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|d| d.join("index.html").is_file())
            .min();
        model_lines.push((
            "model (weights.safetensors + model.toml)",
            model_dir.clone(),
        ));
        model_lines.push(("held-out studies", held.clone()));
        model_lines.push(("predictions (submission.csv, findings.json)", pred.clone()));
        model_lines.push(("findings pages (index)", pred.join("index.html")));
        if let Some(d) = first {
            model_lines.push(("one study's findings page", d.join("index.html")));
        }
        model_lines.push(("agreement with the AI reader", out.join("agreement-ai")));
    }

    println!();
    println!(
        "demo finished in {:.1} s; everything is under {}:",
        t0.elapsed().as_secs_f64(),
        out.display()
    );
    for (what, path) in [
        ("synthetic cohort (LumbarDISC layout)", cohort.clone()),
        (
            "its truth (degrees, grades, readers, quirks, Bayes limit)",
            cohort.join("truth.json"),
        ),
        ("validation report", out.join("validate").join("index.html")),
        ("contact sheets", out.join("render")),
        ("baseline submissions", sub.clone()),
        (
            "evaluation report",
            out.join("evaluation").join("index.html"),
        ),
        ("folds", out.join("folds.csv")),
        ("reads store", store.clone()),
        ("agreement report", out.join("agreement")),
        ("consensus labels", out.join("consensus")),
        ("de-identified study", deid.clone()),
    ]
    .into_iter()
    .chain(model_lines)
    {
        println!("  {what:<58} {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, PartialEq)]
enum Expect {
    Success,
    Any,
}

fn step(what: &str, args: &[&str], expect: Expect) -> Result<()> {
    step_owned(what, args.iter().map(|s| s.to_string()).collect(), expect)
}

fn step_owned(what: &str, args: Vec<String>, expect: Expect) -> Result<()> {
    println!("\n== {what}: discus {}", args.join(" "));
    let argv = std::iter::once("discus".to_string()).chain(args.iter().cloned());
    let cli = <crate::Cli as clap::Parser>::try_parse_from(argv)
        .with_context(|| format!("the demo's own command line for {what}"))?;
    let code = crate::dispatch(cli.command).with_context(|| format!("demo step: {what}"))?;
    if expect == Expect::Success && code != ExitCode::SUCCESS {
        bail!("demo step failed: {what} (discus {})", args.join(" "));
    }
    Ok(())
}

/// The first study, and the first study of another site (by InstitutionName), if any.
fn two_sites(cohort: &Path) -> Result<Vec<StudyId>> {
    let labels = discus_core::formats::read_train(&Layout::new(cohort).train_csv())?.strict()?;
    let ids: Vec<StudyId> = labels.iter().map(|s| s.study).collect();
    let first = *ids.first().context("the synthetic cohort has no studies")?;
    let ds = discus_data::dataset::Dataset::open(cohort)?;
    let site = |s: StudyId| ds.study_meta(s).ok().flatten().and_then(|m| m.institution);
    let first_site = site(first);
    let other = ids.iter().copied().find(|&s| site(s) != first_site);
    Ok(std::iter::once(first).chain(other).collect())
}
