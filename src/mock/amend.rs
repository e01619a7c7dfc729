//! Deletes and JSON Patches of single resources. A delete stores a tombstone version
//! (empty body, no index keys): reads and vreads of it answer 410 Gone, `_history` lists
//! it as a `DELETE`, searches no longer find the resource, and a later update re-creates
//! it with the next version number. Deleting a deleted resource is answered as done
//! again, with no new version. A patch reads the current version, applies the JSON Patch
//! (`patch`), and stores the result as an update — silent failures apply as to any
//! update; without an `If-Match` it still applies to the version it read (optimistic,
//! retried when another write came between). Deletes are not faulted and notify no
//! subscriber.

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use serde_json::Value;

use super::Shared;
use super::outcome::Problem;
use super::patch;
use super::store::Version;
use super::write::{Ctx, Written, check_if_match};

/// How often a patch without `If-Match` is tried again when another write came between
/// its read and its write.
const PATCH_TRIES: usize = 16;

/// What a delete did.
#[derive(Debug)]
pub struct Deleted {
    /// The tombstone: new, or the one already there.
    pub version: Arc<Version>,
}

impl Shared {
    /// `DELETE /Type/id`, with `If-Match` when sent.
    pub fn delete(&self, rt: &str, id: &str, if_match: Option<&str>) -> Result<Deleted, Problem> {
        let r = self
            .store
            .get(rt, id)
            .ok_or_else(|| Problem::not_found(rt, id))?;
        let mut state = r.lock();
        if let Some(tombstone) = state.latest().filter(|v| v.deleted) {
            return Ok(Deleted {
                version: tombstone.clone(),
            });
        }
        let current = state
            .current()
            .cloned()
            .ok_or_else(|| Problem::not_found(rt, id))?;
        check_if_match(if_match, Some(current.as_ref()))?;
        let now = Utc::now();
        let tombstone = Arc::new(Version {
            number: current.number + 1,
            last_updated: now,
            http_date: now.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            body: Bytes::new(),
            keys: Box::new([]),
            identifier: current.identifier.clone(),
            created: false,
            deleted: true,
        });
        state.versions.push(tombstone.clone());
        state.stale = None;
        Ok(Deleted { version: tombstone })
    }

    /// `PATCH /Type/id` with a JSON Patch document. `prepare` checks and adjusts the
    /// patched resource before it is stored (an emulated EHR's write rules).
    pub fn patch<E: From<Problem>>(
        &self,
        (rt, id): (&str, &str),
        doc: &Value,
        if_match: Option<&str>,
        ctx: Ctx,
        prepare: impl Fn(Value) -> Result<Value, E>,
    ) -> Result<Written, E> {
        let mut last = None;
        for _ in 0..PATCH_TRIES {
            let (number, body) = self.patch_base(rt, id)?;
            let patched = patch::apply(&body, doc)
                .map_err(|e| Problem::unprocessable(format!("JSON Patch: {e}")))?;
            let resource = prepare(patched)?;
            let expected = format!("W/\"{number}\"");
            match self.update(rt, id, resource, Some(if_match.unwrap_or(&expected)), ctx) {
                Err(p) if if_match.is_none() && p.status.as_u16() == 412 => last = Some(p),
                other => return other.map_err(E::from),
            }
        }
        Err(E::from(last.unwrap_or_else(|| {
            Problem::precondition("the resource kept changing while it was patched")
        })))
    }

    /// The version a patch starts from, and its body.
    fn patch_base(&self, rt: &str, id: &str) -> Result<(u64, Value), Problem> {
        let r = self
            .store
            .get(rt, id)
            .ok_or_else(|| Problem::not_found(rt, id))?;
        let current = {
            let state = r.lock();
            if state.deleted() {
                return Err(Problem::gone(rt, id));
            }
            state
                .current()
                .cloned()
                .ok_or_else(|| Problem::not_found(rt, id))?
        };
        let body = serde_json::from_slice(&current.body)
            .map_err(|e| Problem::bad(format!("{rt}/{id} is not JSON: {e}")))?;
        Ok((current.number, body))
    }
}
