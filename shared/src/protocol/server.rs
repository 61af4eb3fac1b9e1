//! Frames the server sends (other than events, which are prebuilt).

use serde::Serialize;
use serde_json::value::RawValue;

use super::ErrorCode;

/// A frame the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum ServerFrame<'a> {
    Welcome {
        session: &'a str,
        heartbeat_ms: u64,
    },
    Subscribed {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RawValue>,
        topic: &'a str,
        position: String,
        epoch: &'a str,
        recovered: bool,
        replayed: usize,
    },
    Unsubscribed {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RawValue>,
        topic: &'a str,
    },
    Ack {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RawValue>,
        event_id: String,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RawValue>,
    },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RawValue>,
        code: ErrorCode,
        message: &'a str,
        retryable: bool,
    },
}

impl ServerFrame<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"op":"error","code":"SERVER_ERROR","message":"encoding failed","retryable":true}"#.into())
    }
}
