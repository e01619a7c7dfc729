//! `fhir`: to be written.
