//! The OpenAPI 3.1 description served at `/openapi.json`.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{http, jobs};

#[derive(OpenApi)]
#[openapi(
    info(title = "Relay", description = "Real-time gateway and job system: WebSocket, SSE, long-poll and REST. The WebSocket protocol (`GET /v1/ws`) is described in the project's PROTOCOL.md."),
    paths(
        http::publish::publish,
        http::publish::broadcast,
        http::publish::send,
        http::poll::poll,
        http::sse::sse,
        crate::status::status,
        http::ops::healthz,
        http::ops::readyz,
        jobs::routes::submit,
        jobs::routes::list,
        jobs::routes::get_one,
        jobs::routes::cancel,
        jobs::uploads::upload,
        jobs::dead::list,
        jobs::dead::redrive,
    ),
    components(schemas(
        http::publish::PublishBody, http::publish::Published, http::publish::BroadcastBody, http::publish::BroadcastResult,
        schemas::ErrorBody, schemas::ErrorDetail, schemas::JobState, schemas::JobRecord, schemas::SubmitRequest,
        schemas::Accepted, schemas::JobList, schemas::UploadForm, schemas::Uploaded, schemas::Redriven,
    )),
    modifiers(&Security)
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Schemas of the job API. The job types live in `relay-shared`, which does
/// not depend on utoipa; these mirror their JSON (a test below keeps them in
/// step with what the real types serialize).
pub mod schemas {
    #![allow(dead_code)]

    use utoipa::ToSchema;

    /// Every error: `{"error":{"code","message"}}`.
    #[derive(ToSchema)]
    pub struct ErrorBody {
        pub error: ErrorDetail,
    }

    #[derive(ToSchema)]
    pub struct ErrorDetail {
        /// `INVALID_MESSAGE`, `UNAUTHORIZED`, `FORBIDDEN`, `NOT_FOUND`,
        /// `CONFLICT`, `TOO_LARGE`, `RATE_LIMIT`, `SERVER_ERROR`, `UNAVAILABLE`, ...
        pub code: String,
        pub message: String,
    }

    /// Where a job is in its life; the last three are terminal.
    #[derive(ToSchema)]
    #[schema(rename_all = "lowercase")]
    pub enum JobState {
        Queued,
        Running,
        Completed,
        Failed,
        Cancelled,
    }

    /// A job as the contract shows it.
    #[derive(ToSchema)]
    pub struct JobRecord {
        pub id: String,
        pub kind: String,
        pub state: JobState,
        /// The user the job belongs to.
        pub owner: String,
        #[schema(value_type = Object)]
        pub payload: (),
        /// The last progress reported (`{"percent","step","message",...}`).
        #[schema(value_type = Option<Object>)]
        pub progress: Option<()>,
        pub attempts: i32,
        pub max_attempts: i32,
        /// What the job returned (completed jobs).
        #[schema(value_type = Option<Value>)]
        pub result: Option<()>,
        /// Why the job failed or was cancelled.
        pub error: Option<String>,
        /// RFC 3339.
        pub created_at: String,
        pub started_at: Option<String>,
        pub finished_at: Option<String>,
    }

    /// The body of `POST /v1/jobs`.
    #[derive(ToSchema)]
    pub struct SubmitRequest {
        /// 1..=64 of `[a-z0-9_.-]`: a built-in kind or one a worker registered.
        #[schema(example = "sleep")]
        pub kind: String,
        /// A JSON object (`{}` when absent); checked against the kind.
        #[schema(value_type = Option<Object>, example = json!({"ms": 0, "steps": 1}))]
        pub payload: Option<()>,
        /// -100 (last) ..= 100 (first); default 0.
        #[schema(minimum = -100, maximum = 100)]
        pub priority: Option<i32>,
        /// 1..=100; default 3.
        #[schema(minimum = 1, maximum = 100)]
        pub max_attempts: Option<u32>,
        /// Per attempt, 100..=86400000; default 600000.
        #[schema(minimum = 100, maximum = 86_400_000)]
        pub timeout_ms: Option<u64>,
        /// Up to 30 days; default 0.
        #[schema(maximum = 2592000000.0)]
        pub delay_ms: Option<u64>,
        /// 1..=200 bytes; the same key from the same owner returns the first job.
        #[schema(min_length = 1, max_length = 200)]
        pub idempotency_key: Option<String>,
    }

