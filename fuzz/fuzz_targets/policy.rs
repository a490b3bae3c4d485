#![no_main]
// See callvault::fuzzing::policy for what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| callvault::fuzzing::policy(data));
