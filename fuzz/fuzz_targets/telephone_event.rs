//! RFC 4733 telephone-event payloads: parse never panics, accepts exactly the payloads of 4 bytes or more,
//! and round-trips (only the reserved R bit is lost).
#![no_main]

use libfuzzer_sys::fuzz_target;
use touchtone::TelephoneEvent;

fuzz_target!(|data: &[u8]| {
    match TelephoneEvent::parse(data) {
        Ok(ev) => {
            assert!(data.len() >= 4);
            assert!(ev.volume < 64);
            let bytes = ev.to_bytes();
            assert_eq!(bytes, [data[0], data[1] & !0x40, data[2], data[3]]);
            assert_eq!(TelephoneEvent::parse(&bytes), Ok(ev));
        }
        Err(_) => assert!(data.len() < 4),
    }
});
