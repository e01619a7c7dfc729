//! The scenario's `[auth]` and `[tls]` sections as written, and their conversion into the
//! client's [`auth::Config`] and [`Tls`]. Secrets are named, never given: `*_env` (an
//! environment variable) or `*_file` (a path, relative to the scenario's folder). A
//! literal secret (`token = "…"`, `client_secret = "…"`) is refused with a message that
//! says what to write instead and never repeats the value. SMART Backend Services takes
//! a private key, a client secret or both, and `client_auth` must fit what is given.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use serde::de::IgnoredAny;
use toml::Spanned;
use url::Url;

use super::file::Locator;
use crate::fhir::Tls;
use crate::fhir::auth::{self, Alg, EhrAuth, Hmac, Method, SecretSource, SmartConfig};
use crate::source::SourceError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    None,
    Bearer,
    Basic,
    #[serde(alias = "smart")]
    SmartBackend,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::None => "none",
            Kind::Bearer => "bearer",
            Kind::Basic => "basic",
            Kind::SmartBackend => "smart_backend",
        }
    }

    /// The keys this kind takes, `kind` aside.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::None => &[],
            Kind::Bearer => &["token_env", "token_file"],
            Kind::Basic => &["username", "password_env", "password_file"],
            Kind::SmartBackend => &[
                "client_id_env",
                "client_id_file",
                "private_key_env",
                "private_key_file",
                "client_secret_env",
                "client_secret_file",
                "client_auth",
                "alg",
                "kid",
                "jku",
                "token_url",
                "scopes",
            ],
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuthFile {
    kind: Kind,
    client_id_env: Option<String>,
    client_id_file: Option<String>,
    private_key_env: Option<String>,
    private_key_file: Option<String>,
    client_secret_env: Option<String>,
    client_secret_file: Option<String>,
    client_auth: Option<String>,
    alg: Option<String>,
    kid: Option<String>,
    jku: Option<String>,
    token_url: Option<String>,
    scopes: Option<Vec<String>>,
    token_env: Option<String>,
    token_file: Option<String>,
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
    // Literal secrets: accepted by the parser only to be refused with a clear message.
    token: Option<IgnoredAny>,
    access_token: Option<IgnoredAny>,
    password: Option<IgnoredAny>,
    client_secret: Option<IgnoredAny>,
    client_id: Option<IgnoredAny>,
    private_key: Option<IgnoredAny>,
    client_assertion: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsFile {
    ca_cert: Option<String>,
    #[serde(default)]
    insecure: bool,
}

/// Converts `[auth]`; relative paths are resolved against the scenario's folder.
pub(super) fn validate_auth(
    file: Option<Spanned<AuthFile>>,
    at: &Locator<'_>,
) -> Result<auth::Config, SourceError> {
    let Some(file) = file else {
        return Ok(auth::Config::None);
    };
    let span = file.span();
    let a = file.into_inner();
    let fail = |key: &str, message: String| at.error(at.key_in(span.clone(), Some(key)), message);
    refuse_literals(&a, &fail)?;
    for key in a.present() {
        if !a.kind.keys().contains(&key) {
            let m = format!("auth.{key}: not used with kind = \"{}\"", a.kind.as_str());
            return Err(fail(key, m));
        }
    }
    let dir = at.path.parent();
    let source = |name: &'static str, env: &Option<String>, file: &Option<String>| {
        secret_source(name, env, file, dir).map_err(|m| fail(name, m))
    };
    Ok(match a.kind {
        Kind::None => auth::Config::None,
        Kind::Bearer => auth::Config::Bearer {
            token: source("token", &a.token_env, &a.token_file)?,
        },
        Kind::Basic => auth::Config::Basic {
            username: a
                .username
                .clone()
                .ok_or_else(|| fail("kind", "auth: kind = \"basic\" needs `username`".into()))?,
            password: source("password", &a.password_env, &a.password_file)?,
        },
        Kind::SmartBackend => auth::Config::Smart(Box::new(smart(&a, &fail, dir)?)),
    })
}

