//! Unit tests of the profile model.

use super::*;

#[test]
fn every_shipped_profile_loads() {
    for name in shipped() {
        let p = Profile::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&p.name, name);
    }
}
