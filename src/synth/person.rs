//! The people of an encounter: the patient (name, gender, birth date, address, phone,
//! race and ethnicity; names and addresses from `fake`'s English locale) and the
//! clinician who sees them, and the US Core Patient resource.

use chrono::{Months, NaiveDate, TimeDelta};
use fake::Fake;
use fake::faker::address::en::{BuildingNumber, CityName, PostCode, StateAbbr, StreetName};
use fake::faker::name::en::{FirstName, LastName};
use fake::faker::phone_number::en::CellNumber;
use rand::RngExt;
use serde_json::{Value, json};

use super::draw::{self, Rng};
use super::tables::{Code, Demographics};
use super::{MRN_SYSTEM, clock, ids, system};

const OMB: &str = "urn:oid:2.16.840.1.113883.6.238";
const US_CORE: &str = "http://hl7.org/fhir/us/core/StructureDefinition";

/// A synthetic patient.
#[derive(Debug)]
pub(crate) struct Person<'t> {
    pub given: String,
    pub family: String,
    pub gender: &'t str,
    pub birth: NaiveDate,
    /// Whole years at the reference date.
    pub age: u32,
    pub line: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    pub phone: Option<String>,
    pub race: &'t Code,
    pub ethnicity: &'t Code,
}

impl<'t> Person<'t> {
    pub fn draw(rng: &mut Rng, people: &'t Demographics) -> Self {
        let gender = &people.genders[draw::weighted(rng, &people.genders, |g| g.1)].0;
        let (lo, hi, _) = people.ages[draw::weighted(rng, &people.ages, |a| a.2)];
        let age = rng.random_range(lo..=hi);
        // Born within the year before the age-th birthday preceding the reference date.
        let birthday = clock::reference_date()
            .checked_sub_months(Months::new(12 * age))
            .unwrap_or(clock::reference_date());
        let birth = birthday - TimeDelta::days(rng.random_range(0..365));
        let given = FirstName().fake_with_rng::<&str, _>(rng).to_owned();
        let family = LastName().fake_with_rng::<&str, _>(rng).to_owned();
        let number: String = BuildingNumber().fake_with_rng(rng);
        let street: String = StreetName().fake_with_rng(rng);
        let city: String = CityName().fake_with_rng(rng);
        let state = StateAbbr().fake_with_rng::<&str, _>(rng).to_owned();
        let postal_code: String = PostCode().fake_with_rng(rng);
        let phone = rng
            .random_bool(0.85)
            .then(|| CellNumber().fake_with_rng::<String, _>(rng));
        let race = &people.races[draw::weighted(rng, &people.races, |r| r.1)].0;
        let ethnicity = &people.ethnicities[draw::weighted(rng, &people.ethnicities, |e| e.1)].0;
        Person {
            given,
            family,
            gender,
            birth,
            age,
            line: format!("{number} {street}"),
            city,
            state,
            postal_code,
            phone,
            race,
            ethnicity,
        }
    }

    /// Whole years of age on `day`.
    pub fn age_on(&self, day: NaiveDate) -> u32 {
        day.years_since(self.birth).unwrap_or(0)
    }

    /// How the note names them: "54-year-old female".
    pub fn described(&self, day: NaiveDate) -> String {
        let who = match self.gender {
            "female" | "male" => self.gender,
            _ => "patient",
        };
        format!("{}-year-old {who}", self.age_on(day))
    }
}

/// The clinician of an encounter, referred to logically (NPI and name).
#[derive(Debug)]
pub(crate) struct Clinician {
    pub name: String,
    pub npi: String,
}

impl Clinician {
    pub fn draw(rng: &mut Rng) -> Self {
        let given: &str = FirstName().fake_with_rng(rng);
        let family: &str = LastName().fake_with_rng(rng);
        Clinician {
            name: format!("Dr. {given} {family}"),
            npi: ids::npi(rng),
        }
    }

    /// A logical reference: identifier and display, no resource behind it.
    pub fn reference(&self) -> Value {
        json!({ "identifier": { "system": system::NPI, "value": self.npi }, "display": self.name })
    }
}

/// The US Core Patient (the harness identifier is added by `ids`).
pub(crate) fn patient(p: &Person, mrn: &str) -> Value {
    let mut body = json!({
        "resourceType": "Patient",
        "extension": [omb("us-core-race", p.race), omb("us-core-ethnicity", p.ethnicity)],
        "identifier": [{
            "use": "usual",
            "type": {
                "coding": [{ "system": format!("{}/v2-0203", system::TERMINOLOGY), "code": "MR", "display": "Medical Record Number" }],
                "text": "Medical Record Number"
            },
            "system": MRN_SYSTEM,
            "value": mrn
        }],
        "active": true,
        "name": [{ "use": "official", "family": p.family, "given": [p.given] }],
        "gender": p.gender,
        "birthDate": clock::date(p.birth),
        "address": [{
            "use": "home",
            "line": [p.line],
            "city": p.city,
            "state": p.state,
            "postalCode": p.postal_code,
            "country": "US"
        }],
        "communication": [{
            "language": {
                "coding": [{ "system": "urn:ietf:bcp:47", "code": "en-US", "display": "English (United States)" }],
                "text": "English"
            },
            "preferred": true
        }]
    });
    if let (Some(phone), Some(obj)) = (&p.phone, body.as_object_mut()) {
        obj.insert(
            "telecom".into(),
            json!([{ "system": "phone", "value": phone, "use": "mobile" }]),
        );
    }
    body
}

/// A US Core race or ethnicity extension with one OMB category.
fn omb(name: &str, category: &Code) -> Value {
    json!({
        "url": format!("{US_CORE}/{name}"),
        "extension": [
            { "url": "ombCategory", "valueCoding": { "system": OMB, "code": category.code, "display": category.display } },
            { "url": "text", "valueString": category.display }
        ]
    })
}
