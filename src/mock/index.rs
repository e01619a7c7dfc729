//! Search indexes: which resources of a type carry an identifier, a reference or a code,
//! as string keys mapped to resources in creation order. Sharded by key hash. The index
//! only grows (a superset): searches re-check each candidate's current version against
//! its own keys, so an update that drops an identifier needs no removal. Depends on
//! `store` only.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::{Arc, PoisonError, RwLock, RwLockWriteGuard};

use serde_json::Value;

use super::store::Resource;

const SEP: char = '\u{1f}';

type Bucket = BTreeMap<u64, Arc<Resource>>;
type Shard = HashMap<String, Bucket>;

/// What a key indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// Every resource of the type.
    Type,
    Identifier,
    /// `subject.reference` and `patient.reference`.
    Subject,
    /// `encounter.reference`, `context.encounter.reference`.
    Encounter,
    Code,
    /// `category` codings, or category codes (AllergyIntolerance).
    Category,
}

impl Field {
    fn tag(self) -> &'static str {
        match self {
            Self::Type => "t",
            Self::Identifier => "i",
            Self::Subject => "r",
            Self::Encounter => "e",
            Self::Code => "c",
            Self::Category => "k",
        }
    }
}

/// An index key. `parts` are joined with a separator that does not occur in FHIR data.
pub fn key(field: Field, resource_type: &str, parts: &[&str]) -> String {
    tagged(field.tag(), "", resource_type, parts)
}

fn tagged(tag: &str, suffix: &str, resource_type: &str, parts: &[&str]) -> String {
    let mut k = String::with_capacity(48);
    k.push_str(tag);
    k.push_str(suffix);
    k.push(SEP);
    k.push_str(resource_type);
    for p in parts {
        k.push(SEP);
        k.push_str(p);
    }
    k
}

/// Token keys: `system|value` (exact), `system|` (any value), `value` (any system).
fn token_keys(out: &mut Vec<String>, field: Field, resource_type: &str, system: &str, value: &str) {
    out.push(tagged(field.tag(), "", resource_type, &[system, value]));
    out.push(tagged(field.tag(), "s", resource_type, &[system]));
    out.push(tagged(field.tag(), "v", resource_type, &[value]));
}

/// The key a token search value looks up: `system|value`, `system|`, `|value` (no
/// system), `value` (any system).
pub fn token_query(field: Field, resource_type: &str, text: &str) -> String {
    match text.split_once('|') {
        Some((system, "")) => tagged(field.tag(), "s", resource_type, &[system]),
        Some((system, value)) => tagged(field.tag(), "", resource_type, &[system, value]),
        None => tagged(field.tag(), "v", resource_type, &[text]),
    }
}

/// `Type/id` of a reference, absolute or relative, without `_history`; a plain id is
/// taken as `default_type/id`.
pub fn normalize_reference(reference: &str, default_type: &str) -> String {
    let path = reference.split("/_history/").next().unwrap_or(reference);
    let parts: Vec<&str> = path.trim_end_matches('/').rsplit('/').take(2).collect();
    match parts.as_slice() {
        [id, rt] => format!("{rt}/{id}"),
        [id] => format!("{default_type}/{id}"),
        _ => path.to_owned(),
    }
}

