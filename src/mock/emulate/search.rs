//! Searches as the emulated EHR answers them: the tenancy and paging parameters taken
//! off, required parameters, page sizes, the result cap, holding areas kept out, and the
//! searchset rendered with `next` links in the EHR's style (see `paging`).

use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Emulation;
use super::paging::{self, Continuation, Followed, Position, Sizes};
use super::refusal::{Refusal, Refused};
use crate::mock::http::{base, fhir};
use crate::mock::outcome::Problem;
use crate::mock::render::{self, Links};
use crate::mock::search::{self as query, Page};
use crate::mock::{MAX_PAGE, Shared};
use crate::profile::{CapAction, NextLink, ResultCap, TenancyMode};

type Pairs = Vec<(String, String)>;

/// `GET /Type?…`.
pub fn search(
    shared: &Shared,
    emu: &Emulation,
    rt: &str,
    raw: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    run(shared, emu, rt, raw.unwrap_or(""), &base(headers))
        .unwrap_or_else(IntoResponse::into_response)
}

fn run(
    shared: &Shared,
    emu: &Emulation,
    rt: &str,
    raw: &str,
    base: &str,
) -> Result<Response, Refused> {
    let now = emu.elapsed();
    let (pairs, token) = split_off(raw, emu.pages.param());
    let c = emu.continuation(pairs, token.as_deref(), now)?;
    let searched = without_tenant(&c.pairs, emu);
    if c.position == Position::Start {
        emu.required(rt, &searched)?;
    }
    let sizes = emu.sizes(rt, shared.page_size);
    let q = query(rt, &searched, &sizes, c.position, |e| {
        Refusal::named(&emu.profile, e)
    })?;
    let at = Instant::now();
    let mut page = query::run(&shared.store, &shared.index, rt, &q, |state| {
        shared.visible(state.hidden_until) && state.held.is_none_or(|h| h.released(at))
    });
    let warning = emu.cap(rt, &mut page)?;
    let next = page.next.and_then(|_| {
        let keys: Vec<_> = page.hits.iter().map(|h| h.key).collect();
        let repeat = emu.profile.paging.duplicates_across_pages;
        let position = emu
            .pages
            .next_position(c.position, page.start, &keys, repeat)?;
        let next = Continuation {
            pairs: c.pairs.clone(),
            position,
            born: c.born,
        };
        let token = emu.pages.token(next, now);
        Some(link(base, rt, &c.pairs, Some((emu.pages.param(), &token))))
    });
    let here = token.as_deref().map(|t| (emu.pages.param(), t));
    let self_url = link(base, rt, &c.pairs, here);
    let links = Links {
        self_url: &self_url,
        next: next.as_deref(),
    };
    let outcome = warning.map(|w| serde_json::to_vec(&w.outcome()).unwrap_or_default());
    let body = render::searchset_with(base, rt, page.total, &links, &page.hits, outcome.as_deref());
    Ok(fhir(StatusCode::OK, body))
}

impl Emulation {
    /// The search a request asks for: a new one, or the one its paging parameter
    /// continues.
    fn continuation(
        &self,
        pairs: Pairs,
        token: Option<&str>,
        now: std::time::Duration,
    ) -> Result<Continuation, Refused> {
        let Some(t) = token else {
            return Ok(Continuation {
                pairs,
                position: Position::Start,
                born: now,
            });
        };
        match self.pages.follow(t, pairs, now) {
            Followed::Page(c) => Ok(c),
            Followed::Expired => {
                let error = self.pages.expired_error().unwrap_or_default();
                let detail = format!("{}={t}", self.pages.param());
                Err(Refusal::named(&self.profile, error)
                    .with_detail(detail)
                    .into())
            }
            Followed::Invalid => {
                let e = query::QueryError::Bad {
                    param: self.pages.param().to_owned(),
                    reason: "not a cursor this server gave".into(),
                };
                Err(Problem::bad(e.to_string()).into())
            }
        }
    }

    /// Refuses a search without the parameters the type needs.
    fn required(&self, rt: &str, searched: &Pairs) -> Result<(), Refusal> {
        let Some(rules) = self.profile.resource(rt).map(|r| &r.search) else {
            return Ok(());
        };
        if rules.satisfied_by(searched.iter().map(|(k, _)| k.as_str())) {
            return Ok(());
        }
        let name = rules.missing_error.as_deref().unwrap_or_default();
        let detail = format!("{rt} search needs one of {:?}", rules.required_any);
        Err(Refusal::named(&self.profile, name).with_detail(detail))
    }

