//! Runs on a simulated machine (`RuntimeBuilder::simulate`): every time is
//! the description's, on the virtual clock, so outcomes are exact and the
//! same on every run. Kernel times are rooflines over `add`'s default work
//! (one operation per element of its arguments).

use super::*;
use crate::machine::Machine;

/// A machine: a CPU of `cpu_flops` on one core, and `gpus` GPUs of
/// `gpu_flops` (launch latency `gpu_latency`), each on its own link of
/// `link_bw` bytes a second and no latency. Memory bandwidths are far
/// past anything, so FLOPs decide.
fn machine(cpu_flops: f64, gpus: usize, gpu_flops: f64, gpu_latency: f64, link_bw: f64) -> Machine {
    let roofline = |flops: f64, latency: f64| serde_json::json!({ "roofline": { "flops": flops, "bandwidth": 1e18, "latency_s": latency } });
    let text = serde_json::json!({
        "name": "test machine",
        "cpu": { "cores": 1, "times": roofline(cpu_flops, 0.0) },
        "gpus": (0..gpus).map(|g| serde_json::json!({
            "name": format!("gpu{g}"),
            "memory_bytes": 1u64 << 34,
            "link": format!("link{g}"),
            "times": roofline(gpu_flops, gpu_latency),
        })).collect::<Vec<_>>(),
        "links": (0..gpus).map(|g| serde_json::json!({
            "name": format!("link{g}"), "latency_s": 0.0, "bandwidth": link_bw,
        })).collect::<Vec<_>>(),
    });
    Machine::from_json(&text.to_string(), "test").unwrap()
}

fn runtime(m: Machine) -> RuntimeBuilder {
    Runtime::builder()
        .simulate(m)
        .calibration_samples(2)
        .persist_model(false)
}

/// 400 independent adds of 1K elements, submitted; the report after.
fn independent_tasks(rt: &Runtime) -> SimReport {
    let add = add();
    let bufs: Vec<_> = (0..400)
        .map(|_| (rt.buffer(&[1.0f32; 1024]), rt.zeros::<f32>(1024)))
        .collect();
    for (x, y) in &bufs {
        rt.submit(&add, &[x, y], &()).unwrap();
    }
    rt.wait_all().unwrap();
    rt.simulation().unwrap()
}

#[test]
fn four_gpus_share_independent_tasks_by_their_virtual_queues() {
    // The CPU is a thousand times slower than each GPU.
    let m = machine(1e6, 4, 1e9, 0.0, 1e15);
    let rt = runtime(m.clone()).build().unwrap();
    // The first round calibrates (the CPU is tried twice); the second is
    // placed by the model alone.
    let first = independent_tasks(&rt);
    let report = independent_tasks(&rt).since(&first);
    let per_gpu: Vec<u64> = report.devices[1..].iter().map(|d| d.kernels).collect();
    assert!(
        per_gpu.iter().all(|&k| (90..=110).contains(&k)),
        "each GPU should run about a quarter: {per_gpu:?} (cpu {})",
        report.devices[0].kernels
    );
    assert_eq!(report.devices[0].kernels, 0, "{report:?}");
    // 2,048 operations at 1 GFLOP/s: 2.048 µs a task, 100 a GPU.
    let ideal = 400.0 * 2.048e-6 / 4.0;
    assert!(
        report.makespan_s < 1.05 * ideal,
        "{} s against {ideal} s",
        report.makespan_s
    );
    // The same run again gives the same report, to the nanosecond.
    let rt = runtime(m).build().unwrap();
    let first_again = independent_tasks(&rt);
    assert_eq!(first, first_again);
    assert_eq!(report, independent_tasks(&rt).since(&first_again));
}

