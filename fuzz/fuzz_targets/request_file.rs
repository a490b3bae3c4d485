#![no_main]
// See callvault::fuzzing::request_file for what is checked. Each input gets a fresh
// directory, as the entry point expects.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let scratch = tempfile::tempdir().expect("a temporary directory");
    callvault::fuzzing::request_file(scratch.path(), data);
});
