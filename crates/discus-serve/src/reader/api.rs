//! The reading room's HTTP handlers (see [`super`] for the routes and the blinding rules).

// Handlers answer a refusal with the HTTP response itself (`Err(Response)`); boxing it would only add
// noise on a path that runs once per request.
#![allow(clippy::result_large_err)]

use super::{next_study, reference_line, Account, ReaderError, ReaderState};
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use discus_core::{Condition, Level, SeriesId, SeriesKind, Severity, StudyId};
use discus_reads::analysis::{
    adjudications, blinded_findings, consensus, disagreements, ConsensusRule, DisagreementRule,
};
use discus_reads::store::{Point, ReadEvent, RoundId, StoredRead};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

type Shared = Arc<ReaderState>;

/// The routes (under `/reader/`).
pub fn router(state: Shared) -> Router {
    Router::new()
        .route(
            "/reader",
            get(|| async { axum::response::Redirect::permanent("/reader/") }),
        )
        .route("/reader/", get(|| async { asset("index.html") }))
        .route(
            "/reader/{file}",
            get(|UrlPath(f): UrlPath<String>| async move { asset(&f) }),
        )
        .route("/reader/api/session", get(session))
        .route("/reader/api/next", get(next))
        .route(
            "/reader/api/studies/{study}/series/{series}/instances/{instance}",
            get(instance),
        )
        .route("/reader/api/studies/{study}/refline", get(refline))
        .route("/reader/api/studies/{study}/reads", get(study_reads))
        .route("/reader/api/studies/{study}/submit", post(submit))
        .route("/reader/api/reads", post(save_read))
        .route("/reader/api/adjudication", get(worklist).post(decide))
        .with_state(state)
}

fn asset(name: &str) -> Response {
    match super::assets::find(name) {
        Some(a) => ([(header::CONTENT_TYPE, a.content_type)], a.bytes).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no file {name}")),
    }
}

fn error(code: StatusCode, what: impl std::fmt::Display) -> Response {
    (code, Json(json!({"error": what.to_string()}))).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, e)
}

fn digest(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

/// The reader whose token the request carries (every token is compared, in constant time).
fn account(state: &ReaderState, headers: &HeaderMap) -> Result<Account, Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let g = digest(given.as_bytes());
    let mut found = None;
    for a in &state.accounts {
        if bool::from(g.ct_eq(&digest(a.config.token.as_bytes()))) {
            found = Some(a.clone());
        }
    }
    found.ok_or_else(|| {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"error": "missing or unknown reader token"})),
        )
            .into_response()
    })
}

/// The round `name` if `who` reads in it.
fn round_of(state: &ReaderState, who: &Account, name: &str) -> Result<(bool, RoundId), Response> {
    if !who.config.rounds.iter().any(|r| r == name) {
        return Err(error(
            StatusCode::FORBIDDEN,
            format!("reader {} does not read in round {name}", who.config.name),
        ));
    }
    state
        .rounds
        .iter()
        .find(|(c, _)| c.name == name)
        .map(|(c, id)| (c.ai_assisted, *id))
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no round {name}")))
}

async fn blocking<F>(f: F) -> Response
where
    F: FnOnce() -> Result<Response, Response> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(r)) | Ok(Err(r)) => r,
        Err(e) => internal(e),
    }
}

fn reader_err(e: ReaderError) -> Response {
    internal(e)
}

