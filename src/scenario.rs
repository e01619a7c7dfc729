//! `scenario`: to be written.
