//! What a live server says of itself: its CapabilityStatement (`/metadata`: resource
//! types, interactions, search parameters, system interactions) and its SMART
//! configuration (`/.well-known/smart-configuration`), parsed into plain data.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::profile::Verb;

/// The server's CapabilityStatement, as far as a profile can be compared with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `software.name` and `software.version`, for the summary.
    pub software: Option<String>,
    pub fhir_version: Option<String>,
    pub types: BTreeMap<String, TypeCaps>,
    /// System interactions listed (`transaction`, `batch`, …).
    pub system: BTreeSet<String>,
}

/// What the server lists for one resource type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeCaps {
    pub verbs: BTreeSet<Verb>,
    /// The type's search parameters, plus those listed for every type.
    pub search_params: BTreeSet<String>,
}

/// The server's SMART configuration, or why there is none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Smart {
    Config(SmartConfig),
    /// Not served (`404`), unreadable, or not JSON: the reason.
    Missing(String),
}

/// The members of a SMART configuration a profile says something about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmartConfig {
    pub token_endpoint: Option<String>,
    /// `token_endpoint_auth_signing_alg_values_supported`; `None` when absent.
    pub algs: Option<Vec<String>>,
    /// `token_endpoint_auth_methods_supported`; `None` when absent.
    pub auth_methods: Option<Vec<String>>,
    pub scopes: Vec<String>,
    /// `capabilities` (`permission-v1`, `permission-v2`, …).
    pub capabilities: Vec<String>,
}

/// A body that is not a CapabilityStatement.
#[derive(Debug, thiserror::Error)]
#[error("not a CapabilityStatement: {0}")]
pub struct NotAStatement(pub String);

impl Capabilities {
    /// Reads a CapabilityStatement (the first `rest` entry in server mode).
    pub fn parse(v: &Value) -> Result<Capabilities, NotAStatement> {
        let kind = v.get("resourceType").and_then(Value::as_str);
        if kind != Some("CapabilityStatement") {
            return Err(NotAStatement(format!(
                "resourceType is {}",
                kind.map_or("missing".into(), |k| format!("`{k}`"))
            )));
        }
        let rest = v
            .get("rest")
            .and_then(Value::as_array)
            .and_then(|r| {
                r.iter()
                    .find(|e| e.get("mode").and_then(Value::as_str) != Some("client"))
            })
            .ok_or_else(|| NotAStatement("no server `rest` entry".into()))?;
        let common = names(rest.get("searchParam"), "name");
        let types = rest
            .get("resource")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let rt = r.get("type")?.as_str()?.to_owned();
                Some((rt, type_caps(r, &common)))
            })
            .collect();
        let software = v.get("software").and_then(|s| {
            let name = s.get("name")?.as_str()?;
            Some(match s.get("version").and_then(Value::as_str) {
                Some(ver) => format!("{name} {ver}"),
                None => name.to_owned(),
            })
        });
        Ok(Capabilities {
            software,
            fhir_version: v
                .get("fhirVersion")
                .and_then(Value::as_str)
                .map(str::to_owned),
            types,
            system: names(rest.get("interaction"), "code"),
        })
    }

    /// The search parameters the server lists for a type; `None` for an unlisted type.
    pub fn search_params(&self, resource_type: &str) -> Option<&BTreeSet<String>> {
        self.types.get(resource_type).map(|t| &t.search_params)
    }
}

fn type_caps(r: &Value, common: &BTreeSet<String>) -> TypeCaps {
    let mut verbs: BTreeSet<Verb> = names(r.get("interaction"), "code")
        .iter()
        .filter_map(|c| verb(c))
        .collect();
    let conditional = r.get("conditionalCreate").and_then(Value::as_bool) == Some(true);
    if conditional && verbs.contains(&Verb::Create) {
        verbs.insert(Verb::ConditionalCreate);
    }
    let mut search_params = names(r.get("searchParam"), "name");
    search_params.extend(common.iter().cloned());
    TypeCaps {
        verbs,
        search_params,
    }
}

/// The verb of a CapabilityStatement interaction code.
fn verb(code: &str) -> Option<Verb> {
    Some(match code {
        "read" => Verb::Read,
        "vread" => Verb::Vread,
        "update" => Verb::Update,
        "patch" => Verb::Patch,
        "delete" => Verb::Delete,
        "history-instance" => Verb::History,
        "create" => Verb::Create,
        "search-type" => Verb::Search,
        _ => return None,
    })
}

/// The `key` string of every object in an array.
fn names(list: Option<&Value>, key: &str) -> BTreeSet<String> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get(key)?.as_str().map(str::to_owned))
        .collect()
}

impl SmartConfig {
    pub fn parse(v: &Value) -> SmartConfig {
        let strings = |key: &str| -> Option<Vec<String>> {
            Some(
                v.get(key)?
                    .as_array()?
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect(),
            )
        };
        SmartConfig {
            token_endpoint: v
                .get("token_endpoint")
                .and_then(Value::as_str)
                .map(str::to_owned),
            algs: strings("token_endpoint_auth_signing_alg_values_supported"),
            auth_methods: strings("token_endpoint_auth_methods_supported"),
            scopes: strings("scopes_supported").unwrap_or_default(),
            capabilities: strings("capabilities").unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_statement_gives_verbs_params_and_system_interactions() {
        let cs = json!({
            "resourceType": "CapabilityStatement", "fhirVersion": "4.0.1",
            "software": {"name": "EHR", "version": "May 2026"},
            "rest": [{"mode": "server",
                "searchParam": [{"name": "_id"}],
                "interaction": [{"code": "transaction"}],
                "resource": [
                    {"type": "Observation", "interaction": [{"code": "read"}, {"code": "search-type"}, {"code": "create"}],
                     "conditionalCreate": false, "searchParam": [{"name": "patient"}, {"name": "category"}]},
                    {"type": "Encounter", "interaction": [{"code": "create"}, {"code": "history-type"}], "conditionalCreate": true}
                ]}]
        });
        let c = Capabilities::parse(&cs).unwrap();
        assert_eq!(c.software.as_deref(), Some("EHR May 2026"));
        let obs = &c.types["Observation"];
        assert_eq!(obs.verbs, [Verb::Read, Verb::Search, Verb::Create].into());
        assert_eq!(c.search_params("Observation").unwrap().len(), 3);
        assert_eq!(
            c.types["Encounter"].verbs,
            [Verb::Create, Verb::ConditionalCreate].into()
        );
        assert!(c.system.contains("transaction"));
        assert!(Capabilities::parse(&json!({"resourceType": "Patient"})).is_err());
    }

    #[test]
    fn a_smart_configuration_keeps_absent_lists_absent() {
        let s = SmartConfig::parse(
            &json!({"token_endpoint": "https://x/token", "scopes_supported": ["openid"]}),
        );
        assert_eq!(s.token_endpoint.as_deref(), Some("https://x/token"));
        assert_eq!(s.algs, None);
        assert_eq!(s.scopes, ["openid"]);
    }
}