/// Where the last of 40 adds of 1M fresh host elements ran (each read
/// back), on `m`.
fn placed_with_link(m: Machine) -> Vec<Backend> {
    let rt = runtime(m).build().unwrap();
    let add = add();
    let mut placed = Vec::new();
    for _ in 0..40 {
        let (x, y) = (rt.buffer(&vec![1.0f32; 1 << 20]), rt.zeros::<f32>(1 << 20));
        placed.push(rt.run(&add, &[&x, &y], &()).unwrap().backend);
        rt.read(&y).unwrap();
    }
    placed.split_off(30)
}

#[test]
fn the_link_decides_whether_a_faster_gpu_is_worth_the_copies() {
    // The GPU computes 100 times faster: 20 µs against the CPU's 2 ms.
    // Over 1 TB/s its 12 MB of copies take 12 µs; over 100 MB/s, 120 ms.
    let fast_link = placed_with_link(machine(1e9, 1, 1e11, 0.0, 1e12));
    assert!(
        fast_link.iter().all(|&b| b == Backend::Gpu(0)),
        "{fast_link:?}"
    );
    let slow_link = placed_with_link(machine(1e9, 1, 1e11, 0.0, 1e8));
    assert!(
        slow_link.iter().all(|&b| b == Backend::Cpu),
        "{slow_link:?}"
    );
}

#[test]
fn a_gpu_lost_in_virtual_time_loses_no_work() {
    // Each GPU add takes 1 ms of launch latency; the CPU's, 2 ms. gpu0
    // goes at 7.5 ms of virtual time.
    let m = machine(1e6, 1, 1e12, 1e-3, 1e15);
    let rt = runtime(m)
        .compute(true)
        .lose_at(0, Duration::from_micros(7_500))
        .build()
        .unwrap();
    let add = add();
    let x = rt.buffer(&[1.0f32; 1000]);
    let y = rt.zeros::<f32>(1000);
    for _ in 0..20 {
        rt.submit(&add, &[&x, &y], &()).unwrap();
    }
    rt.wait_all().unwrap();
    assert_eq!(rt.read(&y).unwrap(), vec![20.0f32; 1000]);
    let report = rt.simulation().unwrap();
    let (cpu, gpu) = (report.devices[0].kernels, report.devices[1].kernels);
    // Replays are CPU kernels too.
    assert_eq!(cpu + gpu, 20 + rt.stats().replayed_tasks, "{report:?}");
    assert!(rt.stats().replayed_tasks >= 1, "{:?}", rt.stats());
    assert!(
        (2..=7).contains(&gpu),
        "gpu0 ran {gpu} before its loss: {report:?}"
    );
    assert!(
        rt.device(Backend::Gpu(0)).is_ok()
            && rt
                .decisions()
                .iter()
                .rev()
                .take(5)
                .all(|d| d.chosen == Backend::Cpu),
        "after the loss every call goes to the CPU"
    );
    // The run went past the loss, on the CPU.
    assert!(report.makespan_s > 7.5e-3);
}

#[test]
fn a_simulated_trace_has_virtual_timestamps() {
    let m = machine(1e9, 1, 1e9, 1e-3, 1e15);
    let rt = runtime(m).build().unwrap();
    rt.enable_trace();
    let add = add();
    let x = rt.buffer(&[1.0f32; 1000]);
    let y = rt.zeros::<f32>(1000);
    for _ in 0..3 {
        rt.run_on(Backend::Gpu(0), &add, &[&x, &y], &()).unwrap();
    }
    let events = rt.trace_events();
    let kernels: Vec<_> = events.iter().filter(|e| e.tid == 1).collect();
    assert_eq!(kernels.len(), 3, "{events:?}");
    // 1 ms of latency and 2 µs of work each, back to back after the copies.
    for pair in kernels.windows(2) {
        assert!(
            (pair[1].ts - pair[0].ts - 1002.0).abs() < 1e-6,
            "{events:?}"
        );
    }
    assert!(
        events
            .iter()
            .any(|e| e.tid == 2 && e.name.contains("to gpu0"))
    );
}

