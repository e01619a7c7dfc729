//! Per-resource write rules: what a write must carry, which values the EHR accepts, what
//! it silently drops, rewrites, truncates or remaps, whether it needs an encounter,
//! where the write lands (chart or holding area) and what a replayed create does.

use std::num::NonZeroUsize;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use super::access::placeholders;
use super::cite::{ElementPath, SourceField};
use super::file::Ctx;
use crate::source::SourceError;

/// What the EHR does to a write of one resource type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteRules {
    /// Elements a write must carry; a write without one answers `required_error`.
    pub required: Vec<ElementPath>,
    pub required_error: Option<String>,
    /// Coded elements restricted to a value list.
    pub allowed: Vec<Allowed>,
    /// Elements silently dropped (not stored, or not echoed back).
    pub drops: Vec<Dropped>,
    /// Elements the server changes (normalises, sets, converts).
    pub rewrites: Vec<Rewrite>,
    /// Strings cut to a maximum length.
    pub truncations: Vec<Truncation>,
    /// Codes mapped to other codes.
    pub remaps: Vec<Remap>,
    pub encounter: EncounterNeed,
    pub landing: Landing,
    pub replay: Replay,
    /// Overrides `write.create_status` (Oracle Health ChargeItem: 200).
    pub create_status: Option<u16>,
    /// How the server forms new ids of this type (`VS-{n}`, `a-{tenant}.E-{n}`);
    /// overrides `identifiers.id_style`.
    pub id_template: Option<String>,
    pub source: Vec<String>,
}

/// A restricted element: any other value answers `error`. For a primitive element the
/// values are its value (`"final"`, `true`); for a code-bearing element (Coding,
/// CodeableConcept) they are codes, and a write passes when one of its codes is listed.
#[derive(Clone, Debug, PartialEq)]
pub struct Allowed {
    pub path: ElementPath,
    pub values: Vec<Value>,
    pub error: String,
    pub source: Vec<String>,
}

/// An element the server drops.
#[derive(Clone, Debug, PartialEq)]
pub struct Dropped {
    pub path: ElementPath,
    pub source: Vec<String>,
}

/// An element the server changes.
#[derive(Clone, Debug, PartialEq)]
pub struct Rewrite {
    pub path: ElementPath,
    pub change: Change,
    pub source: Vec<String>,
}

/// How an element is changed.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Set to this value whatever was sent.
    Set(Value),
    /// An array keeps only its first `n` items (Epic: only the first attachment).
    KeepFirst(NonZeroUsize),
    /// A coding of this system is added next to the ones sent.
    AddCoding { system: String },
    /// Replaced by the value at another path (Epic: `code.text` from the coding display).
    CopyFrom(ElementPath),
    /// Changed in a way a file cannot replay (unit conversion, XHTML to RTF): described.
    Transform(String),
}

/// A string cut at `max_len` characters.
#[derive(Clone, Debug, PartialEq)]
pub struct Truncation {
    pub path: ElementPath,
    pub max_len: NonZeroUsize,
    pub source: Vec<String>,
}

/// A code replaced by another (`system` when the element is a Coding).
#[derive(Clone, Debug, PartialEq)]
pub struct Remap {
    pub path: ElementPath,
    pub system: Option<String>,
    pub from: String,
    pub to: String,
    pub source: Vec<String>,
}

/// Whether a write must point at an encounter.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum EncounterNeed {
    #[default]
    NotNeeded,
    /// An existing encounter of the same patient; otherwise `error`.
    Existing { error: String },
    /// An open encounter (not closed, not a future appointment); otherwise `error`.
    Open { error: String },
}

/// Where an acknowledged write lands.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Landing {
    /// On the chart: readable and searchable at once.
    #[default]
    Immediately,
    /// In a holding area (Epic's holding tank): readable by id but invisible to search
    /// until reconciled; after `visible_after` if set, otherwise only when a clinician
    /// reconciles it (possibly never during a run).
    HoldingArea { visible_after: Option<Duration> },
}

/// What a replayed create (same content sent again) does.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Replay {
    /// A second record with a new id: creates are not idempotent.
    #[default]
    NewRecord,
    /// Refused when a record with the same `key` elements exists.
    Rejected {
        key: Vec<ElementPath>,
        error: String,
    },
    /// Answers success with the existing record's id (match-or-create).
    ReturnsExisting { key: Vec<ElementPath> },
}

