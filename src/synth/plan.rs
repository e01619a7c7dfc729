//! Everything random about one encounter, drawn in a fixed order from its own stream:
//! who the patient is, the class and timing of the visit, which vitals were taken and
//! their values, the diagnoses, the orders, what is billed and who pays. The resource
//! builders only render a `Plan`; they draw nothing.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use rand::RngExt;

use super::clock;
use super::draw::{self, Rng};
use super::person::{Clinician, Person};
use super::tables::{
    Class, Code, CodeTables, Condition, Measure, Medication, Payer, Procedure, Vital, VitalKind,
};

/// LOINC codes of the body-size vitals kept consistent with each other.
const WEIGHT: &str = "29463-7";
const HEIGHT: &str = "8302-2";
const BMI: &str = "39156-5";

/// One encounter, decided.
#[derive(Debug)]
pub(crate) struct Plan<'t> {
    pub person: Person<'t>,
    pub clinician: Clinician,
    pub class: &'t Class,
    /// The encounter type (SNOMED CT).
    pub kind: &'t Code,
    pub start: DateTime<Utc>,
    pub minutes: u32,
    /// When the vitals were taken.
    pub vitals_at: DateTime<Utc>,
    pub readings: Vec<Reading<'t>>,
    /// At least one; the first is the primary diagnosis.
    pub diagnoses: Vec<Diagnosis<'t>>,
    pub orders: Vec<Order<'t>>,
    /// The evaluation-and-management visit billed.
    pub visit: &'t Procedure,
    pub services: Vec<Service<'t>>,
    pub payer: &'t Payer,
    pub facility: String,
}

/// A vital sign taken: one value per measure (one for a quantity, one per component
/// of a panel), in units of `10^-decimals`.
#[derive(Debug)]
pub(crate) struct Reading<'t> {
    pub vital: &'t Vital,
    pub values: Vec<i64>,
}

#[derive(Debug)]
pub(crate) struct Diagnosis<'t> {
    pub condition: &'t Condition,
    pub onset: NaiveDate,
}

/// A medication ordered for the diagnosis at index `reason`.
#[derive(Debug)]
pub(crate) struct Order<'t> {
    pub medication: &'t Medication,
    pub reason: usize,
}

/// A service billed for the diagnosis at index `reason`.
#[derive(Debug)]
pub(crate) struct Service<'t> {
    pub procedure: &'t Procedure,
    pub reason: usize,
}

impl<'t> Plan<'t> {
    /// Draws encounter `n` from `rng`, which must be that encounter's own stream.
    pub fn draw(rng: &mut Rng, t: &'t CodeTables, n: u64) -> Self {
        let person = Person::draw(rng, &t.people);
        let clinician = Clinician::draw(rng);
        let class = &t.classes[draw::weighted(rng, &t.classes, |c| c.weight)];
        let kind = &class.types[rng.random_range(0..class.types.len())];
        let start = clock::start(n, rng.random_range(0..30));
        let minutes = rng.random_range(class.minutes.0..=class.minutes.1);
        let vitals_at = start + TimeDelta::minutes(rng.random_range(1..=minutes.min(10)).into());
        let readings = readings(rng, &t.vitals);
        let diagnoses = diagnoses(rng, &t.conditions, &person, start.date_naive());
        let orders = orders(rng, &t.medications, &diagnoses);
        let visit = &t.procedures[class.visits[rng.random_range(0..class.visits.len())]];
        let services = services(rng, &t.procedures, &diagnoses, visit);
        let payers: Vec<&Payer> = eligible(&t.payers, |p| p.min_age <= person.age);
        let payer = payers[draw::weighted(rng, &payers, |p| p.weight)];
        let facility = match class.code.code.as_str() {
            "AMB" => format!("{} Family Health Center", person.city),
            _ => format!("{} Regional Medical Center", person.city),
        };
        Plan {
            person,
            clinician,
            class,
            kind,
            start,
            minutes,
            vitals_at,
            readings,
            diagnoses,
            orders,
            visit,
            services,
            payer,
            facility,
        }
    }

    /// When the encounter ends (once closed).
    pub fn end(&self) -> DateTime<Utc> {
        self.start + TimeDelta::minutes(self.minutes.into())
    }

    /// A point `num/den` of the way through the encounter.
    pub fn at(&self, num: i64, den: i64) -> DateTime<Utc> {
        self.start + TimeDelta::minutes(i64::from(self.minutes) * num / den.max(1))
    }
}

/// The items `keep` selects, or all of them when it selects none.
fn eligible<T>(items: &[T], keep: impl Fn(&T) -> bool) -> Vec<&T> {
    let some: Vec<&T> = items.iter().filter(|i| keep(i)).collect();
    if some.is_empty() {
        items.iter().collect()
    } else {
        some
    }
}

