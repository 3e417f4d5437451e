#![no_main]
// vipsec::fuzzing::parameters on arbitrary bytes: it must return (no panic, no hang).
libfuzzer_sys::fuzz_target!(|data: &[u8]| vipsec::fuzzing::parameters(data));
