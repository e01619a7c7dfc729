//! Paging as the emulated EHR pages: the `next` link in the EHR's style (an offset, a
//! page number, a cursor, a server-side session) and its life, page sizes (default,
//! maximum, over the maximum clamped or refused, a first page that ignores `_count`),
//! duplicates across pages and short pages. Pure, apart from the session table.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::mock::search::SortKey;
use crate::profile::{NextLink, OverMax};
use crate::vocab::seed::{self, Purpose};

/// How long a link lives when the profile says links expire but not after how long.
pub const DEFAULT_LIFE: Duration = Duration::from_secs(300);

/// Sessions kept before expired ones are swept (a full table of live ones is emptied:
/// their links then answer as expired, as an EHR that evicts its cache would).
const MAX_SESSIONS: usize = 100_000;

/// Where a page starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// The first page.
    Start,
    /// After this result (cursor and session links).
    After(SortKey),
    /// After this many results (offset links).
    Offset(usize),
    /// Page `n`, 1-based (page-number links).
    Page(usize),
}

/// The search a `next` link continues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Continuation {
    /// The original query, without the paging parameter.
    pub pairs: Vec<(String, String)>,
    pub position: Position,
    /// When the original search ran (time since the mock started).
    pub born: Duration,
}

/// What following a link finds.
#[derive(Debug, PartialEq, Eq)]
pub enum Followed {
    Page(Continuation),
    /// The link expired (or its session is unknown): the profile's `expired_error`.
    Expired,
    /// Not a link this server gave.
    Invalid,
}

/// The EHR's `next` links and the sessions behind them.
#[derive(Debug)]
pub struct Pages {
    next: NextLink,
    seed: u64,
    sessions: Mutex<HashMap<String, Continuation>>,
    seq: AtomicU64,
}

impl Pages {
    pub fn new(next: NextLink, seed: u64) -> Pages {
        Pages {
            next,
            seed: seed::derive(seed, Purpose::PagingSessions),
            sessions: Mutex::default(),
            seq: AtomicU64::new(1),
        }
    }

    /// The query parameter of `next` links.
    pub fn param(&self) -> &str {
        self.next.param()
    }

    /// How long links live, if they expire.
    pub fn life(&self) -> Option<Duration> {
        self.next.expiry().map(|e| e.after.unwrap_or(DEFAULT_LIFE))
    }

    /// The catalogue entry an expired link answers.
    pub fn expired_error(&self) -> Option<&str> {
        self.next.expiry().map(|e| e.error.as_str())
    }

    fn expired(&self, born: Duration, now: Duration) -> bool {
        self.life().is_some_and(|life| now >= born + life)
    }

    /// Decodes the paging parameter of a followed link; `pairs` are its other parameters.
    pub fn follow(&self, token: &str, pairs: Vec<(String, String)>, now: Duration) -> Followed {
        let page = |pairs, position| {
            Followed::Page(Continuation {
                pairs,
                position,
                born: now,
            })
        };
        match &self.next {
            NextLink::Offset { .. } => token
                .parse()
                .map_or(Followed::Invalid, |n| page(pairs, Position::Offset(n))),
            NextLink::PageNumber { .. } => match token.parse() {
                Ok(n) if n >= 1 => page(pairs, Position::Page(n)),
                _ => Followed::Invalid,
            },
            NextLink::Cursor { .. } => self.cursor(token, pairs, now),
            NextLink::Session { .. } => self.session(token, now),
        }
    }

    fn cursor(&self, token: &str, pairs: Vec<(String, String)>, now: Duration) -> Followed {
        let parts: Vec<Option<u64>> = token
            .split('.')
            .map(|p| u64::from_str_radix(p, 16).ok())
            .collect();
        let expires = self.life().is_some();
        let (key, born) = match parts.as_slice() {
            [Some(a), Some(b)] if !expires => ((*a, *b), now),
            [Some(a), Some(b), Some(ms)] if expires => ((*a, *b), Duration::from_millis(*ms)),
            _ => return Followed::Invalid,
        };
        if self.expired(born, now) {
            return Followed::Expired;
        }
        Followed::Page(Continuation {
            pairs,
            position: Position::After(key),
            born,
        })
    }

