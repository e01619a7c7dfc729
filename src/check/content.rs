//! Content digests, compactly: the whole digest and each element digest as a `u64`, the
//! element names as symbols, all in one arena. Answers the one question the checker asks
//! of two contents: does what was sent hold, unchanged, in what came back?

use crate::history::Content;

use super::intern::{Interner, Sym};

/// A content stored in the arena.
pub(crate) type ContentId = u32;

/// No content.
pub(crate) const NO_CONTENT: ContentId = u32::MAX;

/// A content, borrowed: elements sorted by name symbol.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View<'a> {
    pub digest: u64,
    pub keys: &'a [Sym],
    pub values: &'a [u64],
}

/// A content kept outside the arena while it is needed (a read awaiting judgment).
#[derive(Clone, Debug)]
pub(crate) struct Owned {
    digest: u64,
    keys: Box<[Sym]>,
    values: Box<[u64]>,
}

impl Owned {
    pub(crate) fn new(content: &Content, strings: &mut Interner) -> Owned {
        let mut pairs: Vec<(Sym, u64)> = content
            .elements
            .iter()
            .enumerate()
            .map(|(i, (k, v))| (strings.intern_element(i, k), digest64(v)))
            .collect();
        pairs.sort_unstable_by_key(|p| p.0);
        Owned {
            digest: digest64(&content.digest),
            keys: pairs.iter().map(|p| p.0).collect(),
            values: pairs.iter().map(|p| p.1).collect(),
        }
    }

    pub(crate) fn view(&self) -> View<'_> {
        View {
            digest: self.digest,
            keys: &self.keys,
            values: &self.values,
        }
    }
}

#[derive(Clone, Copy)]
struct Head {
    digest: u64,
    start: u32,
    len: u32,
}

/// Every content the checker keeps.
#[derive(Default)]
pub(crate) struct Contents {
    heads: Vec<Head>,
    keys: Vec<Sym>,
    values: Vec<u64>,
}

impl Contents {
    pub(crate) fn add(&mut self, content: &Content, strings: &mut Interner) -> ContentId {
        self.add_owned(&Owned::new(content, strings))
    }

    pub(crate) fn add_owned(&mut self, owned: &Owned) -> ContentId {
        let start = self.keys.len() as u32;
        self.keys.extend_from_slice(&owned.keys);
        self.values.extend_from_slice(&owned.values);
        self.heads.push(Head {
            digest: owned.digest,
            start,
            len: owned.keys.len() as u32,
        });
        (self.heads.len() - 1) as ContentId
    }

    /// The stored content; `None` for [`NO_CONTENT`].
    pub(crate) fn view(&self, id: ContentId) -> Option<View<'_>> {
        let h = self.heads.get(id as usize)?;
        let range = h.start as usize..(h.start + h.len) as usize;
        Some(View {
            digest: h.digest,
            keys: &self.keys[range.clone()],
            values: &self.values[range],
        })
    }

    pub(crate) fn digest(&self, id: ContentId) -> Option<u64> {
        self.heads.get(id as usize).map(|h| h.digest)
    }
}

/// How one sent element differs in what came back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Diff {
    Missing(Sym),
    Changed(Sym),
}

/// Whether every element of `sent` (except the `ignore`d ones, a sorted list) came back
/// unchanged in `seen`. Elements the server added do not count. A content known only
/// by its whole digest matches only that digest.
pub(crate) fn holds(sent: View<'_>, seen: View<'_>, ignore: &[Sym]) -> bool {
    if sent.digest == seen.digest {
        return true;
    }
    if sent.keys.is_empty() {
        return false;
    }
    differences(sent, seen, ignore).next().is_none()
}

/// The elements of `sent` missing or changed in `seen`, in name-symbol order.
pub(crate) fn differences<'a>(
    sent: View<'a>,
    seen: View<'a>,
    ignore: &'a [Sym],
) -> impl Iterator<Item = Diff> + 'a {
    let mut j = 0;
    sent.keys
        .iter()
        .zip(sent.values)
        .filter(move |(k, _)| ignore.binary_search(k).is_err())
        .filter_map(move |(&k, &v)| {
            while j < seen.keys.len() && seen.keys[j] < k {
                j += 1;
            }
            match seen.keys.get(j) {
                Some(&sk) if sk == k => (seen.values[j] != v).then_some(Diff::Changed(k)),
                _ => Some(Diff::Missing(k)),
            }
        })
}

/// The digest `view` holds for element `key`.
pub(crate) fn element(view: View<'_>, key: Sym) -> Option<u64> {
    view.keys.binary_search(&key).ok().map(|i| view.values[i])
}

/// A digest string as a `u64`: the history's 16-hex-digit digests exactly, anything else
/// (hand-written fixtures) through a hash.
pub(crate) fn digest64(s: &str) -> u64 {
    if s.len() == 16
        && let Ok(v) = u64::from_str_radix(s, 16)
    {
        return v;
    }
    let h = blake3::hash(s.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owned(v: serde_json::Value, s: &mut Interner) -> Owned {
        Owned::new(&Content::of(&v), s)
    }

    #[test]
    fn sent_elements_must_hold_in_what_came_back() {
        let mut s = Interner::default();
        let sent = owned(json!({"status": "final", "code": {"text": "a"}}), &mut s);
        let same_plus = owned(
            json!({"status": "final", "code": {"text": "a"}, "issued": "x"}),
            &mut s,
        );
        let changed = owned(json!({"status": "final", "code": {"text": "b"}}), &mut s);
        let missing = owned(json!({"code": {"text": "a"}}), &mut s);
        assert!(holds(sent.view(), same_plus.view(), &[]));
        assert!(!holds(sent.view(), changed.view(), &[]));
        assert!(!holds(sent.view(), missing.view(), &[]));
        let code = s.get("code").unwrap();
        let status = s.get("status").unwrap();
        let d: Vec<Diff> = differences(sent.view(), changed.view(), &[]).collect();
        assert_eq!(d, vec![Diff::Changed(code)]);
        let d: Vec<Diff> = differences(sent.view(), missing.view(), &[]).collect();
        assert_eq!(d, vec![Diff::Missing(status)]);
        let mut ignore = vec![code];
        ignore.sort_unstable();
        assert!(holds(sent.view(), changed.view(), &ignore));
    }

    #[test]
    fn arena_round_trips_and_digests_parse() {
        let mut s = Interner::default();
        let mut arena = Contents::default();
        let c = Content::of(&json!({"status": "final"}));
        let id = arena.add(&c, &mut s);
        assert_eq!(arena.digest(id), Some(digest64(&c.digest)));
        assert_eq!(arena.view(id).unwrap().keys.len(), 1);
        assert!(arena.view(NO_CONTENT).is_none());
        assert_eq!(digest64("00000000000000ff"), 255);
        assert_ne!(digest64("c1"), digest64("c2"));
        let bare = Owned::new(
            &Content {
                digest: "c1".into(),
                ..Content::default()
            },
            &mut s,
        );
        assert!(!holds(bare.view(), arena.view(id).unwrap(), &[]));
        assert!(holds(bare.view(), bare.view(), &[]));
    }
}
