//! The dead-letter list (server API: `X-Api-Key` or an admin token).
//!
//! Every job that ends `failed` is a dead letter until re-driven. A re-drive
//! records a new job with the same kind, owner and payload (the failed job
//! keeps its one terminal state) and takes the old one off the list.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use relay_shared::jobs::model::Accepted;
use serde::{Deserialize, Serialize};

use super::routes::JobList;
use super::JobsApi;
use crate::http::caller::Caller;
use crate::http::error::{ApiError, ErrorBody};

/// A dead letter re-driven as a new job.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Redriven {
    #[serde(flatten)]
    pub accepted: Accepted,
    /// The failed job's id.
    pub redriven_from: String,
}

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
    responses((status = 200, body = JobList),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn list(
    State(api): State<JobsApi>,
    caller: Caller,
    query: Result<Query<DeadQuery>, QueryRejection>,
) -> Result<Json<JobList>, ApiError> {
    caller.server()?;
    let Query(q) = query?;
    let (limit, cursor) = super::routes::page(q.limit, q.cursor.as_deref())?;
    let kind = super::routes::kind_filter(q.kind)?;
    let (jobs, next_cursor) = api
        .inner()
        .jobs
        .store
        .dead_letters(kind.as_deref(), limit, cursor.as_ref())
        .await?;
    Ok(Json(JobList { jobs, next_cursor }))
}

/// `POST /v1/dead-letters/{id}/redrive`: `202` with the new job.
#[utoipa::path(post, path = "/v1/dead-letters/{id}/redrive", tag = "jobs",
    params(("id" = String, Path, description = "id of the failed job")),
    responses((status = 202, body = Redriven),
        (status = 401, body = ErrorBody), (status = 404, description = "no such dead letter", body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn redrive(
    State(api): State<JobsApi>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.server()?;
    if !super::routes::plausible_id(&id) {
        return Err(ApiError::not_found("no such dead letter"));
    }
    match api.inner().jobs.redrive(&id).await? {
        Some(job) => {
            let body = Redriven {
                accepted: Accepted::new(&job.id, job.state),
                redriven_from: id,
            };
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
        None => Err(ApiError::not_found("no such dead letter")),
    }
}
