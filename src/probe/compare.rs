//! Where a live server and a profile disagree: per resource type and interaction, the
//! search parameters the profile requires, the system interactions, and SMART (token
//! endpoint, signing algorithms, client authentication, scope spelling). Pure: data in,
//! differences out.

use std::collections::BTreeSet;

use super::statement::{Capabilities, Smart, SmartConfig, TypeCaps};
use crate::profile::{
    AuthKind, ClientAuth, Profile, ScopeStyle, SigningAlg, SmartBackend, TokenEndpoint, Verb,
};

/// How much a difference matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Weight {
    /// A run with this profile would do something the server does not, or miss what it
    /// does: the profile or the server is wrong.
    Disagree,
    /// Worth knowing; fhirsurge does not depend on it.
    Note,
}

/// One difference.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Difference {
    pub weight: Weight,
    /// A resource type, `system` or `SMART`.
    pub subject: String,
    /// The interaction, search parameter or SMART member.
    pub item: String,
    pub detail: String,
}

const VERBS: [Verb; 9] = [
    Verb::Read,
    Verb::Vread,
    Verb::Search,
    Verb::Create,
    Verb::ConditionalCreate,
    Verb::Update,
    Verb::Patch,
    Verb::Delete,
    Verb::History,
];

/// Every difference between the profile and what the server says, sorted.
pub fn compare(profile: &Profile, caps: &Capabilities, smart: &Smart) -> Vec<Difference> {
    let mut out = Vec::new();
    let types: BTreeSet<&String> = profile.resources.keys().chain(caps.types.keys()).collect();
    for rt in types {
        compare_type(profile, rt, caps.types.get(rt), &mut out);
    }
    for (name, supported) in [
        ("transaction", profile.write.transaction),
        ("batch", profile.write.batch),
    ] {
        let listed = caps.system.contains(name);
        if supported != listed {
            out.push(diff(
                Weight::Disagree,
                "system",
                name,
                side(profile, supported, listed),
            ));
        }
    }
    compare_smart(profile, smart, &mut out);
    out.sort();
    out
}

fn diff(weight: Weight, subject: &str, item: &str, detail: String) -> Difference {
    Difference {
        weight,
        subject: subject.to_owned(),
        item: item.to_owned(),
        detail,
    }
}

fn side(profile: &Profile, supported: bool, listed: bool) -> String {
    match (supported, listed) {
        (true, false) => format!(
            "the profile says {} supports it; the server does not list it",
            profile.name
        ),
        _ => format!(
            "the server lists it; the profile says {} does not support it",
            profile.name
        ),
    }
}

fn verb_name(v: Verb) -> &'static str {
    match v {
        Verb::Read => "read",
        Verb::Vread => "vread",
        Verb::Search => "search",
        Verb::Create => "create",
        Verb::ConditionalCreate => "conditional_create",
        Verb::Update => "update",
        Verb::Patch => "patch",
        Verb::Delete => "delete",
        Verb::History => "history",
    }
}

fn compare_type(profile: &Profile, rt: &str, server: Option<&TypeCaps>, out: &mut Vec<Difference>) {
    let Some(rules) = profile.resource(rt) else {
        out.push(diff(
            Weight::Note,
            rt,
            "type",
            "not a FHIR R4 resource type".into(),
        ));
        return;
    };
    let Some(server) = server else {
        if !rules.interactions.is_empty() {
            let verbs: Vec<&str> = rules.interactions.iter().map(|v| verb_name(*v)).collect();
            let detail = format!(
                "the server does not list the type; the profile says {} supports {}",
                profile.name,
                verbs.join(", ")
            );
            out.push(diff(Weight::Disagree, rt, "type", detail));
        }
        return;
    };
    for verb in VERBS {
        let supported = profile.supports_verb(rt, verb);
        let listed = server.verbs.contains(&verb);
        if supported != listed {
            // fhirsurge never patches or deletes: only worth a note.
            let weight = match verb {
                Verb::Patch | Verb::Delete => Weight::Note,
                _ => Weight::Disagree,
            };
            out.push(diff(
                weight,
                rt,
                verb_name(verb),
                side(profile, supported, listed),
            ));
        }
    }
    if !profile.supports_verb(rt, Verb::Search) || !server.verbs.contains(&Verb::Search) {
        return;
    }
    let required: BTreeSet<&String> = rules.search.required_any.iter().flatten().collect();
    for p in required
        .into_iter()
        .filter(|p| !server.search_params.contains(*p))
    {
        let weight = if p.starts_with('_') {
            Weight::Note
        } else {
            Weight::Disagree
        };
        let detail =
            "the profile requires it in a search; the server does not list the parameter".into();
        out.push(diff(weight, rt, &format!("search `{p}`"), detail));
    }
}