    fn session(&self, id: &str, now: Duration) -> Followed {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        match sessions.get(id) {
            Some(c) if !self.expired(c.born, now) => Followed::Page(c.clone()),
            Some(_) => {
                sessions.remove(id);
                Followed::Expired
            }
            None => Followed::Expired,
        }
    }

    /// The paging parameter's value in the link to the page at `c.position`.
    pub fn token(&self, c: Continuation, now: Duration) -> String {
        match (&self.next, c.position) {
            (NextLink::Session { .. }, _) => self.open_session(c, now),
            (NextLink::Cursor { .. }, Position::After((a, b))) if self.life().is_some() => {
                format!("{a:x}.{b:x}.{:x}", c.born.as_millis())
            }
            (_, Position::After((a, b))) => format!("{a:x}.{b:x}"),
            (_, Position::Offset(n) | Position::Page(n)) => n.to_string(),
            (_, Position::Start) => "0".into(),
        }
    }

    fn open_session(&self, c: Continuation, now: Duration) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let id = format!("{n}-{:016X}", seed::mix(self.seed ^ n.rotate_left(17)));
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, s| !self.expired(s.born, now));
            if sessions.len() >= MAX_SESSIONS {
                sessions.clear();
            }
        }
        sessions.insert(id.clone(), c);
        id
    }

    /// Where the next page starts, after a page of `len` results from `start` whose last
    /// two sort keys are `keys`. `repeat`: the last result shows again on the next page.
    pub fn next_position(
        &self,
        current: Position,
        start: usize,
        keys: &[SortKey],
        repeat: bool,
    ) -> Option<Position> {
        let back = usize::from(repeat && keys.len() >= 2);
        if keys.is_empty() {
            return None;
        }
        Some(match &self.next {
            NextLink::Offset { .. } => Position::Offset(start + keys.len() - back),
            NextLink::PageNumber { .. } => match current {
                Position::Page(n) => Position::Page(n + 1),
                _ => Position::Page(2),
            },
            NextLink::Cursor { .. } | NextLink::Session { .. } => {
                Position::After(*keys.get(keys.len().checked_sub(1 + back)?)?)
            }
        })
    }
}

/// The page sizes in force for one search.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sizes<'a> {
    pub default: usize,
    pub max: usize,
    pub over_max: &'a OverMax,
    pub first_page_ignores_count: bool,
    pub short_pages: bool,
}

