#![no_main]
// See callvault::fuzzing::journal_segments for what is checked. Each input gets a fresh
// directory, as the entry point expects; in /dev/shm when there is one, which
// is several times faster than a disk.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let shm = std::path::Path::new("/dev/shm");
    let scratch = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() };
    let scratch = scratch.expect("a temporary directory");
    callvault::fuzzing::journal_segments(scratch.path(), data);
});
