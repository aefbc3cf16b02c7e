//! An EventBridge event or SQS body: `envelope::parse` answers, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::envelope;

fuzz_target!(|data: &[u8]| {
    let _ = envelope::parse(data, jiff::Timestamp::UNIX_EPOCH);
});
