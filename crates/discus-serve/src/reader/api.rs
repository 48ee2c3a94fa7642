//! The reading room's HTTP handlers (see [`super`] for the routes and the blinding rules).
//!
//! Authentication is an extractor: a handler that takes a [`Reader`] runs only for a known
//! token, one that takes a [`ReaderRound`] only for a reader of the `?round=` it names, and one
//! that takes an [`Adjudicator`] only for an adjudicator; the refusal (401, 403, 404) is the
//! extractor's.

// Handlers answer a refusal with the HTTP response itself (`Err(Response)`); boxing it would only add
// noise on a path that runs once per request.
#![allow(clippy::result_large_err)]

use super::{reference_line, Account, OpenRound, ReaderError, ReaderState};
use axum::body::Body;
use axum::extract::{FromRequestParts, Path as UrlPath, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use discus_core::{Condition, Level, RowId, SeriesId, SeriesKind, Severity, StudyId};
use discus_reads::analysis::{
    adjudications, blinded_findings, consensus, disagreements, ConsensusRule, DisagreementRule,
};
use discus_reads::qualify::QualifyError;
use discus_reads::queue::{stored_proposals, Proposal};
use discus_reads::store::{now_unix, Point, ReadEvent, StoredRead};
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
        .route("/reader/protocol", get(protocol_page))
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
        .route(
            "/reader/api/studies/{study}/proposals",
            get(study_proposals),
        )
        .route("/reader/api/studies/{study}/submit", post(submit))
        .route("/reader/api/studies/{study}/feedback", get(feedback))
        .route("/reader/api/reads", post(save_read))
        .route("/reader/api/proposals/accept", post(accept_proposal))
        .route("/reader/api/adjudication", get(worklist).post(decide))
        .route("/reader/api/protocol-images", get(protocol_images))
        .route("/reader/api/protocol-images/{file}", get(protocol_image))
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

/// The authenticated reader of a request (401 without a known token).
pub struct Reader(pub Account);

impl FromRequestParts<Shared> for Reader {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Response> {
        account(state, &parts.headers).map(Reader)
    }
}

/// The authenticated reader and the round of the request's `?round=` query, which they read in
/// (401 without a known token, 403 for a round not theirs, 404 for no such round).
pub struct ReaderRound {
    /// The reader.
    pub who: Account,
    /// The round.
    pub round: OpenRound,
}

#[derive(Deserialize)]
struct RoundQuery {
    round: String,
}

impl FromRequestParts<Shared> for ReaderRound {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Response> {
        let who = account(state, &parts.headers)?;
        let Query(q) = Query::<RoundQuery>::try_from_uri(&parts.uri)
            .map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
        let round = round_of(state, &who, &q.round)?;
        Ok(ReaderRound { who, round })
    }
}

/// The authenticated reader, who must be an adjudicator (403 otherwise).
pub struct Adjudicator(pub Account);

impl FromRequestParts<Shared> for Adjudicator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Response> {
        let who = account(state, &parts.headers)?;
        if !who.config.adjudicator {
            return Err(error(
                StatusCode::FORBIDDEN,
                format!("reader {} is not an adjudicator", who.config.name),
            ));
        }
        Ok(Adjudicator(who))
    }
}

