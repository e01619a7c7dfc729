//! `[subscriptions]` of a profile: whether the EHR delivers classic R4 rest-hook
//! notifications and Subscriptions R5 Backport IG topic-based ones, each `supported`,
//! `unsupported` or `unknown` (the default: the run tries, and a refusal is then "not
//! measured" with the server's answer), with the sources that say so.

use serde::{Deserialize, Serialize};

use super::cite::SourceField;
use super::file::Ctx;
use crate::source::SourceError;

/// What the EHR is documented to do for one subscription form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Support {
    Supported,
    Unsupported,
    #[default]
    Unknown,
}

/// The validated `[subscriptions]` of a profile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Subscriptions {
    pub rest_hook: Support,
    pub topic: Support,
    /// Source keys behind the two answers.
    pub sources: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SubscriptionsFile {
    #[serde(default)]
    rest_hook: Support,
    #[serde(default)]
    topic: Support,
    #[serde(default)]
    source: SourceField,
}

impl SubscriptionsFile {
    pub fn validate(self, ctx: &Ctx<'_>) -> Result<Subscriptions, SourceError> {
        Ok(Subscriptions {
            rest_hook: self.rest_hook,
            topic: self.topic,
            sources: ctx.cite(self.source, "subscriptions")?,
        })
    }
}
