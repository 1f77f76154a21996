//! What `rt.run` with automatic placement adds over calling a kernel's CPU
//! implementation directly, for a tiny kernel (16 elements): the runtime's
//! per-call overhead (argument checks, the placement decision, the model's
//! bookkeeping).
//!
//! ```text
//! cargo bench --bench overhead
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use pel::{Backend, Kernel, Read, ReadWrite, Runtime, Target};
use std::hint::black_box;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    a: f32,
    n: u32,
}

fn saxpy_cpu(x: &[f32], y: &mut [f32], a: f32) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

fn overhead(c: &mut Criterion) {
    let rt = Runtime::builder()
        .persist_model(false)
        .build()
        .expect("runtime");
    let kernel = Kernel::builder("tiny_saxpy", pel::kernels::saxpy::WGSL)
        .params::<Params>()
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, p| {
            let (x, y) = args.split();
            saxpy_cpu(x, y, p.a);
        })
        .build()
        .expect("kernel");
    let n = 16;
    let xs = vec![1.0f32; n];
    let mut ys = vec![2.0f32; n];
    let x = rt.buffer(&xs);
    let y = rt.buffer(&ys);
    let p = Params {
        a: 0.5,
        n: n as u32,
    };
    // Calibrate first, so the timed calls are the steady state.
    for _ in 0..50 {
        rt.run(&kernel, &[&x, &y], &p).expect("run");
    }
    let mut group = c.benchmark_group("per_call_overhead");
    group.bench_function("direct_cpu_call", |b| {
        b.iter(|| saxpy_cpu(black_box(&xs), black_box(&mut ys), black_box(0.5)))
    });
    group.bench_function("rt.run_auto", |b| {
        b.iter(|| {
            rt.execute(Target::Auto, &kernel, &[&x, &y], black_box(&p))
                .expect("run")
        })
    });
    group.bench_function("rt.run_on_cpu", |b| {
        b.iter(|| {
            rt.run_on(Backend::Cpu, &kernel, &[&x, &y], black_box(&p))
                .expect("run")
        })
    });
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
