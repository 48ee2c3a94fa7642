//! A cohort's configuration and its generation: planning (see [`crate::plan`]), rendering and
//! writing each study, then the label CSVs, the truth file (see [`crate::truth`]) and the dataset
//! card. Quirk injection lives in [`crate::quirks`].

use crate::dcm::{encode_instance, mix_all, uid, InstanceInfo};
use crate::protocol::Site;
use crate::raster::render_slice;
use crate::readers::BayesLimit;
use discus_core::formats::{
    write_coordinates, write_series_descriptions, write_train, LabelPoint, LineEnding,
    SeriesDescription, StudyLabels,
};
use discus_core::fsio::atomic_write;
use discus_core::layout::{Layout, Split};
use discus_core::{SeriesId, StudyId};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use crate::plan::{plan_study, structure_centre, CohortPlan, StudyPlan, StudyRead};
pub use crate::quirks::{Injection, NaturalFinding, Quirk};
pub use crate::truth::{SeriesTruth, StudyTruth, Truth, TruthPoint};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthConfig {
    /// Number of studies to generate.
    pub studies: usize,
    /// Number of hospital sites; studies are spread over them.
    pub sites: usize,
    /// Seed of every random draw: the same configuration gives the same cohort, byte for byte.
    pub seed: u64,
    /// Number of simulated readers grading each study (reader 0 writes train.csv).
    pub readers: usize,
    /// Probability that a study carries one injected quirk.
    pub quirk_rate: f64,
    /// Scales every image matrix (1 = the realistic sizes; smaller for fast tests and demos). The
    /// field of view and the anatomy are unchanged.
    #[serde(default = "one")]
    pub matrix_scale: f64,
    /// Scan every patient a second time at another site (`--rescan`): the cohort has twice the
    /// studies, the second half the same patients (same anatomy and degeneration) with new study
    /// ids, linked in truth.json (`patient`, `rescan_of`).
    #[serde(default)]
    pub rescan: bool,
    /// Write per-series label volumes (`--masks`) under `masks/` (see [`crate::masks`]).
    #[serde(default)]
    pub masks: bool,
}

fn one() -> f64 {
    1.0
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            studies: 12,
            sites: 3,
            seed: 1,
            readers: 3,
            quirk_rate: 0.0,
            matrix_scale: 1.0,
            rescan: false,
            masks: false,
        }
    }
}

/// Errors of cohort generation.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A label CSV could not be read back or written.
    #[error("{0}")]
    Format(#[from] discus_core::formats::FormatError),
    /// An instance could not be encoded as DICOM.
    #[error("study {study}, series {series}: DICOM encoding failed: {message}")]
    Dicom {
        /// The study.
        study: StudyId,
        /// The series.
        series: SeriesId,
        /// The encoder's message.
        message: String,
    },
    /// The output folder holds something else than this configuration's cohort.
    #[error("{path}: holds a different synthetic cohort ({message}); choose an empty folder")]
    Mismatch {
        /// The output folder.
        path: PathBuf,
        /// What differs.
        message: String,
    },
    /// The configuration is unusable (no studies, sites or readers; a scale or rate out of range).
    #[error("bad configuration: {0}")]
    Config(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The noise seed of slice `k` of series `si` of a study.
pub fn slice_noise_seed(cfg: &SynthConfig, st: &StudyPlan, si: usize, k: usize) -> u64 {
    mix_all(&[cfg.seed, st.index as u64, 100 + si as u64, k as u64])
}

/// The SOPInstanceUID of an instance.
pub fn sop_instance_uid(
    cfg: &SynthConfig,
    st: &StudyPlan,
    series: SeriesId,
    instance: u32,
) -> String {
    uid(&[cfg.seed, st.index as u64, series.0], instance)
}

/// Renders and writes one study's DICOM files. Returns bytes written.
///
/// Slices render in parallel; a writer thread of the study's own does the atomic writes (each
/// ends in an fsync that would otherwise leave a rendering core idle), fed through a small
/// bounded queue.
pub fn write_study(
    root: &Path,
    cfg: &SynthConfig,
    st: &StudyPlan,
    site: &Site,
) -> Result<u64, SynthError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<(PathBuf, Vec<u8>)>(8);
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || {
            let mut total = 0u64;
            let mut first_err = None;
            for (path, b) in rx {
                if first_err.is_none() {
                    match atomic_write(&path, &b) {
                        Ok(()) => total += b.len() as u64,
                        Err(e) => first_err = Some(io(&path)(e)),
                    }
                }
            }
            match first_err {
                Some(e) => Err(e),
                None => Ok(total),
            }
        });
        let rendered = render_study(root, cfg, st, site, tx);
        let written = writer.join().expect("the writer thread does not panic");
        rendered?;
        written
    })
}

