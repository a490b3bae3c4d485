#![no_main]
// See callvault::fuzzing::names for what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| callvault::fuzzing::names(data));
