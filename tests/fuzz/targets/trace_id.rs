//! Fuzz target: see [`checks::trace_id`] for what must hold for every input.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| checks::trace_id(bytes));
