//! Client ops: parsing one client text frame, borrowing from its text.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::ErrorCode;
use crate::event::Since;
use crate::topic::{Topic, TopicError};

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
