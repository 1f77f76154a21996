//! pel under hostile but legitimate concurrency: calls into pel from inside
//! kernels and tasks, from rayon code, a runtime dropped on its own worker,
//! long failure chains, and many threads racing a lost GPU. Every case ends
//! in a right result or a typed error, within a bounded time: each test runs
//! under a watchdog that fails it rather than hang the suite.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rayon::prelude::*;

use common::{cpu_only as cpu_runtime, within};
use pel::{Backend, Buffer, Error, Kernel, Read, ReadWrite, Runtime, Target};

/// `y += x`, with the CPU side in a `par_iter` (so it joins on the pool).
fn add(name: &str) -> Kernel {
    Kernel::builder(name, common::add_shader())
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, _: &()| {
            let (x, y) = args.split();
            y.par_iter_mut().zip(x).for_each(|(y, x)| *y += x);
        })
        .build()
        .unwrap()
}

/// `y += x` whose CPU side first runs `hook` (a call into pel).
fn add_with(name: &str, hook: impl Fn() + Send + Sync + 'static) -> Kernel {
    Kernel::builder(name, common::add_shader())
        .cpu::<(Read<f32>, ReadWrite<f32>)>(move |args, _: &()| {
            hook();
            let (x, y) = args.split();
            for (y, x) in y.iter_mut().zip(x) {
                *y += x;
            }
        })
        .build()
        .unwrap()
}

type Slot = Arc<Mutex<Option<pel::Result<()>>>>;

/// `y += x` whose CPU side first makes `call` (a call into pel), and the
/// slot where it keeps that call's result.
fn add_recording(
    name: &str,
    call: impl Fn() -> pel::Result<()> + Send + Sync + 'static,
) -> (Kernel, Slot) {
    let seen: Slot = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&seen);
    let k = add_with(name, move || *slot.lock().unwrap() = Some(call()));
    (k, seen)
}

fn taken(s: &Slot) -> pel::Result<()> {
    s.lock().unwrap().take().expect("the kernel ran its hook")
}

fn would_deadlock(r: pel::Result<()>, what: &str) {
    match r {
        Err(Error::WouldDeadlock { .. }) => {}
        other => panic!("{what}: expected WouldDeadlock, got {other:?}"),
    }
}

#[test]
fn a_kernel_reading_its_own_output_gets_an_error_not_a_hang() {
    within(60, "own output", || {
        let rt = cpu_runtime();
        let x = rt.buffer(&[1.0f32; 100]);
        let y = rt.buffer(&[2.0f32; 100]);
        let (rt2, y2) = (rt.clone(), y.clone());
        let (k, seen) = add_recording("reads_own_output", move || rt2.read(&y2).map(drop));
        rt.run_on(Backend::Cpu, &k, &[&x, &y], &()).unwrap();
        let err = taken(&seen);
        assert!(
            err.as_ref()
                .unwrap_err()
                .to_string()
                .contains("reads_own_output"),
            "the error names the kernel: {err:?}"
        );
        would_deadlock(err, "read of own output");
        // The call itself went through.
        assert_eq!(rt.read(&y).unwrap(), vec![3.0; 100]);
    });
}

#[test]
fn a_kernel_writing_its_own_input_gets_an_error_not_a_hang() {
    within(60, "own input", || {
        let rt = cpu_runtime();
        let x = rt.buffer(&[1.0f32; 10]);
        let y = rt.buffer(&[0.0f32; 10]);
        let (rt2, x2) = (rt.clone(), x.clone());
        let (k, seen) = add_recording("writes_own_input", move || rt2.write(&x2, &[9.0; 10]));
        rt.run_on(Backend::Cpu, &k, &[&x, &y], &()).unwrap();
        would_deadlock(taken(&seen), "write of own input");
        assert_eq!(rt.read(&x).unwrap(), vec![1.0; 10], "x untouched");
    });
}

#[test]
fn nested_calls_on_unrelated_buffers_still_work() {
    within(60, "nested unrelated", || {
        let rt = cpu_runtime();
        let inner = add("inner");
        let (u, v) = (rt.buffer(&[1.0f32; 50]), rt.buffer(&[1.0f32; 50]));
        let (rt2, u2, v2) = (rt.clone(), u.clone(), v.clone());
        let (outer, seen) = add_recording("outer", move || {
            let r = rt2.run_on(Backend::Cpu, &inner, &[&u2, &v2], &()).map(drop);
            r.and_then(|()| rt2.read(&v2).map(drop))
        });
        let (x, y) = (rt.buffer(&[1.0f32; 50]), rt.buffer(&[0.0f32; 50]));
        rt.run_on(Backend::Cpu, &outer, &[&x, &y], &()).unwrap();
        taken(&seen).unwrap();
        assert_eq!(rt.read(&v).unwrap(), vec![2.0; 50]);
        assert_eq!(rt.read(&y).unwrap(), vec![1.0; 50]);
    });
}