/// The round `name` if `who` reads in it.
fn round_of(state: &ReaderState, who: &Account, name: &str) -> Result<OpenRound, Response> {
    if !who.config.rounds.iter().any(|r| r == name) {
        return Err(error(
            StatusCode::FORBIDDEN,
            format!("reader {} does not read in round {name}", who.config.name),
        ));
    }
    state
        .rounds
        .iter()
        .find(|r| r.config.name == name)
        .cloned()
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

async fn session(State(s): State<Shared>, Reader(who): Reader) -> Response {
    let rounds: Vec<Value> = s
        .rounds
        .iter()
        .filter(|r| who.config.rounds.contains(&r.config.name))
        .map(|r| {
            json!({
                "name": r.config.name,
                "kind": if r.training_reference.is_some() { "training" } else { "blinded" },
                "ai_assisted": r.config.ai_assisted,
                "order": r.config.order,
            })
        })
        .collect();
    Json(json!({
        "reader": who.config.name,
        "adjudicator": who.config.adjudicator,
        "rounds": rounds,
    }))
    .into_response()
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

async fn next(State(s): State<Shared>, ReaderRound { who, round }: ReaderRound) -> Response {
    blocking(move || {
        let Some(study) = s.next_study(who.id, &round).map_err(reader_err)? else {
            return Ok(Json(json!({"study": null})).into_response());
        };
        let ds = s.dataset.lock().unwrap_or_else(|e| e.into_inner());
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
    _: Reader,
    UrlPath((study, series, instance)): UrlPath<(u64, u64, i64)>,
) -> Response {
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
    _: Reader,
    UrlPath(study): UrlPath<u64>,
    Query(q): Query<RefQuery>,
) -> Response {
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

fn proposal_json(p: &Proposal, source: &str) -> Value {
    json!({
        "source": source,
        "study": p.key.study.0,
        "condition": p.key.condition().key(),
        "level": p.key.level().key(),
        "grade": p.grade.as_str(),
        "point": p.point,
    })
}

async fn study_reads(
    State(s): State<Shared>,
    ReaderRound { who, round }: ReaderRound,
    UrlPath(study): UrlPath<u64>,
) -> Response {
    blocking(move || {
        let study = StudyId(study);
        let submitted = s.submitted(who.id, round.id, study).map_err(reader_err)?;
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
            .filter(|r| r.reader == who.id && r.round == round.id)
            .map(read_json)
            .collect();
        // Blinding: nothing of anyone else before submission (AI pre-reads in an assisted round).
        let others: Option<Vec<Value>> = submitted.then(|| {
            reads
                .iter()
                .filter(in_study)
                .filter(|r| r.round == round.id && r.reader != who.id && !is_ai(r))
                .map(read_json)
                .collect()
        });
        let ai: Option<Vec<Value>> = (submitted || round.config.ai_assisted).then(|| {
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

/// The AI reader's proposals of `study` in an AI-assisted `round`; 403 in a blinded round.
fn proposals_of(
    s: &ReaderState,
    round: &OpenRound,
    study: StudyId,
) -> Result<(String, Vec<Proposal>), Response> {
    let ai = match (&round.ai_reader, round.config.ai_assisted) {
        (Some(ai), true) => ai.clone(),
        _ => {
            return Err(error(
                StatusCode::FORBIDDEN,
                format!(
                    "round {} is not AI-assisted: no AI proposals",
                    round.config.name
                ),
            ))
        }
    };
    let reads = s
        .store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .current_reads(None)
        .map_err(internal)?;
    let props = stored_proposals(&reads, &ai, study);
    Ok((ai, props))
}

async fn study_proposals(
    State(s): State<Shared>,
    ReaderRound { round, .. }: ReaderRound,
    UrlPath(study): UrlPath<u64>,
) -> Response {
    blocking(move || {
        let (ai, props) = proposals_of(&s, &round, StudyId(study))?;
        let list: Vec<Value> = props.iter().map(|p| proposal_json(p, &ai)).collect();
        Ok(Json(json!({"study": study, "reader": ai, "proposals": list})).into_response())
    })
    .await
}

#[derive(Deserialize)]
struct ReadBody {
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
    grade: Option<&str>,
) -> Result<(Condition, Level, Option<Severity>), Response> {
    let c = Condition::from_key(condition).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let l = Level::from_key(level).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let g = grade
        .map(|g| g.parse::<Severity>())
        .transpose()
        .map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    Ok((c, l, g))
}

fn refuse_if_submitted(
    s: &ReaderState,
    who: &Account,
    round: &OpenRound,
    study: StudyId,
) -> Result<(), Response> {
    if s.submitted(who.id, round.id, study).map_err(reader_err)? {
        return Err(error(
            StatusCode::CONFLICT,
            format!(
                "study {} is already submitted in round {}",
                study.0, round.config.name
            ),
        ));
    }
    Ok(())
}

/// Records `ev` as `who`'s read in `round`: in an AI-assisted round with a proposal for the
/// finding, through the queue with the proposal and the outcome (accepted or changed); otherwise
/// as a plain read. Answers with the stored read (and the outcome).
fn record_read(
    s: &ReaderState,
    who: &Account,
    round: &OpenRound,
    proposal: Option<(&str, &Proposal)>,
    ev: ReadEvent,
) -> Result<Response, Response> {
    let key = RowId::new(ev.study, ev.condition, ev.level);
    let outcome = match proposal {
        Some((source, p)) => Some(
            s.queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record_assisted(who.id, round.id, p, &ev, source, now_unix())
                .map_err(internal)?
                .outcome,
        ),
        None => {
            s.store
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(who.id, round.id, &[ev], None)
                .map_err(internal)?;
            None
        }
    };
    let saved = s
        .store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .history(key)
        .map_err(internal)?
        .into_iter()
        .filter(|r| r.reader == who.id && r.round == round.id)
        .max_by_key(|r| r.event_id)
        .ok_or_else(|| internal("the read just recorded is not in the store"))?;
    let mut v = read_json(&saved);
    v["proposal_outcome"] = json!(outcome.map(|o| o.as_str()));
    Ok(Json(v).into_response())
}

fn read_note(round: &OpenRound) -> &'static str {
    if round.config.ai_assisted {
        "reader-ui; ai-assisted round"
    } else {
        "reader-ui; unassisted round"
    }
}

async fn save_read(
    State(s): State<Shared>,
    ReaderRound { who, round }: ReaderRound,
    Json(b): Json<ReadBody>,
) -> Response {
    blocking(move || {
        let (c, l, g) = parse_finding(&b.condition, &b.level, Some(&b.grade))?;
        let study = StudyId(b.study);
        refuse_if_submitted(&s, &who, &round, study)?;
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
        let mut ev = ReadEvent::new(study, c, l)
            .point(Point {
                series: SeriesId(b.series),
                instance: b.instance,
                x: b.x,
                y: b.y,
            })
            .note(read_note(&round));
        ev.grade = g;
        // In an assisted round, the read answers the finding's proposal (if the model made one).
        let key = RowId::new(study, c, l);
        let props = if round.config.ai_assisted {
            Some(proposals_of(&s, &round, study)?)
        } else {
            None
        };
        let proposal = props
            .as_ref()
            .and_then(|(ai, ps)| ps.iter().find(|p| p.key == key).map(|p| (ai.as_str(), p)));
        record_read(&s, &who, &round, proposal, ev)
    })
    .await
}

#[derive(Deserialize)]
struct AcceptBody {
    study: u64,
    condition: String,
    level: String,
}

async fn accept_proposal(
    State(s): State<Shared>,
    ReaderRound { who, round }: ReaderRound,
    Json(b): Json<AcceptBody>,
) -> Response {
    blocking(move || {
        let (c, l, _) = parse_finding(&b.condition, &b.level, None)?;
        let study = StudyId(b.study);
        refuse_if_submitted(&s, &who, &round, study)?;
        let (ai, props) = proposals_of(&s, &round, study)?;
        let key = RowId::new(study, c, l);
        let p = props.iter().find(|p| p.key == key).ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                format!(
                    "{ai} proposes nothing for study {} {} {}",
                    study.0,
                    c.key(),
                    l.key()
                ),
            )
        })?;
        // The read is the proposal itself: its grade and its point, exactly.
        let mut ev = ReadEvent::new(study, c, l)
            .grade(p.grade)
            .note(read_note(&round));
        ev.point = p.point;
        record_read(&s, &who, &round, Some((ai.as_str(), p)), ev)
    })
    .await
}

async fn submit(
    State(s): State<Shared>,
    ReaderRound { who, round }: ReaderRound,
    UrlPath(study): UrlPath<u64>,
) -> Response {
    blocking(move || {
        let fb = s
            .submit_study(who.id, &round, StudyId(study))
            .map_err(reader_err)?;
        Ok(Json(json!({"study": study, "submitted": true, "feedback": fb})).into_response())
    })
    .await
}

async fn feedback(
    State(s): State<Shared>,
    ReaderRound { who, round }: ReaderRound,
    UrlPath(study): UrlPath<u64>,
) -> Response {
    blocking(move || {
        if round.training_reference.is_none() {
            return Err(error(
                StatusCode::NOT_FOUND,
                format!("round {} is not a training round", round.config.name),
            ));
        }
        let reads = s
            .store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .current_reads(None)
            .map_err(internal)?;
        let fb = s
            .training
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .feedback(
                &reads,
                round.id,
                who.id,
                StudyId(study),
                super::TRAINING_RULE,
                Some(&s.slices),
            );
        match fb {
            Ok(fb) => Ok(Json(json!({"feedback": fb})).into_response()),
            Err(e @ QualifyError::NotSubmitted { .. }) => Err(error(StatusCode::CONFLICT, e)),
            Err(e) => Err(internal(e)),
        }
    })
    .await
}

fn blinded_round_name(s: &ReaderState, name: &str) -> Result<String, Response> {
    s.rounds
        .iter()
        .find(|r| r.config.name == name)
        .map(|r| r.config.name.clone())
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
    _: Adjudicator,
    Query(q): Query<RoundQuery>,
) -> Response {
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

async fn decide(
    State(s): State<Shared>,
    Adjudicator(who): Adjudicator,
    Json(b): Json<Decision>,
) -> Response {
    let round = match blinded_round_name(&s, &b.round) {
        Ok(r) => r,
        Err(r) => return r,
    };
    blocking(move || {
        let (c, l, g) = parse_finding(&b.condition, &b.level, Some(&b.grade))?;
        let g = g.ok_or_else(|| error(StatusCode::BAD_REQUEST, "a decision needs a grade"))?;
        let key = RowId::new(StudyId(b.study), c, l);
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

/// docs/annotation-protocol.md, embedded at build time.
const PROTOCOL_MD: &str = include_str!("../../../../docs/annotation-protocol.md");
/// Where the document links its example images.
const PROTOCOL_IMAGE_DIR: &str = "annotation-protocol/";

/// The annotation protocol as HTML: the document rendered by pulldown-cmark; its example images
/// are loaded by the page with the reader's token (they are cut from the served dataset).
pub fn protocol_html() -> String {
    use pulldown_cmark::{html, Options, Parser};
    let mut body = String::new();
    html::push_html(
        &mut body,
        Parser::new_ext(PROTOCOL_MD, Options::ENABLE_TABLES),
    );
    let body = body.replace(
        &format!("src=\"{PROTOCOL_IMAGE_DIR}"),
        "data-protocol-image=\"",
    );
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>discus annotation protocol</title>
<style>
body{{margin:0 auto;max-width:60em;padding:8px 16px;background:#111;color:#ddd;font:14px system-ui,sans-serif}}
a{{color:#8cf}} table{{border-collapse:collapse}} td,th{{border:1px solid #555;padding:4px 8px}}
code,pre{{background:#222}} img{{width:128px;height:128px;image-rendering:pixelated;background:#000}}
</style></head>
<body><p><a href="./">back to the reading room</a></p>
{body}
<script>
const token = sessionStorage.getItem('discus-token') || '';
for (const img of document.querySelectorAll('img[data-protocol-image]')) {{
  fetch('api/protocol-images/' + img.dataset.protocolImage, {{ headers: {{ Authorization: 'Bearer ' + token }} }})
    .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(r.status))))
    .then((b) => {{ img.onload = () => {{ img.dataset.loaded = '1'; }}; img.src = URL.createObjectURL(b); }})
    .catch((e) => {{ img.alt = 'example not available (' + e.message + ')'; img.dataset.loaded = '0'; }});
}}
</script>
</body></html>
"#
    )
}

async fn protocol_page() -> Response {
    Html(protocol_html()).into_response()
}

async fn protocol_images(State(s): State<Shared>, _: Reader) -> Response {
    blocking(move || {
        let ex = s.protocol_images().map_err(reader_err)?;
        Ok(Json(json!({"images": ex.images, "missing": ex.missing})).into_response())
    })
    .await
}

async fn protocol_image(
    State(s): State<Shared>,
    _: Reader,
    UrlPath(file): UrlPath<String>,
) -> Response {
    blocking(move || {
        let ex = s.protocol_images().map_err(reader_err)?;
        let img = ex
            .images
            .iter()
            .find(|i| i.file == file)
            .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no example image {file}")))?;
        Ok(([(header::CONTENT_TYPE, "image/png")], img.png.clone()).into_response())
    })
    .await
}
