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
    let gpus: Vec<Backend> = rt.gpu_backends();
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

/// A named problem: runs on a target with a seed and reports its check.
pub type Case = (
    String,
    Box<dyn Fn(pel::Target, u64) -> pel::Result<pel::kernels::samples::Check>>,
);

/// Runs every case on every backend and fails with every case that did not
/// verify (or errored), after printing each check.
pub fn run_all(name: &str, backends: &[Backend], cases: &[Case]) {
    let mut failures = Vec::new();
    for &backend in backends {
        for (seed, (case, f)) in cases.iter().enumerate() {
            match f(pel::Target::On(backend), 1000 + seed as u64) {
                Ok(check) => {
                    eprintln!("{name} {case} on {backend}: {check}");
                    assert_eq!(check.backend, backend, "{name} {case} ran elsewhere");
                    if !check.verified() {
                        failures.push(format!("{name} {case} on {backend}: {check}"));
                    }
                }
                Err(e) => failures.push(format!("{name} {case} on {backend}: error: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One case per size: `f(rt, target, size, seed)`.
pub fn sized(
    sizes: &[usize],
    f: fn(&Runtime, pel::Target, usize, u64) -> pel::Result<pel::kernels::samples::Check>,
) -> Vec<Case> {
    sizes
        .iter()
        .map(|&n| -> Case {
            (
                format!("n={n}"),
                Box::new(move |t, seed| f(rt(), t, n, seed)),
            )
        })
        .collect()
}

/// `n` seeded values in [-0.5, 0.5) from a xorshift: reproducible, never
/// all zeros.
pub fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// A runtime of its own, saving no model, with `faults` injected (`""`:
/// none).
pub fn fresh(faults: &str) -> Runtime {
    Runtime::builder()
        .persist_model(false)
        .inject(faults.parse().expect("a valid PEL_INJECT setting"))
        .build()
        .expect("a runtime starts")
}

/// A runtime of its own with no GPU, saving no model.
pub fn cpu_only() -> Runtime {
    Runtime::builder()
        .gpu(false)
        .persist_model(false)
        .build()
        .expect("a runtime starts")
}

/// `y += x` over f32 arrays, right past 65,535 workgroups.
pub const ADD: &str = r#"
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pel_index(id, groups);
    if i < arrayLength(&y) { y[i] = y[i] + x[i]; }
}
"#;

/// Runs `f` on a thread of its own and fails the test if it has not
/// returned within `secs`: a hang is a failure, never a stuck suite.
pub fn within<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("watched: {what}"))
        .spawn(move || {
            let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
        })
        .expect("a thread starts");
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what}: still running after {secs} s: it hangs"),
    }
}
