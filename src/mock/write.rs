//! Creates, updates and reads of single resources, with the silent failures applied:
//! what is stored, what is answered, and what the ledger records. Synchronous: no lock
//! is ever held across an `.await`. Lock order: index shards → resource → store shard.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::Shared;
use super::index;
use super::outcome::Problem;
use super::search::Condition;
use super::silent::{self, Fault, Kind, Plan, Write};
use super::store::{Holding, Resource, Stale, Version};
use crate::vocab::ledger::Entry;

/// Who asked, for the faults and the ledger.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ctx<'a> {
    /// The [`crate::vocab::ledger::REQUEST_HEADER`] value.
    pub request: Option<&'a str>,
    /// Silent failures may apply.
    pub faults: bool,
    /// The transport can reset the connection (`commit_then_reset`).
    pub can_reset: bool,
    /// A created resource lands in a holding area (an emulated EHR profile).
    pub hold: Option<Holding>,
}

/// What happens after a committed write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    Answer,
    /// Reset the connection before any byte of the answer.
    Reset,
    /// Answer 500.
    Error,
}

/// What a write did (or claims to have done).
#[derive(Debug)]
pub struct Written {
    /// 201 (created) or 200.
    pub created: bool,
    pub resource_type: String,
    pub id: String,
    pub version: Arc<Version>,
    pub after: After,
}

impl Shared {
    /// `POST /Type`.
    pub fn create(&self, rt: &str, resource: Value, ctx: Ctx) -> Result<Written, Problem> {
        check(rt, &resource)?;
        let (written, stored) = self.store_create(rt, resource, ctx);
        if let Some(r) = stored {
            self.index.add(&written.version.keys, &r);
        }
        Ok(written)
    }

    /// `POST /Type` with `If-None-Exist`: atomic per identifier, because the identifier's
    /// index shards stay locked from the match to the insert.
    pub fn conditional_create(
        &self,
        rt: &str,
        resource: Value,
        if_none_exist: &str,
        ctx: Ctx,
    ) -> Result<Written, Problem> {
        check(rt, &resource)?;
        let condition = Condition::parse(rt, if_none_exist)
            .map_err(|e| Problem::bad(format!("If-None-Exist: {e}")))?;
        let mut held = self.index.hold(condition.lock_keys());
        let found = condition.matches(|k| held.bucket(k));
        match found.as_slice() {
            [] => {
                let (written, stored) = self.store_create(rt, resource, ctx);
                if let Some(r) = &stored {
                    held.add(&written.version.keys, r);
                }
                drop(held);
                if let Some(r) = stored {
                    self.index.add(&written.version.keys, &r);
                }
                Ok(written)
            }
            [(r, v)] => Ok(Written {
                created: false,
                resource_type: rt.to_owned(),
                id: r.id.clone(),
                version: v.clone(),
                after: After::Answer,
            }),
            more => Err(Problem::precondition(format!(
                "If-None-Exist matched {} resources",
                more.len()
            ))),
        }
    }

    /// Stores a new resource (or only claims to), without indexing it.
    fn store_create(
        &self,
        rt: &str,
        mut resource: Value,
        ctx: Ctx,
    ) -> (Written, Option<Arc<Resource>>) {
        let plan = self.plan(Write::Create, rt, &resource, ctx);
        if let Some(f) = plan.drop {
            let id = self.store.unused_id();
            let version = self.version(rt, &id, 1, resource, true);
            self.record(f, rt, &id, &version, ctx, "acknowledged, not stored".into());
            return (written(true, rt, id, version, After::Answer), None);
        }
        let edits = edit(&plan, rt, &mut resource);
        let r = self.store.reserve_new(rt);
        let version = self.version(rt, &r.id, 1, resource, true);
        {
            let mut state = r.lock();
            state.versions.push(version.clone());
            if let Some((_, d)) = plan.hide {
                state.hidden_until = Some(Instant::now() + d);
            }
            state.held = ctx.hold;
        }
        let after = self.record_committed(&plan, edits, rt, &r.id, &version, ctx);
        (written(true, rt, r.id.clone(), version, after), Some(r))
    }