    /// A job was recorded (or found by its idempotency key).
    #[derive(ToSchema)]
    pub struct Accepted {
        pub id: String,
        pub state: JobState,
        /// `job:{id}`.
        pub topic: String,
        pub events_url: String,
        pub poll_url: String,
    }

    /// A page of jobs, newest first.
    #[derive(ToSchema)]
    pub struct JobList {
        pub jobs: Vec<JobRecord>,
        /// Pass as `cursor` for the next page; `null` on the last one.
        pub next_cursor: Option<String>,
    }

    /// `multipart/form-data` with one file.
    #[derive(ToSchema)]
    pub struct UploadForm {
        #[schema(value_type = String, format = Binary)]
        pub file: Vec<u8>,
    }

    /// A stored upload, to be named in a job payload.
    #[derive(ToSchema)]
    pub struct Uploaded {
        pub upload_id: String,
        pub bytes: u64,
        /// Hex SHA-256 of the file.
        pub sha256: String,
    }

    /// A dead letter re-driven as a new job.
    #[derive(ToSchema)]
    pub struct Redriven {
        pub id: String,
        pub state: JobState,
        pub topic: String,
        pub events_url: String,
        pub poll_url: String,
        /// The failed job's id.
        pub redriven_from: String,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use relay_shared::jobs::model::{Accepted, JobRecord, JobState};
    use serde_json::{json, Value};
    use utoipa::OpenApi;

    use super::ApiDoc;

    fn doc() -> Value {
        serde_json::to_value(ApiDoc::openapi()).unwrap()
    }

    fn properties(doc: &Value, schema: &str) -> BTreeSet<String> {
        doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("no schema {schema}"))
            .keys()
            .cloned()
            .collect()
    }

    fn keys(v: &Value) -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn job_schemas_match_the_real_types() {
        let doc = doc();
        let record = JobRecord {
            id: "j".into(),
            kind: "sleep".into(),
            state: JobState::Queued,
            owner: "o".into(),
            payload: json!({}),
            progress: None,
            attempts: 0,
            max_attempts: 3,
            result: None,
            error: None,
            created_at: "2026-01-01T00:00:00Z".into(),
            started_at: None,
            finished_at: None,
        };
        assert_eq!(
            properties(&doc, "JobRecord"),
            keys(&serde_json::to_value(&record).unwrap())
        );
        let accepted = serde_json::to_value(Accepted::new("j", JobState::Queued)).unwrap();
        assert_eq!(properties(&doc, "Accepted"), keys(&accepted));
        let mut redriven = accepted.clone();
        redriven["redriven_from"] = json!("old");
        assert_eq!(properties(&doc, "Redriven"), keys(&redriven));
        let states: Vec<Value> = JobState::ALL.iter().map(|s| json!(s.as_str())).collect();
        assert_eq!(
            doc["components"]["schemas"]["JobState"]["enum"],
            json!(states)
        );
        // Every field SubmitRequest accepts (it denies unknown ones) is documented.
        let submit = json!({"kind":"sleep","payload":{},"priority":0,"max_attempts":3,
            "timeout_ms":1000,"delay_ms":0,"idempotency_key":"k"});
        assert!(
            serde_json::from_value::<relay_shared::jobs::model::SubmitRequest>(submit.clone())
                .is_ok()
        );
        assert_eq!(properties(&doc, "SubmitRequest"), keys(&submit));
    }

    #[test]
    fn job_routes_are_documented_with_axum_paths() {
        let doc = doc();
        for (path, method) in [
            ("/v1/jobs", "post"),
            ("/v1/jobs", "get"),
            ("/v1/jobs/{id}", "get"),
            ("/v1/jobs/{id}/cancel", "post"),
            ("/v1/uploads", "post"),
            ("/v1/dead-letters", "get"),
            ("/v1/dead-letters/{id}/redrive", "post"),
        ] {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path} is not documented");
            assert!(op["security"].is_array(), "{method} {path} has no security");
            for status in ["401", "429", "503"] {
                assert!(
                    op["responses"][status].is_object(),
                    "{method} {path} does not document {status}"
                );
            }
        }
    }
}
