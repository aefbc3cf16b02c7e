//! `switchyard.yaml`: any text is read into a configuration or diagnostics, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::config::Config;
use switchyard_core::diag::Diagnostics;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut d = Diagnostics::new("switchyard.yaml");
    let _ = Config::parse(text, std::path::Path::new("/srv/switchyard"), &mut d);
});
