#![no_main]
// vipsec::fuzzing::vici on arbitrary bytes: it must return (no panic, no hang), and what
// decodes encodes back to the same bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| vipsec::fuzzing::vici(data));
