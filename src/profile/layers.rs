//! The text layers of one profile: the base file and an optional tenant overlay, parsed
//! with spans, deep-merged (overlay values replace base values, tables merge recursively,
//! arrays replace), and deserialized once. Every span of the merged tree still says which
//! file and where: overlay spans are shifted past the end of the base text, and
//! [`Locator`] maps a span back to `file:line:column`.

use std::ops::Range;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::source::{Location, SourceError};

/// One TOML text and the path it is shown under.
#[derive(Debug)]
pub(super) struct Text {
    pub path: PathBuf,
    pub text: String,
}

/// Maps spans of the merged tree back to the file they came from.
#[derive(Debug)]
pub(super) struct Locator {
    base: Text,
    overlay: Option<Text>,
}

/// The key an overlay file uses to name the profile it applies to.
pub(super) const BASE_KEY: &str = "base";

impl Locator {
    pub fn new(base: Text, overlay: Option<Text>) -> Locator {
        Locator { base, overlay }
    }

    /// Where overlay spans start in the merged tree.
    fn offset(&self) -> usize {
        self.base.text.len() + 1
    }

    /// The location of a span of the merged tree.
    pub fn locate(&self, span: Option<Range<usize>>) -> Location {
        match (&self.overlay, span) {
            (Some(o), Some(s)) if s.start >= self.offset() => {
                Location::at(&o.path, &o.text, s.start - self.offset())
            }
            (_, span) => Location::of_span(&self.base.path, &self.base.text, span),
        }
    }

    /// A located error.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> SourceError {
        SourceError {
            location: self.locate(Some(span)),
            message: message.into(),
        }
    }

    /// Parses both layers, merges them and deserializes the result into `T`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, SourceError> {
        let mut root = parse(&self.base)?;
        if let Some(overlay) = &self.overlay {
            let mut top = parse(overlay)?.into_inner();
            top.remove(BASE_KEY);
            merge(root.get_mut(), shift_table(top, self.offset()));
        }
        T::deserialize(toml::de::Deserializer::from(root)).map_err(|e| SourceError {
            location: self.locate(e.span()),
            message: e.message().trim().to_owned(),
        })
    }
}

/// Parses one text into a spanned table, locating a syntax error in that text.
pub(super) fn parse(t: &Text) -> Result<Spanned<DeTable<'_>>, SourceError> {
    DeTable::parse(&t.text).map_err(|e| SourceError {
        location: Location::of_span(&t.path, &t.text, e.span()),
        message: e.message().trim().to_owned(),
    })
}

/// The string value of a top-level key, with its span, if the text sets it.
pub(super) fn top_level_str(t: &Text, key: &str) -> Result<Option<Spanned<String>>, SourceError> {
    let root = parse(t)?;
    let Some(value) = root.get_ref().get(key) else {
        return Ok(None);
    };
    match value.get_ref() {
        DeValue::String(s) => Ok(Some(Spanned::new(value.span(), s.to_string()))),
        _ => Err(SourceError {
            location: Location::of_span(&t.path, &t.text, Some(value.span())),
            message: format!("`{key}` must be a string: the profile this overlay applies to"),
        }),
    }
}

/// Merges `overlay` into `base`: tables merge key by key, anything else is replaced
/// (arrays included), and a replaced key keeps the overlay's span.
fn merge<'i>(base: &mut DeTable<'i>, overlay: DeTable<'i>) {
    for (key, value) in overlay {
        let both_tables = matches!(value.get_ref(), DeValue::Table(_))
            && matches!(
                base.get(&key).map(Spanned::get_ref),
                Some(DeValue::Table(_))
            );
        if both_tables {
            if let (Some(DeValue::Table(b)), DeValue::Table(o)) =
                (base.get_mut(&key).map(Spanned::get_mut), value.into_inner())
            {
                merge(b, o);
            }
            continue;
        }
        base.remove(&key);
        base.insert(key, value);
    }
}

fn shift_span(span: Range<usize>, by: usize) -> Range<usize> {
    span.start + by..span.end + by
}

fn shift_table(table: DeTable<'_>, by: usize) -> DeTable<'_> {
    table
        .into_iter()
        .map(|(k, v)| {
            let key = Spanned::new(shift_span(k.span(), by), k.into_inner());
            (key, shift_value(v, by))
        })
        .collect()
}

fn shift_value(value: Spanned<DeValue<'_>>, by: usize) -> Spanned<DeValue<'_>> {
    let span = shift_span(value.span(), by);
    let inner = match value.into_inner() {
        DeValue::Table(t) => DeValue::Table(shift_table(t, by)),
        DeValue::Array(a) => DeValue::Array(a.into_iter().map(|v| shift_value(v, by)).collect()),
        other => other,
    };
    Spanned::new(span, inner)
}
