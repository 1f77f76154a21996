//! The linear-algebra sample kernels (min, max, argmax, transpose, spmv)
//! against their serial references, on the CPU and on every GPU, at awkward
//! sizes: 0, 1, 2, primes, just over a workgroup, and one that needs more
//! than 65,535 workgroups (for transpose and spmv on the CPU and the first
//! GPU only: see `first_gpu`). Inputs are seeded random values; outputs
//! start poisoned (NaN or 0xDEADBEEF). Then the edge cases of the NaN and
//! tie rules, and bad input, which must give `Error::InvalidInput`.

mod common;

use pel::kernels::reduce::{self, Argmax, Reduce, ReduceOp};
use pel::kernels::samples;
use pel::kernels::spmv::{self, CsrMatrix, Spmv};
use pel::kernels::transpose::{self, Transpose};
use pel::{Backend, Result, Runtime, Target};

use common::{Case, everywhere, run_all};

/// 65,536 workgroups of 256 elements in the first pass: past the
/// 65,535-per-dimension limit, so the launch is folded into 2-D (64 MiB).
const REDUCE_OVER_65535_GROUPS: usize = 65_536 * reduce::CHUNK;

/// 65 and 257: just over a workgroup (64 invocations) and a chunk (256
/// elements); 65,537 and up: three passes.
const REDUCE_SIZES: [usize; 8] = [
    1,
    2,
    63,
    65,
    257,
    65_537,
    1_000_003,
    REDUCE_OVER_65535_GROUPS,
];

fn min_cases() -> Vec<Case> {
    common::cases(&REDUCE_SIZES, |rt, n, seed| {
        samples::reduce::trial(rt, ReduceOp::Min, n, seed)
    })
}

fn max_cases() -> Vec<Case> {
    common::cases(&REDUCE_SIZES, |rt, n, seed| {
        samples::reduce::trial(rt, ReduceOp::Max, n, seed)
    })
}

fn argmax_cases() -> Vec<Case> {
    common::cases(&REDUCE_SIZES, samples::reduce::argmax_trial)
}

const TRANSPOSE_SHAPES: [(usize, usize); 11] = [
    (0, 0),
    (0, 5),
    (5, 0),
    (1, 1),
    (1, 1000),
    (1000, 1),
    (17, 33),
    (64, 65),
    (1009, 7),
    (20_011, 24),
    (300, 211),
];

/// 65,537 tiles of 16×16 in a 15×1,048,581 matrix (60 MiB): more than
/// 65,535 workgroups, and partial tiles along both edges.
const TRANSPOSE_LARGE: (usize, usize) = (15, 65_536 * transpose::TILE + 5);

const SPMV_SHAPES: [(usize, usize, usize); 8] = [
    (0, 0, 0),
    (0, 5, 0),
    (5, 0, 0),
    (1, 1, 1),
    (33, 17, 100),
    (257, 263, 2000),
    (331, 1000, 40_000),
    (10_007, 9973, 80_000),
];

/// 65,537 workgroups of 32 rows, very sparse (about a row in 20 has a
/// non-zero): more than 65,535 workgroups in the launch.
const SPMV_LARGE: (usize, usize, usize) = (65_536 * spmv::ROWS_PER_GROUP + 1, 1009, 100_000);

/// The GPUs to run the one large transpose and spmv on: the first only. On
/// llvmpipe's GL adapter each of their 65,537 workgroups pays for a slow
/// workgroup barrier (seconds in all), so the second GPU runs the small
/// shapes only.
fn first_gpu(test: &str) -> Vec<Backend> {
    common::gpu(common::rt(), test).into_iter().collect()
}

cpu_and_gpu_tests!("min", min_cpu, min_gpu, min_cases());

cpu_and_gpu_tests!("max", max_cpu, max_gpu, max_cases());

cpu_and_gpu_tests!("argmax", argmax_cpu, argmax_gpu, argmax_cases());

/// `small` and `large` on the CPU.
fn on_cpu(name: &str, mut small: Vec<Case>, large: Vec<Case>) {
    small.extend(large);
    run_all(name, &[Backend::Cpu], &small);
}

/// `small` on every GPU, `large` on the first only (see [`first_gpu`]).
fn on_gpus(name: &str, test: &str, small: Vec<Case>, large: Vec<Case>) {
    run_all(name, &common::gpus(common::rt(), test), &small);
    run_all(name, &first_gpu(test), &large);
}

