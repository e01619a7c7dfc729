//! Searches: parsing a query string into criteria (pure), and running it over the index
//! and the store. Results are ordered by a stable sort key and paged by keyset cursor
//! (`_cursor` = the key of the last entry of the previous page), so a page walk returns
//! every match exactly once even while resources are created. Depends on `index`,
//! `store` and `demographic` (Patient parameters matched on the resource).

use std::sync::Arc;

use serde_json::Value;

use super::demographic::{self, Param};
use super::index::{self, Field, Index};
use super::store::{Resource, State, Store, Version};

/// Search parameters the mock implements (documented in the CapabilityStatement).
pub const PARAMS: &[(&str, &str, &str)] = &[
    ("_id", "token", "logical id"),
    ("identifier", "token", "system|value, system| or value"),
    (
        "patient",
        "reference",
        "subject.reference or patient.reference; a plain id means Patient/id",
    ),
    ("subject", "reference", "same as patient"),
    (
        "encounter",
        "reference",
        "encounter.reference, or context.encounter for DocumentReference",
    ),
    ("code", "token", "code.coding: system|code or code"),
    (
        "category",
        "token",
        "category.coding (or a category code): system|code or code",
    ),
];

/// One AND-ed condition; its values are OR-ed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Criterion {
    /// Any of these index keys of one field.
    Keys(Field, Vec<String>),
    /// Any of these ids.
    Ids(Vec<String>),
    /// A demographic parameter, matched against the stored resource (not indexed).
    Demographic(Param, Vec<String>),
}

/// The order of results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sort {
    /// Creation order (the default: stable under updates).
    #[default]
    Created,
    LastUpdated,
    LastUpdatedDesc,
}

/// Position in a result order: compared as a tuple.
pub type SortKey = (u64, u64);

/// A parsed search.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    pub criteria: Vec<Criterion>,
    pub count: usize,
    pub summary_count: bool,
    pub sort: Sort,
    /// Only results after this key (the next page).
    pub after: Option<SortKey>,
    /// Without `after`: skip this many results (offset and page-number links of an
    /// emulated EHR profile).
    pub offset: usize,
    /// The parameters as given, without `_cursor`, to repeat in links.
    pub echo: Vec<(String, String)>,
}

/// A query the mock refuses (answered 400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error(
        "unknown search parameter `{0}` (supported: _id, identifier, patient, subject, encounter, code, category, _count, _summary=count, _sort=[-]_lastUpdated; on Patient also name, family, given, birthdate, gender, phone, email, address-postalcode)"
    )]
    Unknown(String),
    #[error("search parameter `{param}`: {reason}")]
    Bad { param: String, reason: String },
}

/// Parses a query string for a search on `resource_type`.
pub fn parse(
    resource_type: &str,
    query: &str,
    default_count: usize,
    max_count: usize,
) -> Result<Query, QueryError> {
    let mut q = Query {
        count: default_count,
        ..Query::default()
    };
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let bad = |reason: &str| QueryError::Bad {
            param: name.to_string(),
            reason: reason.to_owned(),
        };
        if value.is_empty() {
            return Err(bad("empty value"));
        }
        if name != "_cursor" {
            q.echo.push((name.to_string(), value.to_string()));
        }
        let values = || value.split(',').filter(|v| !v.is_empty());
        if let Some(param) = Param::of(resource_type, &name) {
            let checked = values().map(|v| param.value(v).map_err(bad));
            q.criteria.push(Criterion::Demographic(
                param,
                checked.collect::<Result<_, _>>()?,
            ));
            continue;
        }
        let criterion = match name.as_ref() {
            "_id" => Criterion::Ids(values().map(str::to_owned).collect()),
            "identifier" => token(Field::Identifier, resource_type, values()),
            "code" => token(Field::Code, resource_type, values()),
            "category" => token(Field::Category, resource_type, values()),
            "patient" | "subject" => reference(Field::Subject, resource_type, values(), "Patient"),
            "encounter" => reference(Field::Encounter, resource_type, values(), "Encounter"),
            "_count" => {
                let n: usize = value.parse().map_err(|_| bad("expected a number"))?;
                q.count = n.min(max_count);
                continue;
            }
            "_summary" => {
                match value.as_ref() {
                    "count" => q.summary_count = true,
                    "false" => {}
                    _ => return Err(bad("only `count` and `false` are supported")),
                }
                continue;
            }
            "_sort" => {
                q.sort = match value.as_ref() {
                    "_lastUpdated" => Sort::LastUpdated,
                    "-_lastUpdated" => Sort::LastUpdatedDesc,
                    _ => return Err(bad("only `_lastUpdated` and `-_lastUpdated` are supported")),
                };
                continue;
            }
            "_cursor" => {
                q.after =
                    Some(parse_cursor(&value).ok_or_else(|| bad("not a cursor this server gave"))?);
                continue;
            }
            other => return Err(QueryError::Unknown(other.to_owned())),
        };
        q.criteria.push(criterion);
    }
    Ok(q)
}