#[test]
fn a_task_waiting_for_a_task_it_submits_runs_it_instead_of_blocking() {
    within(60, "submit and wait inside a task", || {
        let rt = cpu_runtime();
        let inner = add("inner_task");
        let (u, v) = (rt.buffer(&[2.0f32; 64]), rt.buffer(&[1.0f32; 64]));
        let (rt2, u2, v2) = (rt.clone(), u.clone(), v.clone());
        let (outer, seen) = add_recording("outer_task", move || {
            rt2.submit_to(Target::On(Backend::Cpu), &inner, &[&u2, &v2], &())
                .and_then(|t| t.wait())
                .map(drop)
        });
        let (x, y) = (rt.buffer(&[1.0f32; 64]), rt.buffer(&[0.0f32; 64]));
        // Several at once, so the workers are all busy with outer tasks.
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                rt.submit_to(Target::On(Backend::Cpu), &outer, &[&x, &y], &())
                    .unwrap()
            })
            .collect();
        for t in tasks {
            t.wait().unwrap();
        }
        taken(&seen).unwrap();
        assert_eq!(rt.read(&v).unwrap(), vec![9.0; 64], "1 + 4 × 2");
        assert_eq!(rt.read(&y).unwrap(), vec![4.0; 64]);
    });
}

#[test]
fn wait_all_inside_a_task_is_refused() {
    within(60, "wait_all inside a task", || {
        let rt = cpu_runtime();
        let rt2 = rt.clone();
        let (k, seen) = add_recording("waits_for_all", move || rt2.wait_all());
        let (x, y) = (rt.buffer(&[1.0f32; 8]), rt.buffer(&[0.0f32; 8]));
        rt.submit_to(Target::On(Backend::Cpu), &k, &[&x, &y], &())
            .unwrap()
            .wait()
            .unwrap();
        would_deadlock(taken(&seen), "wait_all in a task");
        rt.wait_all().unwrap();
    });
}

#[test]
fn a_task_waiting_for_a_task_that_needs_its_output_is_refused() {
    within(60, "wait for a dependent", || {
        let rt = cpu_runtime();
        let inner = add("needs_outer");
        let (x, y, z) = (
            rt.buffer(&[1.0f32; 8]),
            rt.buffer(&[0.0f32; 8]),
            rt.buffer(&[0.0f32; 8]),
        );
        let (rt2, y2, z2) = (rt.clone(), y.clone(), z.clone());
        let (outer, seen) = add_recording("outer_writes_y", move || {
            // z += y reads what this task writes: it can only run after.
            rt2.submit_to(Target::On(Backend::Cpu), &inner, &[&y2, &z2], &())
                .and_then(|t| t.wait())
                .map(drop)
        });
        rt.submit_to(Target::On(Backend::Cpu), &outer, &[&x, &y], &())
            .unwrap()
            .wait()
            .unwrap();
        would_deadlock(taken(&seen), "wait for a task that needs this one");
        rt.wait_all().unwrap();
        // The inner task ran after all, once the outer one had finished.
        assert_eq!(rt.read(&z).unwrap(), vec![1.0; 8]);
    });
}

#[test]
fn a_task_reading_a_buffer_a_later_task_writes_does_not_hang() {
    within(60, "read of a later task's output", || {
        let rt = cpu_runtime();
        let (a, b, z) = (
            rt.buffer(&[5.0f32; 16]),
            rt.buffer(&[0.0f32; 16]),
            rt.buffer(&[0.0f32; 16]),
        );
        let (rt2, z2) = (rt.clone(), z.clone());
        let (reader, seen) = add_recording("reads_z", move || rt2.read(&z2).map(drop));
        let (x, y) = (rt.buffer(&[1.0f32; 16]), rt.buffer(&[0.0f32; 16]));
        let first = rt
            .submit_to(Target::On(Backend::Cpu), &reader, &[&x, &y], &())
            .unwrap();
        let writer = add("writes_z");
        let second = rt
            .submit_to(Target::On(Backend::Cpu), &writer, &[&a, &z], &())
            .unwrap();
        first.wait().unwrap();
        second.wait().unwrap();
        taken(&seen).unwrap();
        assert_eq!(rt.read(&z).unwrap(), vec![5.0; 16]);
        drop(b);
    });
}