    /// `PUT /Type/id`: update, or create with that id when unknown.
    pub fn update(
        &self,
        rt: &str,
        id: &str,
        mut resource: Value,
        if_match: Option<&str>,
        ctx: Ctx,
    ) -> Result<Written, Problem> {
        check(rt, &resource)?;
        check_id(id, &resource)?;
        let r = self.store.reserve(rt, id);
        let mut state = r.lock();
        let current = state.current().cloned();
        let stale = match check_if_match(if_match, current.as_deref()) {
            Ok(()) => None,
            Err(refusal) => match (
                self.plan(Write::StaleUpdate, rt, &resource, ctx)
                    .accept_stale,
                &current,
            ) {
                (Some(f), Some(current)) => Some((f, current.number)),
                _ => return Err(refusal),
            },
        };
        let write = if current.is_some() {
            Write::Update
        } else {
            Write::Create
        };
        let plan = self.plan(write, rt, &resource, ctx);
        let number = state.latest().map_or(1, |v| v.number + 1);
        if let (Some(f), Some(current)) = (plan.drop, &current)
            && f.kind == Kind::AckAndDropEcho
        {
            drop(state);
            let detail = format!(
                "acknowledged with the version in place (v{}), not stored",
                current.number
            );
            self.record(f, rt, id, current, ctx, detail);
            let version = current.clone();
            return Ok(written(false, rt, id.to_owned(), version, After::Answer));
        }
        if let Some(f) = plan.drop {
            drop(state);
            let version = self.version(rt, id, number, resource, false);
            self.record(f, rt, id, &version, ctx, "acknowledged, not stored".into());
            return Ok(written(
                current.is_none(),
                rt,
                id.to_owned(),
                version,
                After::Answer,
            ));
        }
        let edits = edit(&plan, rt, &mut resource);
        let version = self.version(rt, id, number, resource, false);
        state.versions.push(version.clone());
        state.stale = match (plan.stale, current.clone()) {
            (Some((f, d)), Some(served)) => {
                tracing::debug!(fault = %f.label, %rt, %id, "stale_read armed");
                Some(Stale {
                    until: Instant::now() + d,
                    served,
                    fault: self.fault_index(f),
                    answer_lost: plan.after.is_some(),
                })
            }
            _ => None,
        };
        if let Some((_, d)) = plan.hide {
            state.hidden_until = Some(Instant::now() + d);
        }
        drop(state);
        if let Some((f, was)) = stale {
            let detail = format!(
                "applied an update with If-Match {} while v{was} was current: stored as v{}",
                if_match.unwrap_or_default(),
                version.number
            );
            self.record(f, rt, id, &version, ctx, detail);
        }
        self.index.add(&version.keys, &r);
        let after = self.record_committed(&plan, edits, rt, id, &version, ctx);
        Ok(written(
            current.is_none(),
            rt,
            id.to_owned(),
            version,
            after,
        ))
    }

    /// `GET /Type/id`: the current version, or the previous one inside a `stale_read`
    /// window (recorded each time it is served).
    pub fn read(&self, rt: &str, id: &str, request: Option<&str>) -> Result<Arc<Version>, Problem> {
        let r = self
            .store
            .get(rt, id)
            .ok_or_else(|| Problem::not_found(rt, id))?;
        let (served, stale) = {
            let mut state = r.lock();
            if state.deleted() {
                return Err(Problem::gone(rt, id));
            }
            let current = state
                .current()
                .cloned()
                .ok_or_else(|| Problem::not_found(rt, id))?;
            match &state.stale {
                Some(s) if self.faults_on() && Instant::now() < s.until => {
                    (s.served.clone(), Some((s.fault, current, !s.answer_lost)))
                }
                Some(_) => {
                    state.stale = None;
                    (current, None)
                }
                None => (current, None),
            }
        };
        if let Some((fault, current, observable)) = stale {
            let mut detail = format!(
                "served v{} while v{} is current",
                served.number, current.number
            );
            if !observable {
                detail.push_str(" (unobservable: the update's answer was destroyed)");
            }
            let ctx = Ctx {
                request,
                ..Ctx::default()
            };
            let f = &self.faults[fault];
            self.ledger.record(Entry {
                observable,
                ..self.entry(f, rt, id, &current, ctx, detail)
            });
        }
        Ok(served)
    }

    /// Whether a resource may show in searches now.
    pub fn visible(&self, hidden_until: Option<Instant>) -> bool {
        hidden_until.is_none_or(|t| !self.faults_on() || Instant::now() >= t)
    }

