//! Reads of a resource's versions: one version by number (`vread`) and every version
//! (`_history`), a deletion included. A deleted version answers 410 Gone.

use std::sync::Arc;

use super::Shared;
use super::outcome::Problem;
use super::store::Version;

impl Shared {
    /// `GET /Type/id/_history/v`.
    pub fn vread(&self, rt: &str, id: &str, number: &str) -> Result<Arc<Version>, Problem> {
        let missing = || {
            Problem::new(
                axum::http::StatusCode::NOT_FOUND,
                "not-found",
                format!("{rt}/{id}/_history/{number} is not known"),
            )
        };
        let r = self.store.get(rt, id).ok_or_else(missing)?;
        let n: u64 = number.parse().map_err(|_| missing())?;
        let state = r.lock();
        let v = state
            .versions
            .iter()
            .find(|v| v.number == n)
            .cloned()
            .ok_or_else(missing)?;
        if v.deleted {
            return Err(Problem::gone(rt, id));
        }
        Ok(v)
    }

    /// `GET /Type/id/_history`: every version, newest first.
    pub fn history(&self, rt: &str, id: &str) -> Result<Vec<Arc<Version>>, Problem> {
        let r = self
            .store
            .get(rt, id)
            .ok_or_else(|| Problem::not_found(rt, id))?;
        let state = r.lock();
        if state.versions.is_empty() {
            return Err(Problem::not_found(rt, id));
        }
        Ok(state.versions.iter().rev().cloned().collect())
    }
}
