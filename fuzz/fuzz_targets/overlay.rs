//! Any bytes as a tenant overlay over each shipped profile: merged, or refused with an
//! error located in the overlay or the profile.
#![no_main]

use std::path::Path;

use fhirsurge::profile::{Error, from_texts};
use libfuzzer_sys::fuzz_target;

const BASES: &[(&str, &str)] = &[
    ("profiles/us-core.toml", include_str!("../../profiles/us-core.toml")),
    ("profiles/epic.toml", include_str!("../../profiles/epic.toml")),
    ("profiles/oracle-health.toml", include_str!("../../profiles/oracle-health.toml")),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(overlay) = std::str::from_utf8(rest) else {
        return;
    };
    let (base_path, base) = BASES[pick as usize % BASES.len()];
    let overlay_path = Path::new("site.toml");
    let result = from_texts((Path::new(base_path), base), Some((overlay_path, overlay)));
    if let Err(Error::Source(e)) = result {
        assert!(e.location.path == overlay_path || e.location.path == Path::new(base_path));
        assert!(e.location.line >= 1);
    }
});