    fn plan(&self, write: Write, rt: &str, resource: &Value, ctx: Ctx) -> Plan<'_> {
        if !ctx.faults || !self.faults_on() || self.faults.is_empty() {
            return Plan::default();
        }
        let elapsed = self.start.elapsed();
        silent::plan(
            &self.faults,
            |f| f.decide(self.seed, elapsed),
            write,
            rt,
            resource,
            ctx.can_reset,
        )
    }

    pub fn fault_index(&self, f: &Fault) -> usize {
        self.faults
            .iter()
            .position(|x| std::ptr::eq(x, f))
            .unwrap_or_default()
    }

    /// Ledger entries of a committed write; says what to do after it.
    fn record_committed(
        &self,
        plan: &Plan,
        edits: Vec<(&Fault, String)>,
        rt: &str,
        id: &str,
        v: &Version,
        ctx: Ctx,
    ) -> After {
        self.notifier
            .committed(rt, id, v, ctx.request, ctx.faults && self.faults_on());
        for (f, detail) in edits {
            self.record(f, rt, id, v, ctx, detail);
        }
        if let Some((f, d)) = plan.hide {
            self.record(
                f,
                rt,
                id,
                v,
                ctx,
                format!("hidden from search for {}", humantime::format_duration(d)),
            );
        }
        match plan.after {
            Some(f) if f.kind == Kind::CommitThenReset => {
                self.record(
                    f,
                    rt,
                    id,
                    v,
                    ctx,
                    "committed, then reset the connection".into(),
                );
                After::Reset
            }
            Some(f) => {
                self.record(f, rt, id, v, ctx, "committed, then answered 500".into());
                After::Error
            }
            None => After::Answer,
        }
    }

    /// Records one injection in the ledger.
    pub fn record(&self, f: &Fault, rt: &str, id: &str, v: &Version, ctx: Ctx, detail: String) {
        self.ledger.record(self.entry(f, rt, id, v, ctx, detail));
    }

    /// The ledger entry of one injection (observable unless the caller says otherwise).
    fn entry(&self, f: &Fault, rt: &str, id: &str, v: &Version, ctx: Ctx, detail: String) -> Entry {
        Entry {
            fault: f.label.clone(),
            kind: f.name().to_owned(),
            resource_type: Some(rt.to_owned()),
            id: Some(id.to_owned()),
            identifier: v.identifier.clone(),
            request: ctx.request.map(str::to_owned),
            detail,
            ..Entry::default()
        }
    }

    /// Builds a version: sets `id` and `meta`, serialises once, derives the index keys.
    pub fn version(
        &self,
        rt: &str,
        id: &str,
        number: u64,
        mut resource: Value,
        created: bool,
    ) -> Arc<Version> {
        let now = Utc::now();
        let identifier = harness_identifier(&resource, &self.prefix);
        if let Value::Object(map) = &mut resource {
            map.insert("id".into(), Value::String(id.to_owned()));
            let meta = map
                .entry("meta")
                .or_insert_with(|| Value::Object(Map::new()));
            if !meta.is_object() {
                *meta = Value::Object(Map::new());
            }
            if let Value::Object(meta) = meta {
                meta.insert("versionId".into(), Value::String(number.to_string()));
                let stamp = now.to_rfc3339_opts(SecondsFormat::Millis, true);
                meta.insert("lastUpdated".into(), Value::String(stamp));
            }
        }
        let keys = index::keys_of(rt, &resource).into_boxed_slice();
        Arc::new(Version {
            number,
            last_updated: now,
            http_date: now.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            body: Bytes::from(serde_json::to_vec(&resource).unwrap_or_default()),
            keys,
            identifier,
            created,
            deleted: false,
        })
    }
}

fn written(created: bool, rt: &str, id: String, version: Arc<Version>, after: After) -> Written {
    Written {
        created,
        resource_type: rt.to_owned(),
        id,
        version,
        after,
    }
}

/// Applies `strip` / `remap`; returns each fault with its ledger detail.
fn edit<'a>(plan: &Plan<'a>, rt: &str, resource: &mut Value) -> Vec<(&'a Fault, String)> {
    plan.edits
        .iter()
        .filter_map(|f| {
            let detail = match f.kind {
                Kind::Strip => silent::strip(rt, resource),
                Kind::Remap => silent::remap(resource),
                _ => None,
            }?;
            Some((*f, detail))
        })
        .collect()
}

