//! Submitted tasks: the order between them comes from the shaders' access
//! modes, results equal the same calls made one after another, failures
//! reach the tasks that needed the failed output and no others, and many
//! threads can submit at once.

mod common;

use std::sync::Arc;

use pel::{Backend, Error, Kernel, Read, ReadWrite, Runtime, Target};
use proptest::prelude::*;

/// `y[i] = y[i] * a + (x[i] ^ b) + i` in u32 arithmetic: exact on every
/// backend, and different for every order of two calls on the same `y`.
const MIX: &str = r#"
struct P { a: u32, b: u32, fail: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> y: array<u32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = id.x + id.y * nw.x * 64u;
    if i < arrayLength(&y) { y[i] = y[i] * p.a + (x[i] ^ p.b) + i; }
}
"#;

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MixParams {
    a: u32,
    b: u32,
    /// Non-zero: the CPU implementation panics (a failing task on demand).
    fail: u32,
    pad: u32,
}

fn mix_one(x: u32, y: u32, i: usize, p: &MixParams) -> u32 {
    y.wrapping_mul(p.a)
        .wrapping_add(x ^ p.b)
        .wrapping_add(i as u32)
}

fn mix() -> Kernel {
    Kernel::builder("mix", MIX)
        .params::<MixParams>()
        .cpu::<(Read<u32>, ReadWrite<u32>)>(|args, p| {
            assert!(p.fail == 0, "mix asked to fail");
            let (x, y) = args.split();
            for (i, (y, x)) in y.iter_mut().zip(x).enumerate() {
                *y = mix_one(*x, *y, i, p);
            }
        })
        .build()
        .unwrap()
}

