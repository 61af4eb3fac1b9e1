//! `POST /v1/uploads`: one file, multipart, streamed to PostgreSQL in 1 MiB
//! chunks (never held whole in memory), with its SHA-256. `201`
//! `{"upload_id","bytes","sha256"}`; over `RELAY_MAX_UPLOAD_BYTES` is `413`.

use axum::extract::multipart::MultipartRejection;
use axum::extract::multipart::{Field, MultipartError};
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use relay_shared::jobs::store::CHUNK_BYTES;
use relay_shared::jobs::Store;
use relay_shared::protocol::ErrorCode;
use sha2::{Digest, Sha256};

use super::JobsApi;
use crate::http::caller::Caller;
use crate::http::error::{ApiError, ErrorBody};

/// `multipart/form-data` with one file.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes the request body; the handler streams it
pub struct UploadForm {
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// A stored upload, to be named in a job payload.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Uploaded {
    pub upload_id: String,
    pub bytes: u64,
    /// Hex SHA-256 of the file.
    pub sha256: String,
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        ErrorCode::TooLarge,
        format!("the file is larger than {max} bytes"),
    )
}

fn multipart_error(e: MultipartError, max: u64) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(max)
    } else {
        ApiError::invalid(format!("bad multipart body: {}", e.body_text()))
    }
}

/// `POST /v1/uploads`.
#[utoipa::path(post, path = "/v1/uploads", tag = "jobs",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = Uploaded),
        (status = 400, description = "not multipart, no file, or more than one", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 413, description = "over RELAY_MAX_UPLOAD_BYTES", body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn upload(
    State(api): State<JobsApi>,
    caller: Caller,
    body: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let who = caller.user()?;
    let mut multipart = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    let max = api.inner().max_upload_bytes;
    let store = &api.inner().jobs.store;
    let mut stored: Option<(String, u64, String)> = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, max))?
    {
        if field.file_name().is_none() && field.name() != Some("file") {
            continue;
        }
        if stored.is_some() {
            return Err(ApiError::invalid("send one file per upload"));
        }
        let id = relay_shared::jobs::new_token();
        let filename = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(str::to_string);
        store
            .create_upload(&id, &who.sub, filename.as_deref(), content_type.as_deref())
            .await?;
        match store_file(store, &id, field, max).await {
            Ok((bytes, sha)) => stored = Some((id, bytes, sha)),
            Err(e) => {
                if let Err(d) = store.delete_upload(&id).await {
                    tracing::warn!(upload = %id, error = %d, "failed upload not removed; the sweep will");
                }
                return Err(e);
            }
        }
    }
    let Some((id, bytes, sha)) = stored else {
        return Err(ApiError::invalid(
            "no file in the body (send one multipart field named \"file\")",
        ));
    };
    if let Err(e) = store.complete_upload(&id, bytes, &sha).await {
        let _ = store.delete_upload(&id).await;
        return Err(e.into());
    }
    tracing::info!(upload = %id, bytes, "upload stored");
    let uploaded = Uploaded {
        upload_id: id,
        bytes,
        sha256: sha,
    };
    Ok((StatusCode::CREATED, Json(uploaded)).into_response())
}

/// Streams one field into chunks; returns its size and SHA-256 (hex).
async fn store_file(
    store: &Store,
    id: &str,
    mut field: Field<'_>,
    max: u64,
) -> Result<(u64, String), ApiError> {
    let mut hasher = Sha256::new();
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK_BYTES);
    let (mut total, mut seq) = (0u64, 0u32);
    while let Some(data) = field.chunk().await.map_err(|e| multipart_error(e, max))? {
        total += data.len() as u64;
        if total > max {
            return Err(too_large(max));
        }
        hasher.update(&data);
        let mut rest = &data[..];
        while !rest.is_empty() {
            let take = rest.len().min(CHUNK_BYTES - buf.len());
            buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if buf.len() == CHUNK_BYTES {
                store.put_chunk(id, seq, &buf).await?;
                seq += 1;
                buf.clear();
            }
        }
    }
    if !buf.is_empty() {
        store.put_chunk(id, seq, &buf).await?;
    }
    Ok((total, hex::encode(hasher.finalize())))
}
