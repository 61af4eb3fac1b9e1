//! The web console at `/console`: the committed build (console/dist),
//! compiled into the binary, served with its content types, caching and
//! Content-Security-Policy; off with `RELAY_CONSOLE=off`. (The pages
//! themselves are tested in Chromium by `npm test` in console/.)

use std::path::PathBuf;

use relay_testkit::TestRedis;
use reqwest::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION,
};

use crate::support::gateway;

fn dist(path: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../console/dist")
        .join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn header(r: &reqwest::Response, name: reqwest::header::HeaderName) -> &str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The asset names `index.html` loads (`assets/...`).
fn assets(index: &str) -> Vec<String> {
    index
        .split('"')
        .filter(|s| s.starts_with("assets/"))
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_from_the_binary_with_its_headers() {
    let redis = TestRedis::start();
    let gw = gateway(&redis).spawn().await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let r = plain.get(gw.http_url("/console")).send().await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(header(&r, LOCATION), "/console/");

    let r = gw.get("/console/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(
        header(&r, CACHE_CONTROL),
        "no-cache",
        "the page is checked on every load"
    );
    let csp = header(&r, CONTENT_SECURITY_POLICY).to_string();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "CSP {csp:?} lacks {part}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(
        header(&r, "x-content-type-options".parse().unwrap()),
        "nosniff"
    );
    let etag = header(&r, ETAG).to_string();
    let index = r.text().await.unwrap();
    assert_eq!(
        index.as_bytes(),
        dist("index.html"),
        "the binary serves the committed build (rebuild the gateway after `npm run build`)"
    );

    let r = gw
        .http()
        .get(gw.http_url("/console/"))
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304, "a page the browser has is not sent again");

    let names = assets(&index);
    assert_eq!(names.len(), 2, "one script and one stylesheet: {names:?}");
    for name in names {
        let r = gw.get(&format!("/console/{name}")).await;
        assert_eq!(r.status(), 200, "{name}");
        let ct = if name.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(header(&r, CONTENT_TYPE), ct, "{name}");
        assert_eq!(
            header(&r, CACHE_CONTROL),
            "public, max-age=31536000, immutable",
            "{name}: hashed names are cached for good"
        );
        assert_eq!(
            r.bytes().await.unwrap().as_ref(),
            dist(&name).as_slice(),
            "{name}"
        );
    }

    let r = gw.get("/console/assets/nothing-here.js").await;
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    // Only the embedded files exist: no path reaches the file system.
    let r = gw.get("/console/..%2FCargo.toml").await;
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_console_off_serves_no_console() {
    let redis = TestRedis::start();
    let gw = gateway(&redis).env("RELAY_CONSOLE", "off").spawn().await;
    for path in ["/console", "/console/", "/console/index.html"] {
        let r = gw.get(path).await;
        assert_eq!(r.status(), 404, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "NOT_FOUND", "{path}");
    }
    assert_eq!(gw.get("/healthz").await.status(), 200);
}
