//! The accept loop: HTTP/1.1 with upgrades, a deadline for request headers
//! (slow clients that never finish their request are dropped), the client
//! address for handlers, and a graceful stop.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Serves `app` on `listener` until `stop`, then lets requests in flight
/// finish (the caller bounds the wait through `conns`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    handshake_timeout: Duration,
    stop: CancellationToken,
    conns: TaskTracker,
) {
    loop {
        let (stream, addr) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let stop = stop.clone();
        conns.spawn(async move {
            let service = app.map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(addr));
                req
            });
            let service = TowerToHyperService::new(service);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(handshake_timeout).keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => { if let Err(e) = r { tracing::trace!(error = %e, "connection ended"); } }
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

/// The client's address: the peer, or the address a trusted proxy names in
/// `X-Forwarded-For` (the rightmost one that is not itself a trusted proxy).
pub fn client_ip(
    parts: &axum::http::request::Parts,
    trusted: &[std::net::IpAddr],
) -> Option<std::net::IpAddr> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    let hops = forwarded
        .into_iter()
        .flat_map(|v| v.rsplit(','))
        .filter_map(|h| h.trim().parse().ok());
    for hop in hops {
        if !trusted.contains(&hop) {
            return Some(hop);
        }
    }
    Some(peer)
}
