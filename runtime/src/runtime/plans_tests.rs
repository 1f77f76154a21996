//! Plans: measured as wholes, then the fastest runs; identities and
//! labels.

use std::time::Duration;

use super::tests::cpu_runtime;
use super::*;
use crate::Reason;

/// Runs a plan of `plans` `times` times, each taking `ms(label)`
/// milliseconds; returns the labels run and how many runs were measured.
fn run(rt: &Runtime, plans: &Plans, times: usize, ms: fn(&str) -> u64) -> (Vec<String>, usize) {
    let (mut ran, mut measured) = (Vec::new(), 0);
    for _ in 0..times {
        let run = rt.choose_plan(plans, Backend::Cpu, 1000).unwrap();
        measured += usize::from(run.measured());
        std::thread::sleep(Duration::from_millis(ms(run.label())));
        ran.push(run.label().to_owned());
        run.finish(rt).unwrap();
    }
    (ran, measured)
}

fn ms(label: &str) -> u64 {
    if label == "slow" { 6 } else { 2 }
}

#[test]
fn plans_are_measured_then_the_fastest_runs() {
    let rt = cpu_runtime();
    let plans = Plans::new("op", &[("slow", "1"), ("fast", "1")]).unwrap();
    assert_eq!(plans.labels(), vec!["slow", "fast"]);
    let (ran, measured) = run(&rt, &plans, 12, ms);
    // Each: a warm-up and one sample; the slow one is then well behind.
    assert_eq!(measured, 4, "{ran:?}");
    assert!(ran[4..].iter().all(|l| l == "fast"), "{ran:?}");
    let last = rt.decisions().pop().unwrap();
    assert_eq!(
        (last.kernel.as_str(), last.variant.as_deref(), last.reason),
        ("op", Some("fast"), Reason::Modelled),
        "{last}"
    );
    let rows: Vec<String> = rt.model_rows().into_iter().map(|r| r.kernel).collect();
    assert!(rows.iter().any(|r| r == "op[fast]"), "{rows:?}");
    assert_eq!(rt.stats().calibration_runs, 4);

    // A new version of the fast plan is a new identity: measured afresh
    // (the slow one stays set aside), then chosen.
    let renewed = Plans::new("op", &[("slow", "1"), ("fast", "2")]).unwrap();
    let (ran, measured) = run(&rt, &renewed, 6, ms);
    assert_eq!(measured, 2, "{ran:?}");
    assert!(ran.iter().all(|l| l == "fast"), "{ran:?}");
}

#[test]
fn plans_need_distinct_labels_and_a_choice() {
    for bad in [&[("", "1")][..], &[("a", "1"), ("a", "2")]] {
        match Plans::new("op", bad) {
            Err(Error::Variant { kernel, .. }) => assert_eq!(kernel, "op"),
            other => panic!("expected Error::Variant, got {other:?}"),
        }
    }
    let none = Plans::new("op", &[]).unwrap();
    let rt = cpu_runtime();
    assert!(matches!(
        rt.choose_plan(&none, Backend::Cpu, 1),
        Err(Error::InvalidInput { .. })
    ));
}
