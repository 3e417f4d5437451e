#![no_main]
// vipsec::fuzzing::proc_net on arbitrary bytes: it must return (no panic, no hang).
libfuzzer_sys::fuzz_target!(|data: &[u8]| vipsec::fuzzing::proc_net(data));