fn compare_smart(profile: &Profile, smart: &Smart, out: &mut Vec<Difference>) {
    match (&profile.auth.kind, smart) {
        (AuthKind::None, Smart::Missing(_)) => {}
        (AuthKind::None, Smart::Config(c)) => {
            if let Some(t) = &c.token_endpoint {
                let detail = format!(
                    "the server offers SMART (token endpoint {t}); the profile says no authorization"
                );
                out.push(diff(Weight::Note, "SMART", "auth", detail));
            }
        }
        (AuthKind::SmartBackend(sb), Smart::Missing(why)) => {
            let discovered = matches!(sb.token_endpoint, TokenEndpoint::Discovered { .. });
            let weight = if discovered {
                Weight::Disagree
            } else {
                Weight::Note
            };
            let detail = if discovered {
                format!(
                    "no SMART configuration ({why}); the profile discovers the token endpoint from it"
                )
            } else {
                format!("no SMART configuration ({why}); the profile has a fixed token endpoint")
            };
            out.push(diff(weight, "SMART", "configuration", detail));
        }
        (AuthKind::SmartBackend(sb), Smart::Config(c)) => smart_config(sb, c, out),
    }
}

fn smart_config(sb: &SmartBackend, c: &SmartConfig, out: &mut Vec<Difference>) {
    let expected = match &sb.token_endpoint {
        TokenEndpoint::Discovered { expected } => expected.as_deref(),
        TokenEndpoint::Fixed(url) => Some(url.as_str()),
    };
    match (&c.token_endpoint, expected) {
        (None, _) => out.push(diff(
            Weight::Disagree,
            "SMART",
            "token_endpoint",
            "the SMART configuration names no token endpoint".into(),
        )),
        (Some(url), Some(pattern)) if !pattern_matches(pattern, url) => {
            let detail = format!("the server names {url}; the profile expects {pattern}");
            out.push(diff(Weight::Note, "SMART", "token_endpoint", detail));
        }
        _ => {}
    }
    algs(sb, c, out);
    methods_side_by_side(sb, c, out);
    if let Some(methods) = &c.auth_methods {
        for m in sb.client_auth.iter().map(|m| auth_name(*m)) {
            if !methods.iter().any(|s| s == m) {
                let detail = "the profile uses it; the server does not list it".to_owned();
                out.push(diff(Weight::Disagree, "SMART", m, detail));
            }
        }
    }
    scopes(sb.scope, c, out);
}

/// Which client authentication methods the server advertises, next to the profile's:
/// always said (a note), so a team sees which secret or key its EHR will take.
fn methods_side_by_side(sb: &SmartBackend, c: &SmartConfig, out: &mut Vec<Difference>) {
    let profile: Vec<&str> = sb.client_auth.iter().map(|m| m.as_str()).collect();
    let server = match c.auth_methods.as_deref() {
        None => "advertises no token_endpoint_auth_methods_supported".to_owned(),
        Some([]) => "advertises an empty token_endpoint_auth_methods_supported".to_owned(),
        Some(listed) => format!("advertises {}", listed.join(", ")),
    };
    let detail = format!(
        "the server {server}; the profile lists {}",
        if profile.is_empty() {
            "none".to_owned()
        } else {
            profile.join(", ")
        }
    );
    out.push(diff(Weight::Note, "SMART", "client_auth", detail));
}

