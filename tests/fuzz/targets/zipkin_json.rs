//! Fuzz target: see [`checks::zipkin_json`] for what must hold for every input.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| checks::zipkin_json(bytes));
