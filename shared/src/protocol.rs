//! The WebSocket protocol: client ops, server frames and error codes.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::event::Since;
use crate::topic::{Topic, TopicError};

/// The contract's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    InvalidMessage,
    UnknownOp,
    BadTopic,
    Forbidden,
    RateLimit,
    TooLarge,
    NotSubscribed,
    ServerError,
    Unavailable,
    // HTTP-only codes.
    Unauthorized,
    NotFound,
    Conflict,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidMessage => "INVALID_MESSAGE",
            ErrorCode::UnknownOp => "UNKNOWN_OP",
            ErrorCode::BadTopic => "BAD_TOPIC",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::RateLimit => "RATE_LIMIT",
            ErrorCode::TooLarge => "TOO_LARGE",
            ErrorCode::NotSubscribed => "NOT_SUBSCRIBED",
            ErrorCode::ServerError => "SERVER_ERROR",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
        }
    }

    /// Whether trying the same request again later may succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimit | ErrorCode::ServerError | ErrorCode::Unavailable
        )
    }

    /// The HTTP status that goes with this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidMessage
            | ErrorCode::UnknownOp
            | ErrorCode::BadTopic
            | ErrorCode::NotSubscribed => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::TooLarge => 413,
            ErrorCode::RateLimit => 429,
            ErrorCode::ServerError => 500,
            ErrorCode::Unavailable => 503,
        }
    }
}

/// WebSocket close codes of the contract.
pub mod close {
    /// Server draining; reconnect elsewhere.
    pub const DRAINING: u16 = 4000;
    /// Token expired.
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// Too slow: the client fell behind its send buffer; reconnect with `since`.
    pub const TOO_SLOW: u16 = 4008;
    /// Frame over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// Policy violation (rate limit abuse).
    pub const POLICY: u16 = 1008;
}

/// A client op, borrowed from the frame's text.
#[derive(Debug)]
pub enum ClientOp<'a> {
    Subscribe {
        id: Option<&'a RawValue>,
        topic: Topic,
        since: Option<Since>,
        epoch: Option<Cow<'a, str>>,
    },
    Unsubscribe {
        id: Option<&'a RawValue>,
        topic: Topic,
    },
    Publish {
        id: Option<&'a RawValue>,
        topic: Topic,
        kind: Cow<'a, str>,
        data: Option<&'a RawValue>,
    },
    Ping {
        id: Option<&'a RawValue>,
    },
}

/// A frame that could not be taken, with what to answer.
#[derive(Debug)]
pub struct FrameError<'a> {
    pub id: Option<&'a RawValue>,
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
}

#[derive(serde::Deserialize)]
struct RawFrame<'a> {
    #[serde(borrow)]
    op: Option<&'a RawValue>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    topic: Option<&'a RawValue>,
    #[serde(borrow)]
    since: Option<&'a RawValue>,
    #[serde(borrow)]
    epoch: Option<&'a RawValue>,
    #[serde(borrow, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

fn string<'a>(raw: &'a RawValue) -> Option<Cow<'a, str>> {
    serde_json::from_str::<Cow<'a, str>>(raw.get()).ok()
}

fn is_null(raw: Option<&RawValue>) -> bool {
    raw.is_none_or(|r| r.get() == "null")
}

