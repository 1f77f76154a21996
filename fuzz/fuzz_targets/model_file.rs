//! Loading a performance model file: damaged, foreign or hostile text
//! (huge numbers, NaN, deep nesting) must give a fresh or partial model,
//! never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pel_runtime::fuzzing::model_file(&String::from_utf8_lossy(data));
});
