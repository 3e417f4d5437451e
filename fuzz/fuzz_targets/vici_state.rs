#![no_main]
// vipsec::fuzzing::vici_state on arbitrary bytes: it must return (no panic, no hang), and
// what reads back writes back to the same bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| vipsec::fuzzing::vici_state(data));