/// One step of a random program over four buffers.
#[derive(Debug, Clone)]
enum Op {
    /// Submit `mix(x = buffers[x], y = buffers[y])`, placed by `target`.
    Submit {
        x: usize,
        y: usize,
        a: u32,
        b: u32,
        target: usize,
    },
    /// The same call, synchronously.
    Run {
        x: usize,
        y: usize,
        a: u32,
        b: u32,
        target: usize,
    },
    /// Read a buffer now (it must show every earlier write, none later).
    Read(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let call = (0..4usize, 1..4usize, any::<u32>(), any::<u32>(), 0..4usize);
    prop_oneof![
        6 => call.clone().prop_map(|(x, d, a, b, target)| Op::Submit { x, y: (x + d) % 4, a, b, target }),
        1 => call.prop_map(|(x, d, a, b, target)| Op::Run { x, y: (x + d) % 4, a, b, target }),
        1 => (0..4usize).prop_map(Op::Read),
    ]
}

/// The targets a random program picks from: automatic, the CPU, each GPU.
fn targets(rt: &Runtime) -> Vec<Target> {
    std::iter::once(Target::Auto)
        .chain(rt.backends().into_iter().map(Target::On))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random graphs of submitted (and a few synchronous) calls on several
    /// devices give exactly what the same calls give run one after another
    /// on the CPU.
    #[test]
    fn random_graphs_equal_the_calls_run_in_order(
        len in prop_oneof![Just(1usize), Just(63), Just(65), Just(257), Just(1000)],
        seed in any::<u32>(),
        ops in proptest::collection::vec(op(), 1..24),
    ) {
        let rt = common::rt();
        common::gpus(rt, "random_graphs_equal_the_calls_run_in_order");
        let kernel = mix();
        let targets = targets(rt);
        let init: Vec<Vec<u32>> = (0..4u32)
            .map(|b| (0..len as u32).map(|i| (i ^ seed).wrapping_mul(2654435761).wrapping_add(b)).collect())
            .collect();
        let bufs: Vec<_> = init.iter().map(|v| rt.buffer(v)).collect();
        let mut expect = init.clone();
        let mut tasks = Vec::new();
        for op in &ops {
            match *op {
                Op::Submit { x, y, a, b, target } | Op::Run { x, y, a, b, target } => {
                    let p = MixParams { a, b, fail: 0, pad: 0 };
                    let t = targets[target % targets.len()];
                    let xs = expect[x].clone();
                    for (i, v) in expect[y].iter_mut().enumerate() {
                        *v = mix_one(xs[i], *v, i, &p);
                    }
                    if matches!(op, Op::Submit { .. }) {
                        tasks.push(rt.submit_to(t, &kernel, &[&bufs[x], &bufs[y]], &p).unwrap());
                    } else {
                        rt.execute(t, &kernel, &[&bufs[x], &bufs[y]], &p).unwrap();
                    }
                }
                Op::Read(b) => prop_assert_eq!(&rt.read(&bufs[b]).unwrap(), &expect[b]),
            }
        }
        rt.wait_all().unwrap();
        for t in &tasks {
            prop_assert!(t.is_finished());
            t.wait().unwrap();
        }
        for (b, want) in bufs.iter().zip(&expect) {
            prop_assert_eq!(&rt.read(b).unwrap(), want);
        }
    }
}

#[test]
fn a_failure_reaches_its_dependents_and_not_independent_tasks() {
    // A runtime of its own: wait_all reports failures runtime-wide.
    let rt = &Runtime::builder().persist_model(false).build().unwrap();
    let kernel = mix();
    let ok = MixParams {
        a: 3,
        b: 5,
        fail: 0,
        pad: 0,
    };
    let bad = MixParams { fail: 1, ..ok };
    let on = |b| Target::On(b);
    let (a, b, c, d) = (
        rt.buffer(&[1u32; 100]),
        rt.buffer(&[2u32; 100]),
        rt.buffer(&[3u32; 100]),
        rt.buffer(&[4u32; 100]),
    );
    let (e, f) = (rt.buffer(&[5u32; 100]), rt.buffer(&[6u32; 100]));
    // The chain a → b → c → d, whose middle link fails.
    let t1 = rt.submit(&kernel, &[&a, &b], &ok).unwrap();
    let t2 = rt
        .submit_to(on(Backend::Cpu), &kernel, &[&b, &c], &bad)
        .unwrap();
    let t3 = rt.submit(&kernel, &[&c, &d], &ok).unwrap();
    // Independent of the failure: reads b (not c), and works on e, f.
    let t4 = rt.submit(&kernel, &[&b, &e], &ok).unwrap();
    let t5 = rt.submit(&kernel, &[&e, &f], &ok).unwrap();

    assert!(t1.wait().is_ok());
    let e2 = t2.wait().unwrap_err();
    assert!(matches!(e2, Error::KernelPanicked { .. }), "{e2}");
    match t3.wait().unwrap_err() {
        Error::DependencyFailed {
            kernel,
            dependency,
            cause,
        } => {
            assert_eq!((kernel.as_str(), dependency.as_str()), ("mix", "mix"));
            assert_eq!(*cause, e2);
        }
        other => panic!("expected DependencyFailed, got {other}"),
    }
    t4.wait().unwrap();
    t5.wait().unwrap();
    assert!(rt.wait_all().is_err(), "wait_all reports the failure");
    assert!(rt.wait_all().is_ok(), "and only once");

    // The independent results are right.
    let b1: Vec<u32> = (0..100).map(|i| mix_one(1, 2, i, &ok)).collect();
    let e1: Vec<u32> = (0..100).map(|i| mix_one(b1[i], 5, i, &ok)).collect();
    let f1: Vec<u32> = (0..100).map(|i| mix_one(e1[i], 6, i, &ok)).collect();
    assert_eq!(rt.read(&b).unwrap(), b1);
    assert_eq!(rt.read(&e).unwrap(), e1);
    assert_eq!(rt.read(&f).unwrap(), f1);
    // What the failed tasks should have produced cannot be read as if current.
    // A read names the buffer and the task that failed to write it.
    assert!(matches!(rt.read(&d), Err(Error::WriterFailed { .. })));
    // A synchronous call that needs it fails the same way...
    assert!(matches!(
        rt.run(&kernel, &[&d, &a], &ok),
        Err(Error::DependencyFailed { .. })
    ));
    // ...and a fresh write makes the buffer usable again.
    rt.write(&d, &[7u32; 100]).unwrap();
    rt.submit(&kernel, &[&a, &d], &ok).unwrap().wait().unwrap();
    let a1 = rt.read(&a).unwrap();
    let d1: Vec<u32> = (0..100).map(|i| mix_one(a1[i], 7, i, &ok)).collect();
    assert_eq!(rt.read(&d).unwrap(), d1);
}

#[test]
fn eight_threads_submit_at_once() {
    let rt = common::rt();
    let kernel = Arc::new(mix());
    let mut backends = vec![Target::Auto, Target::On(Backend::Cpu)];
    backends.extend(
        common::gpus(rt, "eight_threads_submit_at_once")
            .into_iter()
            .map(Target::On),
    );
    let len = 333;
    let input: Vec<u32> = (0..len as u32).map(|i| i.wrapping_mul(7919)).collect();
    let shared = rt.buffer(&input);
    let gpu_runs = rt.stats().gpu_runs;
    std::thread::scope(|s| {
        for t in 0..8u32 {
            let (kernel, shared, backends) = (Arc::clone(&kernel), shared.clone(), &backends);
            let input = &input;
            s.spawn(move || {
                let mine = rt.buffer(&vec![t; len]);
                let mut expect = vec![t; len];
                let mut tasks = Vec::new();
                for i in 0..40u32 {
                    let p = MixParams {
                        a: 3 + i,
                        b: t,
                        fail: 0,
                        pad: 0,
                    };
                    let target = backends[(t + i) as usize % backends.len()];
                    tasks.push(
                        rt.submit_to(target, &kernel, &[&shared, &mine], &p)
                            .unwrap(),
                    );
                    for (j, v) in expect.iter_mut().enumerate() {
                        *v = mix_one(input[j], *v, j, &p);
                    }
                }
                for task in tasks {
                    task.wait().unwrap();
                }
                assert_eq!(rt.read(&mine).unwrap(), expect, "thread {t}");
            });
        }
    });
    assert_eq!(
        rt.read(&shared).unwrap(),
        input,
        "the shared input is untouched"
    );
    if backends.len() > 2 {
        assert!(rt.stats().gpu_runs >= gpu_runs + 8 * 40 / backends.len() as u64);
    }
}

/// Work long enough to keep a GPU busy while the next task is placed.
const SPIN: &str = r#"
@group(0) @binding(0) var<storage, read_write> y: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i >= arrayLength(&y) { return; }
    var v = y[i];
    for (var k = 0u; k < 20000u; k++) { v = v * 1664525u + 1013904223u; }
    y[i] = v;
}
"#;

