//! Kernel variants on real adapters: each GPU variant (another shader, at
//! its own launch size) runs where placement puts it and computes what the
//! kernel's own shader does; the decisions name the variant.

mod common;

use pel::{Backend, Kernel, Read, ReadWrite, Target, Variant};

/// `y[i] = 2 x[i] + 1`, `per` outputs an invocation, at workgroup size
/// `size`, folded past 65,535 workgroups.
fn shader(size: u32, per: u32) -> String {
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
        if i < arrayLength(&y) {{ y[i] = 2.0 * x[i] + 1.0; }}
    }}
}}
"#
    )
}

fn kernel() -> Kernel {
    Kernel::builder("affine", shader(64, 1))
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, _| {
            let (x, y) = args.split();
            for (y, x) in y.iter_mut().zip(x) {
                *y = 2.0 * x + 1.0;
            }
        })
        .variant(Variant::wgsl("wide", shader(256, 1)))
        // Four outputs an invocation: a launch of a quarter the size.
        .variant(
            Variant::wgsl("four", shader(64, 4))
                .invocations(|_: &(), lens| (lens[1] as u64).div_ceil(4)),
        )
        .build()
        .expect("the variants bind what the kernel binds")
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
        let ran: std::collections::HashSet<Option<String>> = rt
            .decisions()
            .into_iter()
            .filter(|d| d.chosen == gpu)
            .map(|d| d.variant)
            .collect();
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
