//! The trigger and the worker.
//!
//! - **Trigger** ([`trigger_loop`]): every `poll_ms`, studies that received something and whose
//!   last instance is older than `stable_age_s` get a job keyed by (Study UID, hash of its instance
//!   UIDs, model version); a key that exists already creates nothing, so the same content never
//!   runs twice (a re-sent study, a restart).
//! - **Worker** ([`worker_loop`], one thread: the model is CPU-bound): takes the oldest queued job
//!   and runs the pipeline in `<data_dir>/jobs/<id>/`: the study's files are linked into `source/`,
//!   [`discus_data::ingest::ingest`] classifies the series (orientation and TR/TE/TI) and writes a
//!   one-study dataset, [`discus_model::predict::predict_study`] grades it, and the results are
//!   written atomically to `<data_dir>/results/<id>/`: `sr.dcm` (Comprehensive SR, TID 1500, by
//!   `discus-sr`, checked by its own checker before it is written) and `findings.json`. A study without a usable series ends in
//!   state `no_usable_series` with the classifier's reasons, never a crash.
//! - **Delivery**: every DICOM file (`*.dcm`) in the result folder goes to each configured
//!   destination ([`crate::deliver`]), with retries; after the last failed attempt the delivery is
//!   in the dead-letter list (state `dead`, shown in `/jobs`).
//!
//! Progress (`GET /jobs/{id}`) comes from the job's [`Progress`] handle (stages `linking`,
//! `reading headers`, `writing`, `predicting`, `writing result`); cancelling it stops the job
//! between stages.

use crate::deliver;
use crate::node::Node;
use crate::store::{Job, JobState};
use discus_core::progress::Progress;
use discus_data::dataset::Dataset;
use discus_data::ingest::{ingest, IngestError, IngestRequest};
use discus_model::Model;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The result file of a job.
pub const RESULT_FILE: &str = "findings.json";

/// The structured report of a job (Comprehensive SR, TID 1500, written by `discus-sr`).
pub const SR_FILE: &str = "sr.dcm";

/// Series Number of discus's report series.
pub const SR_SERIES_NUMBER: i32 = 990;

/// The SR of a job: the study's patient/study modules copied from its instances, one TID 1500
/// measurement group per finding with its point on the source slice, the algorithm name, model
/// version and licence. The SOP Instance UID derives from the job key (study, content, model), so
/// a redone run writes the same instance; new content or a new model is a new revision.
pub fn sr_document(
    model: &Model,
    ds: &Dataset,
    study: discus_core::StudyId,
    job: &Job,
    prediction: &discus_model::StudyPrediction,
) -> Result<discus_sr::SrDocument, discus_sr::SrError> {
    let context = discus_sr::source::study_context(ds, study)?;
    let mut findings = Vec::new();
    for f in &prediction.findings {
        let point = match &f.point {
            Some(p) => Some(discus_sr::source::source_point(
                ds,
                study,
                p.series,
                p.instance,
                [p.x, p.y],
            )?),
            None => None,
        };
        findings.push(discus_sr::SrFinding {
            condition: f.condition,
            level: f.level,
            probabilities: f.probabilities,
            grade: f.grade,
            point,
            tracking_key: discus_sr::SrFinding::tracking_key(study, f.condition, f.level),
        });
    }
    let licences: Vec<String> = model
        .card
        .provenance
        .all_cards()
        .iter()
        .map(|c| c.licence.name.clone())
        .collect();
    Ok(discus_sr::SrDocument {
        study: context.clone(),
        algorithm: discus_sr::Algorithm {
            name: "discus localise-then-grade".into(),
            version: job.model_version.clone(),
            licence: if licences.is_empty() {
                "unspecified".into()
            } else {
                licences.join("; ")
            },
            manufacturer: "discus".into(),
        },
        findings,
        series_number: SR_SERIES_NUMBER,
        instance_number: 1,
        sop_instance_uid: Some(discus_sr::write::derived_uid(
            "discus-serve/sr",
            &[
                &context.study_instance_uid,
                &job.content_hash,
                &job.model_version,
            ],
        )),
        content_date_time: None,
    })
}

/// `findings.json`: the model's output for one job.
#[derive(Debug, Serialize)]
pub struct JobResult<'a> {
    /// The job id.
    pub job: i64,
    /// The model version.
    pub model_version: &'a str,
    /// The instance content hash of the job key.
    pub content_hash: &'a str,
    /// The prediction.
    pub prediction: discus_model::StudyPrediction,
}

