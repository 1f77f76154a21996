//! Shared by the integration tests: one runtime per test binary, and the GPU
//! backends to test on, or a loud skip (a failure under PEL_REQUIRE_GPU=1).

#![allow(dead_code)]

use std::io::Write;
use std::sync::OnceLock;

use pel::kernels::samples::{Check, Trial, run_check};
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

/// The first GPU and a saxpy kernel, or a skip as for [`gpu`].
pub fn gpu_and_saxpy(rt: &Runtime, test: &str) -> Option<(Backend, pel::kernels::Saxpy)> {
    let gpu = gpu(rt, test)?;
    Some((gpu, pel::kernels::Saxpy::new().unwrap()))
}

/// A named problem: runs on a target with a seed and reports its check.
pub type Case = (
    String,
    Box<dyn Fn(pel::Target, u64) -> pel::Result<pel::kernels::samples::Check>>,
);

/// How a sample module prepares a trial of shape `D` at a seed.
pub type Prepare<D, T> = fn(&Runtime, D, u64) -> pel::Result<T>;

/// The CPU and every GPU (or a loud skip of the GPUs, as for [`gpus`]).
pub fn everywhere(test: &str) -> Vec<Backend> {
    let mut backends = vec![Backend::Cpu];
    backends.extend(gpus(rt(), test));
    backends
}

/// The CPU and the first GPU (or a skip, as for [`gpu`]): for the largest
/// shapes, which the software GPUs after the first would run too slowly.
pub fn cpu_and_first_gpu(test: &str) -> Vec<Backend> {
    let mut backends = vec![Backend::Cpu];
    backends.extend(gpu(rt(), test));
    backends
}

/// Runs one trial on each backend in turn (its inputs made and its
/// reference computed once), printing each check, and fails with every
/// check that did not verify.
pub fn run_trial(name: &str, trial: &mut dyn Trial, backends: &[Backend]) {
    let mut failures = Vec::new();
    for &b in backends {
        record(
            name,
            b,
            run_check(trial, rt(), pel::Target::On(b)),
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Prints a check of `name` on `backend`, and notes it in `failures`
/// unless it ran there and verified.
fn record(name: &str, backend: Backend, check: pel::Result<Check>, failures: &mut Vec<String>) {
    match check {
        Ok(check) => {
            eprintln!("{name} {} on {backend}: {check}", check.shape);
            assert_eq!(check.backend, backend, "{name} ran elsewhere");
            if !check.verified() {
                failures.push(format!("{name} on {backend}: {check}"));
            }
        }
        Err(e) => failures.push(format!("{name} on {backend}: error: {e}")),
    }
}

/// Runs every case on every backend and fails with every case that did not
/// verify (or errored), after printing each check.
pub fn run_all(name: &str, backends: &[Backend], cases: &[Case]) {
    let mut failures = Vec::new();
    for &backend in backends {
        for (seed, (case, f)) in cases.iter().enumerate() {
            let check = f(pel::Target::On(backend), 1000 + seed as u64);
            record(&format!("{name} {case}"), backend, check, &mut failures);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs one trial of `shape`, prepared at `seed`, on each of `backends`, as
/// [`run_trial`].
pub fn run_shape<D, T: Trial>(
    name: &str,
    prepare: Prepare<D, T>,
    (shape, seed): (D, u64),
    backends: &[Backend],
) {
    let mut trial = prepare(rt(), shape, seed).unwrap();
    run_trial(name, &mut trial, backends);
}

/// Fails unless `r` is an `InvalidInput` error of `kernel` naming `arg`.
#[track_caller]
pub fn assert_invalid_input<T: std::fmt::Debug>(r: pel::Result<T>, kernel: &str, arg: &str) {
    match r {
        Err(pel::Error::InvalidInput {
            kernel: k, arg: a, ..
        }) if k == kernel && a == arg => {}
        other => panic!("expected InvalidInput for {kernel} `{arg}`, got {other:?}"),
    }
}

/// One case per shape (named as the shape), its trial made by `prepare`.
pub fn cases<D, T>(shapes: &[D], prepare: Prepare<D, T>) -> Vec<Case>
where
    D: Copy + std::fmt::Debug + 'static,
    T: Trial + 'static,
{
    shapes
        .iter()
        .map(|&s| -> Case {
            let run = move |t, seed| run_check(&mut prepare(rt(), s, seed)?, rt(), t);
            (format!("{s:?}"), Box::new(run))
        })
        .collect()
}

/// Two tests of each sample kernel's cases: `$cpu` on the CPU and `$gpu` on
/// every GPU (or a loud skip). One entry per kernel:
/// `"name", name_cpu, name_gpu, &SHAPES, prepare;` runs the [`cases`] of
/// those shapes; or one kernel's ready cases: `"name", name_cpu, name_gpu, cases`.
#[macro_export]
macro_rules! cpu_and_gpu_tests {
    ($name:literal, $cpu:ident, $gpu:ident, $cases:expr $(,)?) => {
        #[test]
        fn $cpu() {
            common::run_all($name, &[pel::Backend::Cpu], &$cases);
        }

        #[test]
        fn $gpu() {
            let gpus = common::gpus(common::rt(), stringify!($gpu));
            common::run_all($name, &gpus, &$cases);
        }
    };
    ($($name:literal, $cpu:ident, $gpu:ident, $shapes:expr, $prepare:path);+ $(;)?) => {
        $(
            #[test]
            fn $cpu() {
                common::run_all($name, &[pel::Backend::Cpu], &common::cases($shapes, $prepare));
            }

            #[test]
            fn $gpu() {
                let gpus = common::gpus(common::rt(), stringify!($gpu));
                common::run_all($name, &gpus, &common::cases($shapes, $prepare));
            }
        )+
    };
}

/// One test per entry, `test: "name", &SHAPES, prepare, backends;`: the
/// [`cases`] of those shapes on `backends(test)`, as [`run_all`]. The
/// backends are a function of the test's name, as [`everywhere`], or
/// [`cpu_and_first_gpu`] for the largest shapes.
#[macro_export]
macro_rules! shape_tests {
    ($($test:ident: $name:literal, $shapes:expr, $prepare:path, $backends:path;)+) => {
        $(
            #[test]
            fn $test() {
                let backends = $backends(stringify!($test));
                common::run_all($name, &backends, &common::cases($shapes, $prepare));
            }
        )+
    };
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

/// A shader reading `array<x_ty>` `x` and writing `array<y_ty>` `y`
/// (bound in that order), one invocation per element of `y`, folded past
/// 65,535 workgroups: `y[i] = value` for every `i` below `y`'s length.
pub fn map_shader(x: (&str, &str), y: (&str, &str), value: &str) -> String {
    let ((x, x_ty), (y, y_ty)) = (x, y);
    format!(
        "
@group(0) @binding(0) var<storage, read> {x}: array<{x_ty}>;
@group(0) @binding(1) var<storage, read_write> {y}: array<{y_ty}>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {{
    let i = pel_index(id, groups);
    if i < arrayLength(&{y}) {{ {y}[i] = {value}; }}
}}
"
    )
}

/// `y += x` over f32 arrays, right past 65,535 workgroups.
pub fn add_shader() -> String {
    map_shader(("x", "f32"), ("y", "f32"), "y[i] + x[i]")
}

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
