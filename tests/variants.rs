//! Kernel variants on real adapters: each GPU variant (another shader, at
//! its own launch size) runs where placement puts it and computes what the
//! kernel's own shader does; the decisions name the variant.

mod common;

use pel::{Backend, Kernel, Read, ReadWrite, Target, Variant};

/// A shader of `x` (read) and `y` (read-write) that sets each `y[i]` by
/// `statement`, `per` outputs an invocation, at workgroup size `size`,
/// folded past 65,535 workgroups.
fn elementwise(size: u32, per: u32, statement: &str) -> String {
    format!(
        r#"
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size({size})
fn main(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {{
    let first = pel_index(id, groups) * {per}u;
    for (var k = 0u; k < {per}u; k++) {{
        let i = first + k;
        if i < arrayLength(&y) {{ {statement} }}
    }}
}}
"#
    )
}

/// A kernel setting each `y[i]` by `statement` (in WGSL) and by `f(x[i],
/// y[i])` on the CPU, with two GPU variants: "wide" (workgroups of 256)
/// and "four" (four outputs an invocation: a launch a quarter the size).
fn elementwise_kernel(name: &str, statement: &str, f: fn(f32, f32) -> f32) -> Kernel {
    Kernel::builder(name, elementwise(64, 1, statement))
        .cpu::<(Read<f32>, ReadWrite<f32>)>(move |args, _| {
            let (x, y) = args.split();
            for (y, &x) in y.iter_mut().zip(x) {
                *y = f(x, *y);
            }
        })
        .variant(Variant::wgsl("wide", elementwise(256, 1, statement)))
        .variant(
            Variant::wgsl("four", elementwise(64, 4, statement))
                .invocations(|_: &(), lens| (lens[1] as u64).div_ceil(4)),
        )
        .build()
        .expect("the variants bind what the kernel binds")
}

/// `y[i] = 2 x[i] + 1`.
fn kernel() -> Kernel {
    elementwise_kernel("affine", "y[i] = 2.0 * x[i] + 1.0;", |x, _| 2.0 * x + 1.0)
}

/// The implementations the decisions on `device` ran (`None`: the
/// kernel's own).
fn ran_on(rt: &pel::Runtime, device: Backend) -> std::collections::HashSet<Option<String>> {
    rt.decisions()
        .into_iter()
        .filter(|d| d.chosen == device)
        .map(|d| d.variant)
        .collect()
}

#[test]
fn every_gpu_variant_computes_the_kernels_result_where_it_is_placed() {
    let rt = common::fresh("");
    let k = kernel();
    for gpu in common::gpus(
        &rt,
        "every_gpu_variant_computes_the_kernels_result_where_it_is_placed",
    ) {
        // Awkward sizes: none, one, a prime, just past a workgroup of 256.
        for n in [0usize, 1, 4099, 257] {
            let xs = common::random(n, n as u64);
            let want: Vec<f32> = xs.iter().map(|x| 2.0 * x + 1.0).collect();
            let x = rt.buffer(&xs);
            // Forced to the GPU: placement explores its variants there.
            for _ in 0..24 {
                let y = rt.buffer(&vec![f32::NAN; n]);
                let info = rt.execute(Target::On(gpu), &k, &[&x, &y], &()).unwrap();
                assert_eq!(info.backend, gpu);
                // Exact on any device, fused or not: 2x is exact.
                assert_eq!(rt.read(&y).unwrap(), want, "{gpu}, n = {n}");
            }
        }
        let ran = ran_on(&rt, gpu);
        for v in [None, Some("wide"), Some("four")] {
            assert!(
                ran.contains(&v.map(str::to_owned)),
                "{gpu}: {v:?} never ran: {ran:?}"
            );
        }
    }
    // The CPU has no variant: its implementation is the kernel's own.
    let cpu: Vec<_> = rt
        .decisions()
        .into_iter()
        .filter(|d| d.chosen == Backend::Cpu)
        .collect();
    assert!(cpu.iter().all(|d| d.variant.is_none()));
}

/// Every matmul implementation alone (the tiled shader and the
/// register-blocked one) against the serial reference, at awkward shapes,
/// on every GPU. Tolerance: each element within (k + 2)·ε·(|A|·|B|)ᵢⱼ.
#[test]
fn each_matmul_shader_alone_matches_the_reference() {
    use pel::kernels::matmul::{MatmulParams, reference};
    let rt = common::rt();
    let mm = pel::kernels::Matmul::new().unwrap();
    let alone = [
        ("tiled", mm.kernel().alone()),
        (
            "regblock",
            mm.kernel().variant_kernel("regblock").unwrap().clone(),
        ),
    ];
    let shapes = [
        (0, 0, 0),
        (5, 7, 0),
        (1, 1, 1),
        (31, 33, 7),
        (65, 65, 65),
        (100, 37, 211),
        // 65,537 tiles of 64×64 (more than 65,535 workgroups of either).
        (65_537 * 64 - 5, 2, 3),
    ];
    for gpu in common::gpus(rt, "each_matmul_shader_alone_matches_the_reference") {
        for (m, n, k) in shapes {
            let a = common::random(m * k, 1);
            let b = common::random(k * n, 2);
            let (want, mag) = reference(&a, &b, m, n, k);
            let (ab, bb) = (rt.buffer(&a), rt.buffer(&b));
            let p = MatmulParams::new(m, n, k).unwrap();
            for (name, kernel) in &alone {
                // The tiled shader's largest shape is tests/kernels.rs's.
                if *name == "tiled" && m > 1000 {
                    continue;
                }
                let c = rt.buffer(&vec![f32::NAN; m * n]);
                rt.run_on(gpu, kernel, &[&ab, &bb, &c], &p).unwrap();
                let got = rt.read(&c).unwrap();
                let eps = f32::EPSILON as f64;
                for i in 0..m * n {
                    let tol = (k as f64 + 2.0) * eps * mag[i] + f32::MIN_POSITIVE as f64;
                    assert!(
                        (got[i] as f64 - want[i]).abs() <= tol,
                        "{gpu} {name} {m}×{n}×{k}: c[{i}] = {} but {}",
                        got[i],
                        want[i]
                    );
                }
            }
        }
    }
}

/// Every implementation of `kernel` for the device kind: its own code
/// (labelled "own") and each variant that runs there (a GPU variant has no
/// CPU code).
fn implementations(kernel: &Kernel, on_cpu: bool) -> Vec<(String, Kernel)> {
    let mut all = vec![("own".to_owned(), kernel.alone())];
    for label in kernel.variants() {
        let k = kernel.variant_kernel(label).unwrap();
        if k.has_cpu() == on_cpu {
            all.push((label.to_owned(), k.clone()));
        }
    }
    all
}

/// `n` seeded values with a NaN every 97th (from the 5th) and a run of
/// 300 NaNs from 1,000: a whole chunk of the reductions' is then NaN.
fn with_nans(n: usize, seed: u64) -> Vec<f32> {
    let mut xs = common::random(n, seed);
    for (i, x) in xs.iter_mut().enumerate() {
        if i % 97 == 5 || (1000..1300).contains(&i) {
            *x = f32::NAN;
        }
    }
    xs
}

/// Inputs of one reduction pass: none, one, a prime, either side of a
/// chunk of 256 and of 4,096, and on the first GPU, more than 65,535
/// workgroups (of either shader).
const PASS_SIZES: [usize; 8] = [0, 1, 63, 256, 257, 4096, 4099, 100_003];
const PASS_LARGE: usize = 65_536 * 256 + 3;

fn pass_sizes(gpu: Backend, first: Backend) -> Vec<usize> {
    let mut sizes = PASS_SIZES.to_vec();
    if gpu == first {
        sizes.push(PASS_LARGE);
    }
    sizes
}

/// One pass of sum, each shader alone, against its blocks' f64 sums: each
/// partial within len·ε·Σ|x| of its block's (len ≤ 4,096 adds in f32).
#[test]
fn each_sum_shader_alone_matches_the_reference() {
    use pel::kernels::sum::{CHUNK, Sum, SumParams, reference};
    let rt = common::rt();
    let sum = Sum::new().unwrap();
    let gpus = common::gpus(rt, "each_sum_shader_alone_matches_the_reference");
    for &gpu in &gpus {
        for n in pass_sizes(gpu, gpus[0]) {
            let xs = common::random(n, n as u64 + 1);
            let x = rt.buffer(&xs);
            let groups = n.div_ceil(CHUNK).max(1);
            let p = SumParams {
                n: n as u32,
                groups: groups as u32,
            };
            for (name, k) in implementations(sum.kernel(), false) {
                let partial = rt.buffer(&vec![f32::NAN; groups]);
                rt.run_on(gpu, &k, &[&x, &partial], &p).unwrap();
                let got = rt.read(&partial).unwrap();
                for (g, &v) in got.iter().enumerate() {
                    let block = &xs[(g * CHUNK).min(n)..((g + 1) * CHUNK).min(n)];
                    let (want, mag) = reference(block);
                    let tol = block.len() as f64 * f32::EPSILON as f64 * mag;
                    assert!(
                        (v as f64 - want).abs() <= tol,
                        "{gpu} {name} n = {n}: partial {g} = {v} but {want}"
                    );
                }
            }
        }
    }
}

/// One pass of min, max and argmax (first and merge), each shader alone,
/// against each chunk's exact result, NaNs ignored (a chunk all NaN gives
/// NaN, and for argmax the index u32::MAX).
#[test]
fn each_reduction_shader_alone_matches_the_reference() {
    use pel::kernels::reduce::{Argmax, CHUNK, Reduce, ReduceOp, ReduceParams};
    let rt = common::rt();
    let (min, max) = (
        Reduce::new(ReduceOp::Min).unwrap(),
        Reduce::new(ReduceOp::Max).unwrap(),
    );
    let argmax = Argmax::new().unwrap();
    let gpus = common::gpus(rt, "each_reduction_shader_alone_matches_the_reference");
    // The first (value, index) of a chunk that `better` picks: NaNs never.
    let best = |xs: &[f32], idx: &[u32], better: &dyn Fn(f32, f32) -> bool| -> (f32, u32) {
        let mut b = (f32::NAN, u32::MAX);
        for (&v, &i) in xs.iter().zip(idx) {
            if !v.is_nan() && (b.0.is_nan() || better(v, b.0) || (v == b.0 && i < b.1)) {
                b = (v, i);
            }
        }
        b
    };
    let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    for &gpu in &gpus {
        for n in pass_sizes(gpu, gpus[0]) {
            if n == 0 {
                continue; // refused before any pass (tests/kernels_linalg.rs)
            }
            let xs = with_nans(n, n as u64 + 2);
            // Indices as a merge pass reads them: shuffled, so the lowest
            // index of a tie is not the first position.
            let idx: Vec<u32> = (0..n as u32)
                .map(|i| i.wrapping_mul(2_654_435_761))
                .collect();
            let positions: Vec<u32> = (0..n as u32).collect();
            let (x, ib) = (rt.buffer(&xs), rt.buffer(&idx));
            let groups = n.div_ceil(CHUNK);
            let p = ReduceParams {
                n: n as u32,
                groups: groups as u32,
            };
            let chunks = |g: usize| (g * CHUNK)..((g + 1) * CHUNK).min(n);
            for (op, kernel, better) in [
                (
                    "min",
                    min.kernel(),
                    (|a: f32, b: f32| a < b) as fn(f32, f32) -> bool,
                ),
                ("max", max.kernel(), |a, b| a > b),
            ] {
                for (name, k) in implementations(kernel, false) {
                    let partial = rt.buffer(&vec![0.25f32; groups]);
                    rt.run_on(gpu, &k, &[&x, &partial], &p).unwrap();
                    for (g, v) in rt.read(&partial).unwrap().into_iter().enumerate() {
                        let r = chunks(g);
                        let want = best(&xs[r.clone()], &positions[r], &better).0;
                        assert!(
                            same(v, want),
                            "{gpu} {op} {name} n = {n}: {g}: {v} but {want}"
                        );
                    }
                }
            }
            for (pass, kernel) in [("first", argmax.kernel()), ("merge", argmax.merge_kernel())] {
                let merge = pass == "merge";
                for (name, k) in implementations(kernel, false) {
                    let (val, at) = (
                        rt.buffer(&vec![0.25f32; groups]),
                        rt.buffer(&vec![7u32; groups]),
                    );
                    if merge {
                        rt.run_on(gpu, &k, &[&x, &ib, &val, &at], &p).unwrap();
                    } else {
                        rt.run_on(gpu, &k, &[&x, &val, &at], &p).unwrap();
                    }
                    let (vals, ats) = (rt.read(&val).unwrap(), rt.read(&at).unwrap());
                    for g in 0..groups {
                        let r = chunks(g);
                        let ids = if merge {
                            &idx[r.clone()]
                        } else {
                            &positions[r.clone()]
                        };
                        let want = best(&xs[r], ids, &|a, b| a > b);
                        assert!(
                            same(vals[g], want.0) && ats[g] == want.1,
                            "{gpu} argmax {pass} {name} n = {n}: {g}: ({}, {}) but {want:?}",
                            vals[g],
                            ats[g]
                        );
                    }
                }
            }
        }
    }
}

/// matmul's CPU implementations alone (faer on the pool, faer on one
/// thread) against the serial reference at awkward shapes, with the
/// tolerance of the GPU shaders' test.
#[test]
fn each_matmul_cpu_implementation_alone_matches_the_reference() {
    use pel::kernels::matmul::{MatmulParams, reference};
    let rt = common::rt();
    let mm = pel::kernels::Matmul::new().unwrap();
    let all = implementations(mm.kernel(), true);
    assert_eq!(all.len(), 2, "own and serial");
    for (m, n, k) in [
        (0, 0, 0),
        (5, 7, 0),
        (1, 1, 1),
        (31, 33, 7),
        (65, 65, 65),
        (100, 37, 211),
    ] {
        let a = common::random(m * k, 3);
        let b = common::random(k * n, 4);
        let (want, mag) = reference(&a, &b, m, n, k);
        let (ab, bb) = (rt.buffer(&a), rt.buffer(&b));
        let p = MatmulParams::new(m, n, k).unwrap();
        for (name, kernel) in &all {
            let c = rt.buffer(&vec![f32::NAN; m * n]);
            rt.run_on(Backend::Cpu, kernel, &[&ab, &bb, &c], &p)
                .unwrap();
            let got = rt.read(&c).unwrap();
            for i in 0..m * n {
                let tol =
                    (k as f64 + 2.0) * f32::EPSILON as f64 * mag[i] + f32::MIN_POSITIVE as f64;
                assert!(
                    (got[i] as f64 - want[i]).abs() <= tol,
                    "cpu {name} {m}×{n}×{k}: c[{i}] = {} but {}",
                    got[i],
                    want[i]
                );
            }
        }
    }
}

/// A lost GPU loses no work that its variants did: each task is replayed
/// from lineage (with the implementation that ran it), and submitted
/// chains finish elsewhere. Values are small integers, so every device
/// and every variant computes them exactly.
#[test]
fn work_done_by_variants_survives_a_lost_gpu() {
    let Some(gpu) = common::gpu(common::rt(), "work_done_by_variants_survives_a_lost_gpu") else {
        return;
    };
    let rt = common::fresh("");
    // `y[i] += 2 x[i]`.
    let k = elementwise_kernel("accumulate", "y[i] = y[i] + 2.0 * x[i];", |x, y| {
        y + 2.0 * x
    });
    let n = 4099;
    let xs: Vec<f32> = (0..n).map(|i| (i % 13) as f32).collect();
    let ys: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
    let step = |y: &mut [f32]| y.iter_mut().zip(&xs).for_each(|(y, x)| *y += 2.0 * x);
    let x = rt.buffer(&xs);

    // Executed: the GPU is lost about to run the tenth kernel from now,
    // after its variants have each run some of y's history.
    let y = rt.buffer(&ys);
    let mut want = ys.clone();
    rt.set_faults("gpu-lost@9".parse().unwrap()).unwrap();
    for _ in 0..12 {
        rt.execute(Target::On(gpu), &k, &[&x, &y], &()).unwrap();
        step(&mut want);
    }
    assert_eq!(rt.read(&y).unwrap(), want, "executed calls");
    let used = ran_on(&rt, gpu);
    assert!(
        used.len() >= 2,
        "the GPU ran one implementation only: {used:?}"
    );
    let s = rt.stats();
    assert_eq!(s.devices_lost, 1, "{s}");
    // y's copy was on the GPU alone: its history was replayed.
    assert!(s.replayed_tasks >= 1 && s.recoveries >= 1, "{s}");

    // Submitted: chains placed automatically on what is left.
    let chains: Vec<_> = (0..3).map(|c| rt.buffer(&vec![c as f32; n])).collect();
    let mut tasks = Vec::new();
    for _ in 0..5 {
        for y in &chains {
            tasks.push(rt.submit(&k, &[&x, y], &()).unwrap());
        }
    }
    for t in tasks {
        t.wait().unwrap();
    }
    for (c, y) in chains.iter().enumerate() {
        let mut want = vec![c as f32; n];
        for _ in 0..5 {
            step(&mut want);
        }
        assert_eq!(rt.read(y).unwrap(), want, "chain {c}");
    }
}
