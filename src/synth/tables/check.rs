//! From the raw table files to validated tables: every range, precision, check digit,
//! duplicate and cross-reference is checked here, once, and a failure is located at the
//! offending entry (`file:line:column`).

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::Spanned;

use super::raw;
use super::{
    Class, Code, CodeTables, Condition, Demographics, Measure, Medication, Payer, Procedure, Vital,
    VitalKind,
};
use crate::source::{self, Location};
use crate::synth::{Error, check_digit};

/// One table file being checked.
struct File<'a> {
    path: &'a Path,
    text: &'a str,
}

impl File<'_> {
    fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(source::parse(self.path, self.text)?)
    }

    fn error(&self, span: Range<usize>, message: impl Into<String>) -> Error {
        Error::Invalid {
            location: Location::at(self.path, self.text, span.start),
            message: message.into(),
        }
    }

    /// Fails when a table has no entries.
    fn nonempty<T>(&self, items: &[T], what: &str) -> Result<(), Error> {
        if items.is_empty() {
            Err(self.error(0..0, format!("no {what} entries")))
        } else {
            Ok(())
        }
    }

    /// Fails when `code` was seen before in this table.
    fn unique(
        &self,
        seen: &mut HashSet<String>,
        span: &Range<usize>,
        code: &str,
    ) -> Result<(), Error> {
        if seen.insert(code.to_owned()) {
            Ok(())
        } else {
            Err(self.error(span.clone(), format!("`{code}` is listed twice")))
        }
    }

    fn weight(&self, span: &Range<usize>, weight: u32) -> Result<u32, Error> {
        if weight == 0 {
            Err(self.error(span.clone(), "`weight` must be at least 1"))
        } else {
            Ok(weight)
        }
    }

    /// A code that must pass `valid`, with its display; errors point at the code.
    fn code(
        &self,
        code: Spanned<String>,
        display: String,
        what: &str,
        valid: fn(&str) -> bool,
    ) -> Result<Code, Error> {
        let (span, code) = (code.span(), code.into_inner());
        if !valid(&code) {
            return Err(self.error(span, format!("`{code}` is not a valid {what} code")));
        }
        if display.trim().is_empty() {
            return Err(self.error(span, format!("`{code}` has an empty display")));
        }
        Ok(Code { code, display })
    }

    /// An inline `{ code, display }`, checked like `code`.
    fn coding(
        &self,
        c: Spanned<raw::Coding>,
        what: &str,
        valid: fn(&str) -> bool,
    ) -> Result<Code, Error> {
        let span = c.span();
        let c = c.into_inner();
        self.code(Spanned::new(span, c.code), c.display, what, valid)
    }

    /// References to codes of another table, as indices into it.
    fn lookup(
        &self,
        refs: Vec<Spanned<String>>,
        find: impl Fn(&str) -> Option<usize>,
        what: &str,
    ) -> Result<Vec<usize>, Error> {
        let mut out = Vec::with_capacity(refs.len());
        for r in refs {
            let i = find(r.get_ref())
                .ok_or_else(|| self.error(r.span(), format!("unknown {what} `{}`", r.get_ref())))?;
            if out.contains(&i) {
                return Err(self.error(
                    r.span(),
                    format!("{what} `{}` is listed twice", r.get_ref()),
                ));
            }
            out.push(i);
        }
        Ok(out)
    }

    /// `v` in units of `10^-decimals`, when it has no more decimals than that.
    fn scaled(&self, span: &Range<usize>, key: &str, v: f64, decimals: u8) -> Result<i64, Error> {
        let x = v * 10f64.powi(i32::from(decimals));
        if !x.is_finite() || x.abs() > 1e12 || (x - x.round()).abs() > 1e-6 {
            return Err(self.error(
                span.clone(),
                format!("`{key}` = {v} has more than {decimals} decimals"),
            ));
        }
        Ok(x.round() as i64)
    }

    /// A range; errors point at `min` (`span`).
    fn measure(
        &self,
        span: &Range<usize>,
        unit: String,
        min: f64,
        max: f64,
        decimals: u8,
    ) -> Result<Measure, Error> {
        if decimals > 4 {
            return Err(self.error(span.clone(), "`decimals` must be at most 4"));
        }
        if unit.trim().is_empty() || unit.contains(char::is_whitespace) {
            return Err(self.error(span.clone(), format!("`{unit}` is not a UCUM unit code")));
        }
        let lo = self.scaled(span, "min", min, decimals)?;
        let hi = self.scaled(span, "max", max, decimals)?;
        if lo > hi {
            return Err(self.error(
                span.clone(),
                format!("`min` = {min} is above `max` = {max}"),
            ));
        }
        Ok(Measure {
            unit,
            lo,
            hi,
            decimals,
        })
    }
}

