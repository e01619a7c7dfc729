//! SMART system scopes as the mock grants and enforces them: `system/<Type|*>.<perms>`
//! in v2 spelling (`cruds` letters, in that order) or v1 (`read` = `rs`, `write` =
//! `cud`, `*` = `cruds`). A grant is the intersection of what was asked with what the
//! client may have; it is always written back in v2 spelling. Granular scopes
//! (`Observation.rs?category=…`) and non-system scopes are not granted. Pure: no I/O.

use std::collections::BTreeMap;
use std::fmt;

/// A set of the five permissions, `c r u d s`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Perms(u8);

impl Perms {
    pub const CREATE: Perms = Perms(1);
    pub const READ: Perms = Perms(2);
    pub const UPDATE: Perms = Perms(4);
    pub const DELETE: Perms = Perms(8);
    pub const SEARCH: Perms = Perms(16);
    pub const ALL: Perms = Perms(31);
    const LETTERS: [(char, Perms); 5] = [
        ('c', Perms::CREATE),
        ('r', Perms::READ),
        ('u', Perms::UPDATE),
        ('d', Perms::DELETE),
        ('s', Perms::SEARCH),
    ];

    /// `read`, `write`, `*` (v1) or v2 letters in `cruds` order, each at most once.
    pub fn parse(text: &str) -> Option<Perms> {
        match text {
            "read" => return Some(Perms(Perms::READ.0 | Perms::SEARCH.0)),
            "write" => return Some(Perms(Perms::CREATE.0 | Perms::UPDATE.0 | Perms::DELETE.0)),
            "*" => return Some(Perms::ALL),
            "" => return None,
            _ => {}
        }
        let mut perms = Perms::default();
        let mut next = 0;
        for c in text.chars() {
            let at = Perms::LETTERS[next..].iter().position(|(l, _)| *l == c)?;
            perms = perms.union(Perms::LETTERS[next + at].1);
            next += at + 1;
        }
        Some(perms)
    }

    pub fn union(self, other: Perms) -> Perms {
        Perms(self.0 | other.0)
    }

    pub fn intersect(self, other: Perms) -> Perms {
        Perms(self.0 & other.0)
    }

    pub fn contains(self, other: Perms) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The name of a single permission, for messages.
    pub fn verb(self) -> &'static str {
        match self {
            Perms::CREATE => "create (c)",
            Perms::READ => "read (r)",
            Perms::UPDATE => "update (u)",
            Perms::DELETE => "delete (d)",
            Perms::SEARCH => "search (s)",
            _ => "access",
        }
    }
}

impl fmt::Display for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (letter, p) in Perms::LETTERS {
            if self.contains(p) {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// What one requested scope is.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// `system/<type>.<perms>`; `type` may be `*`.
    System(String, Perms),
    /// Not a system scope, or a granular one: never granted, not an error.
    Ignored,
    /// A `system/` scope the mock cannot read.
    Malformed,
}

/// Reads one scope.
pub fn parse(scope: &str) -> Parsed {
    let Some(rest) = scope.strip_prefix("system/") else {
        return Parsed::Ignored;
    };
    if rest.contains('?') {
        return Parsed::Ignored;
    }
    let Some((rt, perms)) = rest.split_once('.') else {
        return Parsed::Malformed;
    };
    let type_ok = rt == "*"
        || (rt.starts_with(|c: char| c.is_ascii_uppercase())
            && rt.chars().all(|c| c.is_ascii_alphanumeric()));
    match (type_ok, Perms::parse(perms)) {
        (true, Some(p)) => Parsed::System(rt.to_owned(), p),
        _ => Parsed::Malformed,
    }
}

/// A set of system scopes: permissions per resource type, `*` for every type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scopes(BTreeMap<String, Perms>);

impl Scopes {
    /// `system/*.cruds`.
    pub fn all() -> Scopes {
        let mut s = Scopes::default();
        s.add("*", Perms::ALL);
        s
    }

    /// Reads a list of system scopes; the first scope that is not one is the error.
    pub fn parse_list<'a>(scopes: impl IntoIterator<Item = &'a str>) -> Result<Scopes, String> {
        let mut s = Scopes::default();
        for scope in scopes {
            match parse(scope) {
                Parsed::System(rt, p) => s.add(&rt, p),
                _ => return Err(scope.to_owned()),
            }
        }
        Ok(s)
    }

