//! The dead-letter list (server API: `X-Api-Key` or an admin token).
//!
//! Every job that ends `failed` is a dead letter until re-driven. A re-drive
//! records a new job with the same kind, owner and payload (the failed job
//! keeps its one terminal state) and takes the old one off the list.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use relay_shared::jobs::model::Accepted;
use serde::Deserialize;
use serde_json::json;

use super::JobsApi;
use crate::http::error::ApiError;

#[derive(Debug, Deserialize)]
pub struct DeadQuery {
    pub kind: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// `GET /v1/dead-letters?kind=&limit=&cursor=`: most recently failed first.
#[utoipa::path(get, path = "/v1/dead-letters", tag = "jobs",
    params(
        ("kind" = Option<String>, Query, description = "only dead letters of this kind"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 200, description = "page size, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, body = crate::openapi::schemas::JobList),
        (status = 400, body = crate::openapi::schemas::ErrorBody), (status = 401, body = crate::openapi::schemas::ErrorBody), (status = 429, body = crate::openapi::schemas::ErrorBody), (status = 503, body = crate::openapi::schemas::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn list(
    State(api): State<JobsApi>,
    parts: Parts,
    query: Result<Query<DeadQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    api.inner().auth.server(&parts)?;
    let Query(q) = query?;
    let (limit, cursor) = super::routes::page(q.limit, q.cursor.as_deref())?;
    let kind = super::routes::kind_filter(q.kind)?;
    let (jobs, next) = api
        .inner()
        .jobs
        .store
        .dead_letters(kind.as_deref(), limit, cursor.as_ref())
        .await?;
    Ok(Json(json!({ "jobs": jobs, "next_cursor": next })))
}

/// `POST /v1/dead-letters/{id}/redrive`: `202` with the new job.
#[utoipa::path(post, path = "/v1/dead-letters/{id}/redrive", tag = "jobs",
    params(("id" = String, Path, description = "id of the failed job")),
    responses((status = 202, body = crate::openapi::schemas::Redriven),
        (status = 401, body = crate::openapi::schemas::ErrorBody), (status = 404, description = "no such dead letter", body = crate::openapi::schemas::ErrorBody),
        (status = 429, body = crate::openapi::schemas::ErrorBody), (status = 503, body = crate::openapi::schemas::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn redrive(
    State(api): State<JobsApi>,
    parts: Parts,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    api.inner().auth.server(&parts)?;
    if !super::routes::plausible_id(&id) {
        return Err(ApiError::not_found("no such dead letter"));
    }
    match api.inner().jobs.redrive(&id).await? {
        Some(job) => {
            let mut body =
                serde_json::to_value(Accepted::new(&job.id, job.state)).unwrap_or_default();
            body["redriven_from"] = json!(id);
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
        None => Err(ApiError::not_found("no such dead letter")),
    }
}
