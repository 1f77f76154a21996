//! Building a kernel from arbitrary WGSL: parsing, validation and the
//! reflection of its bindings must return a value (a kernel or a typed
//! error with a line and column), never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pel_runtime::{Error, Kernel, Reflection};

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Reflection::of("fuzz", src, "main");
    match Kernel::builder("fuzz", src).build() {
        Ok(k) => {
            let _ = k.reflection();
        }
        Err(Error::InvalidShader { line, column, .. }) => {
            // naga gives a span for nearly every error; 0 means none.
            let _ = (line, column);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