/// Parses one client text frame.
pub fn parse_client_frame(text: &str) -> Result<ClientOp<'_>, FrameError<'_>> {
    let err = |id, code, message: &'static str| FrameError {
        id,
        code,
        message: Cow::Borrowed(message),
    };
    if text.trim() == "ping" {
        return Ok(ClientOp::Ping { id: None });
    }
    let raw: RawFrame<'_> = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(_) => {
            return Err(err(
                None,
                ErrorCode::InvalidMessage,
                "frame is not a JSON object",
            ))
        }
    };
    let id = match raw.id {
        Some(v) if v.get() == "null" => None,
        Some(v)
            if v.get().starts_with('"')
                || v.get()
                    .starts_with(|c: char| c == '-' || c.is_ascii_digit()) =>
        {
            if v.get().len() > 64 {
                return Err(err(
                    None,
                    ErrorCode::InvalidMessage,
                    "id is longer than 64 characters",
                ));
            }
            Some(v)
        }
        Some(_) => {
            return Err(err(
                None,
                ErrorCode::InvalidMessage,
                "id must be a number or a string",
            ))
        }
        None => None,
    };
    let Some(op) = raw.op.and_then(string) else {
        return Err(err(
            id,
            ErrorCode::InvalidMessage,
            "op is missing or not a string",
        ));
    };
    let topic = |raw_topic: Option<&RawValue>| -> Result<Topic, FrameError<'_>> {
        let Some(name) = raw_topic.and_then(string) else {
            return Err(err(
                id,
                ErrorCode::InvalidMessage,
                "topic is missing or not a string",
            ));
        };
        Topic::new(&name).map_err(|e| FrameError {
            id,
            code: ErrorCode::BadTopic,
            message: Cow::Owned(match e {
                TopicError::BadChar(_) => format!("{e}"),
                _ => e.to_string(),
            }),
        })
    };
    match &*op {
        "subscribe" => {
            let topic = topic(raw.topic)?;
            let since = match raw.since {
                None => None,
                Some(v) if v.get() == "null" => None,
                Some(v) => {
                    let text = string(v).unwrap_or(Cow::Borrowed(v.get()));
                    match text.parse::<Since>() {
                        Ok(s) => Some(s),
                        Err(_) => {
                            return Err(err(
                                id,
                                ErrorCode::InvalidMessage,
                                "since must be an event id or a millisecond timestamp",
                            ))
                        }
                    }
                }
            };
            let epoch = match raw.epoch {
                None => None,
                Some(v) if v.get() == "null" => None,
                Some(v) => match string(v) {
                    Some(e) if e.len() <= 64 && e.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                        Some(e)
                    }
                    _ => {
                        return Err(err(
                            id,
                            ErrorCode::InvalidMessage,
                            "epoch must be a string from a subscribed frame",
                        ))
                    }
                },
            };
            Ok(ClientOp::Subscribe {
                id,
                topic,
                since,
                epoch,
            })
        }
        "unsubscribe" => Ok(ClientOp::Unsubscribe {
            id,
            topic: topic(raw.topic)?,
        }),
        "publish" => {
            let topic = topic(raw.topic)?;
            let Some(kind) = raw.kind.and_then(string) else {
                return Err(err(
                    id,
                    ErrorCode::InvalidMessage,
                    "type is missing or not a string",
                ));
            };
            if kind.is_empty() || kind.len() > crate::bus::MAX_TYPE_LEN {
                return Err(err(
                    id,
                    ErrorCode::InvalidMessage,
                    "type must be 1..=128 characters",
                ));
            }
            let data = if is_null(raw.data) { None } else { raw.data };
            Ok(ClientOp::Publish {
                id,
                topic,
                kind,
                data,
            })
        }
        "ping" => Ok(ClientOp::Ping { id }),
        _ => Err(err(id, ErrorCode::UnknownOp, "unknown op")),
    }
}

