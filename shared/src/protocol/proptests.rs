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
