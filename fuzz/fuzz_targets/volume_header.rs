#![no_main]
// See callvault::fuzzing::volume_header for what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| callvault::fuzzing::volume_header(data));