#[test]
fn uploads_start_while_the_gpu_is_still_busy() {
    let rt = common::rt();
    let Some(gpu) = common::gpu(rt, "uploads_start_while_the_gpu_is_still_busy") else {
        return;
    };
    if rt.device(gpu).unwrap().api == "gl" {
        eprintln!("SKIPPED prefetch check: gpu0 is a GL device, which pel does not prefetch to");
        return;
    }
    let spin = Kernel::builder("spin", SPIN)
        .cpu::<(ReadWrite<u32>,)>(|args, _: &()| {
            let (y,) = args.split();
            for v in y {
                for _ in 0..20000 {
                    *v = v.wrapping_mul(1664525).wrapping_add(1013904223);
                }
            }
        })
        .build()
        .unwrap();
    let kernel = mix();
    let busy = rt.buffer(&(0..4096u32).collect::<Vec<_>>());
    let x: Vec<u32> = (0..100_000u32).map(|i| i.wrapping_mul(31)).collect();
    let (xb, yb) = (rt.buffer(&x), rt.zeros::<u32>(100_000));
    let before = rt.stats().prefetches;
    let first = rt.submit_to(Target::On(gpu), &spin, &[&busy], &()).unwrap();
    let p = MixParams {
        a: 1,
        b: 9,
        fail: 0,
        pad: 0,
    };
    let second = rt
        .submit_to(Target::On(gpu), &kernel, &[&xb, &yb], &p)
        .unwrap();
    assert!(
        rt.stats().prefetches > before,
        "the second task's input was uploaded when it was placed"
    );
    first.wait().unwrap();
    second.wait().unwrap();
    let want: Vec<u32> = (0..100_000).map(|i| mix_one(x[i], 0, i, &p)).collect();
    assert_eq!(rt.read(&yb).unwrap(), want);
}