    pub fn add(&mut self, rt: &str, perms: Perms) {
        if perms.is_empty() {
            return;
        }
        let entry = self.0.entry(rt.to_owned()).or_default();
        *entry = entry.union(perms);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What both sets allow: `system/*.rs` within `system/Patient.cruds` is
    /// `system/Patient.rs`.
    pub fn intersect(&self, allowed: &Scopes) -> Scopes {
        let mut out = Scopes::default();
        for (rt, p) in &self.0 {
            for (art, ap) in &allowed.0 {
                if art == "*" {
                    out.add(rt, p.intersect(*ap));
                } else if rt == "*" || rt == art {
                    out.add(art, p.intersect(*ap));
                }
            }
        }
        out
    }

    /// Whether `need` on `rt` is allowed.
    pub fn allows(&self, rt: &str, need: Perms) -> bool {
        let of = |t: &str| self.0.get(t).copied().unwrap_or_default();
        of(rt).union(of("*")).contains(need)
    }

    /// Space-separated, v2 spelling.
    pub fn render(&self) -> String {
        self.spelled().collect::<Vec<_>>().join(" ")
    }

    /// Each scope in v2 spelling, plus its v1 spellings where they say the same or less
    /// (for `scopes_supported`).
    pub fn supported(&self) -> Vec<String> {
        let mut out: Vec<String> = self.spelled().collect();
        for (rt, p) in &self.0 {
            for (v1, perms) in [("read", "rs"), ("write", "cud")] {
                if Perms::parse(perms).is_some_and(|need| p.contains(need)) {
                    out.push(format!("system/{rt}.{v1}"));
                }
            }
        }
        out
    }

    fn spelled(&self) -> impl Iterator<Item = String> + '_ {
        self.0.iter().map(|(rt, p)| format!("system/{rt}.{p}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(text: &str) -> Scopes {
        Scopes::parse_list(text.split_whitespace()).unwrap()
    }

    #[test]
    fn v1_and_v2_spellings_read_the_same() {
        assert_eq!(Perms::parse("read"), Perms::parse("rs"));
        assert_eq!(Perms::parse("write"), Perms::parse("cud"));
        assert_eq!(Perms::parse("*"), Perms::parse("cruds"));
        for bad in ["", "rc", "rr", "x", "readwrite"] {
            assert_eq!(Perms::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn scopes_parse_into_system_ignored_or_malformed() {
        assert_eq!(
            parse("system/Patient.rs"),
            Parsed::System("Patient".into(), Perms::parse("rs").unwrap())
        );
        assert_eq!(
            parse("system/*.read"),
            Parsed::System("*".into(), Perms::parse("rs").unwrap())
        );
        for ignored in [
            "patient/Patient.rs",
            "launch",
            "system/Observation.rs?category=x",
        ] {
            assert_eq!(parse(ignored), Parsed::Ignored, "{ignored}");
        }
        for bad in ["system/Patient", "system/patient.rs", "system/Patient.sr"] {
            assert_eq!(parse(bad), Parsed::Malformed, "{bad}");
        }
    }

    #[test]
    fn a_grant_is_the_intersection_in_v2_spelling() {
        let allowed = scopes("system/Patient.cruds system/Observation.read");
        let asked = scopes("system/*.rs system/Observation.write system/Claim.c");
        let granted = asked.intersect(&allowed);
        assert_eq!(granted.render(), "system/Observation.rs system/Patient.rs");
        let everything = scopes("system/*.read").intersect(&Scopes::all());
        assert_eq!(everything.render(), "system/*.rs");
        assert!(scopes("system/Claim.c").intersect(&allowed).is_empty());
    }

    #[test]
    fn a_grant_allows_exactly_its_permissions() {
        let g = scopes("system/Patient.rs system/*.c");
        assert!(g.allows("Patient", Perms::READ) && g.allows("Patient", Perms::SEARCH));
        assert!(g.allows("Observation", Perms::CREATE));
        assert!(!g.allows("Patient", Perms::UPDATE));
        assert!(!g.allows("Observation", Perms::READ));
        let supported = scopes("system/*.cruds").supported();
        assert_eq!(
            supported,
            ["system/*.cruds", "system/*.read", "system/*.write"]
        );
    }
}
