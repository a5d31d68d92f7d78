//! Fuzz target: see [`checks::wal_replay`] for what must hold for every input.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| checks::wal_replay(bytes));
