//! The image, signal and physics kernels (blur, histogram, heat, n-body)
//! against their serial references, on the CPU and on every GPU, at
//! awkward sizes; and their typed errors for bad input. Inputs are seeded
//! random values; outputs start poisoned. The tolerances are stated in each
//! kernel's trial (see pel-kernels).
//!
//! More than 65,535 workgroups: blur on a 1,048,577×3 image (65,537 tiles of
//! 16×16), heat on a 3×524,289 grid (65,537 tiles of 64×8) and histogram's
//! global-atomics path on 16,777,217 values (65,537 workgroups of 256). The
//! blur runs on the CPU and the first GPU only: the GL adapter runs its
//! workgroup barriers too slowly for a test.

mod common;

use pel::kernels::blur::{self, Blur};
use pel::kernels::heat::Heat;
use pel::kernels::histogram::{self, Histogram};
use pel::kernels::nbody::{self, Nbody};
use pel::kernels::samples;
use pel::{Backend, Buffer, Error, Target};

use common::{cpu_and_first_gpu, everywhere as all_backends};

/// 65,537 tiles of 16×16 in one row: more than 65,535 workgroups, in 12 MiB.
const WIDE: usize = 65_537 * 16 - 15;

const BLUR_SHAPES: [(usize, usize, usize); 8] = [
    (0, 0, 1),
    (0, 5, 2),
    (1, 1, 0),
    (1, 1, 2),
    (17, 13, 2),
    (64, 65, 3),
    (31, 7, 8),
    (300, 47, 1),
];

cpu_and_gpu_tests! {
    "blur", blur_cpu, blur_gpu, &BLUR_SHAPES, samples::blur::trial;
}

shape_tests! {
    blur_over_65535_tiles: "blur", &[(WIDE, 3, 2)], samples::blur::trial, cpu_and_first_gpu;
}

/// An asymmetric kernel: catches a flipped or transposed stencil, which a
/// Gaussian's symmetry would hide.
#[test]
fn blur_asymmetric_kernel_matches_reference() {
    let rt = common::rt();
    let (w, h) = (37, 21);
    let image: Vec<f32> = (0..w * h)
        .map(|i| ((i * 7919) % 101) as f32 / 101.0)
        .collect();
    let weights: Vec<f32> = (0..25).map(|i| (i as f32 - 7.0) / 13.0).collect();
    let (want, mag) = blur::reference(&image, w, h, &weights);
    let blur = Blur::new().unwrap();
    for b in all_backends("blur_asymmetric_kernel_matches_reference") {
        let (src, wb, dst) = (rt.buffer(&image), rt.buffer(&weights), rt.zeros(w * h));
        blur.run(rt, Target::On(b), &src, &wb, &dst, w, h).unwrap();
        let got = rt.read(&dst).unwrap();
        for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
            let tol = 6.0 * f32::EPSILON as f64 * mag[i] + 1e-30;
            assert!(
                (g as f64 - e).abs() <= tol,
                "{b}: pixel ({}, {}): got {g}, expected {e}",
                i % w,
                i / w
            );
        }
    }
}

fn assert_invalid<T: std::fmt::Debug>(r: pel::Result<T>, arg: &str) {
    match r {
        Err(Error::InvalidInput {
            arg: a, message, ..
        }) => {
            assert_eq!(a, arg, "wrong argument named: {message}");
            assert!(!message.is_empty());
        }
        other => panic!("expected InvalidInput for `{arg}`, got {other:?}"),
    }
}

