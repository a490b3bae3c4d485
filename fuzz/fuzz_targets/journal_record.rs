#![no_main]
// See callvault::fuzzing::journal_record for what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| callvault::fuzzing::journal_record(data));
