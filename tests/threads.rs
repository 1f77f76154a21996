//! Many threads using one runtime: calls on different buffers run at once,
//! calls on the same buffer take turns, and every result is exact.

mod common;

use std::sync::Arc;

use pel::{Backend, Kernel, ReadWrite, Target};

const ADD_ONE: &str = r#"
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < arrayLength(&x) { x[id.x] = x[id.x] + 1.0; }
}
"#;

fn add_one() -> Kernel {
    Kernel::builder("add_one", ADD_ONE)
        .cpu::<(ReadWrite<f32>,)>(|args, _| {
            let (x,) = args.split();
            for v in x {
                *v += 1.0;
            }
        })
        .build()
        .unwrap()
}

#[test]
fn eight_threads_on_one_buffer_take_turns_across_devices() {
    let rt = common::rt();
    let kernel = Arc::new(add_one());
    let mut backends = vec![Backend::Cpu];
    backends.extend(common::gpus(
        rt,
        "eight_threads_on_one_buffer_take_turns_across_devices",
    ));
    let shared = rt.zeros::<f32>(1000);
    let rounds = 25;
    std::thread::scope(|s| {
        for t in 0..8 {
            let (kernel, shared, backends) =
                (Arc::clone(&kernel), shared.clone(), backends.clone());
            s.spawn(move || {
                for i in 0..rounds {
                    // Each thread hops between devices: the data must follow.
                    let b = backends[(t + i) % backends.len()];
                    rt.run_on(b, &kernel, &[&shared], &()).unwrap();
                }
            });
        }
    });
    let got = rt.read(&shared).unwrap();
    assert!(
        got.iter().all(|&v| v == (8 * rounds) as f32),
        "every increment lands exactly once: {:?}",
        &got[..4]
    );
}

#[test]
fn threads_on_separate_buffers_all_finish_correctly() {
    let rt = common::rt();
    let kernel = Arc::new(add_one());
    std::thread::scope(|s| {
        for t in 0..8u32 {
            let kernel = Arc::clone(&kernel);
            s.spawn(move || {
                let start: Vec<f32> = (0..4099).map(|i| (i as u32 * 7 + t) as f32).collect();
                let buf = rt.buffer(&start);
                for _ in 0..20 {
                    rt.execute(Target::Auto, &kernel, &[&buf], &()).unwrap();
                }
                let got = rt.read(&buf).unwrap();
                for (g, s) in got.iter().zip(&start) {
                    assert_eq!(*g, s + 20.0);
                }
            });
        }
    });
}
