//! Any bytes as a profile file: parsed, or refused with an error located in it.
#![no_main]

use std::path::Path;

use fhirsurge::profile::{Error, from_texts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    if let Err(Error::Source(e)) = from_texts((path, text), None) {
        assert_eq!(e.location.path, path);
        assert!(e.location.line >= 1 && e.location.line <= text.lines().count() + 1);
    }
});