impl AuthFile {
    /// The keys set, `kind` and refused literals aside.
    fn present(&self) -> Vec<&'static str> {
        let set = [
            ("client_id_env", self.client_id_env.is_some()),
            ("client_id_file", self.client_id_file.is_some()),
            ("private_key_env", self.private_key_env.is_some()),
            ("private_key_file", self.private_key_file.is_some()),
            ("client_secret_env", self.client_secret_env.is_some()),
            ("client_secret_file", self.client_secret_file.is_some()),
            ("client_auth", self.client_auth.is_some()),
            ("alg", self.alg.is_some()),
            ("kid", self.kid.is_some()),
            ("jku", self.jku.is_some()),
            ("token_url", self.token_url.is_some()),
            ("scopes", self.scopes.is_some()),
            ("token_env", self.token_env.is_some()),
            ("token_file", self.token_file.is_some()),
            ("username", self.username.is_some()),
            ("password_env", self.password_env.is_some()),
            ("password_file", self.password_file.is_some()),
        ];
        set.into_iter()
            .filter(|(_, on)| *on)
            .map(|(k, _)| k)
            .collect()
    }
}

fn refuse_literals(
    a: &AuthFile,
    fail: &impl Fn(&str, String) -> SourceError,
) -> Result<(), SourceError> {
    let literals = [
        ("token", a.token.is_some()),
        ("access_token", a.access_token.is_some()),
        ("password", a.password.is_some()),
        ("client_secret", a.client_secret.is_some()),
        ("client_id", a.client_id.is_some()),
        ("private_key", a.private_key.is_some()),
        ("client_assertion", a.client_assertion.is_some()),
    ];
    let Some((key, _)) = literals.iter().find(|(_, on)| *on) else {
        return Ok(());
    };
    let instead = match *key {
        "client_assertion" => "fhirsurge signs the assertion: give private_key_env/_file \
             (private_key_jwt) or client_secret_env/_file (client_secret_jwt)"
            .to_owned(),
        "access_token" => "use token_env = \"VAR\" or token_file = \"path\"".to_owned(),
        k => format!("use {k}_env = \"VAR\" or {k}_file = \"path\""),
    };
    let m = format!("auth.{key}: secrets never go in the scenario file; {instead}");
    Err(fail(key, m))
}

/// `[auth] kind = "smart_backend"`: a client id, a private key and/or a client secret,
/// and a `client_auth` and `alg` that fit them.
fn smart(
    a: &AuthFile,
    fail: &impl Fn(&str, String) -> SourceError,
    dir: Option<&Path>,
) -> Result<SmartConfig, SourceError> {
    let source = |name: &'static str, env: &Option<String>, file: &Option<String>| {
        secret_source(name, env, file, dir).map_err(|m| fail(name, m))
    };
    let optional =
        |name: &'static str, env: &Option<String>, file: &Option<String>| match (env, file) {
            (None, None) => Ok(None),
            _ => source(name, env, file).map(Some),
        };
    let client_id = source("client_id", &a.client_id_env, &a.client_id_file)?;
    let private_key = optional("private_key", &a.private_key_env, &a.private_key_file)?;
    let client_secret = optional("client_secret", &a.client_secret_env, &a.client_secret_file)?;
    let method = a
        .client_auth
        .as_deref()
        .map(|m| {
            m.parse::<Method>()
                .map_err(|e| fail("client_auth", format!("auth.client_auth: {e}")))
        })
        .transpose()?;
    credentials_fit(
        method,
        private_key.is_some(),
        client_secret.is_some(),
        a,
        fail,
    )?;
    let (alg, hmac) = algorithms(a, method, private_key.is_some(), client_secret.is_some())
        .map_err(|m| fail("alg", m))?;
    let kid = match (&private_key, a.kid.as_deref()) {
        (Some(_), Some(k)) if !k.is_empty() => k.to_owned(),
        (Some(_), _) => {
            let m = "auth: a private key needs `kid` (the key id the server registered)";
            return Err(fail("kind", m.into()));
        }
        (None, None) => String::new(),
        (None, Some(_)) => {
            return Err(fail("kid", "auth.kid: only used with a private key".into()));
        }
    };
    if private_key.is_none() && a.jku.is_some() {
        return Err(fail("jku", "auth.jku: only used with a private key".into()));
    }
    Ok(SmartConfig {
        client_id,
        private_key,
        client_secret,
        alg,
        hmac,
        kid,
        jku: url(&a.jku, "jku").map_err(|m| fail("jku", m))?,
        token_url: url(&a.token_url, "token_url").map_err(|m| fail("token_url", m))?,
        scopes: a.scopes.clone().unwrap_or_default(),
        method,
        ehr: EhrAuth::default(),
    })
}

