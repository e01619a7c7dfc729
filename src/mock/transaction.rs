//! Transaction Bundles, all-or-nothing: every entry is validated, conditional creates are
//! matched and `urn:uuid:` references resolved before anything is stored; then every
//! resource written is locked (in one order), `If-Match` checked, and all versions
//! stored at once. Any failing entry fails the Bundle and nothing is applied.
//! `partial_transaction` skips one create here while the response claims it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, MutexGuard};

use serde_json::{Value, json};

use super::bundle::{Action, parse_entry, written_entry};
use super::http::Return;
use super::outcome::Problem;
use super::search::Condition;
use super::silent::{Fault, Write};
use super::store::{Resource, State, Version};
use super::write::{After, Ctx, Written, check, check_id, check_if_match};
use super::{Shared, silent};

/// Where an entry's write goes.
enum Target {
    /// A fresh id (reserved, still empty).
    New(Arc<Resource>),
    /// A conditional create that matched: nothing is written.
    Existing(Arc<Resource>, Arc<Version>),
    /// A `PUT` (update, or create with that id).
    Put(Arc<Resource>),
}

impl Target {
    fn resource(&self) -> &Arc<Resource> {
        match self {
            Self::New(r) | Self::Existing(r, _) | Self::Put(r) => r,
        }
    }
}

impl Shared {
    pub(super) fn transaction(
        &self,
        entries: &[Value],
        base: &str,
        ret: Return,
        ctx: Ctx,
    ) -> Result<Value, Problem> {
        let mut actions = validate(entries)?;
        let queries = conditions(&actions)?;
        let lock_keys: Vec<String> = queries
            .iter()
            .flatten()
            .flat_map(|c| c.lock_keys())
            .cloned()
            .collect();
        let mut held = self.index.hold(&lock_keys);
        let targets = self.targets(&actions, &queries, |k| held.bucket(k))?;
        resolve_all(&mut actions, &targets)?;
        let (written, skipped) = self.apply(actions, &targets, ctx)?;
        let stored =
            |i: &usize| Some(*i) != skipped && !matches!(targets[*i], Target::Existing(..));
        for (i, w) in written.iter().enumerate().filter(|(i, _)| stored(i)) {
            if let Target::New(r) = &targets[i] {
                held.add(&w.version.keys, r);
            }
        }
        drop(held);
        for (i, w) in written.iter().enumerate().filter(|(i, _)| stored(i)) {
            self.index.add(&w.version.keys, targets[i].resource());
        }
        let out: Vec<Value> = written
            .iter()
            .map(|w| written_entry(w, base, ret))
            .collect();
        Ok(json!({"resourceType": "Bundle", "type": "transaction-response", "entry": out}))
    }

    /// Matches conditional creates (under the held identifier shards) and reserves ids.
    fn targets(
        &self,
        actions: &[Action],
        queries: &[Option<Condition>],
        bucket: impl Fn(&str) -> Vec<Arc<Resource>>,
    ) -> Result<Vec<Target>, Problem> {
        let mut out = Vec::with_capacity(actions.len());
        for (i, (action, query)) in actions.iter().zip(queries).enumerate() {
            let target = match (action, query) {
                (Action::Create { rt, .. }, Some(c)) => {
                    let mut found = c.matches(&bucket);
                    match (found.pop(), found.len()) {
                        (None, _) => Target::New(self.store.reserve_new(rt)),
                        (Some((r, v)), 0) => Target::Existing(r, v),
                        (Some(_), more) => {
                            let n = more + 1;
                            let p =
                                Problem::precondition(format!("ifNoneExist matched {n} resources"));
                            return Err(p.in_entry(i));
                        }
                    }
                }
                (Action::Create { rt, .. }, None) => Target::New(self.store.reserve_new(rt)),
                (Action::Update { rt, id, .. }, _) => Target::Put(self.store.reserve(rt, id)),
                (Action::Get { .. }, _) => {
                    return Err(Problem::bad("GET is not supported in a transaction").in_entry(i));
                }
            };
            out.push(target);
        }
        Ok(out)
    }

