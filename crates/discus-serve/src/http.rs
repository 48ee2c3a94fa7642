//! The HTTP side (axum): STOW-RS, jobs, health and metrics.
//!
//! | route | what |
//! |---|---|
//! | `GET /health` | `{"status":"ok"}`, no token needed |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /jobs`, `GET /jobs/{id}` | jobs with state, progress, outcome and deliveries (dead letters included) |
//! | `POST /jobs/{id}/cancel` | cancels a queued job at once, a running one at its next stage |
//! | `POST /dicomweb/studies`, `POST /dicomweb/studies/{uid}` | STOW-RS (PS3.18 10.5) |
//!
//! Every route but `/health` needs `Authorization: Bearer <token>` when a token is configured
//! (401 otherwise); tokens are compared in constant time (SHA-256 of both, then `subtle`).
//!
//! STOW-RS: the body must be `multipart/related; type="application/dicom"` (415 otherwise); each
//! part streams to a temporary file (never wholly in memory) and is taken in like a C-STORE. The
//! answer is `application/dicom+json` with (0008,1199) Referenced SOP Sequence for stored
//! instances and (0008,1198) Failed SOP Sequence with (0008,1197) Failure Reason for the others:
//! 0xC000 for a part that is not DICOM, 0xA900 for an instance of another study than the one in
//! the URL, 0xA700 for a cap. Status: 200 all stored; 202 some stored; 400 none stored and a part
//! was not DICOM (or the body is not multipart); 409 none stored otherwise; 413 body over
//! `max_body_bytes`; 507 disk cap already reached.

use crate::node::Node;
use crate::receive::{take, Refused};
use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tokio::io::AsyncWriteExt;

/// Failure reasons (PS3.18 Table 10.5.3-3 / PS3.4 C-STORE statuses).
pub mod reason {
    /// Processing failure: cannot understand.
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
    /// The instance does not belong to the study in the request URL.
    pub const STUDY_MISMATCH: u16 = 0xA900;
    /// Refused: out of resources (a cap).
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
}

/// The router of a node.
pub fn router(node: Arc<Node>) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/jobs", get(jobs))
        .route("/jobs/{id}", get(job))
        .route("/jobs/{id}/cancel", post(cancel))
        .route("/dicomweb/studies", post(stow_any))
        .route("/dicomweb/studies/{uid}", post(stow_study))
        .route_layer(axum::middleware::from_fn_with_state(node.clone(), auth));
    Router::new()
        .route("/health", get(health))
        .merge(protected)
        .with_state(node)
}

fn digest(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

async fn auth(State(node): State<Arc<Node>>, req: Request, next: Next) -> Response {
    if let Some(token) = &node.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let ok: bool = digest(given.as_bytes())
            .ct_eq(&digest(token.as_bytes()))
            .into();
        if !ok {
            node.metrics.inc("discus_http_unauthorized_total");
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(json!({"error": "missing or wrong bearer token"})),
            )
                .into_response();
        }
    }
    next.run(req).await
}

async fn health() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

fn store_error(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(json!({"error": e.to_string()})),
    )
        .into_response()
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    let n = node.clone();
    let r = tokio::task::spawn_blocking(move || {
        let mut out = n.metrics.render();
        out.push_str("# TYPE discus_jobs gauge\n");
        for (state, count) in n.store.job_counts()? {
            out.push_str(&format!("discus_jobs{{state=\"{state}\"}} {count}\n"));
        }
        out.push_str(&format!(
            "# TYPE discus_dead_letters gauge\ndiscus_dead_letters {}\n",
            n.store.dead_letters()?
        ));
        out.push_str(&format!(
            "# TYPE discus_stored_bytes gauge\ndiscus_stored_bytes {}\n",
            n.store.disk_bytes()?
        ));
        out.push_str(&format!(
            "# TYPE discus_associations_open gauge\ndiscus_associations_open {}\n",
            n.metrics
                .associations_open
                .load(std::sync::atomic::Ordering::Relaxed)
        ));
        let runs = n.metrics.job_runs.load(std::sync::atomic::Ordering::Relaxed);
        let ms = n
            .metrics
            .job_seconds_milli
            .load(std::sync::atomic::Ordering::Relaxed);
        out.push_str(&format!(
            "# TYPE discus_job_seconds summary\ndiscus_job_seconds_sum {:.3}\ndiscus_job_seconds_count {runs}\n",
            ms as f64 / 1000.0
        ));
        Ok::<_, crate::store::StoreError>(out)
    })
    .await;
    match r {
        Ok(Ok(text)) => {
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
        }
        Ok(Err(e)) => store_error(e),
        Err(e) => store_error(e),
    }
}

