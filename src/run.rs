//! `run`: to be written.
