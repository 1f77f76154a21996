//! Placement on simulated devices: calibration, then the cheapest device;
//! drift moving calls away; a lost device left out; forced targets; the
//! data's location. Sim costs are a nanosecond or a microsecond and more,
//! so the real CPU's times (tens of nanoseconds at least for these calls)
//! never decide an outcome.

use super::*;

const N: usize = 1024;
const NS: Duration = Duration::from_nanos(1);

/// Samples each device needs before the model is trusted.
const SAMPLES: usize = 3;

/// A runtime on `sims`, calibrating with [`SAMPLES`], with `x = 1`s and
/// `y = 0`s: after `n` adds, `y = n`s.
fn setup(sims: &[&SimDevice]) -> (Runtime, Buffer<f32>, Buffer<f32>) {
    let rt = builder(sims).calibration_samples(SAMPLES).build().unwrap();
    let (x, y) = (rt.buffer(&[1.0f32; N]), rt.zeros::<f32>(N));
    (rt, x, y)
}

/// Runs `add` automatically `n` times; where each call ran.
fn run_auto(rt: &Runtime, x: &Buffer<f32>, y: &Buffer<f32>, n: usize) -> Vec<RunInfo> {
    let add = add();
    (0..n)
        .map(|_| rt.run(&add, &[x, y], &()).unwrap())
        .collect()
}

/// gpu0 a thousand times cheaper than gpu1, both calibrated by 30 calls.
fn calibrated() -> (Runtime, SimDevice, SimDevice, Buffer<f32>, Buffer<f32>) {
    let (fast, slow) = (sim("fast", NS), sim("slow", US));
    let (rt, x, y) = setup(&[&fast, &slow]);
    run_auto(&rt, &x, &y, 30);
    (rt, fast, slow, x, y)
}

fn backends(infos: &[RunInfo]) -> Vec<Backend> {
    infos.iter().map(|i| i.backend).collect()
}

