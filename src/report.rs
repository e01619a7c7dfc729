//! `report`: to be written.