async fn session(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let who = match account(&s, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let rounds: Vec<Value> = s
        .rounds
        .iter()
        .filter(|(c, _)| who.config.rounds.contains(&c.name))
        .map(|(c, _)| json!({"name": c.name, "kind": "blinded", "ai_assisted": c.ai_assisted}))
        .collect();
    Json(json!({
        "reader": who.config.name,
        "adjudicator": who.config.adjudicator,
        "rounds": rounds,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct RoundQuery {
    round: String,
}

fn role(kind: Option<SeriesKind>, plane: Option<&str>) -> Option<&'static str> {
    match (kind, plane) {
        (Some(SeriesKind::SagittalT1), _) => Some("sag_t1"),
        (Some(SeriesKind::SagittalT2Stir), _) => Some("sag_t2"),
        (Some(SeriesKind::AxialT2), _) => Some("ax_t2"),
        (None, Some("axial")) => Some("ax_t2"),
        _ => None,
    }
}

async fn next(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<RoundQuery>,
) -> Response {
    let who = match account(&s, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (_, round) = match round_of(&s, &who, &q.round) {
        Ok(r) => r,
        Err(r) => return r,
    };
    blocking(move || {
        let done = s.submitted_studies(who.id, round).map_err(reader_err)?;
        let ds = s.dataset.lock().unwrap_or_else(|e| e.into_inner());
        let studies: Vec<StudyId> = ds
            .studies()
            .map_err(internal)?
            .into_iter()
            .map(|r| r.study)
            .collect();
        let Some(study) = next_study(&studies, &done) else {
            return Ok(Json(json!({"study": null})).into_response());
        };
        let mut series = serde_json::Map::new();
        for sr in ds.series(study).map_err(internal)? {
            let Some(role) = role(sr.kind, sr.plane.as_deref()) else {
                continue;
            };
            if series.contains_key(role) {
                continue;
            }
            let stacks = ds.stacks(&sr).map_err(internal)?;
            let Some(stack) = stacks.iter().max_by_key(|s| s.len()) else {
                continue;
            };
            series.insert(
                role.into(),
                json!({"series": sr.series.0, "instances": stack.instance_numbers()}),
            );
        }
        Ok(Json(json!({"study": study.0, "series": series})).into_response())
    })
    .await
}

async fn instance(
    State(s): State<Shared>,
    headers: HeaderMap,
    UrlPath((study, series, instance)): UrlPath<(u64, u64, i64)>,
) -> Response {
    if let Err(r) = account(&s, &headers) {
        return r;
    }
    blocking(move || {
        let ds = s.dataset.lock().unwrap_or_else(|e| e.into_inner());
        let sr = ds
            .find_series(StudyId(study), SeriesId(series))
            .map_err(internal)?
            .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no series {study}/{series}")))?;
        let path = ds
            .slice_file(&sr, instance)
            .map_err(|e| error(StatusCode::NOT_FOUND, e))?;
        drop(ds);
        let bytes = std::fs::read(&path).map_err(|e| {
            internal(format!(
                "study {study} series {series} instance {instance}: {e}"
            ))
        })?;
        Ok((
            [(header::CONTENT_TYPE, "application/dicom")],
            Body::from(bytes),
        )
            .into_response())
    })
    .await
}

#[derive(Deserialize)]
struct RefQuery {
    from_series: u64,
    from_instance: i64,
    onto_series: u64,
    onto_instance: i64,
}

async fn refline(
    State(s): State<Shared>,
    headers: HeaderMap,
    UrlPath(study): UrlPath<u64>,
    Query(q): Query<RefQuery>,
) -> Response {
    if let Err(r) = account(&s, &headers) {
        return r;
    }
    blocking(move || {
        let ds = s.dataset.lock().unwrap_or_else(|e| e.into_inner());
        let from = ds
            .slice(StudyId(study), SeriesId(q.from_series), q.from_instance)
            .map_err(|e| error(StatusCode::NOT_FOUND, e))?;
        let onto = ds
            .slice(StudyId(study), SeriesId(q.onto_series), q.onto_instance)
            .map_err(|e| error(StatusCode::NOT_FOUND, e))?;
        let same_frame = from.frame_of_reference == onto.frame_of_reference;
        let line = same_frame
            .then(|| reference_line(&from.geometry, &onto.geometry))
            .flatten();
        Ok(Json(json!({"line": line})).into_response())
    })
    .await
}

fn read_json(r: &StoredRead) -> Value {
    json!({
        "event_id": r.event_id,
        "reader": r.reader_name,
        "round": r.round_name,
        "study": r.key.study.0,
        "condition": r.key.condition().key(),
        "level": r.key.level().key(),
        "grade": r.grade.map(|g| g.as_str()),
        "point": r.point,
        "recorded_at": r.recorded_at,
        "note": r.note,
    })
}

async fn study_reads(
    State(s): State<Shared>,
    headers: HeaderMap,
    UrlPath(study): UrlPath<u64>,
    Query(q): Query<RoundQuery>,
) -> Response {
    let who = match account(&s, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (assisted, round) = match round_of(&s, &who, &q.round) {
        Ok(r) => r,
        Err(r) => return r,
    };
    blocking(move || {
        let study = StudyId(study);
        let submitted = s.submitted(who.id, round, study).map_err(reader_err)?;
        let reads = s
            .store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .current_reads(None)
            .map_err(internal)?;
        let in_study = |r: &&StoredRead| r.key.study == study;
        let is_ai = |r: &StoredRead| s.config.ai_readers.contains(&r.reader_name);
        let own: Vec<Value> = reads
            .iter()
            .filter(in_study)
            .filter(|r| r.reader == who.id && r.round == round)
            .map(read_json)
            .collect();
        // Blinding: nothing of anyone else before submission (AI pre-reads in an assisted round).
        let others: Option<Vec<Value>> = submitted.then(|| {
            reads
                .iter()
                .filter(in_study)
                .filter(|r| r.round == round && r.reader != who.id && !is_ai(r))
                .map(read_json)
                .collect()
        });
        let ai: Option<Vec<Value>> = (submitted || assisted).then(|| {
            reads
                .iter()
                .filter(in_study)
                .filter(|r| is_ai(r))
                .map(read_json)
                .collect()
        });
        Ok(Json(json!({"study": study.0, "submitted": submitted, "own": own, "others": others, "ai": ai}))
            .into_response())
    })
    .await
}

#[derive(Deserialize)]
struct ReadBody {
    round: String,
    study: u64,
    series: u64,
    instance: u32,
    x: f64,
    y: f64,
    condition: String,
    level: String,
    grade: String,
}

fn parse_finding(
    condition: &str,
    level: &str,
    grade: &str,
) -> Result<(Condition, Level, Severity), Response> {
    let c = Condition::from_key(condition).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let l = Level::from_key(level).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let g: Severity = grade
        .parse()
        .map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    Ok((c, l, g))
}

async fn save_read(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(b): Json<ReadBody>,
) -> Response {
    let who = match account(&s, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (assisted, round) = match round_of(&s, &who, &b.round) {
        Ok(r) => r,
        Err(r) => return r,
    };
    blocking(move || {
        let (c, l, g) = parse_finding(&b.condition, &b.level, &b.grade)?;
        let study = StudyId(b.study);
        if s.submitted(who.id, round, study).map_err(reader_err)? {
            return Err(error(
                StatusCode::CONFLICT,
                format!(
                    "study {} is already submitted in round {}",
                    b.study, b.round
                ),
            ));
        }
        // The point must lie on an image of the study (the dataset knows the slice).
        let info = s
            .dataset
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .slice(study, SeriesId(b.series), i64::from(b.instance))
            .map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
        if !info.geometry.contains_pixel(b.x, b.y) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("point ({}, {}) lies outside the image", b.x, b.y),
            ));
        }
        let ev = ReadEvent::new(study, c, l)
            .grade(g)
            .point(Point {
                series: SeriesId(b.series),
                instance: b.instance,
                x: b.x,
                y: b.y,
            })
            .note(if assisted {
                "reader-ui; ai-assisted round"
            } else {
                "reader-ui; unassisted round"
            });
        let mut store = s.store.lock().unwrap_or_else(|e| e.into_inner());
        store.record(who.id, round, &[ev], None).map_err(internal)?;
        let key = discus_core::RowId::new(study, c, l);
        let saved = store
            .history(key)
            .map_err(internal)?
            .into_iter()
            .filter(|r| r.reader == who.id && r.round == round)
            .max_by_key(|r| r.event_id)
            .ok_or_else(|| internal("the read just recorded is not in the store"))?;
        Ok(Json(read_json(&saved)).into_response())
    })
    .await
}

async fn submit(
    State(s): State<Shared>,
    headers: HeaderMap,
    UrlPath(study): UrlPath<u64>,
    Json(q): Json<RoundQuery>,
) -> Response {
    let who = match account(&s, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (_, round) = match round_of(&s, &who, &q.round) {
        Ok(r) => r,
        Err(r) => return r,
    };
    blocking(move || {
        s.submit(who.id, round, StudyId(study))
            .map_err(reader_err)?;
        Ok(Json(json!({"study": study, "submitted": true})).into_response())
    })
    .await
}

fn adjudicator(s: &ReaderState, headers: &HeaderMap) -> Result<Account, Response> {
    let who = account(s, headers)?;
    if !who.config.adjudicator {
        return Err(error(
            StatusCode::FORBIDDEN,
            format!("reader {} is not an adjudicator", who.config.name),
        ));
    }
    Ok(who)
}

fn blinded_round_name(s: &ReaderState, name: &str) -> Result<String, Response> {
    s.rounds
        .iter()
        .find(|(c, _)| c.name == name)
        .map(|(c, _)| c.name.clone())
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no round {name}")))
}

fn human_readers(s: &ReaderState) -> Vec<String> {
    s.accounts
        .iter()
        .filter(|a| !a.config.adjudicator)
        .map(|a| a.config.name.clone())
        .collect()
}

async fn worklist(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<RoundQuery>,
) -> Response {
    if let Err(r) = adjudicator(&s, &headers) {
        return r;
    }
    let round = match blinded_round_name(&s, &q.round) {
        Ok(r) => r,
        Err(r) => return r,
    };
    blocking(move || {
        let reads = s
            .store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .current_reads(None)
            .map_err(internal)?;
        let readers = human_readers(&s);
        let findings = blinded_findings(&reads, Some(&round), Some(&readers));
        let decided = adjudications(&reads);
        let items: Vec<Value> =
            disagreements(&findings, DisagreementRule::GradesDiffer, Some(&s.slices))
                .into_iter()
                .map(|d| {
                    let f = findings.iter().find(|f| f.key == d.key);
                    json!({
                        "row_id": d.row_id,
                        "study": d.key.study.0,
                        "condition": d.key.condition().key(),
                        "level": d.key.level().key(),
                        "reason": d.reason,
                        "severe_involved": d.severe_involved,
                        "max_distance_mm": d.max_distance_mm,
                        "reads": f.map(|f| f.reads.iter().map(read_json).collect::<Vec<_>>()),
                        "decision": decided.get(&d.key).map(read_json),
                    })
                })
                .collect();
        Ok(Json(json!({"round": round, "items": items})).into_response())
    })
    .await
}

#[derive(Deserialize)]
struct Decision {
    round: String,
    study: u64,
    condition: String,
    level: String,
    grade: String,
    #[serde(default)]
    point: Option<Point>,
}

async fn decide(State(s): State<Shared>, headers: HeaderMap, Json(b): Json<Decision>) -> Response {
    let who = match adjudicator(&s, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let round = match blinded_round_name(&s, &b.round) {
        Ok(r) => r,
        Err(r) => return r,
    };
    blocking(move || {
        let (c, l, g) = parse_finding(&b.condition, &b.level, &b.grade)?;
        let key = discus_core::RowId::new(StudyId(b.study), c, l);
        let mut ev = ReadEvent::new(key.study, c, l)
            .grade(g)
            .note(format!("reader-ui adjudication of round {round}"));
        ev.point = b.point;
        let mut store = s.store.lock().unwrap_or_else(|e| e.into_inner());
        store
            .record(who.id, s.adjudication_round, &[ev], None)
            .map_err(internal)?;
        let reads = store.current_reads(None).map_err(internal)?;
        drop(store);
        let readers = human_readers(&s);
        let findings: Vec<_> = blinded_findings(&reads, Some(&round), Some(&readers))
            .into_iter()
            .filter(|f| f.key == key)
            .collect();
        let decided = adjudications(&reads);
        let label = consensus(
            &findings,
            &decided,
            ConsensusRule::Adjudicated,
            Some(&s.slices),
        )
        .into_iter()
        .find(|l| l.key == key)
        .ok_or_else(|| internal("no consensus label after the decision"))?;
        Ok(Json(json!({"consensus": label})).into_response())
    })
    .await
}