/// Every index key of a resource.
pub fn keys_of(resource_type: &str, resource: &Value) -> Vec<String> {
    let mut out = vec![key(Field::Type, resource_type, &[])];
    for ident in array(resource.get("identifier")) {
        if let Some(value) = ident.get("value").and_then(Value::as_str) {
            let system = ident.get("system").and_then(Value::as_str).unwrap_or("");
            token_keys(&mut out, Field::Identifier, resource_type, system, value);
        }
    }
    for p in ["/subject/reference", "/patient/reference"] {
        if let Some(r) = resource.pointer(p).and_then(Value::as_str) {
            let k = key(
                Field::Subject,
                resource_type,
                &[&normalize_reference(r, "Patient")],
            );
            out.push(k);
        }
    }
    let context = array(resource.pointer("/context/encounter"));
    let encounters = resource.get("encounter").into_iter().chain(context);
    for r in encounters.filter_map(|e| e.get("reference")?.as_str()) {
        let k = key(
            Field::Encounter,
            resource_type,
            &[&normalize_reference(r, "Encounter")],
        );
        out.push(k);
    }
    for coding in array(resource.pointer("/code/coding")) {
        if let Some(code) = coding.get("code").and_then(Value::as_str) {
            let system = coding.get("system").and_then(Value::as_str).unwrap_or("");
            token_keys(&mut out, Field::Code, resource_type, system, code);
        }
    }
    for category in array(resource.get("category")) {
        if let Some(code) = category.as_str() {
            token_keys(&mut out, Field::Category, resource_type, "", code);
        }
        for coding in array(category.get("coding")) {
            if let Some(code) = coding.get("code").and_then(Value::as_str) {
                let system = coding.get("system").and_then(Value::as_str).unwrap_or("");
                token_keys(&mut out, Field::Category, resource_type, system, code);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The items of a JSON array; a single object counts as one item.
fn array(value: Option<&Value>) -> impl Iterator<Item = &Value> {
    let (list, one) = match value {
        Some(Value::Array(items)) => (items.as_slice(), None),
        Some(v @ Value::Object(_)) => (&[][..], Some(v)),
        _ => (&[][..], None),
    };
    list.iter().chain(one)
}

/// The sharded index.
#[derive(Debug)]
pub struct Index {
    shards: Box<[RwLock<Shard>]>,
}

impl Index {
    pub fn new(shards: usize) -> Index {
        Index {
            shards: (0..shards.max(1)).map(|_| RwLock::default()).collect(),
        }
    }

    pub fn shard_of(&self, key: &str) -> usize {
        let h = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
        (h % self.shards.len() as u64) as usize
    }

    /// Adds a resource under each key (idempotent). Takes one shard lock at a time.
    pub fn add(&self, keys: &[String], r: &Arc<Resource>) {
        for k in keys {
            let mut shard = self.shards[self.shard_of(k)]
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            insert(&mut shard, k, r);
        }
    }

    /// The resources under a key, in creation order.
    pub fn bucket(&self, key: &str) -> Vec<Arc<Resource>> {
        let shard = self.shards[self.shard_of(key)]
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        shard
            .get(key)
            .map(|b| b.values().cloned().collect())
            .unwrap_or_default()
    }

    /// How many resources a key holds (a hint for choosing the smallest candidate set).
    pub fn len(&self, key: &str) -> usize {
        let shard = self.shards[self.shard_of(key)]
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        shard.get(key).map_or(0, BTreeMap::len)
    }

    /// Write-locks the shards of these keys, in shard order (the only place that holds
    /// more than one index lock): the critical section of a conditional create.
    pub fn hold<'a>(&'a self, keys: &[String]) -> Held<'a> {
        let mut ids: Vec<usize> = keys.iter().map(|k| self.shard_of(k)).collect();
        ids.sort_unstable();
        ids.dedup();
        let guards = ids
            .into_iter()
            .map(|i| {
                (
                    i,
                    self.shards[i]
                        .write()
                        .unwrap_or_else(PoisonError::into_inner),
                )
            })
            .collect();
        Held {
            index: self,
            guards,
        }
    }
}

fn insert(shard: &mut Shard, key: &str, r: &Arc<Resource>) {
    match shard.get_mut(key) {
        Some(bucket) => {
            bucket.insert(r.seq, r.clone());
        }
        None => {
            shard.insert(key.to_owned(), BTreeMap::from([(r.seq, r.clone())]));
        }
    }
}

/// Index shards held for writing.
pub struct Held<'a> {
    index: &'a Index,
    guards: Vec<(usize, RwLockWriteGuard<'a, Shard>)>,
}

impl Held<'_> {
    /// The resources under a key whose shard is held (empty otherwise).
    pub fn bucket(&self, key: &str) -> Vec<Arc<Resource>> {
        let i = self.index.shard_of(key);
        self.guards
            .iter()
            .find(|(at, _)| *at == i)
            .and_then(|(_, g)| g.get(key))
            .map(|b| b.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Adds the resource under those of its keys whose shards are held; the caller adds
    /// the rest after releasing.
    pub fn add(&mut self, keys: &[String], r: &Arc<Resource>) {
        for k in keys {
            let i = self.index.shard_of(k);
            if let Some((_, g)) = self.guards.iter_mut().find(|(at, _)| *at == i) {
                insert(g, k, r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_resource_is_found_by_every_token_form() {
        let obs = json!({"resourceType": "Observation",
            "identifier": [{"system": "urn:fhirsurge:o", "value": "v1"}],
            "subject": {"reference": "http://h/Patient/p1"},
            "encounter": {"reference": "Encounter/e1"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}});
        let keys = keys_of("Observation", &obs);
        for q in ["urn:fhirsurge:o|v1", "urn:fhirsurge:o|", "v1"] {
            assert!(
                keys.contains(&token_query(Field::Identifier, "Observation", q)),
                "{q}"
            );
        }
        for q in ["http://loinc.org|8867-4", "8867-4"] {
            assert!(
                keys.contains(&token_query(Field::Code, "Observation", q)),
                "{q}"
            );
        }
        assert!(!keys.contains(&token_query(Field::Code, "Observation", "|8867-4")));
        assert!(!keys.contains(&token_query(Field::Identifier, "Patient", "v1")));
        assert!(keys.contains(&key(Field::Subject, "Observation", &["Patient/p1"])));
        assert!(keys.contains(&key(Field::Encounter, "Observation", &["Encounter/e1"])));
        assert!(keys.contains(&key(Field::Type, "Observation", &[])));
    }

    #[test]
    fn document_reference_context_encounter_is_indexed() {
        let doc = json!({"context": {"encounter": [{"reference": "Encounter/e9"}]}});
        let keys = keys_of("DocumentReference", &doc);
        assert!(keys.contains(&key(
            Field::Encounter,
            "DocumentReference",
            &["Encounter/e9"]
        )));
    }

    #[test]
    fn references_normalise() {
        assert_eq!(normalize_reference("Patient/1", "Patient"), "Patient/1");
        assert_eq!(normalize_reference("1", "Patient"), "Patient/1");
        assert_eq!(
            normalize_reference("http://x/fhir/Patient/1/_history/2", "Patient"),
            "Patient/1"
        );
    }
}