/// Three to six vitals, in table order.
fn readings<'t>(rng: &mut Rng, vitals: &'t [Vital]) -> Vec<Reading<'t>> {
    let count = rng.random_range(3..=6);
    let mut picked = draw::sample(rng, vitals.len(), count);
    picked.sort_unstable();
    let mut readings: Vec<Reading> = picked
        .into_iter()
        .map(|i| {
            let vital = &vitals[i];
            let values = match &vital.kind {
                VitalKind::Quantity(m) => vec![draw::measure(rng, m)],
                VitalKind::Panel(components) => draw::panel(rng, components),
            };
            Reading { vital, values }
        })
        .collect();
    consistent_body_size(&mut readings);
    readings
}

/// With weight, height and BMI all taken (in kg, cm, kg/m2), weight becomes
/// BMI × height², then BMI is recomputed from the rounded weight; each stays in range.
fn consistent_body_size(readings: &mut [Reading]) {
    let find = |code: &str, unit: &str| {
        readings.iter().position(|r| {
            r.vital.codes[0].code == code
                && matches!(&r.vital.kind, VitalKind::Quantity(m) if m.unit == unit)
        })
    };
    let (Some(w), Some(h), Some(b)) = (find(WEIGHT, "kg"), find(HEIGHT, "cm"), find(BMI, "kg/m2"))
    else {
        return;
    };
    let (wv, hv, bv) = (readings[w].vital, readings[h].vital, readings[b].vital);
    let (VitalKind::Quantity(wm), VitalKind::Quantity(hm), VitalKind::Quantity(bm)) =
        (&wv.kind, &hv.kind, &bv.kind)
    else {
        return;
    };
    let metres = readings[h].values[0] as f64 / hm.scale() / 100.0;
    let bmi = readings[b].values[0] as f64 / bm.scale();
    let weight = to_steps(bmi * metres * metres, wm);
    let bmi = to_steps(weight as f64 / wm.scale() / (metres * metres), bm);
    readings[w].values[0] = weight;
    readings[b].values[0] = bmi;
}

/// `v` in steps of `m`, kept within its range.
fn to_steps(v: f64, m: &Measure) -> i64 {
    ((v * m.scale()).round() as i64).clamp(m.lo, m.hi)
}

/// One to three distinct conditions the patient is old enough for.
fn diagnoses<'t>(
    rng: &mut Rng,
    conditions: &'t [Condition],
    person: &Person,
    today: NaiveDate,
) -> Vec<Diagnosis<'t>> {
    let pool = eligible(conditions, |c| c.min_age <= person.age);
    let count = rng.random_range(1..=3);
    let lived = (today - person.birth).num_days().max(31);
    draw::sample(rng, pool.len(), count)
        .into_iter()
        .map(|i| {
            let condition = pool[i];
            let days_ago = if condition.chronic {
                rng.random_range(30..=lived.min(15 * 365))
            } else {
                rng.random_range(0..=10)
            };
            Diagnosis {
                condition,
                onset: today - TimeDelta::days(days_ago),
            }
        })
        .collect()
}

/// Up to three of the medications the diagnoses call for, each ordered for the first
/// diagnosis that lists it.
fn orders<'t>(
    rng: &mut Rng,
    medications: &'t [Medication],
    diagnoses: &[Diagnosis],
) -> Vec<Order<'t>> {
    let mut candidates: Vec<(usize, usize)> = Vec::new();
    for (reason, d) in diagnoses.iter().enumerate() {
        for &m in &d.condition.medications {
            if !candidates.iter().any(|&(c, _)| c == m) {
                candidates.push((m, reason));
            }
        }
    }
    let count = rng.random_range(0..=candidates.len().min(3));
    let mut picked = draw::sample(rng, candidates.len(), count);
    picked.sort_unstable();
    picked
        .into_iter()
        .map(|i| Order {
            medication: &medications[candidates[i].0],
            reason: candidates[i].1,
        })
        .collect()
}

/// Each service a diagnosis calls for, billed with even odds, once.
fn services<'t>(
    rng: &mut Rng,
    procedures: &'t [Procedure],
    diagnoses: &[Diagnosis],
    visit: &Procedure,
) -> Vec<Service<'t>> {
    let mut out: Vec<Service> = Vec::new();
    for (reason, d) in diagnoses.iter().enumerate() {
        for &p in &d.condition.procedures {
            let procedure = &procedures[p];
            let billed =
                procedure.cpt == visit.cpt || out.iter().any(|s| s.procedure.cpt == procedure.cpt);
            if rng.random_bool(0.5) && !billed {
                out.push(Service { procedure, reason });
            }
        }
    }
    out
}
