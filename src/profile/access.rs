//! Reaching the EHR: endpoints (base URL pattern), tenancy (how the tenant is named in
//! a request, whether ids are tenant-relative) and authorization (none, or SMART Backend
//! Services with the token flow the EHR expects).

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::cite::SourceField;
use super::file::Ctx;
use crate::source::SourceError;

/// Where the FHIR base lives.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoints {
    /// The base URL with `{placeholders}` (`{host}`, `{instance}`, `{tenant}`, …).
    pub base_url_pattern: String,
    /// A concrete base URL of the vendor's public sandbox, when there is one.
    pub sandbox_base_url: Option<String>,
    /// Whether the base must end in `/` for relative joins to work (athenahealth).
    pub trailing_slash_required: bool,
    pub notes: Option<String>,
    pub source: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EndpointsFile {
    base_url_pattern: Spanned<String>,
    #[serde(default)]
    sandbox_base_url: Option<Spanned<String>>,
    #[serde(default)]
    trailing_slash: TrailingSlash,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    source: SourceField,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TrailingSlash {
    Required,
    #[default]
    Optional,
}

/// How the tenant (health system, practice, domain) shows in a request.
#[derive(Clone, Debug, PartialEq)]
pub struct Tenancy {
    pub mode: TenancyMode,
    /// Ids (even MRNs) only mean something together with the tenant: the same id under
    /// another tenant may be a different patient.
    pub tenant_scoped_ids: bool,
    pub notes: Option<String>,
    pub source: Vec<String>,
}

/// Where the tenant goes.
#[derive(Clone, Debug, PartialEq)]
pub enum TenancyMode {
    /// One tenant per server.
    None,
    /// One organization per host name (Epic).
    Host,
    /// `{tenant}` in the base URL path (Oracle Health, eClinicalWorks).
    Path,
    /// A search parameter on every request (athenahealth `ah-practice`), its value built
    /// from `template` with `{tenant}`; a request without it answers `missing_error`.
    SearchParam {
        name: String,
        template: String,
        missing_error: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TenancyFile {
    mode: Spanned<ModeFile>,
    #[serde(default)]
    param: Option<String>,
    #[serde(default)]
    param_template: Option<Spanned<String>>,
    #[serde(default)]
    missing_error: Option<Spanned<String>>,
    #[serde(default)]
    ids: IdScope,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    source: SourceField,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ModeFile {
    None,
    Host,
    Path,
    SearchParam,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum IdScope {
    #[default]
    Global,
    Tenant,
}

/// What the EHR expects before it answers.
#[derive(Clone, Debug, PartialEq)]
pub struct Auth {
    pub kind: AuthKind,
    pub source: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AuthKind {
    /// Open endpoint: no token.
    None,
    SmartBackend(SmartBackend),
}

/// SMART App Launch 2.x Backend Services, as this EHR runs it.
#[derive(Clone, Debug, PartialEq)]
pub struct SmartBackend {
    pub token_endpoint: TokenEndpoint,
    /// Client authentication methods the token endpoint accepts.
    pub client_auth: Vec<ClientAuth>,
    /// JWT signing algorithms accepted for `private_key_jwt`; empty = not documented.
    pub algs: Vec<SigningAlg>,
    pub scope: ScopeStyle,
    /// The spelling grants come back in, when it differs from what was asked.
    pub granted_spelling: Option<ScopeStyle>,
    /// Expected `expires_in`; `None` = not documented (read `expires_in`).
    pub token_lifetime: Option<Duration>,
    /// Asking for tokens more often than this may be throttled (Oracle Health: 60 s).
    pub min_token_interval: Option<Duration>,
    /// Longest client-assertion `exp - now` accepted (SMART: 5 minutes).
    pub assertion_max_lifetime: Duration,
    /// Longest `jti` accepted (Epic: 151).
    pub jti_max_len: Option<u32>,
    /// A JWK Set URL (`jku`) must be registered; static keys are refused.
    pub jku_required: bool,
    /// How long a newly registered client is refused before it reaches the tenant.
    pub provisioning_lag: Option<Duration>,
}

/// How the token endpoint is found.
#[derive(Clone, Debug, PartialEq)]
pub enum TokenEndpoint {
    /// From `{base}/.well-known/smart-configuration`; `expected` is what it said when
    /// captured (a pattern with `{tenant}` where the tenant goes).
    Discovered { expected: Option<String> },
    /// A fixed URL (pattern), not discovered.
    Fixed(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    PrivateKeyJwt,
    ClientSecretBasic,
    ClientSecretPost,
    ClientSecretJwt,
}

impl ClientAuth {
    /// The RFC 7591 name (`client_secret_basic`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::PrivateKeyJwt => "private_key_jwt",
            ClientAuth::ClientSecretBasic => "client_secret_basic",
            ClientAuth::ClientSecretPost => "client_secret_post",
            ClientAuth::ClientSecretJwt => "client_secret_jwt",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum SigningAlg {
    RS384,
    ES384,
}

/// How scopes are spelled in the token request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeStyle {
    /// Send no `scope` parameter: grants follow the app registration (Epic).
    None,
    /// SMART v1: `system/Observation.read`.
    V1,
    /// SMART v2: `system/Observation.rs`.
    V2,
    /// Either spelling is accepted.
    V1OrV2,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuthFile {
    kind: Spanned<KindFile>,
    #[serde(default)]
    discovery: Option<Spanned<Discovery>>,
    #[serde(default)]
    token_endpoint: Option<Spanned<String>>,
    #[serde(default)]
    client_auth: Vec<ClientAuth>,
    #[serde(default)]
    algs: Vec<SigningAlg>,
    #[serde(default)]
    scope: Option<ScopeStyle>,
    #[serde(default)]
    granted_spelling: Option<ScopeStyle>,
    #[serde(default, with = "humantime_serde")]
    token_lifetime: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    min_token_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    assertion_max_lifetime: Option<Duration>,
    #[serde(default)]
    jti_max_len: Option<u32>,
    #[serde(default)]
    jku_required: bool,
    #[serde(default, with = "humantime_serde")]
    provisioning_lag: Option<Duration>,
    #[serde(default)]
    source: SourceField,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KindFile {
    None,
    SmartBackend,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Discovery {
    SmartConfig,
    Fixed,
}

impl EndpointsFile {
    pub fn validate(self, ctx: &Ctx<'_>) -> Result<Endpoints, SourceError> {
        let span = self.base_url_pattern.span();
        let pattern = self.base_url_pattern.into_inner();
        check_url(&pattern)
            .map_err(|m| ctx.error(span, format!("endpoints.base_url_pattern: {m}")))?;
        let sandbox = match self.sandbox_base_url {
            Some(s) => {
                let span = s.span();
                let url = s.into_inner();
                url::Url::parse(&url)
                    .map_err(|e| ctx.error(span, format!("endpoints.sandbox_base_url: {e}")))?;
                Some(url)
            }
            None => None,
        };
        Ok(Endpoints {
            base_url_pattern: pattern,
            sandbox_base_url: sandbox,
            trailing_slash_required: matches!(self.trailing_slash, TrailingSlash::Required),
            notes: self.notes,
            source: ctx.cite(self.source, "endpoints.source")?,
        })
    }
}

/// An http(s) URL pattern whose `{placeholders}` are plain names.
pub(super) fn check_url(pattern: &str) -> Result<(), String> {
    if !(pattern.starts_with("https://") || pattern.starts_with("http://")) {
        return Err(format!("`{pattern}` must start with https:// or http://"));
    }
    placeholders(pattern).map(|_| ())
}

/// The `{names}` of a pattern, or why it is malformed.
pub(super) fn placeholders(pattern: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("`{pattern}`: `{{` without `}}`"));
        };
        let name = &rest[open + 1..open + close];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "`{pattern}`: `{{{name}}}` is not a placeholder name"
            ));
        }
        names.push(name);
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("`{pattern}`: `}}` without `{{`"));
    }
    Ok(names)
}

impl TenancyFile {
    pub fn validate(self, ctx: &Ctx<'_>, endpoints: &Endpoints) -> Result<Tenancy, SourceError> {
        let mode_span = self.mode.span();
        let mode = match *self.mode.get_ref() {
            ModeFile::None => TenancyMode::None,
            ModeFile::Host => TenancyMode::Host,
            ModeFile::Path => {
                let names = placeholders(&endpoints.base_url_pattern).unwrap_or_default();
                if !names.contains(&"tenant") {
                    return Err(ctx.error(
                        mode_span,
                        "tenancy.mode = \"path\": endpoints.base_url_pattern must contain `{tenant}`",
                    ));
                }
                TenancyMode::Path
            }
            ModeFile::SearchParam => self.search_param(ctx, mode_span.clone())?,
        };
        if !matches!(mode, TenancyMode::SearchParam { .. })
            && (self.param.is_some() || self.param_template.is_some())
        {
            return Err(ctx.error(
                mode_span,
                "tenancy.param and tenancy.param_template only apply to mode = \"search_param\"",
            ));
        }
        Ok(Tenancy {
            mode,
            tenant_scoped_ids: matches!(self.ids, IdScope::Tenant),
            notes: self.notes,
            source: ctx.cite(self.source, "tenancy.source")?,
        })
    }

    fn search_param(
        &self,
        ctx: &Ctx<'_>,
        span: std::ops::Range<usize>,
    ) -> Result<TenancyMode, SourceError> {
        let need =
            "tenancy.mode = \"search_param\" needs `param`, `param_template` and `missing_error`";
        let (Some(name), Some(template), Some(missing)) =
            (&self.param, &self.param_template, &self.missing_error)
        else {
            return Err(ctx.error(span, need));
        };
        let names = placeholders(template.get_ref())
            .map_err(|m| ctx.error(template.span(), format!("tenancy.param_template: {m}")))?;
        if names != ["tenant"] {
            return Err(ctx.error(
                template.span(),
                "tenancy.param_template: must contain `{tenant}` and no other placeholder",
            ));
        }
        Ok(TenancyMode::SearchParam {
            name: name.clone(),
            template: template.get_ref().clone(),
            missing_error: ctx.error_ref(missing.clone(), "tenancy.missing_error")?,
        })
    }
}

impl AuthFile {
    pub fn validate(self, ctx: &Ctx<'_>) -> Result<Auth, SourceError> {
        let kind_span = self.kind.span();
        let kind = match *self.kind.get_ref() {
            KindFile::None => {
                if self.has_token_settings() {
                    return Err(
                        ctx.error(kind_span, "auth.kind = \"none\" takes no token settings")
                    );
                }
                AuthKind::None
            }
            KindFile::SmartBackend => AuthKind::SmartBackend(self.smart(ctx, kind_span.clone())?),
        };
        Ok(Auth {
            kind,
            source: ctx.cite(self.source, "auth.source")?,
        })
    }

    fn has_token_settings(&self) -> bool {
        self.discovery.is_some()
            || self.token_endpoint.is_some()
            || self.scope.is_some()
            || self.granted_spelling.is_some()
            || !self.client_auth.is_empty()
            || !self.algs.is_empty()
            || self.token_lifetime.is_some()
            || self.min_token_interval.is_some()
            || self.assertion_max_lifetime.is_some()
            || self.jti_max_len.is_some()
            || self.jku_required
            || self.provisioning_lag.is_some()
    }

    fn smart(
        &self,
        ctx: &Ctx<'_>,
        span: std::ops::Range<usize>,
    ) -> Result<SmartBackend, SourceError> {
        let (Some(discovery), Some(scope)) = (&self.discovery, self.scope) else {
            return Err(ctx.error(
                span,
                "auth.kind = \"smart_backend\" needs `discovery` and `scope`",
            ));
        };
        if self.client_auth.is_empty() {
            return Err(ctx.error(span, "auth.client_auth: list at least one method"));
        }
        if let Some(t) = &self.token_endpoint {
            check_url(t.get_ref())
                .map_err(|m| ctx.error(t.span(), format!("auth.token_endpoint: {m}")))?;
        }
        let token_endpoint = match (discovery.get_ref(), &self.token_endpoint) {
            (Discovery::SmartConfig, t) => TokenEndpoint::Discovered {
                expected: t.as_ref().map(|t| t.get_ref().clone()),
            },
            (Discovery::Fixed, Some(t)) => TokenEndpoint::Fixed(t.get_ref().clone()),
            (Discovery::Fixed, None) => {
                return Err(ctx.error(
                    discovery.span(),
                    "auth.discovery = \"fixed\" needs `token_endpoint`",
                ));
            }
        };
        Ok(SmartBackend {
            token_endpoint,
            client_auth: self.client_auth.clone(),
            algs: self.algs.clone(),
            scope,
            granted_spelling: self.granted_spelling,
            token_lifetime: self.token_lifetime,
            min_token_interval: self.min_token_interval,
            assertion_max_lifetime: self
                .assertion_max_lifetime
                .unwrap_or(Duration::from_secs(300)),
            jti_max_len: self.jti_max_len,
            jku_required: self.jku_required,
            provisioning_lag: self.provisioning_lag,
        })
    }
}