/// Parses and validates the six files (paths and texts in `tables::FILES` order).
pub(super) fn tables(paths: &[PathBuf; 6], texts: &[&str; 6]) -> Result<CodeTables, Error> {
    let file = |i: usize| File {
        path: &paths[i],
        text: texts[i],
    };
    let vitals = vitals(&file(0))?;
    let medications = medications(&file(2))?;
    let procedures = procedures(&file(3))?;
    let conditions = conditions(&file(1), &medications, &procedures)?;
    let (classes, payers) = encounters(&file(4), &procedures)?;
    let people = demographics(&file(5))?;
    Ok(CodeTables {
        vitals,
        conditions,
        medications,
        procedures,
        classes,
        payers,
        people,
    })
}

fn vitals(f: &File) -> Result<Vec<Vital>, Error> {
    let raw: raw::VitalsFile = f.parse()?;
    f.nonempty(&raw.vital, "[[vital]]")?;
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.vital.len());
    for v in raw.vital {
        let span = v.span();
        let v = v.into_inner();
        f.unique(&mut seen, &v.loinc.span(), v.loinc.get_ref())?;
        let mut codes = vec![f.code(v.loinc, v.display, "LOINC", check_digit::is_mod10)?];
        for a in v.also {
            let (aspan, a) = (a.span(), a.into_inner());
            codes.push(f.code(
                Spanned::new(aspan, a.loinc),
                a.display,
                "LOINC",
                check_digit::is_mod10,
            )?);
        }
        let kind = match (v.unit, v.min, v.max, v.decimals, v.component.is_empty()) {
            (Some(unit), Some(min), Some(max), Some(d), true) => {
                VitalKind::Quantity(f.measure(&min.span(), unit, min.into_inner(), max, d)?)
            }
            (None, None, None, None, false) => VitalKind::Panel(components(f, v.component)?),
            _ => {
                let msg = "a vital has either `unit`, `min`, `max` and `decimals`, or [[vital.component]] entries";
                return Err(f.error(span, msg));
            }
        };
        out.push(Vital { codes, kind });
    }
    Ok(out)
}

fn components(f: &File, raw: Vec<Spanned<raw::Component>>) -> Result<Vec<(Code, Measure)>, Error> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for c in raw {
        let c = c.into_inner();
        f.unique(&mut seen, &c.loinc.span(), c.loinc.get_ref())?;
        let code = f.code(c.loinc, c.display, "LOINC", check_digit::is_mod10)?;
        out.push((
            code,
            f.measure(&c.min.span(), c.unit, c.min.into_inner(), c.max, c.decimals)?,
        ));
    }
    Ok(out)
}

fn medications(f: &File) -> Result<Vec<Medication>, Error> {
    let raw: raw::MedicationsFile = f.parse()?;
    f.nonempty(&raw.medication, "[[medication]]")?;
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.medication.len());
    for m in raw.medication {
        let span = m.span();
        let m = m.into_inner();
        f.unique(&mut seen, &m.rxnorm.span(), m.rxnorm.get_ref())?;
        let rxnorm = f.code(m.rxnorm, m.display, "RxNorm", is_rxcui)?;
        if m.dose.trim().is_empty() {
            return Err(f.error(span, "`dose` is empty"));
        }
        let (tspan, t) = (m.timing.span(), m.timing.into_inner());
        if t.frequency == 0
            || t.period == 0
            || !["s", "min", "h", "d", "wk", "mo", "a"].contains(&t.unit.as_str())
        {
            let msg = "`timing` needs `frequency` and `period` of at least 1 and `unit` one of s, min, h, d, wk, mo, a";
            return Err(f.error(tspan, msg));
        }
        out.push(Medication {
            rxnorm,
            dose: m.dose,
            frequency: t.frequency,
            period: t.period,
            period_unit: t.unit,
            as_needed: m.as_needed,
        });
    }
    Ok(out)
}

