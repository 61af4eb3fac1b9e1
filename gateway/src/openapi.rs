//! The root of the OpenAPI 3.1 description served at `/openapi.json`: its
//! title and security schemes. Each route registers its own operation
//! (see `crate::api`), and the schemas are the real request and answer
//! types (the job types derive theirs in `relay-shared`'s `openapi` feature).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Relay", description = "Real-time gateway and job system: WebSocket, SSE, long-poll and REST. The WebSocket protocol (`GET /v1/ws`) is described in the project's PROTOCOL.md."),
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
