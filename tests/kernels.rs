//! Every sample kernel against its serial reference, on the CPU and on every
//! GPU, at awkward sizes: 0, 1, 63, 64, 65, 1,000,003 and one that needs more
//! than 65,535 workgroups of 256 elements (sum's workgroups take 4,096
//! elements each, so there the size reaches past 4,096 of them, and a launch
//! that large would need an input over llvmpipe's 128 MiB binding limit). Inputs are seeded random values; outputs start
//! poisoned (NaN or 0xDEADBEEF). The tolerances are stated in each kernel's
//! `check` (see pel-kernels).

mod common;

use pel::kernels::samples::{self, Check};
use pel::{Backend, Result, Target};

/// Elements that take 65,537 workgroups of 256 invocations: past the
/// 65,535-per-dimension limit, so the launch is folded into 2-D.
const OVER_65535_GROUPS: usize = 65_536 * 256 + 1;

const SIZES: [usize; 7] = [0, 1, 63, 64, 65, 1_000_003, OVER_65535_GROUPS];

use common::{Case, run_all};

fn sized(f: fn(&pel::Runtime, Target, usize, u64) -> Result<Check>) -> Vec<Case> {
    common::sized(&SIZES, f)
}

fn matmul_cases() -> Vec<Case> {
    let shapes: &[(usize, usize, usize)] = &[
        (0, 0, 0),
        (0, 5, 7),
        (5, 0, 7),
        (5, 7, 0),
        (1, 1, 1),
        (63, 63, 63),
        (64, 64, 64),
        (65, 65, 65),
        (100, 37, 211),
        (256, 256, 256),
        // 1,000,003 rows.
        (1_000_003, 2, 3),
        // 65,537 tiles of 64×64: more than 65,535 workgroups.
        (65_537 * 64 - 5, 2, 3),
    ];
    shapes
        .iter()
        .map(|&s| -> Case {
            (
                format!("{}×{}×{}", s.0, s.1, s.2),
                Box::new(move |t, seed| samples::matmul::check(common::rt(), t, s, seed)),
            )
        })
        .collect()
}

fn mandelbrot_cases() -> Vec<Case> {
    let shapes: &[(usize, usize)] = &[
        (0, 0),
        (7, 0),
        (1, 1),
        (63, 1),
        (64, 1),
        (65, 1),
        (31, 37),
        (1_000_003, 1),
        (OVER_65535_GROUPS, 1),
    ];
    shapes
        .iter()
        .map(|&s| -> Case {
            (
                format!("{}×{}", s.0, s.1),
                Box::new(move |t, seed| samples::mandelbrot::check(common::rt(), t, s, seed)),
            )
        })
        .collect()
}

#[test]
fn saxpy_cpu() {
    run_all("saxpy", &[Backend::Cpu], &sized(samples::saxpy::check));
}

#[test]
fn saxpy_gpu() {
    run_all(
        "saxpy",
        &common::gpus(common::rt(), "saxpy_gpu"),
        &sized(samples::saxpy::check),
    );
}

#[test]
fn sum_cpu() {
    run_all("sum", &[Backend::Cpu], &sized(samples::sum::check));
}

#[test]
fn sum_gpu() {
    run_all(
        "sum",
        &common::gpus(common::rt(), "sum_gpu"),
        &sized(samples::sum::check),
    );
}

#[test]
fn matmul_cpu() {
    run_all("matmul", &[Backend::Cpu], &matmul_cases());
}

#[test]
fn matmul_gpu() {
    run_all(
        "matmul",
        &common::gpus(common::rt(), "matmul_gpu"),
        &matmul_cases(),
    );
}

#[test]
fn mandelbrot_cpu() {
    run_all("mandelbrot", &[Backend::Cpu], &mandelbrot_cases());
}

#[test]
fn mandelbrot_gpu() {
    run_all(
        "mandelbrot",
        &common::gpus(common::rt(), "mandelbrot_gpu"),
        &mandelbrot_cases(),
    );
}
