#![no_main]
// See callvault::fuzzing::wav_probe for what is checked.
libfuzzer_sys::fuzz_target!(|data: &[u8]| callvault::fuzzing::wav_probe(data));
