//! Interned strings: every id, identifier, version, resource type and element name the
//! checker keeps is stored once and named by a `u32`. Equal symbols are equal strings.

use indexmap::IndexSet;
use rustc_hash::FxBuildHasher;

/// An interned string.
pub(crate) type Sym = u32;

/// No symbol (an absent id, version, …).
pub(crate) const NO_SYM: Sym = u32::MAX;

#[derive(Default)]
pub(crate) struct Interner {
    set: IndexSet<Box<str>, FxBuildHasher>,
    /// The element names of the last content, by position: contents of one resource
    /// type repeat them, so most lookups end in one comparison.
    recent: Vec<(Box<str>, Sym)>,
}

impl Interner {
    /// The symbol of `s`, adding it when new.
    pub(crate) fn intern(&mut self, s: &str) -> Sym {
        if let Some(i) = self.set.get_index_of(s) {
            return i as Sym;
        }
        self.set.insert_full(s.into()).0 as Sym
    }

    /// The symbol of the element name at `position` of a content.
    pub(crate) fn intern_element(&mut self, position: usize, name: &str) -> Sym {
        if let Some((n, sym)) = self.recent.get(position)
            && &**n == name
        {
            return *sym;
        }
        let sym = self.intern(name);
        let entry = (Box::from(name), sym);
        if let Some(slot) = self.recent.get_mut(position) {
            *slot = entry;
        } else if self.recent.len() == position && position < 64 {
            self.recent.push(entry);
        }
        sym
    }

    /// The symbol of `s` when it is already known.
    pub(crate) fn get(&self, s: &str) -> Option<Sym> {
        self.set.get_index_of(s).map(|i| i as Sym)
    }

    /// The symbol of `s`, or [`NO_SYM`] when `s` is `None`.
    pub(crate) fn intern_opt(&mut self, s: Option<&str>) -> Sym {
        s.map_or(NO_SYM, |s| self.intern(s))
    }

    /// The string of a symbol; empty for [`NO_SYM`].
    pub(crate) fn resolve(&self, sym: Sym) -> &str {
        self.set
            .get_index(sym as usize)
            .map(|s| &**s)
            .unwrap_or_default()
    }

    /// The string of a symbol, `None` for [`NO_SYM`].
    pub(crate) fn resolve_opt(&self, sym: Sym) -> Option<String> {
        (sym != NO_SYM).then(|| self.resolve(sym).to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_a_symbol() {
        let mut i = Interner::default();
        let a = i.intern("Observation/1");
        let b = i.intern("x");
        assert_ne!(a, b);
        assert_eq!(i.intern("Observation/1"), a);
        assert_eq!(i.get("x"), Some(b));
        assert_eq!(i.get("y"), None);
        assert_eq!(i.resolve(b), "x");
        assert_eq!(i.resolve(NO_SYM), "");
        assert_eq!(i.resolve_opt(NO_SYM), None);
        let s0 = i.intern_element(0, "status");
        assert_eq!(i.intern_element(0, "status"), s0);
        assert_eq!(i.intern_element(1, "x"), b);
        assert_eq!(i.intern_element(0, "code"), i.intern("code"));
        assert_eq!(i.intern_element(5, "late"), i.intern("late"));
    }
}
