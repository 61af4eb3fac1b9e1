//! `Cursor::decode` on arbitrary input: never panics, and whatever it accepts
//! re-encodes to a cursor that decodes to the same positions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay_shared::cursor::Cursor;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cursor) = Cursor::decode(text) {
        let again = cursor.encode();
        assert_eq!(Cursor::decode(&again).as_ref(), Ok(&cursor), "{text:?}");
        // Canonical form is stable.
        assert_eq!(Cursor::decode(&again).unwrap().encode(), again);
    }
});