    /// The page sizes of a search of `rt` (`fallback` when the profile has no default).
    fn sizes(&self, rt: &str, fallback: usize) -> Sizes<'_> {
        let p = &self.profile;
        let rules = p.page_rules(rt);
        let numbered = matches!(p.paging.next, NextLink::PageNumber { .. });
        Sizes {
            default: rules.default_count.map_or(fallback, |n| n.get() as usize),
            max: rules.max_count.map_or(MAX_PAGE, |n| n.get() as usize),
            over_max: &p.paging.over_max,
            first_page_ignores_count: rules.first_page_ignores_count,
            // Page numbers fix where pages start: a short page would skip results.
            short_pages: p.paging.short_pages && !numbered,
        }
    }

    /// Applies the result cap: `Err` a refused search, `Ok` the warning of a truncated
    /// one, if any.
    fn cap(&self, rt: &str, page: &mut Page) -> Result<Option<Refusal>, Refusal> {
        let Some(cap) = self.profile.page_rules(rt).result_cap else {
            return Ok(None);
        };
        let named = |n: &str| Refusal::named(&self.profile, n);
        match capped(cap, page) {
            Ok(warning) => Ok(warning.map(named)),
            Err(error) => {
                let detail = format!("more than {} results", cap.max_total);
                Err(named(error).with_detail(detail))
            }
        }
    }
}

/// The mock's query for one page; `over_max` names a refused `_count`.
fn query(
    rt: &str,
    searched: &Pairs,
    sizes: &Sizes,
    position: Position,
    over_max: impl Fn(&str) -> Refusal,
) -> Result<query::Query, Refused> {
    let asked = searched
        .iter()
        .find(|(k, _)| k == "_count")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let first = position == Position::Start;
    let (size, take) = paging::page_size(sizes, asked, first)
        .map_err(|e| over_max(e).with_detail(format!("_count over {}", sizes.max)))?;
    let mut q = query::parse(rt, &encode(searched), sizes.default, sizes.max)
        .map_err(|e| Problem::bad(e.to_string()))?;
    q.count = take;
    match position {
        Position::Start => {}
        Position::After(key) => q.after = Some(key),
        Position::Offset(n) => q.offset = n,
        Position::Page(n) => {
            let first_take = if sizes.first_page_ignores_count {
                sizes.default
            } else {
                size
            };
            q.offset = match n {
                0 | 1 => 0,
                n => first_take + (n - 2).saturating_mul(size),
            };
        }
    }
    Ok(q)
}

/// The query's parameters without the paging one, and the paging one's value.
fn split_off(raw: &str, param: &str) -> (Pairs, Option<String>) {
    let mut token = None;
    let pairs = url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .filter(|(k, v)| {
            let paging = k == param;
            if paging {
                token = Some(v.clone());
            }
            !paging
        })
        .collect();
    (pairs, token)
}

fn without_tenant(pairs: &Pairs, emu: &Emulation) -> Pairs {
    let tenant = match &emu.profile.tenancy.mode {
        TenancyMode::SearchParam { name, .. } => Some(name.as_str()),
        _ => None,
    };
    pairs
        .iter()
        .filter(|(k, _)| Some(k.as_str()) != tenant)
        .cloned()
        .collect()
}

/// Applies a result cap to a page: `Err` the catalogue entry of a refused search; `Ok`
/// the warning entry of a truncated one, if any.
fn capped<'c>(cap: &'c ResultCap, page: &mut Page) -> Result<Option<&'c str>, &'c str> {
    let max = cap.max_total.get() as usize;
    if page.total <= max {
        return Ok(None);
    }
    match &cap.on_exceed {
        CapAction::Error(e) => Err(e),
        CapAction::Truncate { warning } => {
            page.total = max;
            page.hits.truncate(max.saturating_sub(page.start));
            if page.start + page.hits.len() >= max {
                page.next = None;
            }
            Ok(warning.as_deref())
        }
    }
}

fn encode(pairs: &Pairs) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// `base/Type?query[&param=value]`.
fn link(base: &str, rt: &str, pairs: &Pairs, paging: Option<(&str, &str)>) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    if let Some((k, v)) = paging {
        s.append_pair(k, v);
    }
    let query = s.finish();
    if query.is_empty() {
        format!("{base}{rt}")
    } else {
        format!("{base}{rt}?{query}")
    }
}
