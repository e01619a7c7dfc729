//! `metrics`: to be written.