#[test]
fn a_simulation_is_refused_where_it_cannot_be_what_was_asked() {
    let m = machine(1e9, 1, 1e9, 0.0, 1e9);
    let lost_gpu9 = runtime(m.clone())
        .lose_at(9, Duration::from_millis(1))
        .build();
    assert!(
        matches!(lost_gpu9, Err(Error::NoSuchBackend { .. })),
        "{lost_gpu9:?}"
    );
    let both = runtime(m.clone()).simulated(vec![sim("x", US)]).build();
    assert!(matches!(both, Err(Error::InvalidInput { .. })), "{both:?}");
    // A model source needs its file, and the file the device's samples.
    let mut no_file = m.clone();
    no_file.gpus[0].times = crate::Times::Model {
        file: None,
        device: "gpu".into(),
    };
    let err = runtime(no_file).build().unwrap_err();
    assert!(
        matches!(&err, Error::Machine { field, .. } if field == "gpus[0].times"),
        "{err}"
    );
}

#[test]
fn a_model_file_times_the_kernels_it_has_samples_of() {
    // A real runtime's model of `add` on its CPU, saved...
    let dir = std::env::temp_dir().join(format!("pel-sim-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("model.json");
    let real = Runtime::builder()
        .gpu(false)
        .calibration_samples(2)
        .model_file(&file)
        .build()
        .unwrap();
    let (x, y) = (real.buffer(&[1.0f32; 4096]), real.zeros::<f32>(4096));
    for _ in 0..8 {
        real.run(&add(), &[&x, &y], &()).unwrap();
    }
    real.save_model();
    let described = real.describe();
    drop(real);
    // ...times the same kernel on the simulated CPU, and nothing else.
    let rt = Runtime::builder().simulate(described).build().unwrap();
    let (x, y) = (rt.buffer(&[1.0f32; 4096]), rt.zeros::<f32>(4096));
    let info = rt.run(&add(), &[&x, &y], &()).unwrap();
    assert!(
        info.exec > Duration::ZERO && info.exec < Duration::from_millis(50),
        "{info:?}"
    );
    let err = rt.run(&copy(), &[&x, &y], &()).unwrap_err();
    assert!(
        err.to_string().contains("no samples of kernel `copy`"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_host_waits_for_its_own_cpu_calls_and_not_for_a_gpus() {
    // Two cores; each add of 1,000 elements takes 1 ms on either device.
    let m = machine(2e6, 1, 2e6, 0.0, 1e15);
    let mut m2 = m.clone();
    m2.cpu.cores = 2;
    let add = add();
    let bufs = |rt: &Runtime| -> Vec<_> {
        (0..4)
            .map(|_| (rt.buffer(&[1.0f32; 500]), rt.zeros::<f32>(500)))
            .collect()
    };
    // Synchronous calls on the CPU: one after another, as the host waits.
    let rt = runtime(m2.clone()).build().unwrap();
    for (x, y) in &bufs(&rt) {
        rt.run_on(Backend::Cpu, &add, &[x, y], &()).unwrap();
    }
    let sync = rt.simulation().unwrap().makespan_s;
    assert!((sync - 4e-3).abs() < 1e-9, "{sync}");
    // Submitted: two at a time on the two cores.
    let rt = runtime(m2).build().unwrap();
    for (x, y) in &bufs(&rt) {
        rt.submit_to(Target::On(Backend::Cpu), &add, &[x, y], &())
            .unwrap();
    }
    rt.wait_all().unwrap();
    let submitted = rt.simulation().unwrap().makespan_s;
    assert!((submitted - 2e-3).abs() < 1e-9, "{submitted}");
    // A synchronous GPU call is queued: the host goes on to the CPU's.
    let rt = runtime(m).build().unwrap();
    let b = bufs(&rt);
    rt.run_on(Backend::Gpu(0), &add, &[&b[0].0, &b[0].1], &())
        .unwrap();
    rt.run_on(Backend::Cpu, &add, &[&b[1].0, &b[1].1], &())
        .unwrap();
    rt.wait_all().unwrap();
    let both = rt.simulation().unwrap().makespan_s;
    assert!(both < 1.5e-3, "{both}");
}