/// The page size of the search (what links repeat) and how many results this page
/// holds; `Err` names the catalogue entry of a refused `_count`.
pub fn page_size<'a>(
    sizes: &Sizes<'a>,
    asked: Option<usize>,
    first: bool,
) -> Result<(usize, usize), &'a str> {
    if let (Some(n), OverMax::Reject(error)) = (asked, sizes.over_max)
        && n > sizes.max
    {
        return Err(error);
    }
    let size = asked.unwrap_or(sizes.default).min(sizes.max);
    let take = match (first, sizes.first_page_ignores_count, sizes.short_pages) {
        (true, true, _) => sizes.default,
        (false, _, true) if size >= 2 => size - 1,
        _ => size,
    };
    Ok((size, take))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Expiry;

    fn session(after: u64) -> Pages {
        Pages::new(
            NextLink::Session {
                param: "sessionID".into(),
                expiry: Expiry {
                    after: Some(Duration::from_secs(after)),
                    error: "session_expired".into(),
                },
            },
            7,
        )
    }

    fn cont(position: Position, born: Duration) -> Continuation {
        Continuation {
            pairs: vec![("patient".into(), "p".into())],
            position,
            born,
        }
    }

    #[test]
    fn sessions_expire_from_the_original_search() {
        let p = session(60);
        let born = Duration::from_secs(10);
        let id = p.token(cont(Position::After((0, 5)), born), born);
        assert!(id.contains('-'), "{id}");
        let later = born + Duration::from_secs(59);
        assert_eq!(
            p.follow(&id, vec![], later),
            Followed::Page(cont(Position::After((0, 5)), born))
        );
        assert_eq!(
            p.follow(&id, vec![], born + Duration::from_secs(60)),
            Followed::Expired
        );
        assert_eq!(p.follow(&id, vec![], later), Followed::Expired, "gone");
        assert_eq!(p.follow("nope", vec![], later), Followed::Expired);
        assert_eq!(
            session(60).token(cont(Position::Start, born), born),
            id,
            "seeded"
        );
    }

    #[test]
    fn cursors_carry_their_birth_when_they_expire() {
        let expiring = Pages::new(
            NextLink::Cursor {
                param: "c".into(),
                expiry: Some(Expiry {
                    after: None,
                    error: "e".into(),
                }),
            },
            1,
        );
        let born = Duration::from_millis(1500);
        let t = expiring.token(cont(Position::After((1, 2)), born), born);
        assert_eq!(t, "1.2.5dc");
        assert!(matches!(
            expiring.follow(&t, vec![], born),
            Followed::Page(_)
        ));
        assert_eq!(
            expiring.follow(&t, vec![], born + DEFAULT_LIFE),
            Followed::Expired
        );
        assert_eq!(expiring.follow("1.2", vec![], born), Followed::Invalid);
        let plain = Pages::new(
            NextLink::Cursor {
                param: "c".into(),
                expiry: None,
            },
            1,
        );
        assert_eq!(
            plain.token(cont(Position::After((1, 2)), born), born),
            "1.2"
        );
        assert_eq!(plain.life(), None);
    }

    #[test]
    fn next_positions_per_style_with_and_without_repeats() {
        let keys = [(0, 3), (0, 4), (0, 9)];
        let cursor = Pages::new(
            NextLink::Cursor {
                param: "c".into(),
                expiry: None,
            },
            1,
        );
        assert_eq!(
            cursor.next_position(Position::Start, 0, &keys, false),
            Some(Position::After((0, 9)))
        );
        assert_eq!(
            cursor.next_position(Position::Start, 0, &keys, true),
            Some(Position::After((0, 4)))
        );
        let offset = Pages::new(NextLink::Offset { param: "o".into() }, 1);
        assert_eq!(
            offset.next_position(Position::Offset(6), 6, &keys, true),
            Some(Position::Offset(8))
        );
        let pages = Pages::new(
            NextLink::PageNumber {
                param: "page".into(),
            },
            1,
        );
        assert_eq!(
            pages.next_position(Position::Page(2), 3, &keys, false),
            Some(Position::Page(3))
        );
        assert_eq!(pages.follow("0", vec![], Duration::ZERO), Followed::Invalid);
    }

    #[test]
    fn page_sizes_clamp_refuse_shorten_and_ignore_count() {
        let reject = OverMax::Reject("too_big".into());
        let mut s = Sizes {
            default: 50,
            max: 200,
            over_max: &OverMax::Clamp,
            first_page_ignores_count: false,
            short_pages: false,
        };
        assert_eq!(page_size(&s, None, true), Ok((50, 50)));
        assert_eq!(page_size(&s, Some(500), true), Ok((200, 200)));
        s.short_pages = true;
        s.first_page_ignores_count = true;
        assert_eq!(page_size(&s, Some(10), true), Ok((10, 50)));
        assert_eq!(page_size(&s, Some(10), false), Ok((10, 9)));
        assert_eq!(page_size(&s, Some(1), false), Ok((1, 1)));
        s.over_max = &reject;
        assert_eq!(page_size(&s, Some(201), true), Err("too_big"));
    }
}
