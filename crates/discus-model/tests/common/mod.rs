//! The fixture shared by discus-model's integration tests (`tests/model.rs`, `tests/explain.rs`):
//! tiny synthetic cohorts (2 sites, matrix scale 0.25, no quirks) and tiny models trained on them,
//! made once per test binary: [`fixture`] (overfitted) and [`light_fixture`]; and
//! [`save_untrained`], the one place a test writes a model card by hand (`tests/onnx.rs`,
//! `tests/backends.rs`), so a new card field breaks it where CI compiles it.
#![allow(dead_code)] // each test crate uses its own subset

use burn::module::Module;
use burn::tensor::Device;
use discus_core::governance::Provenance;
use discus_core::StudyId;
use discus_data::dataset::Dataset;
use discus_model::net::{Architecture, Net};
use discus_model::prep::Preprocessing;
use discus_model::{train, Model, ModelCard, TrainRequest, TrainingInfo};
use discus_synth::cohort::{generate, SynthConfig};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The cohort, the model folder and the first and last epochs' (localiser, grader) losses.
pub struct Fixture {
    /// The cohort (LumbarDISC layout).
    pub cohort: PathBuf,
    /// The trained model folder.
    pub model: PathBuf,
    /// First epoch's (localiser, grader) loss.
    pub first_loss: (f64, f64),
    /// Last epoch's (localiser, grader) loss.
    pub last_loss: (f64, f64),
}

/// The tiny networks and grids of every fixture: seed 5, widths 8, a 32-cell canal grid of 9 mm,
/// 16 x 16 crops of 3 mm, 2 studies per step, Adam 5e-3, no grader crop shift (the fixtures
/// overfit a few studies, and what they measure is the graders on the labelled points).
pub fn tiny_request(cohort: &Path, out: &Path, epochs: usize) -> TrainRequest {
    let mut r = TrainRequest::new(vec![cohort.to_path_buf()], out.to_path_buf());
    r.crop_shift_cells = 0;
    r.seed = 5;
    r.epochs = epochs;
    r.batch_studies = 2;
    r.learning_rate = 5e-3;
    r.architecture.localiser_width = 8;
    r.architecture.grader_width = 8;
    r.preprocessing.localiser_grid = 32;
    r.preprocessing.localiser_spacing_mm = 9.0;
    r.preprocessing.heat_sigma = 1.0;
    r.preprocessing.crop.rows = 16;
    r.preprocessing.crop.columns = 16;
    r.preprocessing.crop.spacing_mm = 3.0;
    r
}

/// [`tiny_request`] with small point-localiser crops (16 cells of 4 mm, one candidate slice on
/// each side, 6 mm jitter): the request of [`fixture`].
pub fn small_request(cohort: &Path, out: &Path, epochs: usize) -> TrainRequest {
    let mut r = tiny_request(cohort, out, epochs);
    r.preprocessing.point_grid = 16;
    r.preprocessing.point_spacing_mm = 4.0;
    r.preprocessing.foraminal_candidates = 1;
    r.preprocessing.point_jitter_mm = 6.0;
    r
}

/// Epochs of the fixture's training.
pub const EPOCHS: usize = 120;

/// The 4-study cohort (seed 21) and the model overfitted on it ([`small_request`], [`EPOCHS`]
/// epochs): `tests/model.rs`, which measures what the overfitted localisers find.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| make(4, 21, &|c, m| small_request(c, m, EPOCHS)))
}

/// A lighter fixture for tests that need a trained model but not a well-fitted one
/// (`tests/explain.rs`: overlay geometry, stability, shared decoding): 3 studies (seed 31),
/// [`tiny_request`] with 3 studies per step and 40 epochs (about a sixth of [`fixture`]'s steps).
pub fn light_fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        make(3, 31, &|c, m| {
            let mut r = tiny_request(c, m, 40);
            r.batch_studies = 3;
            r
        })
    })
}

fn make(studies: usize, seed: u64, request: &dyn Fn(&Path, &Path) -> TrainRequest) -> Fixture {
    let root = tempfile::tempdir().unwrap().keep();
    let cohort = root.join("cohort");
    let config = SynthConfig {
        studies,
        sites: 2,
        seed,
        readers: 1,
        quirk_rate: 0.0,
        matrix_scale: 0.25,
        ..Default::default()
    };
    generate(&cohort, &config, &|_| {}).unwrap();
    let model = root.join("model");
    let t0 = std::time::Instant::now();
    let r = train(&request(&cohort, &model), &|_| {}).unwrap();
    eprintln!("fixture: trained in {:.1} s", t0.elapsed().as_secs_f64());
    let m = &r.card.metrics;
    Fixture {
        cohort,
        model,
        first_loss: (m[0].localiser_loss, m[0].grader_loss),
        last_loss: (m[m.len() - 1].localiser_loss, m[m.len() - 1].grader_loss),
    }
}

/// The studies of a dataset, in index order.
pub fn studies(ds: &Dataset) -> Vec<StudyId> {
    ds.studies().unwrap().iter().map(|s| s.study).collect()
}

/// Saves `net` (seeded, untrained) as a model folder in `dir`, with a card of `architecture`,
/// `preprocessing`, `seed` and `provenance` that records no training, and returns the card.
pub fn save_untrained(
    dir: &Path,
    net: &Net,
    architecture: Architecture,
    preprocessing: Preprocessing,
    seed: u64,
    provenance: Provenance,
) -> ModelCard {
    let card = ModelCard {
        format: discus_model::FORMAT.into(),
        format_version: discus_model::FORMAT_VERSION,
        discus_version: env!("CARGO_PKG_VERSION").into(),
        architecture,
        preprocessing,
        offsets_mm: Default::default(),
        prior: Default::default(),
        temperatures: Default::default(),
        training: TrainingInfo {
            seed,
            epochs: 0,
            learning_rate: 1e-3,
            batch_studies: 1,
            train_studies: 0,
            held_out_studies: 0,
            folds: 0,
            held_fold: 0,
            seconds: 0.0,
            finished_unix: 0,
            hardware: "test".into(),
            init: None,
            graders_only: false,
            localisers_only: false,
            fresh_graders: false,
            best_epoch: None,
        },
        metrics: Vec::new(),
        provenance,
    };
    Model::new(card.clone(), net.clone().valid(), Device::flex())
        .save(dir)
        .unwrap();
    card
}