fn procedures(f: &File) -> Result<Vec<Procedure>, Error> {
    let raw: raw::ProceduresFile = f.parse()?;
    f.nonempty(&raw.procedure, "[[procedure]]")?;
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.procedure.len());
    for p in raw.procedure {
        let p = p.into_inner();
        f.unique(&mut seen, &p.cpt.span(), p.cpt.get_ref())?;
        let cpt = f.code(p.cpt, p.display, "CPT", is_cpt)?;
        let cents = f.scaled(&p.price.span(), "price", *p.price.get_ref(), 2)?;
        let cents =
            u64::try_from(cents).map_err(|_| f.error(p.price.span(), "`price` is negative"))?;
        out.push(Procedure { cpt, cents });
    }
    Ok(out)
}

fn conditions(f: &File, meds: &[Medication], procs: &[Procedure]) -> Result<Vec<Condition>, Error> {
    let raw: raw::ConditionsFile = f.parse()?;
    f.nonempty(&raw.condition, "[[condition]]")?;
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.condition.len());
    for c in raw.condition {
        let c = c.into_inner();
        f.unique(&mut seen, &c.icd10.span(), &c.icd10.get_ref().code)?;
        out.push(Condition {
            icd10: f.coding(c.icd10, "ICD-10-CM", is_icd10cm)?,
            snomed: f.coding(c.snomed, "SNOMED CT", check_digit::is_sctid)?,
            chronic: c.chronic,
            min_age: c.min_age,
            medications: f.lookup(
                c.medications,
                |r| meds.iter().position(|m| m.rxnorm.code == r),
                "medication",
            )?,
            procedures: f.lookup(
                c.procedures,
                |r| procs.iter().position(|p| p.cpt.code == r),
                "procedure",
            )?,
        });
    }
    Ok(out)
}

const CLASSES: [&str; 11] = [
    "AMB", "EMER", "FLD", "HH", "IMP", "ACUTE", "NONAC", "OBSENC", "PRENC", "SS", "VR",
];
const CLAIM_TYPES: [&str; 5] = [
    "institutional",
    "oral",
    "pharmacy",
    "professional",
    "vision",
];
const MED_CATEGORIES: [&str; 4] = ["inpatient", "outpatient", "community", "discharge"];

fn encounters(f: &File, procs: &[Procedure]) -> Result<(Vec<Class>, Vec<Payer>), Error> {
    let raw: raw::EncountersFile = f.parse()?;
    f.nonempty(&raw.class, "[[class]]")?;
    f.nonempty(&raw.payer, "[[payer]]")?;
    let mut seen = HashSet::new();
    let mut classes = Vec::with_capacity(raw.class.len());
    for c in raw.class {
        let span = c.span();
        f.unique(&mut seen, &span, &c.get_ref().code)?;
        classes.push(class(f, span, c.into_inner(), procs)?);
    }
    let mut payers = Vec::with_capacity(raw.payer.len());
    for p in raw.payer {
        let span = p.span();
        let p = p.into_inner();
        if p.name.trim().is_empty() || p.coverage.trim().is_empty() {
            return Err(f.error(span, "a payer needs a `name` and a `coverage`"));
        }
        let weight = f.weight(&span, p.weight)?;
        payers.push(Payer {
            name: p.name,
            coverage: p.coverage,
            weight,
            min_age: p.min_age,
        });
    }
    Ok((classes, payers))
}

