//! A delivered `traceparent`: parsed or refused; one parsed is written back as it came (in
//! lowercase), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::trace::TraceParent;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(tp) = TraceParent::parse(text) {
        let again = TraceParent::parse(&tp.to_string());
        assert_eq!(again, Some(tp), "{text:?}");
        let _ = tp.child();
    }
});
