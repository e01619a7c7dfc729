//! Patient searches by demographics (`name`, `family`, `given`, `birthdate`, `gender`,
//! `phone`, `email`, `address-postalcode`), the parameters EHR profiles require in a
//! Patient search. Not indexed: each is matched against the stored resource, so they
//! narrow a search that an index parameter (or the type) feeds. FHIR's rules, kept
//! simple: strings match case-insensitively at the start of a word-free value; `birthdate`
//! takes `yyyy`, `yyyy-mm` or `yyyy-mm-dd` (optionally `eq`) and matches that precision;
//! tokens match exactly (`email` case-insensitively). Pure.

use serde_json::Value;

/// The parameters: name, FHIR search type, what it matches.
pub const PARAMS: &[(&str, &str, &str)] = &[
    (
        "name",
        "string",
        "start of name.text, family, given, prefix or suffix",
    ),
    ("family", "string", "start of name.family"),
    ("given", "string", "start of name.given"),
    (
        "birthdate",
        "date",
        "birthDate at the precision given (yyyy, yyyy-mm, yyyy-mm-dd; eq only)",
    ),
    ("gender", "token", "gender code"),
    ("phone", "token", "telecom value with system phone"),
    ("email", "token", "telecom value with system email"),
    (
        "address-postalcode",
        "string",
        "start of address.postalCode",
    ),
];

/// One demographic parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    Name,
    Family,
    Given,
    Birthdate,
    Gender,
    Phone,
    Email,
    PostalCode,
}

impl Param {
    /// The parameter of a Patient search, if `name` is one.
    pub fn of(resource_type: &str, name: &str) -> Option<Param> {
        if resource_type != "Patient" {
            return None;
        }
        Some(match name {
            "name" => Param::Name,
            "family" => Param::Family,
            "given" => Param::Given,
            "birthdate" => Param::Birthdate,
            "gender" => Param::Gender,
            "phone" => Param::Phone,
            "email" => Param::Email,
            "address-postalcode" => Param::PostalCode,
            _ => return None,
        })
    }

    /// Checks a value; `Err` says why it is not one this server takes.
    pub fn value(self, value: &str) -> Result<String, &'static str> {
        if self != Param::Birthdate {
            return Ok(value.to_owned());
        }
        let date = value.strip_prefix("eq").unwrap_or(value);
        let shape_ok = matches!(date.len(), 4 | 7 | 10)
            && date.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        if shape_ok {
            Ok(date.to_owned())
        } else {
            Err("expected yyyy, yyyy-mm or yyyy-mm-dd (eq only)")
        }
    }

    /// Whether the resource matches any of `values`.
    pub fn matches(self, resource: &Value, values: &[String]) -> bool {
        values.iter().any(|v| self.matches_one(resource, v))
    }

    fn matches_one(self, r: &Value, value: &str) -> bool {
        let starts = |s: &str| s.to_lowercase().starts_with(&value.to_lowercase());
        match self {
            Param::Name => names(r).any(|n| {
                ["text", "family"]
                    .iter()
                    .filter_map(|k| n.get(*k).and_then(Value::as_str))
                    .chain(strings(n, "given"))
                    .chain(strings(n, "prefix"))
                    .chain(strings(n, "suffix"))
                    .any(starts)
            }),
            Param::Family => {
                names(r).any(|n| n.get("family").and_then(Value::as_str).is_some_and(starts))
            }
            Param::Given => names(r).any(|n| strings(n, "given").any(starts)),
            Param::Birthdate => r
                .get("birthDate")
                .and_then(Value::as_str)
                .is_some_and(|d| d.get(..value.len()) == Some(value)),
            Param::Gender => r.get("gender").and_then(Value::as_str) == Some(value),
            Param::Phone => telecom(r, "phone").any(|t| t == value),
            Param::Email => telecom(r, "email").any(|t| t.eq_ignore_ascii_case(value)),
            Param::PostalCode => list(r, "address")
                .filter_map(|a| a.get("postalCode").and_then(Value::as_str))
                .any(starts),
        }
    }
}

fn list<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn strings<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a str> {
    list(v, key).filter_map(Value::as_str)
}

fn names(r: &Value) -> impl Iterator<Item = &Value> {
    list(r, "name")
}

fn telecom<'a>(r: &'a Value, system: &'a str) -> impl Iterator<Item = &'a str> {
    list(r, "telecom")
        .filter(move |t| t.get("system").and_then(Value::as_str) == Some(system))
        .filter_map(|t| t.get("value").and_then(Value::as_str))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn demographics_match_as_fhir_says() {
        let p = json!({"resourceType": "Patient", "gender": "female", "birthDate": "1980-04-12",
            "name": [{"family": "Smith", "given": ["Ann", "Marie"]}],
            "telecom": [{"system": "phone", "value": "555-0100"}, {"system": "email", "value": "Ann@x.org"}],
            "address": [{"postalCode": "02139"}]});
        let yes = |param: &str, v: &str| {
            let p2 = Param::of("Patient", param).unwrap();
            p2.matches(&p, &[p2.value(v).unwrap()])
        };
        assert!(yes("family", "smi") && yes("given", "mar") && yes("name", "ANN"));
        assert!(yes("birthdate", "1980") && yes("birthdate", "eq1980-04-12"));
        assert!(!yes("birthdate", "1980-05") && !yes("family", "mith"));
        assert!(yes("gender", "female") && !yes("gender", "male"));
        assert!(
            yes("phone", "555-0100") && yes("email", "ann@x.org") && !yes("phone", "ann@x.org")
        );
        assert!(yes("address-postalcode", "021"));
        assert!(Param::Birthdate.value("ge1980").is_err());
        assert_eq!(Param::of("Observation", "name"), None);
    }
}
