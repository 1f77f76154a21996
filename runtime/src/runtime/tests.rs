//! The runtime's own tests, on the CPU alone: what a bug inside pel costs.

use super::sim_tests::unary;
use super::*;

use crate::call::BROKEN_INVARIANT;

fn inc(name: &str) -> Kernel {
    unary(name, |c| c.iter_mut().for_each(|v| *v += 1))
}

/// A runtime with no GPU, saving no model.
pub(super) fn cpu_runtime() -> Runtime {
    Runtime::builder()
        .gpu(false)
        .persist_model(false)
        .build()
        .unwrap()
}

#[test]
fn a_panic_inside_pel_gives_the_leases_back_and_is_an_internal_error() {
    let rt = cpu_runtime();
    let (broken, good) = (inc(BROKEN_INVARIANT), inc("inc"));
    let c = rt.zeros::<u32>(10);
    for _ in 0..3 {
        match rt.run_on(Backend::Cpu, &broken, &[&c], &()) {
            Err(Error::Internal { what, .. }) => assert!(what.contains(BROKEN_INVARIANT)),
            other => panic!("expected Internal, got {other:?}"),
        }
    }
    // The buffer's lease came back: other calls and reads go on.
    rt.run_on(Backend::Cpu, &good, &[&c], &()).unwrap();
    assert_eq!(rt.read(&c).unwrap(), vec![1; 10]);
}

#[test]
fn a_task_meeting_a_panic_inside_pel_fails_and_so_do_its_dependents() {
    let rt = cpu_runtime();
    let (broken, good) = (inc(BROKEN_INVARIANT), inc("inc"));
    let (c, d) = (rt.zeros::<u32>(10), rt.zeros::<u32>(10));
    let failed = rt.submit(&broken, &[&c], &()).unwrap();
    let after = rt.submit(&good, &[&c], &()).unwrap();
    let other = rt.submit(&good, &[&d], &()).unwrap();
    assert!(matches!(failed.wait(), Err(Error::Internal { .. })));
    match after.wait() {
        Err(Error::DependencyFailed { cause, .. }) => {
            assert!(matches!(*cause, Error::Internal { .. }))
        }
        other => panic!("expected DependencyFailed, got {other:?}"),
    }
    other.wait().unwrap();
    assert!(rt.wait_all().is_err());
    rt.write(&c, &[5; 10]).unwrap();
    rt.submit(&good, &[&c], &()).unwrap().wait().unwrap();
    assert_eq!(rt.read(&c).unwrap(), vec![6; 10]);
    assert_eq!(rt.read(&d).unwrap(), vec![1; 10]);
}

/// Everything a call leaves behind that a user can see: its outcome, the
/// contents it wrote, the counters, the decisions and the model.
fn record_of(rt: &Runtime, k: &Kernel, bomb: &Kernel) -> Vec<String> {
    let c = rt.zeros::<u32>(10);
    let mut seen = Vec::new();
    for target in [Target::On(Backend::Cpu), Target::Auto] {
        for _ in 0..12 {
            let info = rt.execute(target, k, &[&c], &()).unwrap();
            seen.push(format!("{:?} {:?}", info.backend, info.reason));
        }
    }
    seen.push(format!("{:?}", rt.read(&c).unwrap()));
    // A panicking CPU implementation: the error, what became of the
    // buffer it wrote, and how the next automatic call is placed.
    for target in [Target::On(Backend::Cpu), Target::Auto] {
        let d = rt.buffer(&[7u32; 10]);
        let err = rt.execute(target, bomb, &[&d], &()).unwrap_err();
        seen.push(format!("{target:?}: {err}"));
        seen.push(format!("{:?}", rt.read(&d).map_err(|e| e.to_string())));
    }
    let stats = rt.stats();
    seen.push(format!("runs {} {}", stats.cpu_runs, stats.gpu_runs));
    for d in rt.decisions() {
        seen.push(format!("{} {:?} {:?}", d.kernel, d.chosen, d.reason));
    }
    for r in rt.model_rows() {
        seen.push(format!("{} {} {}", r.kernel, r.device, r.summary.samples));
    }
    seen
}

#[test]
fn the_host_path_leaves_the_record_the_general_path_does() {
    let k = inc("inc");
    let bomb = unary("bomb", |_| panic!("a bug in the kernel"));
    let fast = cpu_runtime();
    let before = crate::call::HOST_CALLS.with(|c| c.get());
    let quick = record_of(&fast, &k, &bomb);
    let taken = crate::call::HOST_CALLS.with(|c| c.get()) - before;
    // Tracing keeps every call on the general path.
    let general = cpu_runtime();
    general.enable_trace();
    let before = crate::call::HOST_CALLS.with(|c| c.get());
    let slow = record_of(&general, &k, &bomb);
    assert_eq!(crate::call::HOST_CALLS.with(|c| c.get()), before);
    // All but the automatic call of a kernel its panic excluded from the
    // CPU (no backend is left for it: placement fails first).
    assert_eq!(taken, 24 + 1);
    assert_eq!(quick, slow);
    assert!(
        quick
            .iter()
            .any(|s| s.contains("KernelPanicked") || s.contains("panicked"))
    );
}
