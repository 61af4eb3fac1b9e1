//! `POST /v1/jobs`, `GET /v1/jobs/{id}`, `GET /v1/jobs`, `POST /v1/jobs/{id}/cancel`.
//!
//! A user sees only their own jobs (another's answers 404, as if absent);
//! admins see all.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use relay_shared::jobs::kinds;
use relay_shared::jobs::model::{Accepted, JobRecord, JobState, SubmitRequest};
use relay_shared::jobs::service::CancelResult;
use relay_shared::jobs::store::{Cursor, ListFilter};
use relay_shared::protocol::ErrorCode;
use serde::{Deserialize, Serialize};

use super::JobsApi;
use crate::auth::Identity;
use crate::http::caller::Caller;
use crate::http::error::{ApiError, ErrorBody};

/// Default and largest page of `GET /v1/jobs`.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 200;

fn visible(who: &Identity, job: &JobRecord) -> bool {
    who.admin || job.owner == *who.sub
}

fn not_found() -> ApiError {
    ApiError::not_found("no such job")
}

/// Whether `id` can name a job at all. PostgreSQL `text` cannot hold NUL,
/// so such an id would be a server error rather than "no such job".
pub(crate) fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && !id.contains('\0')
}

/// Whether a JSON value holds a NUL character (in a string or a key), which
/// PostgreSQL `jsonb` refuses.
fn has_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(a) => a.iter().any(has_nul),
        serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// A list page's `limit` (default [`DEFAULT_PAGE`], at most [`MAX_PAGE`])
/// and `cursor` (one this server gave, or none).
pub(crate) fn page(
    limit: Option<usize>,
    cursor: Option<&str>,
) -> Result<(usize, Option<Cursor>), ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let cursor = match cursor.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            Cursor::decode(c)
                .ok_or_else(|| ApiError::invalid("cursor is not one this server gave"))?,
        ),
    };
    Ok((limit, cursor))
}

/// A `kind` filter: NUL can match no kind (and PostgreSQL refuses it).
pub(crate) fn kind_filter(kind: Option<String>) -> Result<Option<String>, ApiError> {
    match kind.filter(|k| !k.is_empty()) {
        Some(k) if k.contains('\0') => Err(ApiError::invalid("kind must not contain NUL")),
        k => Ok(k),
    }
}

/// `POST /v1/jobs`: `202` with where to follow the job, or `200` with the
/// earlier job of the same idempotency key.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = SubmitRequest,
    responses(
        (status = 202, description = "recorded; will run at least once", body = Accepted),
        (status = 200, description = "the earlier job of this idempotency key", body = Accepted),
        (status = 400, description = "invalid request, unknown kind or upload", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn submit(
    State(api): State<JobsApi>,
    caller: Caller,
    body: Result<Json<SubmitRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let who = caller.user()?;
    let Json(req) = body?;
    if has_nul(&req.payload) {
        return Err(ApiError::invalid("payload must not contain NUL (\\u0000)"));
    }
    if req
        .idempotency_key
        .as_deref()
        .is_some_and(|k| k.contains('\0'))
    {
        return Err(ApiError::invalid("idempotency_key must not contain NUL"));
    }
    let job = req.validate(&who.sub).map_err(ApiError::invalid)?;
    if !api.kinds().await.contains(&job.kind) {
        return Err(ApiError::invalid(format!(
            "unknown job kind {:?}",
            job.kind
        )));
    }
    kinds::validate(&job.kind, &job.payload).map_err(ApiError::invalid)?;
    for upload in kinds::uploads_named(&job.kind, &job.payload) {
        match api.inner().jobs.store.upload_meta(&upload).await? {
            Some(m) if m.complete && (who.admin || m.owner == *who.sub) => {}
            _ => return Err(ApiError::invalid(format!("unknown upload {upload:?}"))),
        }
    }
    let (record, created) = api.inner().jobs.submit(job).await?;
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(Accepted::new(&record.id, record.state))).into_response())
}

/// `GET /v1/jobs/{id}`.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses((status = 200, body = JobRecord),
        (status = 401, body = ErrorBody), (status = 404, description = "no such job (or not yours)", body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_one(
    State(api): State<JobsApi>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    let who = caller.user()?;
    if !plausible_id(&id) {
        return Err(not_found());
    }
    match api.inner().jobs.store.get_job(&id).await? {
        Some(job) if visible(who, &job) => Ok(Json(job)),
        _ => Err(not_found()),
    }
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobRecord>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// Query of `GET /v1/jobs`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub state: Option<String>,
    pub kind: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// `GET /v1/jobs?state=&kind=&limit=&cursor=`: newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs",
    params(
        ("state" = Option<String>, Query, description = "queued, running, completed, failed or cancelled"),
        ("kind" = Option<String>, Query, description = "only jobs of this kind"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 200, description = "page size, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, body = JobList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(api): State<JobsApi>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<JobList>, ApiError> {
    let who = caller.user()?;
    let Query(q) = query?;
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            ApiError::invalid("state must be queued, running, completed, failed or cancelled")
        })?),
    };
    let (limit, cursor) = page(q.limit, q.cursor.as_deref())?;
    let filter = ListFilter {
        owner: if who.admin {
            None
        } else {
            Some(who.sub.to_string())
        },
        state,
        kind: kind_filter(q.kind)?,
        limit,
        cursor,
    };
    let (jobs, next_cursor) = api.inner().jobs.store.list_jobs(&filter).await?;
    Ok(Json(JobList { jobs, next_cursor }))
}

/// `POST /v1/jobs/{id}/cancel`: `202` with the job (cancelled, or running
/// and told to stop); `409` when it had already ended.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "job id")),
    responses((status = 202, description = "cancelled, or running and told to stop", body = JobRecord),
        (status = 401, body = ErrorBody), (status = 404, description = "no such job (or not yours)", body = ErrorBody),
        (status = 409, description = "the job had already ended", body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(api): State<JobsApi>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = caller.user()?;
    let jobs = &api.inner().jobs;
    if !plausible_id(&id) {
        return Err(not_found());
    }
    match jobs.store.job_owner(&id).await? {
        Some(owner) if who.admin || owner == *who.sub => {}
        _ => return Err(not_found()),
    }
    let reason = format!("cancelled by {}", who.sub);
    match jobs.cancel(&id, &reason).await? {
        CancelResult::Cancelled(job) | CancelResult::Stopping(job) => {
            Ok((StatusCode::ACCEPTED, Json(job)).into_response())
        }
        CancelResult::AlreadyEnded(job) => Err(ApiError::new(
            ErrorCode::Conflict,
            format!("the job has already ended ({})", job.state.as_str()),
        )),
        CancelResult::NotFound => Err(not_found()),
    }
}