    /// Locks every resource written, checks `If-Match`, and stores all versions.
    /// Returns what each entry did and the entry `partial_transaction` skipped.
    fn apply(
        &self,
        actions: Vec<Action>,
        targets: &[Target],
        ctx: Ctx,
    ) -> Result<(Vec<Written>, Option<usize>), Problem> {
        let mut locked: Vec<Arc<Resource>> = targets
            .iter()
            .filter(|t| !matches!(t, Target::Existing(..)))
            .map(|t| t.resource().clone())
            .collect();
        locked.sort_unstable_by_key(|r| r.seq);
        let mut guards: Vec<MutexGuard<'_, State>> = locked.iter().map(|r| r.lock()).collect();
        let slot = |r: &Resource| {
            locked
                .binary_search_by_key(&r.seq, |l| l.seq)
                .unwrap_or_default()
        };
        for (i, (action, target)) in actions.iter().zip(targets).enumerate() {
            if let (Action::Update { if_match, .. }, Target::Put(r)) = (action, target) {
                let current = guards[slot(r)].current().cloned();
                check_if_match(if_match.as_deref(), current.as_deref())
                    .map_err(|p| p.in_entry(i))?;
            }
        }
        let skip = self.partial(&actions, targets, ctx);
        let mut written = Vec::with_capacity(actions.len());
        for (i, (action, target)) in actions.into_iter().zip(targets).enumerate() {
            let (rt, resource) = match action {
                Action::Create { rt, resource, .. } | Action::Update { rt, resource, .. } => {
                    (rt, resource)
                }
                Action::Get { .. } => continue,
            };
            let w = match target {
                Target::Existing(r, v) => done(false, &rt, r, v.clone()),
                Target::New(r) | Target::Put(r) => {
                    let state = &mut guards[slot(r)];
                    let number = state.latest().map_or(1, |v| v.number + 1);
                    let version = self.version(
                        &rt,
                        &r.id,
                        number,
                        resource,
                        matches!(target, Target::New(_)),
                    );
                    if let Some((_, f)) = skip.filter(|(at, _)| *at == i) {
                        self.record(
                            f,
                            &rt,
                            &r.id,
                            &version,
                            ctx,
                            format!("transaction entry {i} not applied; answered 201"),
                        );
                    } else {
                        state.versions.push(version.clone());
                        state.stale = None;
                        let on = ctx.faults && self.faults_on();
                        self.notifier
                            .committed(&rt, &r.id, &version, ctx.request, on);
                    }
                    done(number == 1, &rt, r, version)
                }
            };
            written.push(w);
        }
        Ok((written, skip.map(|(at, _)| at)))
    }

    /// The create entry a `partial_transaction` fault skips, if one fires.
    fn partial(&self, actions: &[Action], targets: &[Target], ctx: Ctx) -> Option<(usize, &Fault)> {
        if !ctx.faults || !self.faults_on() {
            return None;
        }
        let elapsed = self.start.elapsed();
        self.faults.iter().find_map(|f| {
            let creates: Vec<usize> = actions
                .iter()
                .zip(targets)
                .enumerate()
                .filter_map(|(i, (a, t))| match (a, t) {
                    (Action::Create { rt, resource, .. }, Target::New(_)) => {
                        f.eligible(Write::Transaction, rt, resource).then_some(i)
                    }
                    _ => None,
                })
                .collect();
            if creates.is_empty() || !f.decide(self.seed, elapsed) {
                return None;
            }
            Some((creates[f.pick(self.seed, creates.len())], f))
        })
    }
}

fn done(created: bool, rt: &str, r: &Resource, version: Arc<Version>) -> Written {
    Written {
        created,
        resource_type: rt.to_owned(),
        id: r.id.clone(),
        version,
        after: After::Answer,
    }
}