#[test]
fn transpose_cpu() {
    let cases = |shapes| common::cases(shapes, samples::transpose::trial);
    on_cpu(
        "transpose",
        cases(&TRANSPOSE_SHAPES),
        cases(&[TRANSPOSE_LARGE]),
    );
}

#[test]
fn transpose_gpu() {
    let cases = |shapes| common::cases(shapes, samples::transpose::trial);
    let (small, large) = (cases(&TRANSPOSE_SHAPES), cases(&[TRANSPOSE_LARGE]));
    on_gpus("transpose", "transpose_gpu", small, large);
}

#[test]
fn spmv_cpu() {
    let cases = |shapes| common::cases(shapes, samples::spmv::trial);
    on_cpu("spmv", cases(&SPMV_SHAPES), cases(&[SPMV_LARGE]));
}

#[test]
fn spmv_gpu() {
    let cases = |shapes| common::cases(shapes, samples::spmv::trial);
    on_gpus(
        "spmv",
        "spmv_gpu",
        cases(&SPMV_SHAPES),
        cases(&[SPMV_LARGE]),
    );
}

/// (min, max, argmax) of an input.
type Extrema = (f32, f32, u32);

/// min, max and argmax of `xs` on `backend`: the results, or the error.
fn extrema(rt: &Runtime, backend: Backend, xs: &[f32]) -> Result<Extrema> {
    let t = Target::On(backend);
    let x = rt.buffer(xs);
    let (lo, hi, at) = (
        rt.buffer(&[f32::NAN]),
        rt.buffer(&[f32::NAN]),
        rt.buffer(&[0xDEAD_BEEFu32]),
    );
    Reduce::new(ReduceOp::Min)?.run(rt, t, &x, &lo)?;
    Reduce::new(ReduceOp::Max)?.run(rt, t, &x, &hi)?;
    Argmax::new()?.run(rt, t, &x, &at)?;
    Ok((rt.read(&lo)?[0], rt.read(&hi)?[0], rt.read(&at)?[0]))
}

#[test]
fn reductions_ignore_nans_and_take_the_first_maximum() {
    let rt = common::rt();
    let inf = f32::INFINITY;
    let nan = f32::NAN;
    // Three passes (274 partials, then 2, then 1): ties at 65,600 and
    // 69,999, in different partials, and a NaN beside the first.
    let mut long = vec![-1.0f32; 70_000];
    long[69_999] = 3.5;
    long[65_600] = 3.5;
    long[65_601] = nan;
    long[12] = -7.0;
    let cases: Vec<(&str, Vec<f32>, Extrema)> = vec![
        ("one number", vec![2.5], (2.5, 2.5, 0)),
        (
            "NaNs around it",
            vec![nan, -inf, nan, -inf],
            (-inf, -inf, 1),
        ),
        ("infinities", vec![1.0, inf, -inf, inf], (-inf, inf, 1)),
        ("signed zeros tie", vec![-0.0, 0.0, -1.0], (-1.0, 0.0, 0)),
        (
            "first of equal maxima",
            vec![1.0, nan, 3.0, 3.0],
            (1.0, 3.0, 2),
        ),
        ("three passes", long, (-7.0, 3.5, 65_600)),
    ];
    for backend in everywhere("reductions_ignore_nans_and_take_the_first_maximum") {
        for (name, xs, want) in &cases {
            let got =
                extrema(rt, backend, xs).unwrap_or_else(|e| panic!("{name} on {backend}: {e}"));
            assert_eq!(got, *want, "{name} on {backend}: (min, max, argmax)");
        }
    }
}

#[test]
fn reductions_refuse_empty_and_all_nan_input() {
    let rt = common::rt();
    for backend in everywhere("reductions_refuse_empty_and_all_nan_input") {
        let t = Target::On(backend);
        // 70,000 NaNs take three passes: the error shows in the last one.
        for n in [0, 1, 1000, 70_000] {
            let x = rt.buffer(&vec![f32::NAN; n]);
            for op in [ReduceOp::Min, ReduceOp::Max] {
                let out = rt.buffer(&[0.0f32]);
                common::assert_invalid_input(
                    Reduce::new(op).unwrap().run(rt, t, &x, &out),
                    op.name(),
                    "x",
                );
            }
            let out = rt.buffer(&[0u32]);
            common::assert_invalid_input(
                Argmax::new().unwrap().run(rt, t, &x, &out),
                "argmax",
                "x",
            );
        }
    }
    // An output of the wrong length, before anything runs.
    let x = rt.buffer(&[1.0f32, 2.0]);
    let out = rt.zeros::<f32>(2);
    common::assert_invalid_input(
        Reduce::new(ReduceOp::Max)
            .unwrap()
            .run(rt, Target::Auto, &x, &out),
        "max",
        "out",
    );
    let out = rt.zeros::<u32>(0);
    common::assert_invalid_input(
        Argmax::new().unwrap().run(rt, Target::Auto, &x, &out),
        "argmax",
        "out",
    );
}