fn job_json(node: &Node, j: &crate::store::Job) -> Value {
    let mut v = serde_json::to_value(j).unwrap_or(Value::Null);
    if let Some(p) = node
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&j.id)
    {
        v["progress"] = serde_json::to_value(p.snapshot()).unwrap_or(Value::Null);
    }
    v
}

async fn jobs(State(node): State<Arc<Node>>) -> Response {
    let n = node.clone();
    match tokio::task::spawn_blocking(move || n.store.jobs()).await {
        Ok(Ok(js)) => {
            let v: Vec<Value> = js.iter().map(|j| job_json(&node, j)).collect();
            axum::Json(json!({ "jobs": v })).into_response()
        }
        Ok(Err(e)) => store_error(e),
        Err(e) => store_error(e),
    }
}

async fn job(State(node): State<Arc<Node>>, UrlPath(id): UrlPath<i64>) -> Response {
    let n = node.clone();
    match tokio::task::spawn_blocking(move || n.store.job(id)).await {
        Ok(Ok(Some(j))) => axum::Json(job_json(&node, &j)).into_response(),
        Ok(Ok(None)) => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!("no job {id}")})),
        )
            .into_response(),
        Ok(Err(e)) => store_error(e),
        Err(e) => store_error(e),
    }
}

async fn cancel(State(node): State<Arc<Node>>, UrlPath(id): UrlPath<i64>) -> Response {
    let n = node.clone();
    let state = match tokio::task::spawn_blocking(move || n.store.cancel_queued(id)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return store_error(e),
        Err(e) => return store_error(e),
    };
    use crate::store::JobState;
    match state {
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!("no job {id}")})),
        )
            .into_response(),
        Some(JobState::Cancelled) => {
            axum::Json(json!({"id": id, "state": "cancelled"})).into_response()
        }
        Some(JobState::Running) => {
            if let Some(p) = node
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&id)
            {
                p.cancel();
            }
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({"id": id, "state": "cancelling"})),
            )
                .into_response()
        }
        Some(s) => (
            StatusCode::CONFLICT,
            axum::Json(
                json!({"id": id, "state": s.as_str(), "error": "the job has already ended"}),
            ),
        )
            .into_response(),
    }
}

async fn stow_any(State(node): State<Arc<Node>>, headers: HeaderMap, body: Body) -> Response {
    stow(node, None, headers, body).await
}

async fn stow_study(
    State(node): State<Arc<Node>>,
    UrlPath(uid): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    stow(node, Some(uid), headers, body).await
}

fn dicom_json(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/dicom+json")],
        v.to_string(),
    )
        .into_response()
}

fn problem(node: &Node, status: StatusCode, what: impl Into<String>) -> Response {
    node.metrics.inc(&format!(
        "discus_stow_requests_total{{status=\"{}\"}}",
        status.as_u16()
    ));
    (status, axum::Json(json!({"error": what.into()}))).into_response()
}

fn ui(v: &str) -> Value {
    json!({"vr": "UI", "Value": [v]})
}

