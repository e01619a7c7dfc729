//! How the client authenticates at the token endpoint (the RFC 7591 method names):
//! `private_key_jwt` (an RS384/ES384 assertion signed with a private key),
//! `client_secret_basic` (HTTP Basic with the client id and secret),
//! `client_secret_post` (both in the form) or `client_secret_jwt` (an HS256/HS384
//! assertion signed with the secret). Which one a run uses is a pure function of the
//! scenario's explicit choice, the credentials it holds, the EHR profile's list and the
//! server's `token_endpoint_auth_methods_supported`. Depends on nothing but `Error`.

use std::fmt;
use std::str::FromStr;

use super::Error;

/// A client authentication method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    PrivateKeyJwt,
    ClientSecretBasic,
    ClientSecretPost,
    ClientSecretJwt,
}

impl Method {
    /// Every method, in the order tried when neither the profile nor the server says.
    pub const ALL: [Method; 4] = [
        Method::PrivateKeyJwt,
        Method::ClientSecretBasic,
        Method::ClientSecretPost,
        Method::ClientSecretJwt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::PrivateKeyJwt => "private_key_jwt",
            Method::ClientSecretBasic => "client_secret_basic",
            Method::ClientSecretPost => "client_secret_post",
            Method::ClientSecretJwt => "client_secret_jwt",
        }
    }

    /// Whether it needs the client secret (else the private key).
    pub fn uses_secret(self) -> bool {
        self != Method::PrivateKeyJwt
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> Result<Method, String> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a client authentication method; use one of {}",
                    names(&Method::ALL)
                )
            })
    }
}

/// The HMAC algorithm of a `client_secret_jwt` assertion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Hmac {
    #[default]
    Hs256,
    Hs384,
}

impl Hmac {
    pub fn as_str(self) -> &'static str {
        match self {
            Hmac::Hs256 => "HS256",
            Hmac::Hs384 => "HS384",
        }
    }

    /// `HS256` or `HS384` (any case).
    pub fn parse(s: &str) -> Option<Hmac> {
        match s.to_ascii_uppercase().as_str() {
            "HS256" => Some(Hmac::Hs256),
            "HS384" => Some(Hmac::Hs384),
            _ => None,
        }
    }
}

/// `a, b, c` for messages.
pub fn names(methods: &[Method]) -> String {
    let all: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
    if all.is_empty() {
        "none".to_owned()
    } else {
        all.join(", ")
    }
}

/// What the method is chosen from.
#[derive(Clone, Copy, Debug)]
pub struct Choice<'a> {
    /// The scenario's `client_auth`, when given.
    pub explicit: Option<Method>,
    /// What the loaded credentials can do (a key: `private_key_jwt`; a secret: the rest).
    pub held: &'a [Method],
    /// The EHR profile's `client_auth`, in its order; empty = the profile does not say.
    pub profile: &'a [Method],
    /// The server's `token_endpoint_auth_methods_supported`; `None` = not advertised.
    pub server: Option<&'a [String]>,
}

/// The method to use: the explicit one, else the first of the profile's list (or of
/// every method when it gives none) that the credentials allow and the server
/// advertises (when it advertises any). Nothing fitting is `Error::NoMethod`.
pub fn choose(c: Choice<'_>) -> Result<Method, Error> {
    let none_fits = || Error::NoMethod {
        held: names(c.held),
        profile: names(c.profile),
        server: c
            .server
            .map(|s| {
                if s.is_empty() {
                    "none".into()
                } else {
                    s.join(", ")
                }
            })
            .unwrap_or_else(|| "not advertised".into()),
    };
    if let Some(m) = c.explicit {
        if !c.held.contains(&m) {
            return Err(none_fits());
        }
        if c.server.is_some_and(|s| !advertised(s, m)) {
            tracing::warn!(
                "the server's SMART configuration does not list client_auth = \"{m}\"; trying it anyway"
            );
        }
        return Ok(m);
    }
    let order: &[Method] = if c.profile.is_empty() {
        &Method::ALL
    } else {
        c.profile
    };
    order
        .iter()
        .copied()
        .find(|m| c.held.contains(m) && c.server.is_none_or(|s| advertised(s, *m)))
        .ok_or_else(none_fits)
}

fn advertised(server: &[String], m: Method) -> bool {
    server.iter().any(|s| s.trim() == m.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [Method; 3] = [
        Method::ClientSecretBasic,
        Method::ClientSecretPost,
        Method::ClientSecretJwt,
    ];

    fn server(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_first_method_the_profile_credentials_and_server_all_allow_wins() {
        let oracle = [Method::ClientSecretBasic, Method::PrivateKeyJwt];
        let both = server(&["client_secret_basic", "private_key_jwt"]);
        let pick = |held: &[Method], profile: &[Method], srv: Option<&[String]>| {
            choose(Choice {
                explicit: None,
                held,
                profile,
                server: srv,
            })
        };
        assert_eq!(
            pick(&SECRET, &oracle, Some(&both)).unwrap(),
            Method::ClientSecretBasic
        );
        // A key only: the profile's second choice.
        assert_eq!(
            pick(&[Method::PrivateKeyJwt], &oracle, Some(&both)).unwrap(),
            Method::PrivateKeyJwt
        );
        // The server does not advertise basic: post, from the full list.
        let post_only = server(&["client_secret_post", "private_key_jwt"]);
        assert_eq!(
            pick(&SECRET, &[], Some(&post_only)).unwrap(),
            Method::ClientSecretPost
        );
        // The server says nothing: the profile and the credentials decide.
        assert_eq!(
            pick(&SECRET, &oracle, None).unwrap(),
            Method::ClientSecretBasic
        );
        // Nothing fits: bad input naming all three sides.
        let err = pick(&SECRET, &[Method::PrivateKeyJwt], Some(&both)).unwrap_err();
        assert!(matches!(err, Error::NoMethod { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("client_secret_basic, client_secret_post")
                && text.contains("profile lists private_key_jwt"),
            "{text}"
        );
    }

    #[test]
    fn an_explicit_method_is_used_even_when_the_server_does_not_list_it() {
        let m = choose(Choice {
            explicit: Some(Method::ClientSecretJwt),
            held: &SECRET,
            profile: &[Method::PrivateKeyJwt],
            server: Some(&server(&["private_key_jwt"])),
        });
        assert_eq!(m.unwrap(), Method::ClientSecretJwt);
    }

    #[test]
    fn method_names_parse_and_print_as_rfc_7591_spells_them() {
        for m in Method::ALL {
            assert_eq!(m.as_str().parse::<Method>().unwrap(), m);
        }
        let err = "client_secret".parse::<Method>().unwrap_err();
        assert!(err.contains("client_secret_basic"), "{err}");
        assert_eq!(Hmac::parse("hs384"), Some(Hmac::Hs384));
        assert_eq!(Hmac::parse("RS384"), None);
    }
}