fn token<'a>(
    field: Field,
    resource_type: &str,
    values: impl Iterator<Item = &'a str>,
) -> Criterion {
    Criterion::Keys(
        field,
        values
            .map(|v| index::token_query(field, resource_type, v))
            .collect(),
    )
}

fn reference<'a>(
    field: Field,
    resource_type: &str,
    values: impl Iterator<Item = &'a str>,
    default: &str,
) -> Criterion {
    Criterion::Keys(
        field,
        values
            .map(|v| {
                index::key(
                    field,
                    resource_type,
                    &[&index::normalize_reference(v, default)],
                )
            })
            .collect(),
    )
}

/// The opaque text of a cursor.
pub fn cursor(key: SortKey) -> String {
    format!("{:x}.{:x}", key.0, key.1)
}

fn parse_cursor(text: &str) -> Option<SortKey> {
    let (a, b) = text.split_once('.')?;
    Some((
        u64::from_str_radix(a, 16).ok()?,
        u64::from_str_radix(b, 16).ok()?,
    ))
}

/// Whether a resource's version satisfies every criterion.
pub fn matches(criteria: &[Criterion], resource: &Resource, version: &Version) -> bool {
    let mut body: Option<Value> = None;
    criteria.iter().all(|c| match c {
        Criterion::Keys(_, keys) => keys.iter().any(|k| version.keys.binary_search(k).is_ok()),
        Criterion::Ids(ids) => ids.contains(&resource.id),
        Criterion::Demographic(param, values) => {
            let parsed = body.get_or_insert_with(|| {
                serde_json::from_slice(&version.body).unwrap_or(Value::Null)
            });
            param.matches(parsed, values)
        }
    })
}

/// The search parameters of a type (name, FHIR type, what it matches).
pub fn params(
    resource_type: &str,
) -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)> {
    let demographic: &[_] = if resource_type == "Patient" {
        demographic::PARAMS
    } else {
        &[]
    };
    PARAMS.iter().chain(demographic)
}

/// The condition of a conditional create (`If-None-Exist`, `ifNoneExist`): a query that
/// must name an identifier, so that its index shards can be held while it is decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub query: Query,
}

impl Condition {
    pub fn parse(resource_type: &str, text: &str) -> Result<Condition, QueryError> {
        let query = parse(resource_type, text, 1, 1)?;
        let c = Condition { query };
        if c.lock_keys().is_empty() {
            return Err(QueryError::Bad {
                param: "identifier".into(),
                reason: "a conditional create needs it on this server".into(),
            });
        }
        Ok(c)
    }