/// Renders and encodes every slice of a study, sending (path, bytes) to the writer.
fn render_study(
    root: &Path,
    cfg: &SynthConfig,
    st: &StudyPlan,
    site: &Site,
    tx: std::sync::mpsc::SyncSender<(PathBuf, Vec<u8>)>,
) -> Result<(), SynthError> {
    let layout = Layout::new(root);
    for (si, s) in st.series.iter().enumerate() {
        let sig = &st.signals[si];
        let done: Result<Vec<()>, SynthError> = s
            .slices
            .par_iter()
            .enumerate()
            .map_with(tx.clone(), |tx, (k, g)| {
                let inst = s.instance_numbers[k];
                let seed = slice_noise_seed(cfg, st, si, k);
                let pixels = render_slice(&st.anatomy, g, sig, seed);
                let info = InstanceInfo {
                    study: st.study,
                    series: s,
                    site,
                    geom: g,
                    signal: sig,
                    instance_number: inst,
                    sop_instance_uid: sop_instance_uid(cfg, st, s.series_id, inst),
                    frame_of_reference_uid: st.frame_uid.clone(),
                };
                let b = encode_instance(&info, &pixels).map_err(|message| SynthError::Dicom {
                    study: st.study,
                    series: s.series_id,
                    message,
                })?;
                let path = layout.instance(Split::Train, st.study, s.series_id, i64::from(inst));
                // A send fails only when the writer has stopped, after an error it reports.
                let _ = tx.send((path, b));
                Ok(())
            })
            .collect();
        done?;
    }
    drop(tx);
    if cfg.masks {
        write_masks(root, st)?;
    }
    Ok(())
}

/// Writes the label volumes of every series of a study: `masks/<study>/<stem>.nii.gz` and a
/// `<stem>.json` sidecar with the InstanceNumber of each slice (see [`crate::masks`]).
pub fn write_masks(root: &Path, st: &StudyPlan) -> Result<(), SynthError> {
    let layout = Layout::new(root);
    let vols: Vec<crate::masks::MaskVolume> = st
        .series
        .par_iter()
        .flat_map_iter(|s| {
            crate::masks::series_masks(
                &st.anatomy,
                &s.series_id.to_string(),
                &s.slices,
                &s.instance_numbers,
            )
        })
        .collect();
    for v in vols {
        let path = layout.mask(st.study, &v.stem);
        atomic_write(&path, &v.nifti).map_err(io(&path))?;
        let side = path.with_file_name(format!("{}.json", v.stem));
        let json = serde_json::json!({
            "study_id": st.study,
            "series_id": v.stem.split('_').next().unwrap_or(&v.stem),
            "instance_numbers": v.instance_numbers,
        });
        let bytes = serde_json::to_vec_pretty(&json).expect("sidecar serialises");
        atomic_write(&side, &bytes).map_err(io(&side))?;
    }
    Ok(())
}

impl CohortPlan {
    /// Writes the label CSVs (root = reader 0; `readers/<r>/` for every reader) and truth.json.
    pub fn write_labels(&self, root: &Path) -> Result<(), SynthError> {
        let layout = Layout::new(root);
        let mut order: Vec<&StudyPlan> = self.studies.iter().collect();
        order.sort_by_key(|s| s.study);
        let le = LineEnding::Lf;
        for r in 0..self.readers.len() {
            let grades: Vec<StudyLabels> =
                order.iter().map(|s| s.reads[r].grades.clone()).collect();
            let mut pts: Vec<LabelPoint> = order
                .iter()
                .flat_map(|s| s.reads[r].points.clone())
                .collect();
            pts.sort_by(|a, b| {
                (a.study, a.series, a.condition, a.level).cmp(&(
                    b.study,
                    b.series,
                    b.condition,
                    b.level,
                ))
            });
            let reader = Layout::new(root.join("readers").join(r.to_string()));
            write_train(&reader.train_csv(), &grades, le)?;
            write_coordinates(&reader.coordinates_csv(), &pts, le)?;
            if r == 0 {
                write_train(&layout.train_csv(), &grades, le)?;
                write_coordinates(&layout.coordinates_csv(), &pts, le)?;
            }
        }
        let desc: Vec<SeriesDescription> = order
            .iter()
            .flat_map(|s| {
                s.series.iter().map(|x| SeriesDescription {
                    study: s.study,
                    series: x.series_id,
                    kind: x.description,
                })
            })
            .collect();
        write_series_descriptions(&layout.descriptions_csv(Split::Train), &desc, le)?;
        let path = root.join("truth.json");
        let json = serde_json::to_vec_pretty(&self.truth()).expect("truth serialises");
        atomic_write(&path, &json).map_err(io(&path))?;
        if self.config.masks {
            let path = layout.masks().join("labels.json");
            let json =
                serde_json::to_vec_pretty(&crate::masks::label_table()).expect("labels serialise");
            atomic_write(&path, &json).map_err(io(&path))?;
        }
        let card_path = layout.card();
        self.card().write(&card_path).map_err(|e| match e {
            discus_core::governance::CardError::Io { path, source } => {
                SynthError::Io { path, source }
            }
            other => SynthError::Io {
                path: card_path.clone(),
                source: std::io::Error::other(other.to_string()),
            },
        })?;
        Ok(())
    }