#[test]
fn blur_bad_input_is_a_typed_error() {
    let rt = common::rt();
    let blur = Blur::new().unwrap();
    let img = rt.zeros::<f32>(12);
    let out = rt.zeros::<f32>(12);
    let w9 = rt.buffer(&[1.0f32 / 9.0; 9]);
    let run = |src: &Buffer<f32>, weights: &Buffer<f32>, dst: &Buffer<f32>, w, h| {
        blur.run(rt, Target::On(Backend::Cpu), src, weights, dst, w, h)
    };
    assert_invalid(run(&img, &w9, &out, 5, 3), "src");
    assert_invalid(run(&img, &w9, &rt.zeros(11), 4, 3), "dst");
    assert_invalid(run(&img, &w9, &out, usize::MAX, 2), "src");
    assert_invalid(run(&img, &rt.zeros(0), &out, 4, 3), "weights");
    assert_invalid(run(&img, &rt.zeros(4), &out, 4, 3), "weights");
    assert_invalid(run(&img, &rt.zeros(10), &out, 4, 3), "weights");
    assert_invalid(run(&img, &rt.zeros(19 * 19), &out, 4, 3), "weights");
    assert!(run(&img, &rt.zeros(17 * 17), &out, 4, 3).is_ok());
    assert_invalid(blur::gaussian_kernel(0.0, 2), "sigma");
    assert_invalid(blur::gaussian_kernel(f32::NAN, 2), "sigma");
    assert_invalid(blur::gaussian_kernel(1.0, 9), "radius");
    let g = blur::gaussian_kernel(1.5, 3).unwrap();
    assert_eq!(g.len(), 49);
    assert!((g.iter().map(|&v| v as f64).sum::<f64>() - 1.0).abs() < 1e-6);
    assert_eq!(g[0], g[48]);
    assert!(g[24] > g[23] && g[23] > g[22]);
}

const HISTOGRAM_SHAPES: [(usize, usize, u32); 10] = [
    (0, 256, 999_999),
    (1, 256, 999_999),
    (257, 256, 999_999),
    (1_000_003, 256, 999_999),
    (4099, 1, 1000),
    (4099, 3, 0),
    (10_007, 4096, u32::MAX),
    (10_007, 7, u32::MAX - 1),
    (10_007, 300, 99),
    // More bins than workgroup memory holds: global atomics.
    (10_007, 5000, 123_456_789),
];

cpu_and_gpu_tests! {
    "histogram", histogram_cpu, histogram_gpu, &HISTOGRAM_SHAPES, samples::histogram::trial;
}

shape_tests! {
    histogram_over_65535_workgroups: "histogram", &[(65_536 * 256 + 1, 4097, 3_999_999_999)],
        samples::histogram::trial, all_backends;
}

#[test]
fn histogram_bad_input_is_a_typed_error() {
    let rt = common::rt();
    let h = Histogram::new().unwrap();
    let values = rt.buffer(&[1u32, 2, 3]);
    assert_invalid(
        h.run(rt, Target::On(Backend::Cpu), &values, &rt.zeros(0), 10),
        "hist",
    );
    assert_invalid(
        h.submit(rt, Target::Auto, &values, &rt.zeros(0), 10)
            .map(|_| ()),
        "hist",
    );
    assert_eq!(histogram::bin(7, 0, 10), 0);
}

const HEAT_SHAPES: [(usize, usize, usize); 8] = [
    (0, 0, 2),
    (1, 1, 1),
    (2, 5, 3),
    (3, 3, 10),
    (5, 4, 0),
    (17, 9, 7),
    (40, 33, 64),
    (256, 256, 300),
];

cpu_and_gpu_tests! {
    "heat", heat_cpu, heat_gpu, &HEAT_SHAPES, samples::heat::trial;
}

shape_tests! {
    heat_over_65535_tiles: "heat", &[(3, 65_536 * 8 + 1, 3)], samples::heat::trial, all_backends;
}

#[test]
fn heat_bad_input_is_a_typed_error() {
    let rt = common::rt();
    let heat = Heat::new().unwrap();
    let grid = rt.zeros::<f32>(12);
    let run = |w, h, alpha| heat.run(rt, Target::On(Backend::Cpu), &grid, w, h, alpha, 3);
    assert_invalid(run(5, 3, 0.1), "grid");
    assert_invalid(run(usize::MAX, 2, 0.1), "grid");
    assert_invalid(run(4, 3, 0.26), "alpha");
    assert_invalid(run(4, 3, -0.01), "alpha");
    assert_invalid(run(4, 3, f32::NAN), "alpha");
    assert!(run(4, 3, 0.25).is_ok());
    assert!(run(4, 3, 0.0).is_ok());
}

