//! Placement learns from failure: an automatic call whose backend fails it
//! for a reason of that (kernel, backend) pair — a pipeline the device
//! rejects, a CPU implementation that panics — runs again on the next-best
//! backend from the versions the failed attempt read, and the pair is not
//! chosen again. Kernels with no CPU implementation run on GPUs, replay on
//! another GPU after a loss, and are refused by name where no GPU is.

mod common;

use common::random;

use pel::kernels::Saxpy;
use pel::{Backend, Error, Kernel, Read, ReadWrite, Reason, Runtime, Target};

fn runtime() -> Runtime {
    common::fresh("")
}

/// `y += x`, whose pipeline the GPUs reject under `gpu-reject@rejected`.
fn rejected() -> Kernel {
    Kernel::builder("rejected", common::add_shader())
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, _: &()| {
            let (x, y) = args.split();
            for (y, x) in y.iter_mut().zip(x) {
                *y += x;
            }
        })
        .build()
        .unwrap()
}

fn rejecting(model: Option<&std::path::Path>) -> Runtime {
    let b = Runtime::builder().inject("gpu-reject@rejected".parse().unwrap());
    match model {
        Some(f) => b.model_file(f),
        None => b.persist_model(false),
    }
    .build()
    .unwrap()
}

/// `got` is `want` to within float rounding, element by element.
#[track_caller]
fn assert_close(got: &[f32], want: impl IntoIterator<Item = f32>) {
    let want: Vec<f32> = want.into_iter().collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
    }
}

/// How many of the logged decisions for `kernel` chose `backend`.
fn chosen(rt: &Runtime, kernel: &str, backend: Backend) -> usize {
    rt.decisions()
        .iter()
        .filter(|d| d.kernel == kernel && d.chosen == backend)
        .count()
}

#[test]
fn a_rejected_pipeline_runs_again_elsewhere_and_its_gpu_is_not_chosen_again() {
    let probe = runtime();
    if common::gpus(&probe, "a_rejected_pipeline_runs_again_elsewhere").is_empty() {
        return;
    }
    drop(probe);
    let rt = rejecting(None);
    let gpus = rt.gpu_backends();
    let k = rejected();
    let n = 1000;
    let xs = random(n, 7);
    let (x, y) = (rt.buffer(&xs), rt.zeros::<f32>(n));
    // Forced onto a GPU, the device's refusal is the caller's error.
    let forced = rt.run_on(gpus[0], &k, &[&x, &y], &()).unwrap_err();
    assert!(matches!(forced, Error::Gpu { .. }), "{forced}");
    assert!(!forced.to_string().contains('\n'), "one line: {forced}");
    // Every automatic call succeeds, on the CPU in the end.
    for _ in 0..40 {
        let info = rt.run(&k, &[&x, &y], &()).unwrap();
        assert_eq!(info.backend, Backend::Cpu);
    }
    assert_close(&rt.read(&y).unwrap(), xs.iter().map(|v| 40.0 * v));
    // Each GPU was tried at most once (the forced call counts for gpu0).
    for &g in &gpus {
        assert!(chosen(&rt, "rejected", g) <= 1, "{g} chosen again");
    }
    // explain names the exclusions, and why.
    let d = rt.explain(&k, &[&x, &y], &()).unwrap();
    assert_eq!(d.chosen, Backend::Cpu);
    for &g in &gpus {
        let e = d
            .excluded
            .iter()
            .find(|e| e.backend == g)
            .unwrap_or_else(|| panic!("{g} excluded: {d}"));
        assert!(e.permanent, "a rejected pipeline is rejected for good");
    }
    assert!(d.to_string().contains("excluded"), "{d}");
}

