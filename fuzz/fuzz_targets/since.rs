//! `StreamId` and `Since` parsing on arbitrary input: never panics, and an
//! accepted value prints back to text that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay_shared::event::{Since, StreamId};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = text.parse::<StreamId>() {
        assert_eq!(id.to_string().parse::<StreamId>(), Ok(id));
        // `next` is strictly greater, except at the very top, where it
        // saturates (`u64::MAX-u64::MAX` has no successor).
        if id != StreamId::new(u64::MAX, u64::MAX) {
            assert!(id.next() > id);
        }
    }
    match text.parse::<Since>() {
        Ok(Since::Id(id)) => {
            assert_eq!(text.parse::<StreamId>(), Ok(id));
            // Found by this target: at `u64::MAX-u64::MAX` `next()` saturates
            // to `u64::MAX-0`, below the id itself (see README.md).
            if id != StreamId::new(u64::MAX, u64::MAX) {
                assert!(Since::Id(id).first_wanted() > Since::Id(id).last_seen());
            }
        }
        Ok(Since::Ts(ms)) => {
            assert_eq!(ms.to_string().parse::<Since>(), Ok(Since::Ts(ms)));
            assert!(Since::Ts(ms).first_wanted() > Since::Ts(ms).last_seen() || ms == u64::MAX);
        }
        Err(_) => {}
    }
});
