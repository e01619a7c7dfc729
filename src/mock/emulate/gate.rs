//! The gate every routed request of an emulated EHR passes first: rate limit, daily caps,
//! maintenance windows, the tenancy parameter, and whether the EHR has the interaction at
//! all. The decision is a pure function of the request's shape and the time; the
//! middleware applies it (refuse, slow down, drop the connection, or pass).

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use super::Emulation;
use super::refusal::Refusal;
use crate::mock::Ehr;
use crate::mock::conn::ConnHandle;
use crate::mock::outcome::Problem;
use crate::mock::silent::is_type_name;
use crate::profile::{Effect, Limit, RatePolicy, TenancyMode, Throttle, Verb};
use crate::vocab::interaction::Interaction;

/// Most times a throttled request waits for a slot before it is let through anyway.
const MAX_WAITS: usize = 64;

/// The gate on `routes`.
pub fn layer(routes: Router<Ehr>, ehr: &Ehr) -> Router<Ehr> {
    routes.route_layer(middleware::from_fn_with_state(ehr.clone(), gate))
}

/// What a request is, for the gate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `/__fhirsurge/*`: never gated.
    Harness,
    /// A FHIR interaction, on a resource type when it has one.
    Fhir {
        rt: Option<String>,
        interaction: Interaction,
        tenant_named: bool,
    },
    /// `PATCH` or `DELETE` of an instance (verbs the harness itself never uses).
    Amend {
        rt: String,
        verb: Verb,
        tenant_named: bool,
    },
    /// A method the mock does not route on a type: counted, then left to the router
    /// (405).
    Unrouted,
    /// Anything else served (authorization endpoints).
    Auth,
}

/// What the gate does with a request.
#[derive(Debug, PartialEq)]
pub enum Decision {
    Pass,
    Refuse(Box<Refusal>),
    /// Over the limit of an EHR that slows down: wait, then ask again.
    Wait(Duration),
    /// Over the limit of an EHR that drops connections.
    Drop,
}

async fn gate(State(ehr): State<Ehr>, req: Request, next: Next) -> Response {
    let emu = &ehr.shared.emulation;
    let call = classify(
        req.method(),
        req.uri().path(),
        req.uri().query(),
        req.headers(),
        emu,
    );
    for _ in 0..MAX_WAITS {
        match emu.decide(&call) {
            Decision::Pass => break,
            Decision::Refuse(r) => return r.into_response(),
            Decision::Wait(d) => tokio::time::sleep(d).await,
            Decision::Drop => {
                if let Some(c) = req.extensions().get::<ConnHandle>() {
                    c.abort();
                }
                return Problem::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "throttled",
                    "dropped: over the rate limit",
                )
                .into_response();
            }
        }
    }
    next.run(req).await
}

/// Classifies a request by method and path.
pub fn classify(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    emu: &Emulation,
) -> Call {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let tenant_named = match &emu.profile.tenancy.mode {
        TenancyMode::SearchParam { name, .. } => {
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .any(|(k, v)| k == name.as_str() && !v.is_empty())
        }
        _ => true,
    };
    let fhir = |rt: Option<&str>, interaction| Call::Fhir {
        rt: rt.map(str::to_owned),
        interaction,
        tenant_named,
    };
    let get = method == Method::GET;
    match parts.as_slice() {
        ["__fhirsurge", ..] => Call::Harness,
        ["metadata"] => fhir(None, Interaction::Capabilities),
        [] if method == Method::POST => fhir(None, Interaction::Transaction),
        [rt, rest @ ..] if is_type_name(rt) => {
            let interaction = match (rest, method.as_str()) {
                ([], "GET") => Interaction::Search,
                ([], "POST") if headers.contains_key("if-none-exist") => {
                    Interaction::ConditionalCreate
                }
                ([], "POST") => Interaction::Create,
                ([_], "GET") => Interaction::Read,
                ([_], "PUT") => Interaction::Update,
                // A Subscription's lifecycle follows `[subscriptions]` (`notify`), not
                // the type's interactions.
                ([_], "PATCH" | "DELETE") if *rt != "Subscription" => {
                    let verb = if method == Method::PATCH {
                        Verb::Patch
                    } else {
                        Verb::Delete
                    };
                    return Call::Amend {
                        rt: (*rt).to_owned(),
                        verb,
                        tenant_named,
                    };
                }
                ([_, "_history"], _) if get => Interaction::History,
                ([_, "_history", _], _) if get => Interaction::Vread,
                _ => return Call::Unrouted,
            };
            fhir(Some(rt), interaction)
        }
        _ => Call::Auth,
    }
}