/// Parses and checks every entry; refuses two writes to one id.
fn validate(entries: &[Value]) -> Result<Vec<Action>, Problem> {
    let mut puts = HashSet::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let action = parse_entry(e).map_err(|p| p.in_entry(i))?;
        let checked = match &action {
            Action::Create { rt, resource, .. } => known(rt).and_then(|()| check(rt, resource)),
            Action::Update {
                rt, id, resource, ..
            } => {
                if !puts.insert((rt.clone(), id.clone())) {
                    return Err(Problem::bad(format!("{rt}/{id} is written twice")).in_entry(i));
                }
                known(rt)
                    .and_then(|()| check(rt, resource))
                    .and_then(|()| check_id(id, resource))
            }
            Action::Get { .. } => Err(Problem::bad("GET is not supported in a transaction")),
        };
        checked.map_err(|p| p.in_entry(i))?;
        out.push(action);
    }
    Ok(out)
}

fn known(rt: &str) -> Result<(), Problem> {
    if silent::is_type_name(rt) {
        Ok(())
    } else {
        Err(Problem::bad(format!("`{rt}` is not a resource type")))
    }
}

/// The parsed `ifNoneExist` of each entry; each needs an identifier.
fn conditions(actions: &[Action]) -> Result<Vec<Option<Condition>>, Problem> {
    let parse = |(i, a): (usize, &Action)| match a {
        Action::Create {
            rt,
            if_none_exist: Some(text),
            ..
        } => {
            let c = Condition::parse(rt, text)
                .map_err(|e| Problem::bad(format!("ifNoneExist: {e}")).in_entry(i))?;
            Ok(Some(c))
        }
        _ => Ok(None),
    };
    actions.iter().enumerate().map(parse).collect()
}

/// Rewrites `urn:uuid:` / `urn:oid:` references to the `Type/id` their entry got.
fn resolve_all(actions: &mut [Action], targets: &[Target]) -> Result<(), Problem> {
    let mut urns = HashMap::new();
    for (a, t) in actions.iter().zip(targets) {
        if let Action::Create {
            rt,
            full_url: Some(u),
            ..
        } = a
        {
            urns.insert(u.clone(), format!("{rt}/{}", t.resource().id));
        }
    }
    for (i, a) in actions.iter_mut().enumerate() {
        if let Action::Create { resource, .. } | Action::Update { resource, .. } = a {
            resolve(resource, &urns).map_err(|p| p.in_entry(i))?;
        }
    }
    Ok(())
}

fn resolve(value: &mut Value, urns: &HashMap<String, String>) -> Result<(), Problem> {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if let (true, Value::String(s)) = (k == "reference", &mut *v) {
                    if let Some(to) = urns.get(s.as_str()) {
                        *s = to.clone();
                    } else if s.starts_with("urn:uuid:") {
                        return Err(Problem::bad(format!(
                            "reference {s} is not the fullUrl of any entry"
                        )));
                    }
                } else {
                    resolve(v, urns)?;
                }
            }
            Ok(())
        }
        Value::Array(items) => items.iter_mut().try_for_each(|v| resolve(v, urns)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_everywhere_and_unknown_urns_are_refused() {
        let urns = HashMap::from([("urn:uuid:p".to_string(), "Patient/abc".to_string())]);
        let mut v = json!({"subject": {"reference": "urn:uuid:p"}, "x": [{"y": {"reference": "urn:uuid:p"}}], "z": {"reference": "Patient/keep"}});
        resolve(&mut v, &urns).unwrap();
        assert_eq!(v["subject"]["reference"], "Patient/abc");
        assert_eq!(v["x"][0]["y"]["reference"], "Patient/abc");
        assert_eq!(v["z"]["reference"], "Patient/keep");
        let mut bad = json!({"subject": {"reference": "urn:uuid:nope"}});
        assert!(resolve(&mut bad, &urns).is_err());
    }

    #[test]
    fn validation_refuses_get_and_double_writes() {
        let get = json!([{"request": {"method": "GET", "url": "Patient/x"}}]);
        assert!(
            validate(get.as_array().unwrap())
                .unwrap_err()
                .text
                .contains("entry[0]")
        );
        let put = json!({"request": {"method": "PUT", "url": "Patient/x"}, "resource": {"resourceType": "Patient", "id": "x"}});
        let twice = json!([put, put]);
        assert!(
            validate(twice.as_array().unwrap())
                .unwrap_err()
                .text
                .contains("entry[1]")
        );
        let ok = json!([put]);
        assert_eq!(validate(ok.as_array().unwrap()).unwrap().len(), 1);
    }
}
