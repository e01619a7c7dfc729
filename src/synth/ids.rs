//! Who a generated resource is: its placeholder key (`urn:uuid:`, hashed from
//! `(seed, n, role, index)`), its harness identifier (`<role>-<n>[-<index>]` in the
//! namespace), the patient's MRN, and clinicians' NPIs. Keys and identifiers are hashes
//! and counters, never draws, so they do not depend on what the tables contain.

use rand::RngExt;
use serde_json::{Value, json};
use uuid::Builder;

use super::Resource;
use super::draw::Rng;

/// What a resource is within its encounter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Patient,
    Encounter,
    Vital,
    Condition,
    Medication,
    Note,
    Claim,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Patient => "patient",
            Role::Encounter => "encounter",
            Role::Vital => "vital",
            Role::Condition => "condition",
            Role::Medication => "medication",
            Role::Note => "note",
            Role::Claim => "claim",
        }
    }

    pub fn resource_type(self) -> &'static str {
        match self {
            Role::Patient => "Patient",
            Role::Encounter => "Encounter",
            Role::Vital => "Observation",
            Role::Condition => "Condition",
            Role::Medication => "MedicationRequest",
            Role::Note => "DocumentReference",
            Role::Claim => "Claim",
        }
    }
}

/// The placeholder keys other resources of an encounter refer to.
pub(crate) struct Keys {
    pub patient: String,
    pub encounter: String,
    /// One per diagnosis, in order.
    pub conditions: Vec<String>,
}

/// Names the resources of encounter `n`.
pub(crate) struct Ids<'a> {
    seed: u64,
    n: u64,
    namespace: &'a str,
}

impl<'a> Ids<'a> {
    pub fn new(seed: u64, n: u64, namespace: &'a str) -> Self {
        Self { seed, n, namespace }
    }

    /// `urn:uuid:<v8 uuid>` from a hash of `(seed, n, role, index)`.
    pub fn key(&self, role: Role, index: Option<usize>) -> String {
        let mut h = blake3::Hasher::new();
        h.update(b"fhirsurge.synth.key/1\0");
        h.update(&self.seed.to_le_bytes());
        h.update(&self.n.to_le_bytes());
        h.update(role.as_str().as_bytes());
        h.update(&index.map_or(u64::MAX, |i| i as u64).to_le_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&h.finalize().as_bytes()[..16]);
        format!("urn:uuid:{}", Builder::from_custom_bytes(bytes).into_uuid())
    }

    /// The harness identifier value: `<role>-<n>` or `<role>-<n>-<index>`.
    pub fn value(&self, role: Role, index: Option<usize>) -> String {
        match index {
            None => format!("{}-{}", role.as_str(), self.n),
            Some(i) => format!("{}-{}-{i}", role.as_str(), self.n),
        }
    }

    /// The resource: `body` with its harness identifier appended to `identifier`.
    pub fn resource(&self, role: Role, index: Option<usize>, mut body: Value) -> Resource {
        let value = self.value(role, index);
        let id = json!({ "system": self.namespace, "value": value });
        if let Some(obj) = body.as_object_mut() {
            match obj.get_mut("identifier").and_then(Value::as_array_mut) {
                Some(list) => list.push(id),
                None => {
                    obj.insert("identifier".into(), Value::Array(vec![id]));
                }
            }
        }
        Resource {
            key: self.key(role, index),
            resource_type: role.resource_type().to_owned(),
            identifier: format!("{}|{value}", self.namespace),
            body,
        }
    }
}

const BASE36: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Six base-36 characters from `(seed, namespace)`: what sets one run's MRNs apart from
/// another's, since the MRN system is shared by all runs.
pub(crate) fn mrn_tag(seed: u64, namespace: &str) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"fhirsurge.synth.mrn/1\0");
    h.update(&seed.to_le_bytes());
    h.update(namespace.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&h.finalize().as_bytes()[..8]);
    let mut x = u64::from_le_bytes(bytes);
    (0..6)
        .map(|_| {
            let c = BASE36[(x % 36) as usize];
            x /= 36;
            char::from(c)
        })
        .collect()
}

/// The MRN of encounter `n`'s patient: `M`, the run's tag, then `n` in at least seven
/// digits. Unique per `n` within a run (the tag has a fixed width).
pub(crate) fn mrn(tag: &str, n: u64) -> String {
    format!("M{tag}{n:07}")
}

/// A well-formed individual NPI: `1`, eight random digits, and the Luhn check digit
/// computed with the `80840` prefix (CMS).
pub(crate) fn npi(rng: &mut Rng) -> String {
    let mut payload = vec![8, 0, 8, 4, 0, 1];
    payload.extend((0..8).map(|_| rng.random_range(0..10u8)));
    let check = super::check_digit::luhn(&payload);
    payload[5..]
        .iter()
        .chain(std::iter::once(&check))
        .map(|d| char::from(b'0' + d))
        .collect()
}