fn algs(sb: &SmartBackend, c: &SmartConfig, out: &mut Vec<Difference>) {
    let profile: Vec<&str> = sb.algs.iter().map(|a| alg_name(*a)).collect();
    match c.algs.as_deref() {
        None | Some([]) if !profile.is_empty() => {
            let detail = format!(
                "the server lists no signing algorithms; the profile documents {}",
                profile.join(", ")
            );
            out.push(diff(Weight::Note, "SMART", "signing algorithms", detail));
        }
        Some(listed) => {
            for a in &profile {
                if !listed.iter().any(|l| l == a) {
                    let detail = "the profile signs with it; the server does not list it".into();
                    out.push(diff(Weight::Disagree, "SMART", &format!("alg {a}"), detail));
                }
            }
            for l in listed
                .iter()
                .filter(|l| matches!(l.as_str(), "RS384" | "ES384"))
            {
                if !profile.contains(&l.as_str()) {
                    let detail = "the server lists it; the profile does not".into();
                    out.push(diff(Weight::Note, "SMART", &format!("alg {l}"), detail));
                }
            }
        }
        None => {}
    }
}

/// Which scope spellings the server shows: (v1, v2).
fn spellings(c: &SmartConfig) -> (bool, bool) {
    let mut v1 = c.capabilities.iter().any(|s| s == "permission-v1");
    let mut v2 = c.capabilities.iter().any(|s| s == "permission-v2");
    for s in c.scopes.iter().filter(|s| s.contains('/')) {
        let suffix = s
            .split('?')
            .next()
            .unwrap_or(s)
            .rsplit('.')
            .next()
            .unwrap_or("");
        match suffix {
            "read" | "write" | "*" => v1 = true,
            x if !x.is_empty() && x.chars().all(|ch| "cruds".contains(ch)) => v2 = true,
            _ => {}
        }
    }
    (v1, v2)
}

fn scopes(style: ScopeStyle, c: &SmartConfig, out: &mut Vec<Difference>) {
    let (v1, v2) = spellings(c);
    let shown = match (v1, v2) {
        (true, true) => "v1 and v2",
        (true, false) => "v1 only",
        (false, true) => "v2 only",
        (false, false) => "no spelling",
    };
    let (weight, wanted) = match style {
        ScopeStyle::V1 if !v1 => (Weight::Disagree, "v1"),
        ScopeStyle::V2 if !v2 => (Weight::Disagree, "v2"),
        ScopeStyle::V1OrV2 if !(v1 && v2) => (Weight::Note, "v1 or v2"),
        _ => return,
    };
    let detail = format!("the profile spells scopes {wanted}; the server shows {shown}");
    out.push(diff(weight, "SMART", "scopes", detail));
}

fn alg_name(a: SigningAlg) -> &'static str {
    match a {
        SigningAlg::RS384 => "RS384",
        SigningAlg::ES384 => "ES384",
    }
}

fn auth_name(m: ClientAuth) -> &'static str {
    match m {
        ClientAuth::PrivateKeyJwt => "private_key_jwt",
        ClientAuth::ClientSecretBasic => "client_secret_basic",
        ClientAuth::ClientSecretPost => "client_secret_post",
        ClientAuth::ClientSecretJwt => "client_secret_jwt",
    }
}

