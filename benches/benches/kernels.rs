//! Every sample kernel at two sizes on every backend and with automatic
//! placement, each group with its peer where a user would otherwise write
//! one: faer's GEMM for matmul, rayon loops for saxpy and sum,
//! `par_sort_unstable` for the sorts, and a hand-written wgpu program
//! dispatching the same shader for saxpy and matmul on the GPU.
//!
//! Each iteration puts fresh inputs on the host untimed, then times the
//! operation from those inputs to its result on the host, as `pel bench
//! kernels` does. Automatic placement is calibrated before it is timed.
//!
//! ```text
//! cargo bench --bench kernels                # everything (long on a software GPU)
//! cargo bench --bench kernels -- saxpy       # one kernel's group
//! ```
//!
//! `PEL_BENCH_SIZES=tour` also times each kernel at its tour size (the
//! default is a sixteenth and a quarter of it, to keep a software GPU's
//! runs short).

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pel::kernels::matmul::{MatmulParams, WGSL as MATMUL_WGSL};
use pel::kernels::samples;
use pel::kernels::saxpy::{SaxpyParams, WGSL as SAXPY_WGSL};
use pel::{Backend, Runtime, Target};
use pel_bench::kernels::Peer;
use pel_bench::peers::{RawWgpu, random_f32};

fn label(t: Target) -> String {
    match t {
        Target::Auto => "auto".to_owned(),
        Target::On(b) => b.to_string(),
        Target::Split { .. } => "split".to_owned(),
    }
}

fn kernels(c: &mut Criterion) {
    let rt = Runtime::builder()
        .persist_model(false)
        .build()
        .expect("a runtime");
    let gpus: Vec<Backend> = rt.gpu_backends();
    let raw = gpus.first().map(|&g| RawWgpu::open(&rt, g).expect("wgpu"));
    let tour = std::env::var("PEL_BENCH_SIZES").is_ok_and(|v| v == "tour");
    for sample in samples() {
        let mut group = c.benchmark_group(sample.name);
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        let mut sizes = vec![sample.tour_size / 16, sample.tour_size / 4];
        if tour {
            sizes.push(sample.tour_size);
        }
        for size in sizes.into_iter().map(|s| s.max(1)) {
            let mut trial = sample.trial(&rt, size, 7).expect("a trial");
            pel::calibrate::calibrate_trial(&rt, trial.as_mut(), 40).expect("calibration");
            let targets = rt
                .backends()
                .into_iter()
                .map(Target::On)
                .chain([Target::Auto]);
            for t in targets {
                group.bench_function(BenchmarkId::new(label(t), size), |b| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            trial.reset(&rt).expect("reset");
                            let start = Instant::now();
                            trial.run(&rt, t).expect("run");
                            total += start.elapsed();
                        }
                        total
                    })
                });
            }
            if let Some(peer) = Peer::of(sample.name, size, 7) {
                group.bench_function(BenchmarkId::new(format!("peer {}", peer.name), size), |b| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let mut input = peer.input();
                            let start = Instant::now();
                            input.run();
                            total += start.elapsed();
                        }
                        total
                    })
                });
            }
            if let Some(raw) = &raw {
                raw_wgpu(&mut group, raw, sample.name, size);
            }
        }
        group.finish();
    }
}

/// The hand-written wgpu program for saxpy and matmul: the same shader,
/// host data in, the result on the host.
fn raw_wgpu(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    raw: &RawWgpu,
    kernel: &str,
    size: usize,
) {
    let id = BenchmarkId::new("raw wgpu", size);
    match kernel {
        "saxpy" => {
            let (x, y) = (random_f32(1, size), random_f32(2, size));
            let p = SaxpyParams {
                a: 0.5,
                n: size as u32,
            };
            let args = [bytemuck::cast_slice(&x), bytemuck::cast_slice(&y)];
            let groups = (size as u64).div_ceil(256);
            group.bench_function(id, |b| {
                b.iter(|| {
                    raw.run(SAXPY_WGSL, &args, bytemuck::bytes_of(&p), groups)
                        .expect("raw saxpy")
                })
            });
        }
        "matmul" => {
            let (a, bm) = (random_f32(1, size * size), random_f32(2, size * size));
            let c = vec![0.0f32; size * size];
            let p = MatmulParams::new(size, size, size).expect("a matmul size");
            let args = [
                bytemuck::cast_slice(&a),
                bytemuck::cast_slice(&bm),
                bytemuck::cast_slice(&c),
            ];
            group.bench_function(id, |b| {
                b.iter(|| {
                    raw.run(MATMUL_WGSL, &args, bytemuck::bytes_of(&p), p.tiles as u64)
                        .expect("raw matmul")
                })
            });
        }
        _ => {}
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