    /// The dataset card (`dataset.toml`) of this synthetic cohort: generated data with no patient
    /// in it, so every use is permitted. Deterministic (no wall clock): the same configuration gives
    /// the same bytes.
    pub fn card(&self) -> discus_core::governance::DatasetCard {
        use discus_core::governance::{DatasetCard, Deidentification, Licence, Use};
        let c = &self.config;
        DatasetCard {
            name: format!("discus synthetic cohort (seed {})", c.seed),
            source: format!(
                "discus synth {}: synthetic lumbar MRI cohort generated from seed {}, {} studies, {} sites, {} readers, quirk rate {}, matrix scale {}",
                env!("CARGO_PKG_VERSION"),
                c.seed,
                c.studies,
                c.sites,
                c.readers,
                c.quirk_rate,
                c.matrix_scale
            ),
            date: None,
            sites: self.sites.iter().map(|s| s.name.clone()).collect(),
            licence: Licence {
                name: "MIT OR Apache-2.0 (synthetic data; no patient data)".into(),
                url: None,
                permitted_uses: Use::ALL.to_vec(),
                citation_required: false,
                citation: None,
            },
            deidentification: Deidentification {
                applied: false,
                method: Some("not applicable: synthetic data, no patient was ever scanned".into()),
                ..Deidentification::default()
            },
            derived_from: Vec::new(),
        }
    }
}

/// Summary of a generation run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SynthSummary {
    /// The cohort's root folder.
    pub out: PathBuf,
    /// Studies in the cohort.
    pub studies: usize,
    /// Studies skipped because an earlier run had finished them.
    pub studies_skipped_done: usize,
    /// DICOM instances in the cohort.
    pub instances: usize,
    /// Bytes of DICOM written by this run.
    pub bytes_written: u64,
    /// Quirks injected.
    pub quirks: usize,
    /// The expected score of the Bayes-optimal prediction.
    pub bayes_limit: BayesLimit,
}

/// Generates a cohort into `root`: plans it, renders and writes each study (resuming: studies finished
/// by an earlier run with the same configuration are skipped), then writes the CSVs and truth.json.
/// `progress` is called after each study with the number done so far.
pub fn generate(
    root: &Path,
    config: &SynthConfig,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<SynthSummary, SynthError> {
    let plan = CohortPlan::new(config)?;
    let state = root.join(".discus-synth");
    let cfg_path = state.join("config.json");
    let cfg_json = serde_json::to_vec_pretty(config).expect("config serialises");
    match std::fs::read(&cfg_path) {
        Ok(old) if old != cfg_json => {
            return Err(SynthError::Mismatch {
                path: root.to_path_buf(),
                message: format!("{} differs", cfg_path.display()),
            })
        }
        Ok(_) => {}
        Err(_) => {
            if Layout::new(root).images(Split::Train).exists() {
                return Err(SynthError::Mismatch {
                    path: root.to_path_buf(),
                    message: format!(
                        "{} exists but was not written by discus synth",
                        Split::Train
                    ),
                });
            }
            atomic_write(&cfg_path, &cfg_json).map_err(io(&cfg_path))?;
        }
    }
    let done = std::sync::atomic::AtomicUsize::new(0);
    let skipped = std::sync::atomic::AtomicUsize::new(0);
    let results: Result<Vec<u64>, SynthError> = plan
        .studies
        .par_iter()
        .map(|st| {
            let marker = state.join("done").join(st.study.to_string());
            let b = if marker.exists() {
                skipped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                0
            } else {
                let b = write_study(root, config, st, &plan.sites[st.site])?;
                atomic_write(&marker, b"").map_err(io(&marker))?;
                b
            };
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(n);
            Ok(b)
        })
        .collect();
    let bytes: u64 = results?.iter().sum();
    plan.write_labels(root)?;
    Ok(SynthSummary {
        out: root.to_path_buf(),
        studies: plan.studies.len(),
        studies_skipped_done: skipped.into_inner(),
        instances: plan.studies.iter().map(|s| s.instance_count()).sum(),
        bytes_written: bytes,
        quirks: plan.studies.iter().map(|s| s.quirks.len()).sum(),
        bayes_limit: plan.bayes_limit(),
    })
}