/// Whether `url` fits a pattern with `{placeholders}`: the literal pieces, in order,
/// the first at the start and the last at the end.
fn pattern_matches(pattern: &str, url: &str) -> bool {
    let mut pieces = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        pieces.push(&rest[..open]);
        rest = rest[open..]
            .find('}')
            .map_or("", |close| &rest[open + close + 1..]);
    }
    pieces.push(rest);
    if pieces.len() == 1 {
        return url == pattern;
    }
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if !url.starts_with(first) || !url.ends_with(last) {
        return false;
    }
    let mut at = first.len();
    for p in &pieces[1..pieces.len() - 1] {
        match url[at..].find(p) {
            Some(i) => at += i + p.len(),
            None => return false,
        }
    }
    url.len() - last.len() >= at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Verb::*;

    fn caps(types: &[(&str, &[Verb], &[&str])], system: &[&str]) -> Capabilities {
        Capabilities {
            types: types
                .iter()
                .map(|(t, v, p)| {
                    let tc = TypeCaps {
                        verbs: v.iter().copied().collect(),
                        search_params: p.iter().map(|s| s.to_string()).collect(),
                    };
                    (t.to_string(), tc)
                })
                .collect(),
            system: system.iter().map(|s| s.to_string()).collect(),
            ..Capabilities::default()
        }
    }

    fn disagreements(d: &[Difference]) -> Vec<(String, String)> {
        d.iter()
            .filter(|d| d.weight == Weight::Disagree)
            .map(|d| (d.subject.clone(), d.item.clone()))
            .collect()
    }

    #[test]
    fn a_server_that_lists_encounter_create_disagrees_with_epic() {
        let epic = Profile::load("epic").unwrap();
        let server = caps(
            &[
                ("Encounter", &[Read, Search, Create], &["patient"]),
                (
                    "Observation",
                    &[Read, Search, Create, Update],
                    &["patient", "code"],
                ),
            ],
            &[],
        );
        let d = compare(&epic, &server, &Smart::Missing("404".into()));
        let got = disagreements(&d);
        for want in [
            ("Encounter", "create"),
            ("Observation", "search `category`"),
            ("SMART", "configuration"),
            ("Patient", "type"),
        ] {
            assert!(
                got.contains(&(want.0.into(), want.1.into())),
                "{want:?} not in {got:?}"
            );
        }
        assert!(
            !got.iter()
                .any(|(s, i)| s == "Observation" && i == "search `code`")
        );
    }

    #[test]
    fn a_matching_server_agrees_and_patch_or_delete_are_only_notes() {
        let us = Profile::load("us-core").unwrap();
        let server = caps(
            &[(
                "Patient",
                &[
                    Read,
                    Vread,
                    Search,
                    Create,
                    ConditionalCreate,
                    Update,
                    History,
                ],
                &["identifier"],
            )],
            &["transaction", "batch"],
        );
        let d = compare(&us, &server, &Smart::Missing("404".into()));
        assert!(disagreements(&d).is_empty(), "{d:#?}");
        assert_eq!(d.len(), 2, "{d:#?}");
        assert!(d.iter().all(|x| x.weight == Weight::Note));
    }

    #[test]
    fn smart_algs_methods_and_scope_spelling_are_compared() {
        let ecw = Profile::load("eclinicalworks").unwrap();
        let config = SmartConfig {
            token_endpoint: Some(
                "https://oauthserver.eclinicalworks.com/oauth/oauth2/token".into(),
            ),
            algs: Some(vec!["ES384".into()]),
            auth_methods: Some(vec!["client_secret_basic".into()]),
            scopes: vec!["system/Patient.read".into()],
            capabilities: vec![],
        };
        let d = compare(&ecw, &Capabilities::default(), &Smart::Config(config));
        let got = disagreements(&d);
        assert!(
            got.contains(&("SMART".into(), "alg RS384".into())),
            "{got:?}"
        );
        assert!(
            got.contains(&("SMART".into(), "private_key_jwt".into())),
            "{got:?}"
        );
        assert!(
            d.iter()
                .any(|x| x.item == "alg ES384" && x.weight == Weight::Note)
        );
        assert!(
            d.iter()
                .any(|x| x.item == "scopes" && x.weight == Weight::Note)
        );
        assert!(!d.iter().any(|x| x.item == "token_endpoint"));
        let side = d.iter().find(|x| x.item == "client_auth").unwrap();
        assert_eq!(side.weight, Weight::Note);
        assert_eq!(
            side.detail,
            "the server advertises client_secret_basic; the profile lists private_key_jwt"
        );
    }

    #[test]
    fn token_endpoint_patterns() {
        let p = "https://authorization.cerner.com/tenants/{tenant}/protocols/oauth2/profiles/smart-v1/token";
        assert!(pattern_matches(
            p,
            "https://authorization.cerner.com/tenants/ec2458f2/protocols/oauth2/profiles/smart-v1/token"
        ));
        assert!(!pattern_matches(p, "https://other.example/token"));
        assert!(pattern_matches("https://x/token", "https://x/token"));
        assert!(!pattern_matches("https://x/token", "https://x/token2"));
    }
}