/// Creates jobs for stable studies until the node stops.
pub fn trigger_loop(node: Arc<Node>) {
    let poll = Duration::from_millis(node.config.trigger.poll_ms.max(10));
    while !node.is_stopping() {
        if let Err(e) = trigger_once(&node) {
            node.log(format!("trigger: {e}"));
        }
        std::thread::sleep(poll);
    }
}

/// One trigger pass; returns the jobs created.
pub fn trigger_once(node: &Node) -> Result<Vec<i64>, crate::store::StoreError> {
    let mut created = Vec::new();
    for (study_uid, last) in node
        .store
        .stable_studies(node.config.trigger.stable_age_s)?
    {
        let sid = discus_core::ids::id_from_uid(&study_uid);
        match node
            .store
            .create_job(&study_uid, last, &node.model_version)?
        {
            Some(id) => {
                node.log(format!("study {sid}: stable, job {id} queued"));
                node.metrics.inc("discus_jobs_created_total");
                created.push(id);
            }
            None => {
                node.metrics.inc("discus_jobs_deduplicated_total");
                node.log(format!(
                    "study {sid}: stable, same content and model as an earlier job: nothing to do"
                ));
            }
        }
    }
    Ok(created)
}

/// Runs queued jobs until the node stops.
pub fn worker_loop(node: Arc<Node>, model: Model) {
    let poll = Duration::from_millis(node.config.trigger.poll_ms.clamp(10, 500));
    while !node.is_stopping() {
        let job = match node.store.next_job() {
            Ok(Some(j)) => j,
            Ok(None) => {
                std::thread::sleep(poll);
                continue;
            }
            Err(e) => {
                node.log(format!("worker: {e}"));
                std::thread::sleep(poll);
                continue;
            }
        };
        let progress = Progress::new();
        node.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.id, progress.clone());
        let t0 = std::time::Instant::now();
        let (state, outcome) = match run_job(&node, &model, &job, &progress) {
            Ok(r) => r,
            Err(e) => (JobState::Failed, e),
        };
        node.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&job.id);
        node.metrics.job_seconds_milli.fetch_add(
            t0.elapsed().as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        node.metrics
            .job_runs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        node.log(format!(
            "job {} (study {}): {} ({:.1} s)",
            job.id,
            job.study_id,
            state.as_str(),
            t0.elapsed().as_secs_f64()
        ));
        if let Err(e) = node.store.finish_job(job.id, state, &outcome) {
            node.log(format!("job {}: {e}", job.id));
        }
        if state == JobState::Done {
            start_delivery(node.clone(), job.id);
        }
    }
}

/// The result folder of a job.
pub fn result_dir(data_dir: &Path, job: i64) -> PathBuf {
    data_dir.join("results").join(job.to_string())
}

fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)?;
    }
    Ok(())
}