impl WriteRules {
    /// Top-level elements the server changes: what the checker must not count as
    /// differences between what was written and what is read back.
    pub fn changed_elements(&self) -> impl Iterator<Item = &str> {
        let drops = self.drops.iter().map(|d| d.path.top_level());
        let rewrites = self.rewrites.iter().map(|r| r.path.top_level());
        let truncs = self.truncations.iter().map(|t| t.path.top_level());
        let remaps = self.remaps.iter().map(|r| r.path.top_level());
        drops.chain(rewrites).chain(truncs).chain(remaps)
    }

    /// Whether any rule changes what is stored.
    pub fn transforms(&self) -> bool {
        self.changed_elements().next().is_some()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WriteRulesFile {
    #[serde(default)]
    required: Vec<Spanned<String>>,
    #[serde(default)]
    required_error: Option<Spanned<String>>,
    #[serde(default)]
    allowed: Vec<AllowedFile>,
    #[serde(default)]
    drops: Vec<DropFile>,
    #[serde(default)]
    rewrites: Vec<RewriteFile>,
    #[serde(default)]
    truncations: Vec<TruncationFile>,
    #[serde(default)]
    remaps: Vec<RemapFile>,
    #[serde(default)]
    encounter: Option<Spanned<EncounterFile>>,
    #[serde(default)]
    encounter_error: Option<Spanned<String>>,
    #[serde(default)]
    lands: Option<Spanned<LandsFile>>,
    #[serde(default, with = "humantime_serde")]
    visible_after: Option<Duration>,
    #[serde(default)]
    replay: Option<Spanned<ReplayFile>>,
    #[serde(default)]
    replay_key: Vec<Spanned<String>>,
    #[serde(default)]
    replay_error: Option<Spanned<String>>,
    #[serde(default)]
    create_status: Option<Spanned<u16>>,
    #[serde(default)]
    id_template: Option<Spanned<String>>,
    #[serde(default)]
    source: SourceField,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowedFile {
    path: Spanned<String>,
    values: Vec<Value>,
    error: Spanned<String>,
    #[serde(default)]
    source: SourceField,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DropFile {
    path: Spanned<String>,
    #[serde(default)]
    source: SourceField,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RewriteFile {
    path: Spanned<String>,
    #[serde(default)]
    set: Option<Value>,
    #[serde(default)]
    keep_first: Option<NonZeroUsize>,
    #[serde(default)]
    add_coding: Option<String>,
    #[serde(default)]
    copy_from: Option<Spanned<String>>,
    #[serde(default)]
    transform: Option<String>,
    #[serde(default)]
    source: SourceField,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TruncationFile {
    path: Spanned<String>,
    max_len: NonZeroUsize,
    #[serde(default)]
    source: SourceField,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemapFile {
    path: Spanned<String>,
    #[serde(default)]
    system: Option<String>,
    from: String,
    to: String,
    #[serde(default)]
    source: SourceField,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum EncounterFile {
    NotNeeded,
    Existing,
    Open,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum LandsFile {
    Immediately,
    HoldingArea,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ReplayFile {
    NewRecord,
    Rejected,
    ReturnsExisting,
}

impl WriteRulesFile {
    pub fn validate(
        self,
        ctx: &Ctx<'_>,
        key: &str,
        table: Range<usize>,
    ) -> Result<WriteRules, SourceError> {
        let required = self
            .required
            .clone()
            .into_iter()
            .map(|p| ctx.path(p, &format!("{key}.required")))
            .collect::<Result<Vec<_>, _>>()?;
        let required_error = match (required.is_empty(), self.required_error.clone()) {
            (false, Some(e)) => Some(ctx.error_ref(e, &format!("{key}.required_error"))?),
            (true, None) => None,
            (false, None) => {
                return Err(ctx.error(
                    self.required[0].span(),
                    format!("{key}.required needs `required_error`"),
                ));
            }
            (true, Some(e)) => {
                return Err(ctx.error(e.span(), format!("{key}.required_error without `required`")));
            }
        };
        Ok(WriteRules {
            required,
            required_error,
            allowed: self.allowed(ctx, key)?,
            drops: self.drops(ctx, key)?,
            rewrites: self.rewrites(ctx, key)?,
            truncations: self.truncations(ctx, key)?,
            remaps: self.remaps(ctx, key)?,
            encounter: self.encounter(ctx, key)?,
            landing: self.landing(ctx, key, table.clone())?,
            replay: self.replay(ctx, key, table)?,
            create_status: self.create_status(ctx, key)?,
            id_template: self.id_template(ctx, key)?,
            source: ctx.cite(self.source, &format!("{key}.source"))?,
        })
    }

    fn allowed(&self, ctx: &Ctx<'_>, key: &str) -> Result<Vec<Allowed>, SourceError> {
        let key = format!("{key}.allowed");
        let mut out = Vec::new();
        for a in &self.allowed {
            if a.values.is_empty() {
                return Err(ctx.error(a.path.span(), format!("{key}: `values` is empty")));
            }
            out.push(Allowed {
                path: ctx.path(a.path.clone(), &key)?,
                values: a.values.clone(),
                error: ctx.error_ref(a.error.clone(), &format!("{key}.error"))?,
                source: ctx.cite(clone_source(&a.source), &format!("{key}.source"))?,
            });
        }
        Ok(out)
    }

    fn drops(&self, ctx: &Ctx<'_>, key: &str) -> Result<Vec<Dropped>, SourceError> {
        let key = format!("{key}.drops");
        self.drops
            .iter()
            .map(|d| {
                Ok(Dropped {
                    path: ctx.concrete_path(d.path.clone(), &key)?,
                    source: ctx.cite(clone_source(&d.source), &format!("{key}.source"))?,
                })
            })
            .collect()
    }

    fn rewrites(&self, ctx: &Ctx<'_>, key: &str) -> Result<Vec<Rewrite>, SourceError> {
        let key = format!("{key}.rewrites");
        self.rewrites
            .iter()
            .map(|r| {
                Ok(Rewrite {
                    path: ctx.concrete_path(r.path.clone(), &key)?,
                    change: r.change(ctx, &key)?,
                    source: ctx.cite(clone_source(&r.source), &format!("{key}.source"))?,
                })
            })
            .collect()
    }

    fn truncations(&self, ctx: &Ctx<'_>, key: &str) -> Result<Vec<Truncation>, SourceError> {
        let key = format!("{key}.truncations");
        self.truncations
            .iter()
            .map(|t| {
                Ok(Truncation {
                    path: ctx.concrete_path(t.path.clone(), &key)?,
                    max_len: t.max_len,
                    source: ctx.cite(clone_source(&t.source), &format!("{key}.source"))?,
                })
            })
            .collect()
    }

    fn remaps(&self, ctx: &Ctx<'_>, key: &str) -> Result<Vec<Remap>, SourceError> {
        let key = format!("{key}.remaps");
        self.remaps
            .iter()
            .map(|r| {
                if r.from == r.to {
                    return Err(ctx.error(
                        r.path.span(),
                        format!("{key}: `from` and `to` are both `{}`", r.from),
                    ));
                }
                Ok(Remap {
                    path: ctx.concrete_path(r.path.clone(), &key)?,
                    system: r.system.clone(),
                    from: r.from.clone(),
                    to: r.to.clone(),
                    source: ctx.cite(clone_source(&r.source), &format!("{key}.source"))?,
                })
            })
            .collect()
    }

    fn encounter(&self, ctx: &Ctx<'_>, key: &str) -> Result<EncounterNeed, SourceError> {
        let need = self.encounter.as_ref().map(|e| (*e.get_ref(), e.span()));
        let error = self.encounter_error.clone();
        let ekey = format!("{key}.encounter_error");
        Ok(match (need, error) {
            (None | Some((EncounterFile::NotNeeded, _)), None) => EncounterNeed::NotNeeded,
            (Some((EncounterFile::Existing, _)), Some(e)) => EncounterNeed::Existing {
                error: ctx.error_ref(e, &ekey)?,
            },
            (Some((EncounterFile::Open, _)), Some(e)) => EncounterNeed::Open {
                error: ctx.error_ref(e, &ekey)?,
            },
            (Some((_, span)), None) => {
                return Err(ctx.error(span, format!("{key}.encounter needs `encounter_error`")));
            }
            (_, Some(e)) => {
                return Err(ctx.error(
                    e.span(),
                    format!("{ekey} needs encounter = \"existing\" or \"open\""),
                ));
            }
        })
    }

    fn landing(
        &self,
        ctx: &Ctx<'_>,
        key: &str,
        table: Range<usize>,
    ) -> Result<Landing, SourceError> {
        match (
            self.lands.as_ref().map(|l| (*l.get_ref(), l.span())),
            self.visible_after,
        ) {
            (Some((LandsFile::HoldingArea, _)), visible_after) => {
                Ok(Landing::HoldingArea { visible_after })
            }
            (_, None) => Ok(Landing::Immediately),
            (Some((_, span)), Some(_)) => Err(ctx.error(
                span,
                format!("{key}.visible_after needs lands = \"holding_area\""),
            )),
            (None, Some(_)) => Err(ctx.error(
                table,
                format!("{key}.visible_after needs lands = \"holding_area\""),
            )),
        }
    }

    fn replay(&self, ctx: &Ctx<'_>, key: &str, table: Range<usize>) -> Result<Replay, SourceError> {
        let keys = self
            .replay_key
            .iter()
            .map(|k| ctx.path(k.clone(), &format!("{key}.replay_key")))
            .collect::<Result<Vec<_>, _>>()?;
        let kind = self.replay.as_ref().map(|r| (*r.get_ref(), r.span()));
        let error = self.replay_error.clone();
        let wrong = |span, what: &str| Err(ctx.error(span, format!("{key}.replay: {what}")));
        match (kind, keys.is_empty(), error) {
            (None | Some((ReplayFile::NewRecord, _)), true, None) => Ok(Replay::NewRecord),
            (Some((ReplayFile::Rejected, _)), false, Some(e)) => Ok(Replay::Rejected {
                key: keys,
                error: ctx.error_ref(e, &format!("{key}.replay_error"))?,
            }),
            (Some((ReplayFile::ReturnsExisting, _)), false, None) => {
                Ok(Replay::ReturnsExisting { key: keys })
            }
            (Some((ReplayFile::Rejected, span)), _, _) => {
                wrong(span, "\"rejected\" needs `replay_key` and `replay_error`")
            }
            (Some((ReplayFile::ReturnsExisting, span)), _, _) => wrong(
                span,
                "\"returns_existing\" needs `replay_key` and no `replay_error`",
            ),
            (Some((ReplayFile::NewRecord, span)), _, _) => wrong(
                span,
                "\"new_record\" takes no `replay_key` or `replay_error`",
            ),
            (None, _, _) => wrong(table, "`replay_key`/`replay_error` need `replay`"),
        }
    }

    fn create_status(&self, ctx: &Ctx<'_>, key: &str) -> Result<Option<u16>, SourceError> {
        match &self.create_status {
            Some(s) if !(200..=299).contains(s.get_ref()) => {
                Err(ctx.error(s.span(), format!("{key}.create_status: a 2xx status")))
            }
            s => Ok(s.as_ref().map(|s| *s.get_ref())),
        }
    }

    fn id_template(&self, ctx: &Ctx<'_>, key: &str) -> Result<Option<String>, SourceError> {
        let Some(t) = &self.id_template else {
            return Ok(None);
        };
        check_id_template(t.get_ref())
            .map_err(|m| ctx.error(t.span(), format!("{key}.id_template: {m}")))?;
        Ok(Some(t.get_ref().clone()))
    }
}

/// An id template: `{n}` (a counter) required, `{tenant}` allowed, nothing else.
pub(super) fn check_id_template(t: &str) -> Result<(), String> {
    let names = placeholders(t)?;
    if !names.contains(&"n") || names.iter().any(|n| !matches!(*n, "n" | "tenant")) {
        return Err(format!(
            "`{t}` must contain `{{n}}` and may contain `{{tenant}}`, nothing else"
        ));
    }
    Ok(())
}

impl RewriteFile {
    fn change(&self, ctx: &Ctx<'_>, key: &str) -> Result<Change, SourceError> {
        let mut changes = Vec::new();
        if let Some(v) = &self.set {
            changes.push(Change::Set(v.clone()));
        }
        if let Some(n) = self.keep_first {
            changes.push(Change::KeepFirst(n));
        }
        if let Some(s) = &self.add_coding {
            changes.push(Change::AddCoding { system: s.clone() });
        }
        if let Some(p) = &self.copy_from {
            changes.push(Change::CopyFrom(
                ctx.path(p.clone(), &format!("{key}.copy_from"))?,
            ));
        }
        if let Some(t) = &self.transform {
            changes.push(Change::Transform(t.clone()));
        }
        match changes.len() {
            1 => Ok(changes.remove(0)),
            _ => Err(ctx.error(
                self.path.span(),
                format!(
                    "{key}: give exactly one of set, keep_first, add_coding, copy_from, transform"
                ),
            )),
        }
    }
}

fn clone_source(s: &SourceField) -> SourceField {
    s.as_ref()
        .map(|s| Spanned::new(s.span(), s.get_ref().clone()))
}