/// A frame the server sends (other than events, which are prebuilt).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        parse_client_frame(text).unwrap_err().code
    }

    #[test]
    fn parses_every_op() {
        assert!(matches!(
            parse_client_frame("ping"),
            Ok(ClientOp::Ping { id: None })
        ));
        assert!(matches!(
            parse_client_frame(r#"{"op":"ping"}"#),
            Ok(ClientOp::Ping { .. })
        ));
        let ClientOp::Subscribe { id, topic, since, epoch } =
            parse_client_frame(r#"{"op":"subscribe","id":1,"topic":"job:7f3a","since":"1732240000000-3","epoch":"k3x9"}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(id.unwrap().get(), "1");
        assert_eq!(topic.as_str(), "job:7f3a");
        assert_eq!(
            since,
            Some(Since::Id(crate::event::StreamId::new(1732240000000, 3)))
        );
        assert_eq!(epoch.as_deref(), Some("k3x9"));
        let ClientOp::Subscribe { since, .. } =
            parse_client_frame(r#"{"op":"subscribe","topic":"a","since":1732240000000}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(since, Some(Since::Ts(1732240000000)));
        assert!(matches!(
            parse_client_frame(r#"{"op":"unsubscribe","id":2,"topic":"a"}"#),
            Ok(ClientOp::Unsubscribe { .. })
        ));
        let ClientOp::Publish { kind, data, .. } = parse_client_frame(
            r#"{"op":"publish","id":3,"topic":"chat:room1","type":"message","data":{"text":"hi"}}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(kind, "message");
        assert_eq!(data.unwrap().get(), r#"{"text":"hi"}"#);
    }

    #[test]
    fn bad_frames_get_their_codes_and_keep_the_id() {
        assert_eq!(code("not json"), ErrorCode::InvalidMessage);
        assert_eq!(code("[1,2]"), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"id":1}"#), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"op":5}"#), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"op":"dance","id":9}"#), ErrorCode::UnknownOp);
        assert_eq!(
            code(r#"{"op":"subscribe","id":1}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(r#"{"op":"subscribe","id":1,"topic":"a b"}"#),
            ErrorCode::BadTopic
        );
        assert_eq!(
            code(r#"{"op":"subscribe","id":1,"topic":""}"#),
            ErrorCode::BadTopic
        );
        assert_eq!(
            code(r#"{"op":"subscribe","id":1,"topic":"a","since":"yesterday"}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(r#"{"op":"subscribe","id":1,"topic":"a","epoch":"{}"}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(r#"{"op":"publish","id":1,"topic":"a"}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(r#"{"op":"subscribe","id":{"x":1},"topic":"a"}"#),
            ErrorCode::InvalidMessage
        );
        let e = parse_client_frame(r#"{"op":"dance","id":"r-9"}"#).unwrap_err();
        assert_eq!(e.id.unwrap().get(), r#""r-9""#);
    }

    #[test]
    fn server_frames_match_the_contract() {
        let f = ServerFrame::Error {
            id: None,
            code: ErrorCode::RateLimit,
            message: "slow down",
            retryable: true,
        }
        .to_json();
        assert_eq!(
            f,
            r#"{"op":"error","code":"RATE_LIMIT","message":"slow down","retryable":true}"#
        );
        assert_eq!(ServerFrame::Pong { id: None }.to_json(), r#"{"op":"pong"}"#);
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[a-z0-9:*._-]{0,20}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{0,8}", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Frames shaped like client ops, with arbitrary values in the known fields.
    fn frame() -> impl Strategy<Value = Value> {
        (
            prop_oneof![
                Just(Value::from("subscribe")),
                Just(Value::from("unsubscribe")),
                Just(Value::from("publish")),
                Just(Value::from("ping")),
                json(),
            ],
            proptest::collection::btree_map(
                prop_oneof![
                    Just("id".to_string()),
                    Just("topic".to_string()),
                    Just("since".to_string()),
                    Just("epoch".to_string()),
                    Just("type".to_string()),
                    Just("data".to_string()),
                    "[a-z]{1,6}",
                ],
                json(),
                0..7,
            ),
        )
            .prop_map(|(op, fields)| {
                let mut m: serde_json::Map<String, Value> = fields.into_iter().collect();
                m.insert("op".into(), op);
                Value::Object(m)
            })
    }

    fn check(text: &str) -> Result<(), TestCaseError> {
        match parse_client_frame(text) {
            Ok(ClientOp::Subscribe { topic, .. })
            | Ok(ClientOp::Unsubscribe { topic, .. })
            | Ok(ClientOp::Publish { topic, .. }) => {
                prop_assert!(crate::topic::Topic::new(topic.as_str()).is_ok());
            }
            Ok(ClientOp::Ping { .. }) => {}
            Err(e) => prop_assert!(!e.message.is_empty()),
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn never_panics_on_text(s in any::<String>()) {
            check(&s)?;
        }

        #[test]
        fn never_panics_on_json(v in json()) {
            check(&v.to_string())?;
        }

        #[test]
        fn never_panics_on_op_shaped_frames(v in frame()) {
            check(&v.to_string())?;
        }
    }
}