/// A hot spot in a cold grid with a cold boundary: heat spreads
/// symmetrically, total heat only leaves through the boundary, and the
/// boundary stays fixed.
#[test]
fn heat_hot_spot_spreads_symmetrically() {
    let rt = common::rt();
    let heat = Heat::new().unwrap();
    let n = 33;
    for b in all_backends("heat_hot_spot_spreads_symmetrically") {
        let mut init = vec![0.0f32; n * n];
        init[n * n / 2] = 100.0;
        let grid = rt.buffer(&init);
        heat.run(rt, Target::On(b), &grid, n, n, 0.25, 25).unwrap();
        let u = rt.read(&grid).unwrap();
        let at = |x: usize, y: usize| u[y * n + x];
        let c = n / 2;
        assert!(at(c, c) < 100.0 && at(c + 5, c) > 0.0, "{b}: no diffusion");
        for d in 1..=c {
            assert_eq!(at(c + d, c), at(c - d, c), "{b}: asymmetric in x at {d}");
            assert_eq!(at(c, c + d), at(c, c - d), "{b}: asymmetric in y at {d}");
        }
        let total: f64 = u.iter().map(|&v| v as f64).sum();
        assert!(total <= 100.0 * (1.0 + 1e-5), "{b}: heat grew to {total}");
        assert!(u[..n].iter().all(|&v| v == 0.0), "{b}: boundary moved");
    }
}

const NBODY_SIZES: [usize; 6] = [0, 1, 2, 63, 257, 1000];

cpu_and_gpu_tests! {
    "nbody", nbody_cpu, nbody_gpu, &NBODY_SIZES, samples::nbody::trial;
}

#[test]
fn nbody_bad_input_is_a_typed_error() {
    let rt = common::rt();
    let nb = Nbody::new().unwrap();
    let (p, v, o) = (rt.zeros(4), rt.zeros(4), rt.zeros(4));
    let cpu = Target::On(Backend::Cpu);
    assert_invalid(
        nb.run(rt, cpu, &p, &rt.zeros(3), &o, 0.1, 0.1),
        "velocities",
    );
    assert_invalid(
        nb.run(rt, cpu, &p, &v, &rt.zeros(5), 0.1, 0.1),
        "new_positions",
    );
    assert_invalid(nb.run(rt, cpu, &p, &v, &o, f32::INFINITY, 0.1), "dt");
    assert_invalid(nb.run(rt, cpu, &p, &v, &o, 0.1, 0.0), "softening");
    assert_invalid(nb.run(rt, cpu, &p, &v, &o, 0.1, 1e-30), "softening");
    assert_invalid(nb.run(rt, cpu, &p, &v, &o, 0.1, f32::NAN), "softening");
    assert!(nb.run(rt, cpu, &p, &v, &o, 0.1, 0.1).is_ok());
    // Reading and writing the same positions: the runtime refuses it.
    assert!(matches!(
        nb.run(rt, cpu, &p, &v, &p, 0.1, 0.1),
        Err(Error::AliasedArguments { .. })
    ));
}

#[test]
fn nbody_energy_of_a_simple_system() {
    // Two unit masses a unit apart, one moving at speed 2: E = ½·1·4 − 1.
    let pos = [[0.0f32, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]];
    let vel = [[0.0f32, 2.0, 0.0, 0.0], [0.0; 4]];
    assert!((nbody::energy(&pos, &vel, 0.0) - 1.0).abs() < 1e-12);
    // Softening 1: the pair's potential is −1/√2.
    let e = nbody::energy(&pos, &[[0.0; 4]; 2], 1.0);
    assert!((e + 1.0 / 2f64.sqrt()).abs() < 1e-12);
}