async fn stow(node: Arc<Node>, study: Option<String>, headers: HeaderMap, body: Body) -> Response {
    let limits = node.config.limits.clone();
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let lower = ct.to_ascii_lowercase();
    if !lower.starts_with("multipart/related") {
        return problem(
            &node,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be multipart/related; type=\"application/dicom\"",
        );
    }
    if let Some(t) = lower.split(';').find_map(|p| {
        p.trim()
            .strip_prefix("type=")
            .map(|t| t.trim_matches('"').to_string())
    }) {
        if t != "application/dicom" {
            return problem(
                &node,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("multipart/related of type {t}: only application/dicom is accepted"),
            );
        }
    }
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limits.max_body_bytes {
            return problem(
                &node,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{len} bytes: over limits.max_body_bytes ({})",
                    limits.max_body_bytes
                ),
            );
        }
    }
    {
        let n = node.clone();
        match tokio::task::spawn_blocking(move || n.store.disk_bytes()).await {
            Ok(Ok(used)) if used >= limits.max_disk_bytes => {
                return problem(
                    &node,
                    StatusCode::INSUFFICIENT_STORAGE,
                    format!(
                        "{used} bytes of instances stored: limits.max_disk_bytes ({}) reached",
                        limits.max_disk_bytes
                    ),
                )
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return store_error(e),
            Err(e) => return store_error(e),
        }
    }
    // multer's own parse_boundary accepts only multipart/form-data; STOW-RS is multipart/related.
    let Some(boundary) = boundary_of(&ct) else {
        return problem(
            &node,
            StatusCode::BAD_REQUEST,
            "no boundary parameter in the multipart/related Content-Type".to_string(),
        );
    };
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(limits.max_body_bytes));
    let mut mp =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let mut stored: Vec<Value> = Vec::new();
    let mut failed: Vec<Value> = Vec::new();
    let (mut not_dicom, mut parts) = (0usize, 0usize);
    loop {
        let mut field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(multer::Error::StreamSizeExceeded { limit }) => {
                return problem(
                    &node,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body over limits.max_body_bytes ({limit})"),
                )
            }
            Err(e) => {
                return problem(
                    &node,
                    StatusCode::BAD_REQUEST,
                    format!("malformed multipart body: {e}"),
                )
            }
        };
        parts += 1;
        let part_type = field
            .content_type()
            .map(|m| m.essence_str().to_ascii_lowercase());
        let tmp = match node.tmp_file() {
            Ok(t) => t.into_temp_path(),
            Err(e) => return store_error(e),
        };
        let mut file = match tokio::fs::File::create(&tmp).await {
            Ok(f) => f,
            Err(e) => return store_error(e),
        };
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if let Err(e) = file.write_all(&chunk).await {
                        return store_error(e);
                    }
                }
                Ok(None) => break,
                Err(multer::Error::StreamSizeExceeded { limit }) => {
                    return problem(
                        &node,
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("body over limits.max_body_bytes ({limit})"),
                    )
                }
                Err(e) => {
                    return problem(
                        &node,
                        StatusCode::BAD_REQUEST,
                        format!("malformed multipart body: {e}"),
                    )
                }
            }
        }
        if let Err(e) = file.flush().await {
            return store_error(e);
        }
        drop(file);
        if part_type
            .as_deref()
            .is_some_and(|t| t != "application/dicom")
        {
            not_dicom += 1;
            failed.push(json!({"00081197": {"vr": "US", "Value": [reason::CANNOT_UNDERSTAND]}}));
            continue;
        }
        let n = node.clone();
        let s = study.clone();
        let path = tmp.to_path_buf();
        // `take` moves or removes the file; the TempPath must not delete the moved file.
        let _ = tmp.keep();
        let r = tokio::task::spawn_blocking(move || take(&n, &path, s.as_deref())).await;
        match r {
            Ok(Ok(t)) => stored.push(json!({
                "00081150": ui(&t.sop_class),
                "00081155": ui(&t.sop_uid),
            })),
            Ok(Err(Refused::NotDicom(_))) | Err(_) => {
                not_dicom += 1;
                failed
                    .push(json!({"00081197": {"vr": "US", "Value": [reason::CANNOT_UNDERSTAND]}}));
            }
            Ok(Err(Refused::OtherStudy { sop_class, sop_uid })) => failed.push(json!({
                "00081150": ui(&sop_class),
                "00081155": ui(&sop_uid),
                "00081197": {"vr": "US", "Value": [reason::STUDY_MISMATCH]},
            })),
            Ok(Err(Refused::Limit {
                sop_class, sop_uid, ..
            })) => failed.push(json!({
                "00081150": ui(&sop_class),
                "00081155": ui(&sop_uid),
                "00081197": {"vr": "US", "Value": [reason::OUT_OF_RESOURCES]},
            })),
            Ok(Err(Refused::Io(e))) => return store_error(e),
        }
    }
    if parts == 0 {
        return problem(&node, StatusCode::BAD_REQUEST, "the body has no parts");
    }
    let status = if failed.is_empty() {
        StatusCode::OK
    } else if !stored.is_empty() {
        StatusCode::ACCEPTED
    } else if not_dicom > 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::CONFLICT
    };
    node.metrics.inc(&format!(
        "discus_stow_requests_total{{status=\"{}\"}}",
        status.as_u16()
    ));
    let mut v = json!({});
    if !stored.is_empty() {
        v["00081199"] = json!({"vr": "SQ", "Value": stored});
    }
    if !failed.is_empty() {
        v["00081198"] = json!({"vr": "SQ", "Value": failed});
    }
    dicom_json(status, v)
}

/// The `boundary` parameter of a multipart Content-Type (quoted or not), if present and non-empty.
fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let b = v.trim().trim_matches('"');
        (!b.is_empty()).then(|| b.to_string())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn boundary_is_read_quoted_or_not() {
        let ct = "multipart/related; type=\"application/dicom\"; boundary=abc-1";
        assert_eq!(super::boundary_of(ct).as_deref(), Some("abc-1"));
        let ct = "multipart/related; boundary=\"x y\"; type=application/dicom";
        assert_eq!(super::boundary_of(ct).as_deref(), Some("x y"));
        assert_eq!(
            super::boundary_of("multipart/related; type=application/dicom"),
            None
        );
        assert_eq!(super::boundary_of("multipart/related; boundary="), None);
    }
}
