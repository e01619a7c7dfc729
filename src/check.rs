//! `check`: to be written.