/// A credential is given, and an explicit `client_auth` has the one it needs and no
/// other.
fn credentials_fit(
    method: Option<Method>,
    key: bool,
    secret: bool,
    a: &AuthFile,
    fail: &impl Fn(&str, String) -> SourceError,
) -> Result<(), SourceError> {
    let key_name = if a.private_key_env.is_some() {
        "private_key_env"
    } else {
        "private_key_file"
    };
    let secret_name = if a.client_secret_env.is_some() {
        "client_secret_env"
    } else {
        "client_secret_file"
    };
    match method {
        None if !key && !secret => Err(fail(
            "kind",
            "auth: kind = \"smart_backend\" needs private_key_env or private_key_file \
             (private_key_jwt), or client_secret_env or client_secret_file (client_secret_*)"
                .into(),
        )),
        Some(m) if m.uses_secret() && !secret => Err(fail(
            "client_auth",
            format!("auth.client_auth = \"{m}\" needs client_secret_env or client_secret_file"),
        )),
        Some(m) if !m.uses_secret() && !key => Err(fail(
            "client_auth",
            format!("auth.client_auth = \"{m}\" needs private_key_env or private_key_file"),
        )),
        Some(m) if m.uses_secret() && key => Err(fail(
            key_name,
            format!("auth.{key_name}: not used with client_auth = \"{m}\""),
        )),
        Some(m) if !m.uses_secret() && secret => Err(fail(
            secret_name,
            format!("auth.{secret_name}: not used with client_auth = \"{m}\""),
        )),
        _ => Ok(()),
    }
}

/// `alg`: RS384/ES384 sign with the key (default RS384), HS256/HS384 with the secret
/// (`client_secret_jwt`, default HS256).
fn algorithms(
    a: &AuthFile,
    method: Option<Method>,
    key: bool,
    secret: bool,
) -> Result<(Alg, Hmac), String> {
    let Some(text) = a.alg.as_deref() else {
        return Ok((Alg::Rs384, Hmac::default()));
    };
    if let Some(hmac) = Hmac::parse(text) {
        let fits = secret && method.is_none_or(|m| m == Method::ClientSecretJwt);
        return match fits {
            true => Ok((Alg::Rs384, hmac)),
            false => Err(format!(
                "auth.alg: {text} signs client_secret_jwt assertions; it needs client_secret_env \
                 or client_secret_file and client_auth = \"client_secret_jwt\" (or none)"
            )),
        };
    }
    let alg = text.parse::<Alg>().map_err(|_| {
        format!("auth.alg: unsupported signing algorithm `{text}`; use RS384 or ES384 (private_key_jwt) or HS256 or HS384 (client_secret_jwt)")
    })?;
    if !key || method.is_some_and(|m| m != Method::PrivateKeyJwt) {
        return Err(format!(
            "auth.alg: {text} signs private_key_jwt assertions; it needs private_key_env or \
             private_key_file"
        ));
    }
    Ok((alg, Hmac::default()))
}

fn secret_source(
    name: &str,
    env: &Option<String>,
    file: &Option<String>,
    dir: Option<&Path>,
) -> Result<SecretSource, String> {
    match (env, file) {
        (Some(var), None) if !var.is_empty() => Ok(SecretSource::Env(var.clone())),
        (None, Some(path)) if !path.is_empty() => Ok(SecretSource::File(resolve(path, dir))),
        (Some(_), Some(_)) => Err(format!("auth: give {name}_env or {name}_file, not both")),
        _ => Err(format!(
            "auth: needs {name}_env = \"VAR\" or {name}_file = \"path\""
        )),
    }
}

fn url(value: &Option<String>, key: &str) -> Result<Option<Url>, String> {
    value
        .as_deref()
        .map(|v| match Url::parse(v) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(u),
            _ => Err(format!("auth.{key}: `{v}` is not an http(s) URL")),
        })
        .transpose()
}

/// A relative path in a scenario is relative to the scenario's folder.
fn resolve(path: &str, dir: Option<&Path>) -> std::path::PathBuf {
    let p = Path::new(path);
    match dir {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_owned(),
    }
}

