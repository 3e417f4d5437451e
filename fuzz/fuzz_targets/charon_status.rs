#![no_main]
// vipsec::fuzzing::charon_status on arbitrary bytes: it must return (no panic, no hang).
libfuzzer_sys::fuzz_target!(|data: &[u8]| vipsec::fuzzing::charon_status(data));