    /// The keys of the (first) identifier parameter: the index shards to hold.
    pub fn lock_keys(&self) -> &[String] {
        self.query
            .criteria
            .iter()
            .find_map(|c| match c {
                Criterion::Keys(Field::Identifier, keys) => Some(keys.as_slice()),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// The resources matching now, read through `bucket` (the held index shards).
    pub fn matches(
        &self,
        bucket: impl Fn(&str) -> Vec<Arc<Resource>>,
    ) -> Vec<(Arc<Resource>, Arc<Version>)> {
        let mut candidates: Vec<Arc<Resource>> =
            self.lock_keys().iter().flat_map(|k| bucket(k)).collect();
        candidates.sort_unstable_by_key(|r| r.seq);
        candidates.dedup_by_key(|r| r.seq);
        candidates
            .into_iter()
            .filter_map(|r| {
                let v = r.current()?;
                matches(&self.query.criteria, &r, &v).then_some((r, v))
            })
            .collect()
    }
}

/// One result.
#[derive(Debug)]
pub struct Hit {
    pub resource: Arc<Resource>,
    pub version: Arc<Version>,
    /// Its position in the result order.
    pub key: SortKey,
}

/// One page of results.
#[derive(Debug, Default)]
pub struct Page {
    /// Matches in all pages.
    pub total: usize,
    /// How many matches come before this page's first hit.
    pub start: usize,
    pub hits: Vec<Hit>,
    /// The cursor of the next page, when there is one.
    pub next: Option<SortKey>,
}

/// Runs a search. `visible` says whether a resource may appear in searches at all.
pub fn run(
    store: &Store,
    index: &Index,
    resource_type: &str,
    q: &Query,
    visible: impl Fn(&State) -> bool,
) -> Page {
    let mut found: Vec<(SortKey, Hit)> = candidates(store, index, resource_type, &q.criteria)
        .into_iter()
        .filter_map(|resource| {
            let version = {
                let state = resource.lock();
                let v = state.current()?.clone();
                visible(&state).then_some(v)?
            };
            matches(&q.criteria, &resource, &version).then(|| {
                let key = sort_key(q.sort, &resource, &version);
                (
                    key,
                    Hit {
                        resource,
                        version,
                        key,
                    },
                )
            })
        })
        .collect();
    found.sort_unstable_by_key(|(k, _)| *k);
    let total = found.len();
    if q.summary_count {
        return Page {
            total,
            ..Page::default()
        };
    }
    let start = q.after.map_or(q.offset.min(total), |after| {
        found.partition_point(|(k, _)| *k <= after)
    });
    let rest = found.len() - start;
    let take = q.count.min(rest);
    let mut hits: Vec<(SortKey, Hit)> = found.into_iter().skip(start).take(take).collect();
    let next = (rest > take && take > 0)
        .then(|| hits.last().map(|(k, _)| *k))
        .flatten();
    Page {
        total,
        start,
        hits: hits.drain(..).map(|(_, h)| h).collect(),
        next,
    }
}

fn sort_key(sort: Sort, r: &Resource, v: &Version) -> SortKey {
    let micros = v.last_updated.timestamp_micros().max(0) as u64;
    match sort {
        Sort::Created => (0, r.seq),
        Sort::LastUpdated => (micros, r.seq),
        Sort::LastUpdatedDesc => (u64::MAX - micros, u64::MAX - r.seq),
    }
}

/// The smallest indexed candidate set: the first `_id` criterion, else the `Keys`
/// criterion with the fewest entries, else every resource of the type.
fn candidates(
    store: &Store,
    index: &Index,
    resource_type: &str,
    criteria: &[Criterion],
) -> Vec<Arc<Resource>> {
    if let Some(Criterion::Ids(ids)) = criteria.iter().find(|c| matches!(c, Criterion::Ids(_))) {
        return ids
            .iter()
            .filter_map(|id| store.get(resource_type, id))
            .collect();
    }
    let smallest = criteria
        .iter()
        .filter_map(|c| match c {
            Criterion::Keys(_, keys) => Some(keys),
            Criterion::Ids(_) | Criterion::Demographic(..) => None,
        })
        .min_by_key(|keys| keys.iter().map(|k| index.len(k)).sum::<usize>());
    let type_key = [index::key(Field::Type, resource_type, &[])];
    let keys: &[String] = smallest.map_or(&type_key, |k| k.as_slice());
    let mut out: Vec<Arc<Resource>> = keys.iter().flat_map(|k| index.bucket(k)).collect();
    if keys.len() > 1 {
        out.sort_unstable_by_key(|r| r.seq);
        out.dedup_by_key(|r| r.seq);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_supported_parameter() {
        let q = parse(
            "Observation",
            "identifier=urn%3Afhirsurge%3Ao%7Cv1&patient=Patient/p1&code=8867-4,8310-5&_count=500&_sort=-_lastUpdated",
            20,
            200,
        )
        .unwrap();
        assert_eq!(q.count, 200, "clamped");
        assert_eq!(q.sort, Sort::LastUpdatedDesc);
        assert_eq!(q.criteria.len(), 3);
        assert_eq!(
            q.criteria[0],
            Criterion::Keys(
                Field::Identifier,
                vec![index::token_query(
                    Field::Identifier,
                    "Observation",
                    "urn:fhirsurge:o|v1"
                )]
            )
        );
        assert_eq!(
            q.criteria[1],
            Criterion::Keys(
                Field::Subject,
                vec![index::key(Field::Subject, "Observation", &["Patient/p1"])]
            )
        );
        let Criterion::Keys(Field::Code, codes) = &q.criteria[2] else {
            panic!()
        };
        assert_eq!(codes.len(), 2, "comma = or");
        assert_eq!(q.echo.len(), 5);
        assert!(
            parse("Patient", "subject=abc", 20, 200).unwrap().criteria[0]
                == parse("Patient", "patient=Patient/abc", 20, 200)
                    .unwrap()
                    .criteria[0]
        );
    }

    #[test]
    fn refuses_unknown_and_malformed_parameters() {
        assert_eq!(
            parse("Patient", "nickname=x", 20, 200),
            Err(QueryError::Unknown("nickname".into()))
        );
        assert_eq!(
            parse("Observation", "name=x", 20, 200),
            Err(QueryError::Unknown("name".into()))
        );
        assert!(matches!(
            parse("Patient", "birthdate=lt2000", 20, 200),
            Err(QueryError::Bad { .. })
        ));
        assert!(matches!(
            parse("Patient", "name=x&birthdate=2000-01", 20, 200)
                .unwrap()
                .criteria[..],
            [
                Criterion::Demographic(Param::Name, _),
                Criterion::Demographic(Param::Birthdate, _)
            ]
        ));
        assert!(matches!(
            parse("Patient", "_count=ten", 20, 200),
            Err(QueryError::Bad { .. })
        ));
        assert!(matches!(
            parse("Patient", "identifier=", 20, 200),
            Err(QueryError::Bad { .. })
        ));
        assert!(matches!(
            parse("Patient", "_summary=true", 20, 200),
            Err(QueryError::Bad { .. })
        ));
        assert!(matches!(
            parse("Patient", "_cursor=zz", 20, 200),
            Err(QueryError::Bad { .. })
        ));
    }

    #[test]
    fn conditions_need_an_identifier() {
        let c = Condition::parse("Patient", "identifier=urn%3Asys%7Cv&nickname=x");
        assert_eq!(c, Err(QueryError::Unknown("nickname".into())));
        let c = Condition::parse("Patient", "identifier=urn%3Asys%7Cv,other%7Cw&_id=a").unwrap();
        assert_eq!(c.lock_keys().len(), 2);
        assert_eq!(c.query.criteria.len(), 2);
        assert!(matches!(
            Condition::parse("Patient", "_id=a"),
            Err(QueryError::Bad { param, .. }) if param == "identifier"
        ));
        assert!(Condition::parse("Patient", "identifier").is_err());
    }

    #[test]
    fn cursors_round_trip_and_are_not_echoed() {
        let c = cursor((0, 12345));
        let q = parse("Patient", &format!("_cursor={c}&_summary=count"), 20, 200).unwrap();
        assert_eq!(q.after, Some((0, 12345)));
        assert!(q.summary_count);
        assert_eq!(q.echo, vec![("_summary".to_string(), "count".to_string())]);
    }
}