#[test]
fn a_long_cpu_task_does_not_hold_up_the_next() {
    within(60, "a long task and a short one", || {
        let rt = cpu_runtime();
        let short_done = Arc::new(AtomicBool::new(false));
        let saw_it = Arc::new(AtomicBool::new(false));
        let (flag, saw) = (Arc::clone(&short_done), Arc::clone(&saw_it));
        // The long task waits (up to 20 s) for the short one, placed after
        // it, to finish: with one CPU worker it never would.
        let long = add_with("long", move || {
            for _ in 0..2000 {
                if flag.load(Ordering::Acquire) {
                    saw.store(true, Ordering::Release);
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let flag = Arc::clone(&short_done);
        let short = add_with("short", move || flag.store(true, Ordering::Release));
        let (x, y) = (rt.buffer(&[1.0f32; 4]), rt.buffer(&[0.0f32; 4]));
        let (u, v) = (rt.buffer(&[1.0f32; 4]), rt.buffer(&[0.0f32; 4]));
        let t1 = rt
            .submit_to(Target::On(Backend::Cpu), &long, &[&x, &y], &())
            .unwrap();
        let t2 = rt.submit(&short, &[&u, &v], &()).unwrap();
        t2.wait().unwrap();
        t1.wait().unwrap();
        assert!(
            saw_it.load(Ordering::Acquire),
            "the short task ran while the long one was running"
        );
    });
}

fn from_rayon(rt: &Runtime, what: &str) {
    let k = add(what);
    let x = rt.buffer(&[1.0f32; 1000]);
    let ys = [rt.zeros::<f32>(1000), rt.zeros::<f32>(1000)];
    (0..512usize).into_par_iter().for_each(|i| {
        rt.run_on(Backend::Cpu, &k, &[&x, &ys[i % 2]], &()).unwrap();
    });
    // Automatic placement and reads from rayon too.
    (0..64usize).into_par_iter().for_each(|i| {
        rt.run(&k, &[&x, &ys[i % 2]], &()).unwrap();
        assert_eq!(rt.read(&ys[i % 2]).unwrap().len(), 1000);
    });
    for y in &ys {
        assert_eq!(rt.read(y).unwrap(), vec![288.0; 1000], "256 + 32 adds each");
    }
}

#[test]
fn calls_from_par_iter_with_a_private_pool() {
    within(120, "par_iter, private pool", || {
        let rt = Runtime::builder()
            .cpu_threads(2)
            .persist_model(false)
            .build()
            .unwrap();
        from_rayon(&rt, "add_private_pool");
    });
}

#[test]
fn calls_from_par_iter_with_the_global_pool() {
    within(120, "par_iter, global pool", || {
        let rt = common::fresh("");
        from_rayon(&rt, "add_global_pool");
    });
}

#[test]
fn calls_from_inside_a_private_rayon_pool() {
    within(120, "a user's own pool", || {
        let rt = common::fresh("");
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        pool.install(|| from_rayon(&rt, "add_user_pool"));
    });
}

#[test]
fn the_last_handle_dropped_on_a_worker_tears_the_runtime_down() {
    within(60, "last handle on a worker", || {
        // The runtime writes its trace when it is torn down: the sign that
        // it was, on whichever thread let go of it last.
        let trace =
            std::env::temp_dir().join(format!("pel-last-handle-{}.json", std::process::id()));
        let _ = std::fs::remove_file(&trace);
        let rt = Runtime::builder()
            .gpu(false)
            .persist_model(false)
            .trace(&trace)
            .build()
            .unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let (rt2, ran2) = (rt.clone(), Arc::clone(&ran));
        let k = add_with("holds_runtime", move || {
            // The closure owns a clone of the runtime.
            let _ = rt2.gpu_count();
            ran2.fetch_add(1, Ordering::Relaxed);
        });
        let x = rt.buffer(&[1.0f32; 32]);
        let ys: Vec<Buffer<f32>> = (0..8).map(|_| rt.zeros::<f32>(32)).collect();
        for i in 0..200 {
            // No handle kept: the last task is the last to hold the kernel,
            // and so the runtime's last handle.
            rt.submit(&k, &[&x, &ys[i % 8]], &()).unwrap();
        }
        drop((rt, k, x, ys));
        while !trace.exists() {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(ran.load(Ordering::Relaxed), 200);
        let _ = std::fs::remove_file(&trace);
    });
}

#[test]
fn a_long_failure_chain_names_its_root_once() {
    within(120, "10,000 dependents of a failure", || {
        let rt = cpu_runtime();
        let boom = add_with("boom", || panic!("the root cause"));
        let k = add("dependent");
        let bufs: Vec<Buffer<f32>> = (0..2).map(|_| rt.zeros::<f32>(4)).collect();
        let x = rt.buffer(&[1.0f32; 4]);
        rt.submit_to(Target::On(Backend::Cpu), &boom, &[&x, &bufs[0]], &())
            .unwrap();
        let mut last = None;
        for i in 0..10_000 {
            let (a, b) = (&bufs[i % 2], &bufs[(i + 1) % 2]);
            last = Some(rt.submit(&k, &[a, b], &()).unwrap());
        }
        let err = last.unwrap().wait().unwrap_err();
        let text = err.to_string();
        assert!(text.len() < 1000, "{} bytes: {text:.300}", text.len());
        match &err {
            Error::DependencyFailed {
                kernel,
                dependency,
                cause,
            } => {
                assert_eq!(
                    (kernel.as_str(), dependency.as_str()),
                    ("dependent", "boom")
                );
                assert!(matches!(**cause, Error::KernelPanicked { .. }), "{cause}");
            }
            other => panic!("expected DependencyFailed, got {other}"),
        }
        assert!(rt.wait_all().is_err());
        // A read names the buffer and the kernel that failed to write it.
        match rt.read(&bufs[0]).unwrap_err() {
            Error::WriterFailed { writer, .. } => assert_eq!(writer, "dependent"),
            other => panic!("expected WriterFailed, got {other}"),
        }
    });
}

/// `c += 1` on a u32 buffer, on every backend.
const INC: &str = r#"
@group(0) @binding(0) var<storage, read_write> c: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let i = id.x + id.y * groups.x * 64u;
    if i < arrayLength(&c) { c[i] = c[i] + 1u; }
}
"#;

#[test]
fn eight_threads_race_a_lost_gpu_and_every_count_is_exact() {
    let probe = common::fresh("");
    if common::gpus(
        &probe,
        "eight_threads_race_a_lost_gpu_and_every_count_is_exact",
    )
    .is_empty()
    {
        return;
    }
    drop(probe);
    within(600, "8 threads under gpu-lost", || {
        let inc = Kernel::builder("inc", INC)
            .cpu::<(ReadWrite<u32>,)>(|args, _: &()| {
                let (c,) = args.split();
                for v in c {
                    *v += 1;
                }
            })
            .build()
            .unwrap();
        for n in [0u64, 3, 17, 60] {
            let rt = common::fresh(&format!("gpu-lost@{n}"));
            let backends = rt.backends();
            let bufs: Vec<Buffer<u32>> = (0..6).map(|_| rt.zeros::<u32>(1000)).collect();
            let rounds = 20;
            std::thread::scope(|s| {
                for t in 0..8usize {
                    let (rt, inc, bufs, backends) = (&rt, &inc, &bufs, &backends);
                    s.spawn(move || {
                        for i in 0..rounds {
                            let buf = &bufs[(t + i) % bufs.len()];
                            match i % 4 {
                                0 => {
                                    rt.run(inc, &[buf], &()).unwrap();
                                }
                                1 => {
                                    let b = backends[(t + i) % backends.len()];
                                    rt.run_on(b, inc, &[buf], &()).unwrap();
                                }
                                2 => {
                                    rt.submit(inc, &[buf], &()).unwrap();
                                }
                                _ => {
                                    let v = rt.read(buf).unwrap();
                                    assert!(v.iter().all(|&x| x == v[0]), "a torn read");
                                }
                            }
                        }
                    });
                }
            });
            rt.wait_all().unwrap();
            // 8 threads × 15 increments (3 of every 4 rounds), spread over
            // the buffers in turn.
            let mut want = [0u32; 6];
            for t in 0..8usize {
                for i in 0..rounds {
                    if i % 4 != 3 {
                        want[(t + i) % 6] += 1;
                    }
                }
            }
            for (b, w) in bufs.iter().zip(want) {
                assert_eq!(rt.read(b).unwrap(), vec![w; 1000], "gpu-lost@{n}");
            }
        }
    });
}