#[test]
fn the_cheaper_device_gets_the_calls_once_calibrated() {
    let (rt, fast, slow, x, y) = calibrated();
    let tail = rt.decisions().split_off(20);
    assert!(
        tail.iter()
            .all(|d| (d.chosen, d.reason) == (Backend::Gpu(0), Reason::Modelled)),
        "{}",
        tail.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let info = rt.run(&add(), &[&x, &y], &()).unwrap();
    assert_eq!((info.backend, info.exec), (Backend::Gpu(0), NS));
    let d = rt.explain(&add(), &[&x, &y], &()).unwrap();
    assert_eq!(
        (d.chosen, d.reason),
        (Backend::Gpu(0), Reason::Modelled),
        "{d}"
    );
    assert_eq!(d.estimates.len(), 3, "{d}");
    let exec = |b| d.estimates.iter().find(|e| e.backend == b).unwrap().exec_s;
    let near = |got: Option<f64>, want: f64| got.is_some_and(|t| (t / want - 1.0).abs() < 0.01);
    assert!(near(exec(Backend::Gpu(0)), 1e-9), "{d}");
    assert!(near(exec(Backend::Gpu(1)), 1e-6), "{d}");
    // The slow device ran only while it calibrated, if that long.
    assert!(
        slow.kernels_run() <= SAMPLES as u64 + 1,
        "{}",
        slow.kernels_run()
    );
    assert!(fast.kernels_run() >= 20, "{}", fast.kernels_run());
    assert_eq!(rt.read(&y).unwrap(), vec![31.0; N]);
}

#[test]
fn a_device_that_turns_slow_loses_the_calls() {
    let (rt, fast, _, x, y) = calibrated();
    let before = fast.kernels_run();
    fast.set_slowdown(1e7); // 10 ms a call now
    let after = backends(&run_auto(&rt, &x, &y, 12));
    assert!(
        after[6..].iter().all(|&b| b != Backend::Gpu(0)),
        "still on gpu0: {after:?}"
    );
    assert!(fast.kernels_run() - before <= 6, "{after:?}");
    assert_eq!(rt.read(&y).unwrap(), vec![42.0; N]);
}

#[test]
fn a_lost_device_is_left_out_of_placement() {
    let (rt, fast, _, x, y) = calibrated();
    let n = rt.decisions().len();
    fast.lose("gone");
    let after = run_auto(&rt, &x, &y, 10);
    assert!(
        after.iter().all(|i| i.backend != Backend::Gpu(0)),
        "{after:?}"
    );
    let d = rt.explain(&add(), &[&x, &y], &()).unwrap();
    assert!(
        d.estimates.iter().all(|e| e.backend != Backend::Gpu(0)),
        "{d}"
    );
    assert!(
        rt.decisions()[n..]
            .iter()
            .all(|d| d.chosen != Backend::Gpu(0))
    );
    // y's newest version lived on gpu0 only: rebuilt, then added to.
    assert_eq!(rt.read(&y).unwrap(), vec![40.0; N]);
    assert_eq!(rt.stats().devices_lost, 1);
}

#[test]
fn a_forced_target_overrides_the_model() {
    let (rt, _, slow, x, y) = calibrated();
    let before = slow.kernels_run();
    let info = rt
        .execute(Target::On(Backend::Gpu(1)), &add(), &[&x, &y], &())
        .unwrap();
    assert_eq!(
        (info.backend, info.reason, info.exec),
        (Backend::Gpu(1), Reason::Forced, US)
    );
    let task = rt
        .submit_to(Target::On(Backend::Gpu(1)), &add(), &[&x, &y], &())
        .unwrap();
    assert_eq!(task.wait().unwrap().backend, Backend::Gpu(1));
    assert_eq!(slow.kernels_run(), before + 2);
    let last = rt.decisions().pop().unwrap();
    assert_eq!(
        (last.chosen, last.reason),
        (Backend::Gpu(1), Reason::Forced)
    );
    assert_eq!(rt.read(&y).unwrap(), vec![32.0; N]);
}

#[test]
fn a_backend_forced_for_the_runtime_takes_every_automatic_call() {
    let (fast, slow) = (sim("fast", NS), sim("slow", US));
    let rt = builder(&[&fast, &slow])
        .force_backend(Some(Backend::Gpu(1)))
        .build()
        .unwrap();
    let (x, y) = (rt.buffer(&[1.0f32; N]), rt.zeros::<f32>(N));
    let infos = run_auto(&rt, &x, &y, 5);
    assert!(
        infos
            .iter()
            .all(|i| i.backend == Backend::Gpu(1) && i.reason == Reason::Forced)
    );
    let d = rt.explain(&add(), &[&x, &y], &()).unwrap();
    assert_eq!((d.chosen, d.reason), (Backend::Gpu(1), Reason::Forced));
    // A call's own target still wins.
    let info = rt.run_on(Backend::Cpu, &add(), &[&x, &y], &()).unwrap();
    assert_eq!(info.backend, Backend::Cpu);
    assert_eq!((fast.kernels_run(), slow.kernels_run()), (0, 5));
    assert_eq!(rt.read(&y).unwrap(), vec![6.0; N]);
}

#[test]
fn explain_runs_and_records_nothing() {
    let (fast, slow) = (sim("fast", NS), sim("slow", US));
    let (rt, x, y) = setup(&[&fast, &slow]);
    let d = rt.explain(&add(), &[&x, &y], &()).unwrap();
    assert_eq!(d.reason, Reason::Calibrating, "{d}");
    assert!(
        d.estimates
            .iter()
            .all(|e| e.exec_s.is_none() && e.samples == 0)
    );
    assert!(rt.decisions().is_empty());
    assert_eq!(rt.stats().calibration_runs, 0);
    assert_eq!(fast.kernels_run() + slow.kernels_run(), 0);
    assert_eq!(rt.read(&y).unwrap(), vec![0.0; N]);
}

#[test]
fn calls_follow_their_data_when_the_bus_is_slow() {
    // Equal devices, a slow bus: moving y costs microseconds, a call two
    // nanoseconds at most.
    let bus = |name: &str, kernel: Duration| {
        SimDevice::new(name).cost(move |op| match op {
            SimOp::Kernel { .. } => kernel,
            SimOp::Upload { bytes } | SimOp::Download { bytes } => {
                US + Duration::from_nanos(*bytes)
            }
        })
    };
    let (a, b) = (bus("a", 2 * NS), bus("b", NS));
    let (rt, x, y) = setup(&[&a, &b]);
    run_auto(&rt, &x, &y, 30);
    for g in [0, 1, 0] {
        rt.run_on(Backend::Gpu(g), &add(), &[&x, &y], &()).unwrap();
        let infos = run_auto(&rt, &x, &y, 3);
        assert!(
            infos.iter().all(|i| i.backend == Backend::Gpu(g)),
            "y is on gpu{g}: {:?}",
            backends(&infos)
        );
    }
    assert_eq!(rt.read(&y).unwrap(), vec![42.0; N]);
}

#[test]
fn describe_gives_a_description_of_the_machine_that_checks() {
    let (a, b) = (sim("a", MS), sim("b", US));
    let rt = runtime(&[&a, &b]);
    let m = rt.describe();
    m.check("described").unwrap();
    assert_eq!(m.gpus.len(), 2);
    assert_eq!(m.cpu.cores, rt.device(Backend::Cpu).unwrap().threads.max(1));
    assert!(m.gpus.iter().all(|g| !g.shares_host_cores));
    assert_eq!(m.link_of(1).unwrap().name, "bus1");
    let again = crate::Machine::from_json(&m.to_json(), "described").unwrap();
    assert_eq!(again, m);
}