#[test]
fn a_rejected_pipeline_stays_excluded_in_the_next_process() {
    let rt = runtime();
    let gpus = common::gpus(
        &rt,
        "a_rejected_pipeline_stays_excluded_in_the_next_process",
    );
    if gpus.is_empty() {
        return;
    }
    drop(rt);
    let file = std::env::temp_dir().join(format!("pel-feedback-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let k = rejected();
    {
        let rt = rejecting(Some(&file));
        let (x, y) = (rt.buffer(&[1.0f32; 64]), rt.zeros::<f32>(64));
        for &g in &gpus {
            assert!(rt.run_on(g, &k, &[&x, &y], &()).is_err());
        }
    }
    // A new runtime over the same model file never tries them.
    let rt = Runtime::builder().model_file(&file).build().unwrap();
    let (x, y) = (rt.buffer(&[1.0f32; 64]), rt.zeros::<f32>(64));
    let d = rt.explain(&k, &[&x, &y], &()).unwrap();
    assert_eq!(d.excluded.len(), gpus.len(), "{d}");
    for _ in 0..10 {
        assert_eq!(rt.run(&k, &[&x, &y], &()).unwrap().backend, Backend::Cpu);
    }
    for &g in &gpus {
        assert_eq!(chosen(&rt, "rejected", g), 0);
    }
    assert_eq!(rt.read(&y).unwrap(), vec![10.0; 64]);
    drop(rt);
    let _ = std::fs::remove_file(&file);
}

#[test]
fn a_panicking_cpu_implementation_runs_again_on_a_gpu_from_the_same_inputs() {
    let rt = runtime();
    let Some(_) = common::gpu(&rt, "a_panicking_cpu_implementation_runs_again_on_a_gpu") else {
        return;
    };
    // The CPU side writes garbage over half its output, then panics.
    let k = Kernel::builder("panics_on_cpu", common::add_shader())
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, _: &()| {
            let (_, y) = args.split();
            let half = y.len() / 2;
            y[..half].fill(f32::NAN);
            panic!("a bug in the CPU implementation");
        })
        .build()
        .unwrap();
    let n = 4099;
    let (xs, ys) = (random(n, 3), random(n, 4));
    let (x, y) = (rt.buffer(&xs), rt.buffer(&ys));
    for _ in 0..12 {
        let info = rt.run(&k, &[&x, &y], &()).unwrap();
        assert_ne!(info.backend, Backend::Cpu);
    }
    assert!(chosen(&rt, "panics_on_cpu", Backend::Cpu) <= 1);
    let want = xs.iter().zip(&ys).map(|(x, y0)| y0 + 12.0 * x);
    assert_close(&rt.read(&y).unwrap(), want);
    let d = rt.explain(&k, &[&x, &y], &()).unwrap();
    let cpu = d.excluded.iter().find(|e| e.backend == Backend::Cpu);
    assert!(cpu.is_some_and(|e| !e.permanent), "{d}");
    // Forced onto the CPU, the panic is the caller's error.
    assert!(matches!(
        rt.run_on(Backend::Cpu, &k, &[&x, &y], &()),
        Err(Error::KernelPanicked { .. })
    ));
}

#[test]
fn an_injected_cpu_panic_is_not_chosen_again() {
    let rt = common::fresh("cpu-panic@saxpy");
    let Some(_) = common::gpu(&rt, "an_injected_cpu_panic_is_not_chosen_again") else {
        return;
    };
    let saxpy = Saxpy::new().unwrap();
    let n = 10_007;
    let (xs, ys) = (random(n, 5), random(n, 6));
    let (x, y) = (rt.buffer(&xs), rt.buffer(&ys));
    for _ in 0..12 {
        let info = saxpy.run(&rt, Target::Auto, 0.5, &x, &y).unwrap();
        assert_ne!(info.backend, Backend::Cpu);
        assert!(
            matches!(
                info.reason,
                Reason::Recovered | Reason::Calibrating | Reason::Modelled | Reason::OnlyBackend
            ),
            "{:?}",
            info.reason
        );
    }
    assert!(chosen(&rt, "saxpy", Backend::Cpu) <= 1);
    let want = xs.iter().zip(&ys).map(|(x, y0)| y0 + 6.0 * x);
    assert_close(&rt.read(&y).unwrap(), want);
}

/// `y = 2x + 1`, GPU only.
fn gpu_only() -> Kernel {
    let twice_plus_one = common::map_shader(("x", "f32"), ("y", "f32"), "2.0 * x[i] + 1.0");
    Kernel::builder("gpu_only", twice_plus_one).build().unwrap()
}

#[test]
fn a_gpu_only_kernel_runs_on_a_gpu() {
    let rt = runtime();
    let Some(_) = common::gpu(&rt, "a_gpu_only_kernel_runs_on_a_gpu") else {
        return;
    };
    let k = gpu_only();
    assert!(!k.has_cpu());
    let xs = random(1001, 8);
    let (x, y) = (rt.buffer(&xs), rt.buffer(&vec![f32::NAN; 1001]));
    for _ in 0..8 {
        assert_ne!(rt.run(&k, &[&x, &y], &()).unwrap().backend, Backend::Cpu);
        assert_ne!(
            rt.submit(&k, &[&x, &y], &())
                .unwrap()
                .wait()
                .unwrap()
                .backend,
            Backend::Cpu
        );
    }
    let want: Vec<f32> = xs.iter().map(|v| 2.0 * v + 1.0).collect();
    assert_eq!(rt.read(&y).unwrap(), want);
    assert!(matches!(
        rt.run_on(Backend::Cpu, &k, &[&x, &y], &()),
        Err(Error::NoCpuImplementation { .. })
    ));
}

#[test]
fn a_gpu_only_kernel_replays_on_another_gpu_after_a_loss() {
    let rt = common::fresh("gpu-lost@2");
    let gpus = common::gpus(&rt, "a_gpu_only_kernel_replays_on_another_gpu_after_a_loss");
    if gpus.len() < 2 {
        if !gpus.is_empty() {
            eprintln!(
                "SKIPPED a_gpu_only_kernel_replays_on_another_gpu_after_a_loss: needs 2 GPUs"
            );
        }
        return;
    }
    let k = gpu_only();
    let xs = random(5003, 9);
    let (x, y, z) = (rt.buffer(&xs), rt.zeros::<f32>(5003), rt.zeros::<f32>(5003));
    rt.run_on(gpus[0], &k, &[&x, &y], &()).unwrap(); // y = 2x + 1, only on gpus[0]
    rt.run_on(gpus[0], &k, &[&y, &z], &()).unwrap(); // z = 2y + 1, only there too
    // The third GPU kernel loses the device: y and z are rebuilt by
    // replaying their records on the other GPU, and the call runs there.
    let info = rt.run_on(gpus[0], &k, &[&z, &y], &()).unwrap(); // y = 2z + 1
    assert_eq!(info.reason, Reason::Recovered);
    assert_ne!(info.backend, gpus[0]);
    let y1: Vec<f32> = xs.iter().map(|v| 2.0 * v + 1.0).collect();
    let z1: Vec<f32> = y1.iter().map(|v| 2.0 * v + 1.0).collect();
    let y2: Vec<f32> = z1.iter().map(|v| 2.0 * v + 1.0).collect();
    assert_eq!(rt.read(&z).unwrap(), z1);
    assert_eq!(rt.read(&y).unwrap(), y2);
    assert_eq!(rt.stats().devices_lost, 1);
}

#[test]
fn a_gpu_only_kernel_without_a_gpu_is_refused_by_name() {
    let rt = common::cpu_only();
    let k = gpu_only();
    let (x, y) = (rt.buffer(&[1.0f32; 4]), rt.zeros::<f32>(4));
    for r in [
        rt.run(&k, &[&x, &y], &()).map(drop),
        rt.submit(&k, &[&x, &y], &())
            .and_then(|t| t.wait())
            .map(drop),
    ] {
        match r {
            Err(e @ Error::NoBackend { .. }) => {
                assert!(e.to_string().contains("gpu_only"), "{e}");
            }
            other => panic!("expected NoBackend, got {other:?}"),
        }
    }
}