/// Converts `[tls]`.
pub(super) fn validate_tls(
    file: Option<Spanned<TlsFile>>,
    at: &Locator<'_>,
) -> Result<Tls, SourceError> {
    let Some(file) = file else {
        return Ok(Tls::default());
    };
    let span: Range<usize> = file.span();
    let t = file.into_inner();
    match (t.ca_cert, t.insecure) {
        (Some(_), true) => Err(at.error(
            at.key_in(span, Some("insecure")),
            "tls: give ca_cert or insecure = true, not both",
        )),
        (_, true) => Ok(Tls::Insecure),
        (ca_cert, false) => Ok(Tls::Verify {
            ca_cert: ca_cert.map(|c| resolve(&c, at.path.parent())),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::{Error, Scenario};
    use super::*;

    const HEAD: &str = "name = \"t\"\n[target]\nurl = \"https://ehr.test/fhir/\"\n\
                        [load]\nmodel = \"closed\"\nusers = 1\nduration = \"1s\"\n";

    fn parse(tail: &str) -> Result<Scenario, Error> {
        Scenario::from_str(&format!("{HEAD}{tail}"), Path::new("scenarios/s.toml"))
    }

    fn message(tail: &str) -> (usize, String) {
        match parse(tail).unwrap_err() {
            Error::Source(e) => (e.location.line, e.message),
            e => panic!("not located: {e}"),
        }
    }

    #[test]
    fn no_sections_mean_no_auth_and_verified_tls() {
        let s = parse("").unwrap();
        assert_eq!(s.auth, auth::Config::None);
        assert_eq!(s.tls, Tls::Verify { ca_cert: None });
    }

    #[test]
    fn a_smart_section_names_its_secrets_relative_to_the_scenario() {
        let s = parse(
            "[auth]\nkind = \"smart_backend\"\nclient_id_env = \"EPIC_CLIENT_ID\"\n\
             private_key_file = \"keys/epic.pem\"\nalg = \"ES384\"\nkid = \"k1\"\n\
             scopes = [\"system/Patient.rs\"]\n[tls]\nca_cert = \"/etc/test-ca.pem\"\n",
        )
        .unwrap();
        let auth::Config::Smart(smart) = s.auth else {
            panic!("{:?}", s.auth)
        };
        assert_eq!(smart.client_id, SecretSource::Env("EPIC_CLIENT_ID".into()));
        let key = PathBuf::from("scenarios/keys/epic.pem");
        assert_eq!(smart.private_key, Some(SecretSource::File(key)));
        assert_eq!(
            (smart.alg, smart.token_url, smart.scopes.len()),
            (Alg::Es384, None, 1)
        );
        let ca_cert = Some(PathBuf::from("/etc/test-ca.pem"));
        assert_eq!(s.tls, Tls::Verify { ca_cert });
    }

    #[test]
    fn a_literal_secret_is_refused_at_its_line_without_echoing_it() {
        let (line, m) = message("[auth]\nkind = \"bearer\"\ntoken = \"eyJsecret123\"\n");
        assert_eq!(line, 10, "{m}");
        assert!(
            m.contains("token_env") && !m.contains("eyJsecret123"),
            "{m}"
        );
        let (_, m) = message("[auth]\nkind = \"basic\"\nclient_secret = \"s3cr3t\"\n");
        assert!(
            m.contains("never go in the scenario") && !m.contains("s3cr3t"),
            "{m}"
        );
    }

    #[test]
    fn bad_auth_settings_are_located() {
        let smart = "[auth]\nkind = \"smart_backend\"\nclient_id_env = \"A\"\n\
                     private_key_env = \"B\"\nkid = \"k\"\n";
        let (line, m) = message(&format!("{smart}alg = \"RS256\"\n"));
        assert_eq!(line, 13, "{m}");
        assert!(m.contains("RS256") && m.contains("RS384 or ES384"), "{m}");
        let (_, m) = message(&format!("{smart}token_env = \"T\"\n"));
        assert!(m.contains("auth.token_env: not used with kind"), "{m}");
        let (_, m) = message("[auth]\nkind = \"bearer\"\ntoken_env = \"A\"\ntoken_file = \"f\"\n");
        assert!(m.contains("not both"), "{m}");
        let (_, m) = message("[auth]\nkind = \"smart_backend\"\nclient_id_env = \"A\"\n");
        assert!(m.contains("private_key_env"), "{m}");
    }

    #[test]
    fn insecure_tls_is_explicit_and_exclusive() {
        assert_eq!(
            parse("[tls]\ninsecure = true\n").unwrap().tls,
            Tls::Insecure
        );
        let (_, m) = message("[tls]\ninsecure = true\nca_cert = \"ca.pem\"\n");
        assert!(m.contains("not both"), "{m}");
    }
}