fn class(f: &File, span: Range<usize>, c: raw::Class, procs: &[Procedure]) -> Result<Class, Error> {
    let code = f.code(
        Spanned::new(span.clone(), c.code),
        c.display,
        "v3-ActCode encounter",
        |c| CLASSES.contains(&c),
    )?;
    let (lo, hi) = (c.minutes.get_ref()[0], c.minutes.get_ref()[1]);
    if lo == 0 || lo > hi {
        return Err(f.error(
            c.minutes.span(),
            "`minutes` must be [shortest, longest] with 1 <= shortest <= longest",
        ));
    }
    if !CLAIM_TYPES.contains(&c.claim_type.get_ref().as_str()) {
        return Err(f.error(
            c.claim_type.span(),
            format!("`claim_type` must be one of {}", CLAIM_TYPES.join(", ")),
        ));
    }
    if !MED_CATEGORIES.contains(&c.medication_category.get_ref().as_str()) {
        let msg = format!(
            "`medication_category` must be one of {}",
            MED_CATEGORIES.join(", ")
        );
        return Err(f.error(c.medication_category.span(), msg));
    }
    if c.types.is_empty() || c.visits.is_empty() {
        return Err(f.error(
            span,
            "a class needs at least one of `types` and of `visits`",
        ));
    }
    let types = c
        .types
        .into_iter()
        .map(|t| f.coding(t, "SNOMED CT", check_digit::is_sctid));
    Ok(Class {
        weight: f.weight(&span, c.weight)?,
        types: types.collect::<Result<_, _>>()?,
        minutes: (lo, hi),
        claim_type: c.claim_type.into_inner(),
        medication_category: c.medication_category.into_inner(),
        note: f.coding(c.note, "LOINC", check_digit::is_mod10)?,
        visits: f.lookup(
            c.visits,
            |r| procs.iter().position(|p| p.cpt.code == r),
            "procedure",
        )?,
        code,
    })
}

const GENDERS: [&str; 4] = ["male", "female", "other", "unknown"];

fn demographics(f: &File) -> Result<Demographics, Error> {
    let raw: raw::DemographicsFile = f.parse()?;
    for (empty, what) in [
        (raw.gender.is_empty(), "`gender`"),
        (raw.age.is_empty(), "`age`"),
        (raw.race.is_empty(), "`race`"),
        (raw.ethnicity.is_empty(), "`ethnicity`"),
    ] {
        if empty {
            return Err(f.error(0..0, format!("no {what} entries")));
        }
    }
    let mut genders = Vec::with_capacity(raw.gender.len());
    for g in raw.gender {
        let span = g.span();
        if !GENDERS.contains(&g.get_ref().code.as_str()) {
            return Err(f.error(
                span,
                format!("`gender` must be one of {}", GENDERS.join(", ")),
            ));
        }
        let g = g.into_inner();
        genders.push((g.code, f.weight(&span, g.weight)?));
    }
    let mut ages = Vec::with_capacity(raw.age.len());
    for a in raw.age {
        let span = a.span();
        let a = a.into_inner();
        if a.min > a.max || a.max > 120 {
            return Err(f.error(span, "an age band needs `min` <= `max` <= 120"));
        }
        ages.push((a.min, a.max, f.weight(&span, a.weight)?));
    }
    Ok(Demographics {
        genders,
        ages,
        races: categories(f, raw.race)?,
        ethnicities: categories(f, raw.ethnicity)?,
    })
}

fn categories(f: &File, raw: Vec<Spanned<raw::Category>>) -> Result<Vec<(Code, u32)>, Error> {
    raw.into_iter()
        .map(|c| {
            let span = c.span();
            let c = c.into_inner();
            let weight = f.weight(&span, c.weight)?;
            Ok((
                f.code(
                    Spanned::new(span, c.code),
                    c.display,
                    "CDC race and ethnicity",
                    check_digit::is_mod10,
                )?,
                weight,
            ))
        })
        .collect()
}

/// An RxNorm concept id: 1–8 digits.
fn is_rxcui(code: &str) -> bool {
    (1..=8).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit())
}

/// A CPT code: four digits and a digit or F/T (category II/III).
fn is_cpt(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 5
        && b[..4].iter().all(u8::is_ascii_digit)
        && (b[4].is_ascii_digit() || b[4] == b'F' || b[4] == b'T')
}

/// An ICD-10-CM code: letter, digit, digit or letter, then optionally `.` and 1–4 more.
fn is_icd10cm(code: &str) -> bool {
    let (head, tail) = code.split_once('.').unwrap_or((code, ""));
    let h = head.as_bytes();
    let head_ok = h.len() == 3
        && h[0].is_ascii_uppercase()
        && h[1].is_ascii_digit()
        && (h[2].is_ascii_digit() || h[2].is_ascii_uppercase());
    let tail_ok = if code.contains('.') {
        (1..=4).contains(&tail.len())
    } else {
        true
    };
    head_ok
        && tail_ok
        && tail
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}
