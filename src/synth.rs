//! `synth`: to be written.
