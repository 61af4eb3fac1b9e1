//! The web console at `/console` (jobs, topics, dead letters, cluster),
//! unless `RELAY_CONSOLE=off`.
//!
//! The console is built from `console/` into `console/dist/` (committed),
//! and that folder is compiled into the binary: no Node at build time and
//! no files beside the binary. `index.html` is never cached (it names the
//! current assets); the assets have content hashes in their names and are
//! cached for a year. Every answer carries a Content-Security-Policy that
//! allows nothing but this origin's scripts, styles and connections.

use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::Embed;

use crate::http::error::ApiError;

/// The built console.
#[derive(Embed)]
#[folder = "../console/dist"]
struct Dist;

/// Where the console is served.
pub const PATH: &str = "/console";

/// What the console's pages may load and connect to: this origin only
/// (its WebSocket included), no inline code, no framing.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Assets (hashed names) are kept by browsers and caches this long.
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";
/// The page itself is checked again on every load.
const INDEX_CACHE: &str = "no-cache";

/// The console's routes; any state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(PATH, get(|| async { redirect() }))
        .route(
            "/console/",
            get(|headers: HeaderMap| async move { file("index.html", &headers) }),
        )
        .route(
            "/console/{*path}",
            get(
                |Path(path): Path<String>, headers: HeaderMap| async move { file(&path, &headers) },
            ),
        )
}

/// `/console` to `/console/`, so that the page's relative asset paths resolve.
fn redirect() -> Response {
    (StatusCode::PERMANENT_REDIRECT, [(LOCATION, "/console/")]).into_response()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// One file of the build, with its headers; `304` when the client has it.
fn file(path: &str, headers: &HeaderMap) -> Response {
    let Some(f) = Dist::get(path) else {
        return ApiError::not_found("no such console file").into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&f.metadata.sha256_hash()[..16]));
    let cache = if path.starts_with("assets/") {
        ASSET_CACHE
    } else {
        INDEX_CACHE
    };
    let common = [
        (CACHE_CONTROL, HeaderValue::from_static(cache)),
        (CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (
            ETAG,
            HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
        ),
    ];
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let body = axum::body::Body::from(f.data.into_owned());
    (
        common,
        [(CONTENT_TYPE, HeaderValue::from_static(content_type(path)))],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_is_embedded_and_its_page_names_its_assets() {
        let index = Dist::get("index.html").expect("console/dist/index.html is embedded");
        let html = std::str::from_utf8(&index.data).unwrap();
        let assets: Vec<String> = Dist::iter()
            .filter(|p| p.starts_with("assets/"))
            .map(|p| p.to_string())
            .collect();
        assert!(assets.iter().any(|a| a.ends_with(".js")), "{assets:?}");
        assert!(assets.iter().any(|a| a.ends_with(".css")), "{assets:?}");
        for a in &assets {
            assert!(
                html.contains(&format!("\"{a}\"")),
                "index.html does not name {a}"
            );
        }
        assert!(
            !html.contains("<script>") && !html.contains("style="),
            "no inline code under the CSP"
        );
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("assets/main-ABC.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            content_type("assets/main-ABC.css"),
            "text/css; charset=utf-8"
        );
        assert_eq!(content_type("x"), "application/octet-stream");
    }
}
