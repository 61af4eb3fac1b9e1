//! `POST /v1/publish`, `POST /v1/broadcast` (server API) and `POST /v1/send` (end users).

use std::collections::BTreeMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use relay_shared::protocol::ErrorCode;
use relay_shared::topic::Topic;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::caller::Caller;
use super::error::ApiError;
use crate::auth::Identity;
use crate::metrics as m;
use crate::state::AppState;

/// Topics one broadcast may name.
pub const MAX_BROADCAST_TOPICS: usize = 100;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PublishBody {
    /// Topic name (1..=128 of `[A-Za-z0-9._:@-]`).
    #[schema(value_type = String)]
    pub topic: String,
    /// Event type, e.g. `data.updated`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Event data (any JSON; `{}` when absent).
    #[schema(value_type = Object)]
    pub data: Option<Box<RawValue>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Published {
    pub event_id: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct BroadcastBody {
    pub topics: Vec<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(value_type = Object)]
    pub data: Option<Box<RawValue>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BroadcastResult {
    pub event_ids: BTreeMap<String, String>,
}

fn topic(name: &str) -> Result<Topic, ApiError> {
    Topic::new(name).map_err(|e| ApiError::new(ErrorCode::BadTopic, e.to_string()))
}

fn data_of(state: &AppState, data: &Option<Box<RawValue>>) -> Result<Box<RawValue>, ApiError> {
    let data = match data {
        Some(d) if d.get() != "null" => d.clone(),
        _ => RawValue::from_string("{}".into()).map_err(|_| ApiError::invalid("bad data"))?,
    };
    if data.get().len() as u64 > state.config.max_frame_bytes {
        m::limit_hit("event_size");
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!("data is over {} bytes", state.config.max_frame_bytes),
        ));
    }
    Ok(data)
}

async fn publish_one(
    state: &AppState,
    identity: &Identity,
    body: &PublishBody,
    route: &'static str,
) -> Result<Published, ApiError> {
    let topic = topic(&body.topic)?;
    if !identity.may_publish(&topic) {
        return Err(ApiError::forbidden("not allowed to publish to this topic"));
    }
    let data = data_of(state, &body.data)?;
    let p = state.bus.publish(&topic, &body.kind, &data).await?;
    metrics::counter!(m::EVENTS_PUBLISHED, "route" => route).increment(1);
    Ok(Published {
        event_id: p.id.to_string(),
    })
}

/// Publish one event (server API).
#[utoipa::path(post, path = "/v1/publish", tag = "events", request_body = PublishBody,
    responses((status = 200, body = Published), (status = 400), (status = 401), (status = 413), (status = 503)),
    security(("api_key" = [])))]
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<PublishBody>, JsonRejection>,
) -> Result<Json<Published>, ApiError> {
    let identity = caller.server()?;
    let Json(body) = body?;
    Ok(Json(publish_one(&state, identity, &body, "publish").await?))
}

/// Publish as the token's user (for clients that cannot hold a WebSocket).
#[utoipa::path(post, path = "/v1/send", tag = "events", request_body = PublishBody,
    responses((status = 200, body = Published), (status = 400), (status = 401), (status = 403), (status = 413), (status = 503)),
    security(("bearer" = [])))]
pub async fn send(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<PublishBody>, JsonRejection>,
) -> Result<Json<Published>, ApiError> {
    let identity = caller.user()?;
    let Json(body) = body?;
    Ok(Json(publish_one(&state, identity, &body, "send").await?))
}

/// Publish one event to several topics (server API).
#[utoipa::path(post, path = "/v1/broadcast", tag = "events", request_body = BroadcastBody,
    responses((status = 200, body = BroadcastResult), (status = 400), (status = 401), (status = 413), (status = 503)),
    security(("api_key" = [])))]
pub async fn broadcast(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<BroadcastBody>, JsonRejection>,
) -> Result<Json<BroadcastResult>, ApiError> {
    caller.server()?;
    let Json(body) = body?;
    if body.topics.is_empty() || body.topics.len() > MAX_BROADCAST_TOPICS {
        return Err(ApiError::invalid(format!(
            "topics must name 1..={MAX_BROADCAST_TOPICS} topics"
        )));
    }
    let topics = body
        .topics
        .iter()
        .map(|t| topic(t))
        .collect::<Result<Vec<_>, _>>()?;
    let data = data_of(&state, &body.data)?;
    let publishes = topics
        .iter()
        .map(|t| state.bus.publish(t, &body.kind, &data));
    let results = futures_util::future::join_all(publishes).await;
    let mut event_ids = BTreeMap::new();
    for (t, r) in topics.iter().zip(results) {
        event_ids.insert(t.to_string(), r?.id.to_string());
    }
    metrics::counter!(m::EVENTS_PUBLISHED, "route" => "broadcast").increment(topics.len() as u64);
    Ok(Json(BroadcastResult { event_ids }))
}
