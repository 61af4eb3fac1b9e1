//! `parse_client_frame` on arbitrary input: never panics, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay_shared::protocol::{parse_client_frame, ClientOp};

fuzz_target!(|data: &[u8]| {
    // Valid UTF-8 as it is; anything else as the lossy text a WebSocket
    // library would never hand over but a bug elsewhere might.
    let owned;
    let text = match std::str::from_utf8(data) {
        Ok(t) => t,
        Err(_) => {
            owned = String::from_utf8_lossy(data).into_owned();
            &owned
        }
    };
    match parse_client_frame(text) {
        Ok(ClientOp::Subscribe { topic, .. })
        | Ok(ClientOp::Unsubscribe { topic, .. })
        | Ok(ClientOp::Publish { topic, .. }) => {
            // A topic that was accepted is a valid topic name.
            assert!(relay_shared::topic::Topic::new(topic.as_str()).is_ok());
        }
        Ok(ClientOp::Ping { .. }) => {}
        Err(e) => {
            // An error always says something.
            assert!(!e.message.is_empty());
        }
    }
});