#[test]
fn transpose_refuses_mismatched_dimensions() {
    let rt = common::rt();
    let tr = Transpose::new().unwrap();
    let a = rt.zeros::<f32>(12);
    let b = rt.zeros::<f32>(12);
    common::assert_invalid_input(tr.run(rt, Target::Auto, &a, &b, 3, 5), "transpose", "a");
    let short = rt.zeros::<f32>(11);
    common::assert_invalid_input(tr.run(rt, Target::Auto, &a, &short, 3, 4), "transpose", "b");
    common::assert_invalid_input(
        tr.run(rt, Target::Auto, &a, &b, usize::MAX, 2),
        "transpose",
        "a",
    );
    common::assert_invalid_input(
        tr.submit(rt, Target::Auto, &short, &b, 4, 3),
        "transpose",
        "a",
    );
    // And a good call works on every backend.
    let a = rt.buffer(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]);
    for backend in everywhere("transpose_refuses_mismatched_dimensions") {
        let b = rt.zeros::<f32>(6);
        tr.run(rt, Target::On(backend), &a, &b, 2, 3).unwrap();
        assert_eq!(rt.read(&b).unwrap(), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}

#[test]
fn csr_matrix_refuses_bad_structure() {
    let rt = common::rt();
    // A valid 3×4 matrix: row 0 has two non-zeros, row 1 none, row 2 one.
    let (ptr, col, val) = ([0u32, 2, 2, 3], [0u32, 3, 1], [1.0f32, 2.0, 3.0]);
    let a = CsrMatrix::new(rt, 3, 4, &ptr, &col, &val).unwrap();
    assert_eq!((a.rows(), a.cols(), a.nnz()), (3, 4, 3));

    let bad = |rows, cols, ptr: &[u32], col: &[u32], val: &[f32], arg| {
        common::assert_invalid_input(CsrMatrix::new(rt, rows, cols, ptr, col, val), "spmv", arg)
    };
    bad(4, 4, &ptr, &col, &val, "row_ptr"); // rows + 1 entries
    bad(3, 4, &[], &[], &[], "row_ptr");
    bad(3, 4, &[1, 2, 2, 3], &col, &val, "row_ptr"); // starts at 0
    bad(3, 4, &[0, 2, 1, 3], &col, &val, "row_ptr"); // never decreases
    bad(3, 4, &[0, 2, 2, 2], &col, &val, "row_ptr"); // ends at nnz
    bad(3, 4, &[0, 2, 2, 4], &col, &val, "row_ptr");
    bad(3, 4, &ptr, &col, &val[..2], "values"); // one value per index
    bad(3, 4, &ptr, &[0, 4, 1], &val, "col_idx"); // a column past the end
    bad(3, 3, &ptr, &col, &val, "col_idx");
    bad(3, 0, &ptr, &col, &val, "col_idx");
    bad(3, 4, &ptr, &[0, u32::MAX, 1], &val, "col_idx");

    // x and y must fit the matrix.
    let spmv = Spmv::new().unwrap();
    let (x, y) = (rt.zeros::<f32>(4), rt.zeros::<f32>(3));
    let (x3, y4) = (rt.zeros::<f32>(3), rt.zeros::<f32>(4));
    common::assert_invalid_input(spmv.run(rt, Target::Auto, &a, &x3, &y), "spmv", "x");
    common::assert_invalid_input(spmv.run(rt, Target::Auto, &a, &x, &y4), "spmv", "y");
    common::assert_invalid_input(spmv.submit(rt, Target::Auto, &a, &x, &y4), "spmv", "y");

    // And the valid one multiplies right on every backend.
    let x = rt.buffer(&[1.0f32, 10.0, 100.0, 1000.0]);
    for backend in everywhere("csr_matrix_refuses_bad_structure") {
        let y = rt.buffer(&[f32::NAN; 3]);
        spmv.run(rt, Target::On(backend), &a, &x, &y).unwrap();
        assert_eq!(rt.read(&y).unwrap(), [2001.0, 0.0, 30.0], "on {backend}");
    }
}
