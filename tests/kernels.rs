//! Every sample kernel against its serial reference, on the CPU and on every
//! GPU, at awkward sizes: 0, 1, 63, 64, 65, 1,000,003 and one that needs more
//! than 65,535 workgroups of 256 elements (sum's workgroups take 4,096
//! elements each, so there the size reaches past 4,096 of them, and a launch
//! that large would need an input over llvmpipe's 128 MiB binding limit). Inputs are seeded random values; outputs start
//! poisoned (NaN or 0xDEADBEEF). The tolerances are stated in each kernel's
//! `check` (see pel-kernels).

mod common;

use pel::kernels::samples;

/// Elements that take 65,537 workgroups of 256 invocations: past the
/// 65,535-per-dimension limit, so the launch is folded into 2-D.
const OVER_65535_GROUPS: usize = 65_536 * 256 + 1;

const SIZES: [usize; 7] = [0, 1, 63, 64, 65, 1_000_003, OVER_65535_GROUPS];

const MATMUL_SHAPES: [(usize, usize, usize); 12] = [
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

const MANDELBROT_SHAPES: [(usize, usize); 9] = [
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

cpu_and_gpu_tests! {
    "saxpy", saxpy_cpu, saxpy_gpu, &SIZES, samples::saxpy::trial;
    "sum", sum_cpu, sum_gpu, &SIZES, samples::sum::trial;
    "matmul", matmul_cpu, matmul_gpu, &MATMUL_SHAPES, samples::matmul::trial;
    "mandelbrot", mandelbrot_cpu, mandelbrot_gpu, &MANDELBROT_SHAPES, samples::mandelbrot::trial;
}
