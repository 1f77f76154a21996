//! Shared by the integration tests: one runtime per test binary, and the GPU
//! backends to test on, or a loud skip (a failure under PEL_REQUIRE_GPU=1).

#![allow(dead_code)]

use std::io::Write;
use std::sync::OnceLock;

use pel::{Backend, Runtime};

/// The runtime every test in this binary shares (opening adapters is slow).
pub fn rt() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        // The tests' measurements go to a model of their own, not the user's.
        let model =
            std::env::temp_dir().join(format!("pel-test-model-{}.json", std::process::id()));
        Runtime::builder()
            .model_file(model)
            .build()
            .expect("a runtime starts, with or without GPUs")
    })
}

/// Every GPU backend of `rt`. With none: panics under PEL_REQUIRE_GPU=1,
/// otherwise prints that `test` was skipped and returns an empty list.
pub fn gpus(rt: &Runtime, test: &str) -> Vec<Backend> {
    let gpus: Vec<Backend> = rt
        .backends()
        .into_iter()
        .filter(|b| *b != Backend::Cpu)
        .collect();
    if gpus.is_empty() {
        if std::env::var("PEL_REQUIRE_GPU").as_deref() == Ok("1") {
            panic!("{test}: PEL_REQUIRE_GPU=1 but no GPU adapter was found");
        }
        // Straight to stderr, past libtest's capture, so a skip is always seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: no GPU adapter (install mesa-vulkan-drivers for one)"
        );
    }
    gpus
}

/// The first GPU, or a skip as for [`gpus`].
pub fn gpu(rt: &Runtime, test: &str) -> Option<Backend> {
    gpus(rt, test).first().copied()
}
