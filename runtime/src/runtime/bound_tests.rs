//! Bound calls ([`Runtime::bind`], [`Runtime::run_bound`]): a CPU call
//! checked once and run again leaves what ordinary calls leave.

use super::sim_tests::unary;
use super::tests::cpu_runtime;
use super::*;

use crate::call::bound::SAMPLE_EVERY;
use crate::kernel::{ReadWrite, Variant};

fn inc() -> Kernel {
    unary("inc", |c| c.iter_mut().for_each(|v| *v += 1))
}

#[test]
fn bound_runs_write_count_and_teach_the_model_as_calls_do() {
    let rt = cpu_runtime();
    let k = inc();
    let c = rt.buffer(&[5u32; 37]);
    let bound = rt.bind(&k, &[&c]).unwrap().expect("a CPU kernel binds");
    let runs = 3 * SAMPLE_EVERY;
    for _ in 0..runs {
        rt.run_bound(&bound, &[&c], &[], None)
            .expect("open")
            .unwrap();
    }
    // An ordinary call after them sees their writes, and they its.
    rt.run_on(Backend::Cpu, &k, &[&c], &()).unwrap();
    rt.run_bound(&bound, &[&c], &[], None)
        .expect("open")
        .unwrap();
    assert_eq!(rt.read(&c).unwrap(), vec![5 + runs as u32 + 2; 37]);
    assert_eq!(rt.stats().cpu_runs, runs + 2);
    let samples: usize = rt
        .model_rows()
        .iter()
        .filter(|r| r.kernel == "inc")
        .map(|r| r.summary.samples)
        .sum();
    // One bound run in SAMPLE_EVERY (the first of each: 4 of the 49),
    // and the call; the model keeps only samples of a physical time.
    assert!((2..=5).contains(&samples), "{samples} samples");
}

#[test]
fn a_bound_call_refuses_other_buffers_and_wrong_params() {
    let rt = cpu_runtime();
    let k = inc();
    let (c, d) = (rt.zeros::<u32>(8), rt.zeros::<u32>(8));
    let bound = rt.bind(&k, &[&c]).unwrap().unwrap();
    for (args, params) in [(&d, &[][..]), (&c, &[0u8; 4][..])] {
        match rt.run_bound(&bound, &[args], params, None) {
            Some(Err(Error::Internal { what, .. })) => assert!(what.contains("inc")),
            other => panic!("expected an internal error, got {other:?}"),
        }
    }
    assert_eq!(rt.read(&c).unwrap(), vec![0; 8]);
    assert_eq!(rt.read(&d).unwrap(), vec![0; 8]);
    // Binding checks what a call checks.
    let f = rt.zeros::<f32>(8);
    assert!(matches!(rt.bind(&k, &[&f]), Err(Error::ArgType { .. })));
}

#[test]
fn kernels_placement_must_choose_for_are_not_bound_and_faults_close_bound_runs() {
    let rt = cpu_runtime();
    let k = Kernel::builder("inc2", super::sim_tests::UNARY)
        .cpu::<(ReadWrite<u32>,)>(|args, _: &()| args.split().0.iter_mut().for_each(|v| *v += 1))
        .variant(Variant::cpu::<(ReadWrite<u32>,)>(
            "twice",
            |args, _: &()| args.split().0.iter_mut().for_each(|v| *v += 1),
        ))
        .build()
        .unwrap();
    let c = rt.zeros::<u32>(8);
    assert!(rt.bind(&k, &[&c]).unwrap().is_none());
    let k = inc();
    let bound = rt.bind(&k, &[&c]).unwrap().unwrap();
    rt.enable_trace();
    assert!(rt.run_bound(&bound, &[&c], &[], None).is_none());
}

#[test]
fn a_panicking_bound_run_spoils_its_output_and_gives_its_lease_back() {
    let rt = cpu_runtime();
    let bomb = unary("bomb", |_| panic!("a bug in the kernel"));
    let c = rt.buffer(&[7u32; 8]);
    let bound = rt.bind(&bomb, &[&c]).unwrap().unwrap();
    let err = rt.run_bound(&bound, &[&c], &[], None).unwrap().unwrap_err();
    assert!(matches!(err, Error::KernelPanicked { .. }), "{err}");
    assert!(rt.read(&c).is_err());
    rt.write(&c, &[1; 8]).unwrap();
    rt.run_on(Backend::Cpu, &inc(), &[&c], &()).unwrap();
    assert_eq!(rt.read(&c).unwrap(), vec![2; 8]);
}

#[test]
fn a_bound_run_copies_an_argument_out_after_it_ran() {
    let rt = cpu_runtime();
    let copy = super::sim_tests::copy();
    let input: Vec<f32> = (1..=5).map(|i| i as f32).collect();
    let (x, y) = (rt.buffer(&input), rt.zeros::<f32>(5));
    let bound = rt.bind(&copy, &[&x, &y]).unwrap().unwrap();
    let mut out = vec![0u8; 20];
    rt.run_bound(&bound, &[&x, &y], &[], Some((1, &mut out)))
        .unwrap()
        .unwrap();
    assert_eq!(bytemuck::pod_collect_to_vec::<u8, f32>(&out), input);
    // Room of another length is refused, and nothing runs.
    rt.write(&y, &[0.0; 5]).unwrap();
    let mut short = vec![0u8; 8];
    let got = rt.run_bound(&bound, &[&x, &y], &[], Some((1, &mut short)));
    assert!(matches!(got, Some(Err(Error::Internal { .. }))), "{got:?}");
    assert_eq!(rt.read(&y).unwrap(), vec![0.0; 5]);
}
