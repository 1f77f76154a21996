//! Dependency edges between submitted tasks, from what their shaders read
//! and write: read after write, write after read, host reads and writes
//! waiting for tasks, and failures travelling down the edges. Each device
//! logs the kernels it runs, so the order is observed, not inferred.

use super::*;

const N: usize = 64;

/// Two logging devices (gpu0 slow, gpu1 fast, in virtual time) and a
/// runtime on them.
fn logged() -> (Runtime, Log) {
    let log = Log::default();
    let (a, b) = (logging("a", MS, &log), logging("b", US, &log));
    (runtime(&[&a, &b]), log)
}

/// `y = x`, after `ms` milliseconds of wall time: long enough that a task
/// not ordered after it would overtake it.
fn slow_copy(name: &str, ms: u64) -> Kernel {
    binary(name, move |x, y| {
        std::thread::sleep(Duration::from_millis(ms));
        y.copy_from_slice(x);
    })
}

/// Writes garbage into `y`, then panics.
fn boom() -> Kernel {
    binary("boom", |_, y| {
        y.fill(f32::NAN);
        panic!("boom");
    })
}

fn on(g: usize) -> Target {
    Target::On(Backend::Gpu(g))
}

fn log_of(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

#[test]
fn read_after_write_waits_for_the_producer_on_another_device() {
    let (rt, log) = logged();
    let (x, y, z) = (rt.buffer(&iota(N)), rt.zeros::<f32>(N), rt.zeros::<f32>(N));
    rt.submit_to(on(0), &slow_copy("first", 20), &[&x, &y], &())
        .unwrap();
    let second = binary("second", |y, z| z.copy_from_slice(y));
    let t = rt.submit_to(on(1), &second, &[&y, &z], &()).unwrap();
    assert_eq!(t.wait().unwrap().backend, Backend::Gpu(1));
    assert_eq!(rt.read(&z).unwrap(), iota(N));
    assert_eq!(log_of(&log), ["first", "second"]);
}

/// `reader` (over `b`, into `c`) submitted to gpu0, then a copy of `9`s
/// into `b` submitted to gpu1: the tasks, `b` (`1`s before) and `c`.
fn reader_then_writer(rt: &Runtime, reader: &Kernel) -> (Task, Task, Buffer<f32>, Buffer<f32>) {
    let (b, c, fresh) = (
        rt.buffer(&[1.0f32; N]),
        rt.zeros::<f32>(N),
        rt.buffer(&[9.0f32; N]),
    );
    let r = rt.submit_to(on(0), reader, &[&b, &c], &()).unwrap();
    let w = rt.submit_to(on(1), &copy(), &[&fresh, &b], &()).unwrap();
    (r, w, b, c)
}

#[test]
fn write_after_read_waits_for_the_reader_of_the_old_version() {
    let (rt, log) = logged();
    let (_, _, b, c) = reader_then_writer(&rt, &slow_copy("reader", 20));
    rt.wait_all().unwrap();
    assert_eq!(
        rt.read(&c).unwrap(),
        vec![1.0; N],
        "the reader saw the old b"
    );
    assert_eq!(rt.read(&b).unwrap(), vec![9.0; N]);
    assert_eq!(log_of(&log), ["reader", "copy"]);
}

#[test]
fn a_host_read_waits_for_the_task_that_writes_the_buffer() {
    let (rt, _) = logged();
    let (x, y) = (rt.buffer(&iota(N)), rt.zeros::<f32>(N));
    let t = rt
        .submit_to(on(0), &slow_copy("slow", 30), &[&x, &y], &())
        .unwrap();
    assert_eq!(rt.read(&y).unwrap(), iota(N));
    assert!(t.is_finished());
}

#[test]
fn a_host_write_waits_for_the_tasks_reading_the_old_contents() {
    let (rt, _) = logged();
    let (b, c) = (rt.buffer(&[1.0f32; N]), rt.zeros::<f32>(N));
    let t = rt
        .submit_to(on(0), &slow_copy("slow", 30), &[&b, &c], &())
        .unwrap();
    rt.write(&b, &[2.0; N]).unwrap();
    assert!(t.is_finished());
    assert_eq!(rt.read(&c).unwrap(), vec![1.0; N]);
    assert_eq!(rt.read(&b).unwrap(), vec![2.0; N]);
}

#[test]
fn a_failed_producer_fails_what_depends_on_it_and_nothing_else() {
    let (rt, log) = logged();
    let (x, y, z, w) = (
        rt.buffer(&iota(N)),
        rt.zeros::<f32>(N),
        rt.zeros::<f32>(N),
        rt.zeros::<f32>(N),
    );
    let failed = rt.submit_to(on(0), &boom(), &[&x, &y], &()).unwrap();
    let dependent = rt.submit(&add(), &[&y, &z], &()).unwrap();
    let independent = rt.submit(&add(), &[&x, &w], &()).unwrap();
    assert!(matches!(failed.wait(), Err(Error::KernelPanicked { .. })));
    match dependent.wait() {
        Err(Error::DependencyFailed {
            kernel,
            dependency,
            cause,
        }) => {
            assert_eq!((kernel.as_str(), dependency.as_str()), ("add", "boom"));
            assert!(matches!(*cause, Error::KernelPanicked { .. }), "{cause}");
        }
        other => panic!("expected DependencyFailed, got {other:?}"),
    }
    independent.wait().unwrap();
    assert!(matches!(rt.read(&y), Err(Error::WriterFailed { .. })));
    assert!(rt.wait_all().is_err());
    assert!(
        !log_of(&log).contains(&"boom".to_owned()),
        "it never finished"
    );
    // A write from the host gives the buffers contents again.
    rt.write(&y, &[3.0; N]).unwrap();
    rt.write(&z, &[0.0; N]).unwrap();
    rt.submit(&add(), &[&y, &z], &()).unwrap().wait().unwrap();
    assert_eq!(rt.read(&z).unwrap(), vec![3.0; N]);
    assert_eq!(rt.read(&w).unwrap(), iota(N));
}

#[test]
fn a_failed_reader_does_not_fail_the_writer_after_it() {
    let (rt, _) = logged();
    let (reader, writer, b, _) = reader_then_writer(&rt, &boom());
    assert!(reader.wait().is_err());
    writer.wait().unwrap();
    assert_eq!(rt.read(&b).unwrap(), vec![9.0; N]);
}

#[test]
fn a_panic_on_a_simulated_device_leaves_the_old_contents() {
    let (rt, _) = logged();
    let (x, y) = (rt.buffer(&iota(N)), rt.buffer(&[1.0f32; N]));
    rt.run_on(Backend::Gpu(0), &add(), &[&x, &y], &()).unwrap();
    assert_eq!(describe(&rt, &y), "gpu0");
    let r = rt.run_on(Backend::Gpu(0), &boom(), &[&x, &y], &());
    assert!(matches!(r, Err(Error::KernelPanicked { .. })), "{r:?}");
    let want: Vec<f32> = iota(N).iter().map(|v| v + 1.0).collect();
    assert_eq!(rt.read(&y).unwrap(), want);
}

#[test]
fn wait_all_waits_for_every_task_and_tasks_report_virtual_times() {
    let (rt, _) = logged();
    let x = rt.buffer(&iota(N));
    let ys: Vec<_> = (0..8).map(|_| rt.zeros::<f32>(N)).collect();
    let mut tasks = Vec::new();
    for (i, y) in ys.iter().enumerate() {
        let target = if i % 2 == 0 { on(0) } else { Target::Auto };
        tasks.push(rt.submit_to(target, &add(), &[&x, y], &()).unwrap());
    }
    rt.wait_all().unwrap();
    for (i, t) in tasks.iter().enumerate() {
        assert!(t.is_finished());
        let info = t.try_result().unwrap().unwrap();
        if i % 2 == 0 {
            assert_eq!((info.backend, info.exec), (Backend::Gpu(0), MS));
        }
    }
    let s = rt.stats();
    assert_eq!(s.cpu_runs + s.gpu_runs, 8, "{s}");
    for y in &ys {
        assert_eq!(rt.read(y).unwrap(), iota(N));
    }
}

#[test]
fn calls_skip_the_graph_once_its_edges_are_gone_and_not_before() {
    let (rt, _log) = logged();
    let (x, y, z) = (rt.buffer(&iota(N)), rt.zeros::<f32>(N), rt.zeros::<f32>(N));
    assert!(!rt.shared.graph_in_use(), "nothing submitted yet");
    rt.submit_to(on(1), &copy(), &[&x, &y], &())
        .unwrap()
        .wait()
        .unwrap();
    let failed = rt.submit_to(on(1), &boom(), &[&x, &z], &()).unwrap();
    assert!(failed.wait().is_err());
    assert!(rt.shared.graph_in_use());
    // A synchronous call reading x and overwriting y: their finished edges
    // go; z's failed producer stays, and still fails its readers.
    rt.run_on(Backend::Gpu(0), &copy(), &[&x, &y], &()).unwrap();
    assert!(rt.shared.graph_in_use(), "z's failure is still an edge");
    let e = rt
        .run_on(Backend::Gpu(0), &copy(), &[&z, &y], &())
        .unwrap_err();
    assert!(matches!(e, Error::DependencyFailed { .. }), "{e}");
    // Overwriting z takes the last edge away: calls skip the graph.
    rt.write(&z, &iota(N)).unwrap();
    assert!(!rt.shared.graph_in_use());
    rt.run_on(Backend::Gpu(0), &copy(), &[&z, &y], &()).unwrap();
    assert_eq!(rt.read(&y).unwrap(), iota(N));
    // A new task turns it on again, and a call after it waits for it.
    rt.submit_to(on(0), &slow_copy("late", 20), &[&x, &z], &())
        .unwrap();
    assert!(rt.shared.graph_in_use());
    rt.run_on(Backend::Gpu(1), &copy(), &[&z, &y], &()).unwrap();
    assert_eq!(rt.read(&y).unwrap(), iota(N));
}