impl Emulation {
    /// The gate's decision for one request now.
    pub fn decide(&self, call: &Call) -> Decision {
        let (rt, op, tenant_named) = match call {
            Call::Harness => return Decision::Pass,
            Call::Auth => return self.throttle(true),
            Call::Unrouted => return self.throttle(false),
            Call::Fhir {
                rt,
                interaction,
                tenant_named,
            } => (rt.as_deref(), Op::Rest(*interaction), *tenant_named),
            Call::Amend {
                rt,
                verb,
                tenant_named,
            } => (Some(rt.as_str()), Op::Amend(*verb), *tenant_named),
        };
        match self.throttle(false) {
            Decision::Pass => {}
            other => return other,
        }
        let refuse = |r: Refusal| Decision::Refuse(Box::new(r));
        let p = &self.profile;
        let verb = op.verb();
        let mut daily = self
            .daily
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((cap, wait)) = daily.count(&p.rate_limit.daily_caps, rt, verb, self.wall()) {
            let mut r = Refusal::named(p, &cap.error);
            r.retry_after = Some(wait.as_secs());
            return refuse(r);
        }
        drop(daily);
        if let Some(r) = self.maintenance(op.is_write()) {
            return refuse(r);
        }
        if let TenancyMode::SearchParam {
            name,
            missing_error,
            ..
        } = &p.tenancy.mode
            && !tenant_named
            && op != Op::Rest(Interaction::Capabilities)
        {
            return refuse(
                Refusal::named(p, missing_error).with_detail(format!("`{name}` is missing")),
            );
        }
        match self.unsupported(rt, op) {
            Some(r) => refuse(r),
            None => Decision::Pass,
        }
    }

    /// Counts the request against the rate limit (auth requests only when they count).
    fn throttle(&self, auth: bool) -> Decision {
        let (Some(limiter), RatePolicy::Limited(limit)) =
            (&self.limiter, &self.profile.rate_limit.policy)
        else {
            return Decision::Pass;
        };
        if auth && !limit.includes_auth {
            return Decision::Pass;
        }
        let admitted = limiter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .admit(self.wall());
        match admitted {
            Ok(()) => Decision::Pass,
            Err(wait) => self.over(limit, wait),
        }
    }

    fn over(&self, limit: &Limit, wait: Duration) -> Decision {
        match &limit.throttle {
            Throttle::Latency => Decision::Wait(wait.max(Duration::from_millis(1))),
            Throttle::Disconnect => Decision::Drop,
            Throttle::Error {
                error, retry_after, ..
            } => {
                let mut r = Refusal::named(&self.profile, error);
                if *retry_after {
                    r.retry_after = Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
                }
                Decision::Refuse(Box::new(r))
            }
        }
    }

    /// The refusal of a `down` window, or of a write in a `read_only` one.
    fn maintenance(&self, write: bool) -> Option<Refusal> {
        let m = self.profile.maintenance_at(chrono::Utc::now())?;
        let error = match &m.effect {
            Effect::Down { error, .. } => error,
            Effect::ReadOnly { error, .. } if write => error,
            Effect::ReadOnly { .. } | Effect::Wipe => return None,
        };
        Some(Refusal::named(&self.profile, error).with_detail(format!("maintenance: {}", m.name)))
    }

    /// The refusal of an interaction the EHR does not have. Names that are not FHIR R4
    /// types are left to the mock (it answers them as the baseline does).
    fn unsupported(&self, rt: Option<&str>, op: Op) -> Option<Refusal> {
        let p = &self.profile;
        let what = match (rt, op) {
            (None, Op::Rest(Interaction::Transaction))
                if !p.write.transaction && !p.write.batch =>
            {
                "transaction and batch Bundles are".to_owned()
            }
            (Some(rt), Op::Rest(i)) if p.resource(rt).is_some() && !p.supports(rt, i) => {
                format!("{} of {rt} is", verb_name(i))
            }
            (Some(rt), Op::Amend(v)) if !p.supports_verb(rt, v) => {
                let name = if v == Verb::Patch { "patch" } else { "delete" };
                format!("{name} of {rt} is")
            }
            _ => return None,
        };
        Some(Refusal::unsupported(
            p,
            format!("{what} not supported by this server ({})", p.name),
        ))
    }
}

/// What a gated request does: a REST interaction the harness uses, or a patch or delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Rest(Interaction),
    Amend(Verb),
}

impl Op {
    fn verb(self) -> Option<Verb> {
        match self {
            Op::Rest(i) => Verb::of(i),
            Op::Amend(v) => Some(v),
        }
    }

    fn is_write(self) -> bool {
        match self {
            Op::Rest(i) => i.is_write(),
            Op::Amend(_) => true,
        }
    }
}

fn verb_name(i: Interaction) -> &'static str {
    match i {
        Interaction::Create => "create",
        Interaction::ConditionalCreate => "conditional create",
        Interaction::Read => "read",
        Interaction::Vread => "vread",
        Interaction::Update => "update",
        Interaction::Search => "search",
        Interaction::History => "history",
        Interaction::Transaction => "transaction",
        Interaction::Batch => "batch",
        Interaction::Capabilities => "capabilities",
        Interaction::Token => "token",
    }
}

#[cfg(test)]
mod tests;
