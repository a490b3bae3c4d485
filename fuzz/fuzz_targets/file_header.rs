#![no_main]
// See callvault::fuzzing::file_header for what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| callvault::fuzzing::file_header(data));