/// The shape every written resource must have, and the few rules the mock enforces.
pub fn check(rt: &str, resource: &Value) -> Result<(), Problem> {
    let Value::Object(map) = resource else {
        return Err(Problem::bad("the body must be a JSON object"));
    };
    match map.get("resourceType").and_then(Value::as_str) {
        Some(t) if t == rt => {}
        Some(t) => {
            return Err(Problem::bad(format!(
                "resourceType `{t}` does not match the URL's `{rt}`"
            )));
        }
        None => return Err(Problem::bad("the body has no resourceType")),
    }
    if rt == "Observation" {
        for field in ["status", "code"] {
            if map.get(field).is_none_or(Value::is_null) {
                return Err(Problem::unprocessable(format!(
                    "Observation.{field} is required"
                )));
            }
        }
    }
    Ok(())
}

/// `PUT`: the body's id must be there and equal the URL's, and be a valid FHIR id.
pub fn check_id(id: &str, resource: &Value) -> Result<(), Problem> {
    let valid = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !valid {
        return Err(Problem::bad(format!("`{id}` is not a valid FHIR id")));
    }
    match resource.get("id").and_then(Value::as_str) {
        Some(body) if body == id => Ok(()),
        Some(body) => Err(Problem::bad(format!(
            "body id `{body}` does not match the URL's `{id}`"
        ))),
        None => Err(Problem::bad("an update needs the id in the body")),
    }
}

/// `If-Match: W/"v"` (or `"v"`, or `v`) against the current version.
pub fn check_if_match(if_match: Option<&str>, current: Option<&Version>) -> Result<(), Problem> {
    let Some(raw) = if_match else { return Ok(()) };
    let wanted = raw.trim().trim_start_matches("W/").trim_matches('"');
    match current {
        Some(v) if v.number.to_string() == wanted => Ok(()),
        Some(v) => Err(Problem::precondition(format!(
            "If-Match {raw}: the current version is {}",
            v.number
        ))),
        None => Err(Problem::precondition(format!(
            "If-Match {raw}: the resource does not exist"
        ))),
    }
}

/// The harness identifier (`system|value`) of a resource: the first identifier whose
/// system starts with `prefix`.
pub fn harness_identifier(resource: &Value, prefix: &str) -> Option<String> {
    resource
        .get("identifier")?
        .as_array()?
        .iter()
        .find_map(|i| {
            let system = i.get("system")?.as_str()?;
            let value = i.get("value")?.as_str()?;
            system
                .starts_with(prefix)
                .then(|| format!("{system}|{value}"))
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn if_match_accepts_weak_strong_and_bare_tags() {
        let v = Version {
            number: 2,
            last_updated: Utc::now(),
            http_date: String::new(),
            body: Bytes::new(),
            keys: Box::new([]),
            identifier: None,
            created: false,
            deleted: false,
        };
        for tag in ["W/\"2\"", "\"2\"", "2"] {
            assert!(check_if_match(Some(tag), Some(&v)).is_ok(), "{tag}");
        }
        assert_eq!(
            check_if_match(Some("W/\"1\""), Some(&v))
                .unwrap_err()
                .status
                .as_u16(),
            412
        );
        assert_eq!(
            check_if_match(Some("W/\"1\""), None)
                .unwrap_err()
                .status
                .as_u16(),
            412
        );
        assert!(check_if_match(None, None).is_ok());
    }

    #[test]
    fn shape_and_rules() {
        assert_eq!(
            check("Patient", &json!([])).unwrap_err().status.as_u16(),
            400
        );
        assert_eq!(
            check("Patient", &json!({"resourceType": "Observation"}))
                .unwrap_err()
                .status
                .as_u16(),
            400
        );
        assert_eq!(
            check(
                "Observation",
                &json!({"resourceType": "Observation", "status": "final"})
            )
            .unwrap_err()
            .status
            .as_u16(),
            422
        );
        assert!(check("Basic", &json!({"resourceType": "Basic"})).is_ok());
        assert!(check_id("a-b.c", &json!({"id": "a-b.c"})).is_ok());
        assert!(check_id("a/b", &json!({"id": "a/b"})).is_err());
        assert!(check_id("x", &json!({})).is_err());
    }

    #[test]
    fn finds_the_harness_identifier() {
        let r = json!({"identifier": [{"system": "urn:oid:1", "value": "m"}, {"system": "urn:fhirsurge:run1", "value": "p7"}]});
        assert_eq!(
            harness_identifier(&r, "urn:fhirsurge:").as_deref(),
            Some("urn:fhirsurge:run1|p7")
        );
        assert_eq!(harness_identifier(&json!({}), "urn:fhirsurge:"), None);
    }
}
