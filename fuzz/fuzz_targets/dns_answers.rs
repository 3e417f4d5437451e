#![no_main]
// vipsec::fuzzing::dns_answers on arbitrary bytes: it must return (no panic, no hang).
libfuzzer_sys::fuzz_target!(|data: &[u8]| vipsec::fuzzing::dns_answers(data));