/// Energy drifts little over many steps of the symplectic integrator, on
/// the GPU as on the CPU (the n-body example's check).
#[test]
fn nbody_steps_conserve_energy() {
    let rt = common::rt();
    let nb = Nbody::new().unwrap();
    let n = 64;
    let pos0: Vec<[f32; 4]> = (0..n)
        .map(|i| {
            let a = i as f32 * 2.399_963;
            let r = 0.3 + 0.7 * (i as f32 / n as f32);
            [
                r * a.cos(),
                r * a.sin(),
                0.1 * (a * 3.0).sin(),
                1.0 / n as f32,
            ]
        })
        .collect();
    let vel0 = vec![[0.0f32; 4]; n];
    let (dt, eps) = (0.001, 0.1);
    let e0 = nbody::energy(&pos0, &vel0, eps);
    for b in all_backends("nbody_steps_conserve_energy") {
        let (mut p, v, mut q) = (rt.buffer(&pos0), rt.buffer(&vel0), rt.zeros(n));
        for _ in 0..50 {
            nb.run(rt, Target::On(b), &p, &v, &q, dt, eps).unwrap();
            std::mem::swap(&mut p, &mut q);
        }
        let e = nbody::energy(&rt.read(&p).unwrap(), &rt.read(&v).unwrap(), eps);
        assert!(
            ((e - e0) / e0).abs() < 1e-3,
            "{b}: energy drifted from {e0} to {e}"
        );
    }
}

/// Each kernel's submit gives what its run gives.
#[test]
fn submit_matches_run() {
    let rt = common::rt();
    let cpu = Target::On(Backend::Cpu);
    let mut targets = vec![cpu];
    targets.extend(common::gpu(rt, "submit_matches_run").map(Target::On));
    for t in targets {
        let image: Vec<f32> = (0..200).map(|i| (i % 13) as f32).collect();
        let weights = blur::gaussian_kernel(1.0, 1).unwrap();
        let blur = Blur::new().unwrap();
        let (src, w) = (rt.buffer(&image), rt.buffer(&weights));
        let (a, b) = (rt.zeros::<f32>(200), rt.zeros::<f32>(200));
        blur.run(rt, t, &src, &w, &a, 20, 10).unwrap();
        blur.submit(rt, t, &src, &w, &b, 20, 10)
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(rt.read(&a).unwrap(), rt.read(&b).unwrap(), "blur at {t:?}");

        let heat = Heat::new().unwrap();
        let (g1, g2) = (rt.buffer(&image), rt.buffer(&image));
        heat.run(rt, t, &g1, 20, 10, 0.2, 5).unwrap();
        heat.submit(rt, t, &g2, 20, 10, 0.2, 5)
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(
            rt.read(&g1).unwrap(),
            rt.read(&g2).unwrap(),
            "heat at {t:?}"
        );

        let hist = Histogram::new().unwrap();
        let values: Vec<u32> = (0..5000u32)
            .map(|i| i.wrapping_mul(2_654_435_761))
            .collect();
        let vb = rt.buffer(&values);
        let (h1, h2) = (rt.zeros::<u32>(10), rt.buffer(&[7u32; 10]));
        hist.run(rt, t, &vb, &h1, u32::MAX).unwrap();
        hist.submit(rt, t, &vb, &h2, u32::MAX)
            .unwrap()
            .wait()
            .unwrap();
        let counts = rt.read(&h1).unwrap();
        assert_eq!(counts, rt.read(&h2).unwrap(), "histogram at {t:?}");
        assert_eq!(counts.iter().sum::<u32>(), 5000);

        let nb = Nbody::new().unwrap();
        let bodies: Vec<[f32; 4]> = (0..50)
            .map(|i| [i as f32 * 0.1, (i % 7) as f32, (i % 3) as f32, 1.0])
            .collect();
        let (p, v1, v2) = (rt.buffer(&bodies), rt.zeros(50), rt.zeros(50));
        let (o1, o2) = (rt.zeros::<[f32; 4]>(50), rt.zeros::<[f32; 4]>(50));
        nb.run(rt, t, &p, &v1, &o1, 0.01, 0.1).unwrap();
        nb.submit(rt, t, &p, &v2, &o2, 0.01, 0.1)
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(
            rt.read(&o1).unwrap(),
            rt.read(&o2).unwrap(),
            "nbody at {t:?}"
        );
    }
}
