//! `triggers/*.yaml` in either dialect: any text is read into pipelines or diagnostics, and the
//! pipelines read decide a push and explain it, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::event::{ChangeEvent, Source, SourceKind};
use switchyard_core::pipeline::Pipelines;

const EVENT: &str = r#"{"schema":"switchyard.change/v1","repository":"https://github.com/acme/api","kind":"push","ref":"refs/heads/main","before":"1111111111111111111111111111111111111111","after":"2222222222222222222222222222222222222222","changed_paths":["src/lib.rs","docs/a.md"],"changed_paths_complete":true}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let files = [("fuzz.yaml".to_owned(), text.to_owned())];
    let (pipelines, _) = Pipelines::load_texts(&files, std::path::Path::new("/srv/triggers"));
    let source = Source {
        kind: SourceKind::Webhook,
        provider: None,
        delivery_id: None,
    };
    if let Ok(event) = ChangeEvent::from_json(EVENT.as_bytes(), source) {
        let _ = pipelines.matching(&event);
        let _ = pipelines.explain(&event);
    }
});
