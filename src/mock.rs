//! `mock`: to be written.
