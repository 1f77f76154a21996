//! The runtime's own tests, on the CPU alone: what a bug inside pel costs.

use super::sim_tests::unary;
use super::*;

use crate::call::BROKEN_INVARIANT;

fn inc(name: &str) -> Kernel {
    unary(name, |c| c.iter_mut().for_each(|v| *v += 1))
}

fn cpu_runtime() -> Runtime {
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
