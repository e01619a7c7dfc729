//! `profile`: to be written.
