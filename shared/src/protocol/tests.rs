use super::*;
use crate::event::Since;

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
    let ClientOp::Subscribe {
        id,
        topic,
        since,
        epoch,
    } = parse_client_frame(
        r#"{"op":"subscribe","id":1,"topic":"job:7f3a","since":"1732240000000-3","epoch":"k3x9"}"#,
    )
    .unwrap()
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

#[test]
fn close_reasons_keep_the_contract_codes_and_round_trip() {
    let codes: Vec<u16> = CloseReason::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(codes, [4000, 4001, 4008, 1009, 1008, 1001]);
    for r in CloseReason::ALL {
        assert_ne!(r.to_u8(), 0);
        assert_eq!(CloseReason::from_u8(r.to_u8()), Some(r));
    }
    assert_eq!(CloseReason::from_u8(0), None);
}