fn run_job(
    node: &Node,
    model: &Model,
    job: &Job,
    progress: &Progress,
) -> Result<(JobState, String), String> {
    let cancelled = || (JobState::Cancelled, "cancelled while running".to_string());
    let dir = node.data_dir.join("jobs").join(job.id.to_string());
    if dir.exists() {
        // A run interrupted by a restart: start again from nothing.
        std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let source = dir.join("source");
    std::fs::create_dir_all(&source).map_err(|e| format!("{}: {e}", source.display()))?;
    let files = node
        .store
        .study_files(&job.study_uid)
        .map_err(|e| e.to_string())?;
    progress.stage("linking", files.len() as u64);
    for (i, (_, rel)) in files.iter().enumerate() {
        let to = source.join(format!("{i:06}.dcm"));
        link_or_copy(&node.data_dir.join(rel), &to)
            .map_err(|e| format!("{}: {e}", to.display()))?;
        progress.inc(1);
    }
    let request = IngestRequest {
        source: source.clone(),
        out: dir.join("dataset"),
        map_path: dir.join("map.csv"),
    };
    let report = match ingest(&request, None, progress) {
        Ok(r) => r,
        Err(IngestError::Cancelled) => return Ok(cancelled()),
        Err(e) => return Err(format!("ingest: {e}")),
    };
    let hold = node.config.trigger.hold_after_ingest_ms;
    if hold > 0 {
        std::thread::sleep(Duration::from_millis(hold));
    }
    if progress.check().is_err() {
        return Ok(cancelled());
    }
    if !report.series.iter().any(|s| s.written) {
        let why: Vec<String> = report
            .series
            .iter()
            .map(|s| {
                format!(
                    "series {}: {} ({})",
                    s.series_id,
                    s.kind.map(|k| k.as_str()).unwrap_or("other"),
                    s.classification.reason
                )
            })
            .collect();
        let skipped = report.skipped.len();
        return Ok((
            JobState::NoUsableSeries,
            format!(
                "no series the model can use (sagittal T1, sagittal T2/STIR or axial T2): {}; {skipped} files skipped",
                if why.is_empty() {
                    "no image series".to_string()
                } else {
                    why.join("; ")
                }
            ),
        ));
    }
    progress.stage("predicting", 1);
    let ds = Dataset::open(&request.out).map_err(|e| format!("dataset: {e}"))?;
    let studies = ds.studies().map_err(|e| format!("dataset: {e}"))?;
    let Some(study) = studies.first().map(|s| s.study) else {
        return Ok((
            JobState::NoUsableSeries,
            "the ingested dataset has no study".into(),
        ));
    };
    let prediction = discus_model::predict::predict_study(model, &ds, study)
        .map_err(|e| format!("predict: {e}"))?;
    progress.inc(1);
    if progress.check().is_err() {
        return Ok(cancelled());
    }
    progress.stage("writing result", 1);
    let out = result_dir(&node.data_dir, job.id);
    let result = JobResult {
        job: job.id,
        model_version: &job.model_version,
        content_hash: &job.content_hash,
        prediction,
    };
    // The SR first, then findings.json: a run killed in between is redone and writes the same
    // SR again (its SOP Instance UID derives from the job key), so there is one result either way.
    let sr = sr_document(model, &ds, study, job, &result.prediction)
        .map_err(|e| format!("structured report: {e}"))?;
    let sr_path = out.join(SR_FILE);
    let bytes = sr
        .to_bytes()
        .map_err(|e| format!("structured report: {e}"))?
        .0;
    let written = discus_data::dicom::open_dicom_bytes(&bytes, &sr_path)
        .map_err(|e| format!("structured report: {e}"))?;
    discus_sr::check(&written, SR_FILE)
        .map_err(|e| format!("structured report fails its own check: {e}"))?;
    discus_core::fsio::atomic_write(&sr_path, &bytes)
        .map_err(|e| format!("{}: {e}", sr_path.display()))?;
    let json = serde_json::to_vec_pretty(&result).map_err(|e| e.to_string())?;
    let path = out.join(RESULT_FILE);
    discus_core::fsio::atomic_write(&path, &json)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    progress.inc(1);
    // The job folder was only needed to run; the instances stay in the store.
    let _ = std::fs::remove_dir_all(&dir);
    Ok((JobState::Done, format!("results/{}/{RESULT_FILE}", job.id)))
}

/// The DICOM files of a job's result folder, in name order.
pub fn result_files(data_dir: &Path, job: i64) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(result_dir(data_dir, job))
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "dcm"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Delivers a finished job's DICOM results to every destination on a thread of its own (retries
/// wait without holding up the worker).
pub fn start_delivery(node: Arc<Node>, job: i64) {
    let files = result_files(&node.data_dir, job);
    if files.is_empty() || node.config.destinations.is_empty() {
        return;
    }
    let names: Vec<String> = node.config.destinations.iter().map(|d| d.name()).collect();
    if let Err(e) = node.store.add_deliveries(job, &names) {
        node.log(format!("job {job}: {e}"));
        return;
    }
    std::thread::spawn(move || {
        let pending: Vec<String> = node
            .store
            .job(job)
            .ok()
            .flatten()
            .map(|j| {
                j.deliveries
                    .into_iter()
                    .filter(|d| d.state == "pending")
                    .map(|d| d.destination)
                    .collect()
            })
            .unwrap_or_default();
        for dest in node.config.destinations.clone() {
            if !pending.contains(&dest.name()) {
                continue;
            }
            deliver::deliver_with_retries(&node, job, &dest, &files);
        }
    });
}

/// Restarts deliveries still pending from before a restart.
pub fn resume_deliveries(node: &Arc<Node>) {
    if let Ok(jobs) = node.store.jobs() {
        for j in jobs {
            if j.state == JobState::Done && j.deliveries.iter().any(|d| d.state == "pending") {
                start_delivery(node.clone(), j.id);
            }
        }
    }
}
