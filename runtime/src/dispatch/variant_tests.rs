//! Placement among (device, variant) pairs, on synthetic measurements.

use std::sync::Arc;

use super::place::{Candidate, Candidates};
use super::tests::{dispatcher, moves};
use super::*;

const CPU: Backend = Backend::Cpu;
const GPU: Backend = Backend::Gpu(0);

/// The kernel's own implementation (id 1) on the CPU and the GPU, and its
/// variant "wide" (id 2) on the GPU; nothing to move.
fn offers<'a>() -> Candidates<'a> {
    let cand = |backend, variant: u8| Candidate {
        backend,
        variant,
        kernel: 1 + variant as u64,
        label: (variant > 0).then(|| Arc::from("wide")),
        moves: moves(backend, 0.0),
    };
    Candidates {
        kernel: 1,
        name: "k",
        size: 1000,
        forced: None,
        splittable: false,
        written: 0,
        queue_s: None,
        backends: vec![cand(CPU, 0), cand(GPU, 0), cand(GPU, 1)],
        why_none: None,
    }
}

/// Places calls until the model decides (30 calls, when forced), each taking `secs(backend,
/// variant)`; returns how often each pair ran to calibrate, and the
/// decision once modelled.
fn calibrate(
    d: &mut Dispatcher,
    forced: Option<Backend>,
    secs: impl Fn(Backend, Option<&str>) -> f64,
) -> (Vec<(Backend, Option<String>)>, Decision) {
    let mut explored = Vec::new();
    for _ in 0..60 {
        let c = Candidates { forced, ..offers() };
        let p = d.place(&c, None).unwrap();
        let dec = (*d.log.back().cloned().unwrap()).clone();
        assert_eq!(p.variant, u8::from(dec.variant.is_some()));
        // A forced call's reason stays `Forced`: it has decided once its
        // backend's pairs are calibrated or set aside.
        let decided = match forced {
            Some(_) => explored.len() >= 30,
            None => dec.reason == Reason::Modelled,
        };
        if decided {
            return (explored, dec);
        }
        explored.push((dec.chosen, dec.variant.clone()));
        let id = 1 + u64::from(p.variant);
        d.record(
            id,
            "k",
            p.backend,
            1000,
            secs(p.backend, dec.variant.as_deref()),
        );
    }
    panic!("no modelled decision after 60 calls: {explored:?}");
}

#[test]
fn variants_are_explored_and_the_fastest_pair_runs() {
    let mut d = dispatcher();
    // The GPU's own shader is slower than the CPU; its variant is fastest.
    let (explored, dec) = calibrate(&mut d, None, |b, v| match (b, v) {
        (CPU, _) => 2e-3,
        (_, None) => 3e-3,
        (_, Some(_)) => 0.5e-3,
    });
    assert_eq!((dec.chosen, dec.variant.as_deref()), (GPU, Some("wide")));
    // Each pair got its warm-up and its samples.
    for pair in [(CPU, None), (GPU, None), (GPU, Some("wide".to_owned()))] {
        assert!(
            explored.contains(&pair),
            "{pair:?} never explored: {explored:?}"
        );
    }
    // The model keeps the variant's samples under its own id: a warm-up
    // and the two that settle a variant.
    assert_eq!(d.profile.samples_near(2, 1, profile::bucket(1000)), 2);
    assert!(dec.to_string().contains("gpu0[wide]"), "{dec}");
}

#[test]
fn a_variant_well_behind_another_on_its_device_is_not_explored_further() {
    let mut d = dispatcher();
    // The variant is 3× slower than the GPU's own shader.
    let (explored, dec) = calibrate(&mut d, None, |b, v| match (b, v) {
        (CPU, _) => 2e-3,
        (_, None) => 1e-3,
        (_, Some(_)) => 3e-3,
    });
    assert_eq!((dec.chosen, dec.variant.as_deref()), (GPU, None));
    let wide = explored.iter().filter(|(_, v)| v.is_some()).count();
    let own = explored
        .iter()
        .filter(|(b, v)| *b == GPU && v.is_none())
        .count();
    // A warm-up and one sample, against the own shader's six.
    assert_eq!(wide, 2, "{explored:?}");
    assert_eq!(own, 6, "{explored:?}");
    // Calibration cost: the variant added two calls to twelve.
    assert_eq!(d.calibration_runs, 14);
}

#[test]
fn a_forced_backend_still_chooses_among_its_variants() {
    let mut d = dispatcher();
    let (_, dec) = calibrate(&mut d, Some(GPU), |b, v| match (b, v) {
        (CPU, _) => 0.1e-3,
        (_, None) => 3e-3,
        (_, Some(_)) => 1e-3,
    });
    assert_eq!(
        (dec.chosen, dec.variant.as_deref(), dec.reason),
        (GPU, Some("wide"), Reason::Forced)
    );
}

#[test]
fn a_variant_set_aside_stays_aside_in_a_later_process_as_estimates_move() {
    let mut d = dispatcher();
    // The variant is 3× slower than the GPU's own shader: set aside after
    // one sample.
    calibrate(&mut d, None, |b, v| match (b, v) {
        (CPU, _) => 2e-3,
        (_, None) => 1e-3,
        (_, Some(_)) => 3e-3,
    });
    let aside = (2, 1, profile::bucket(1000));
    assert!(d.set_aside.contains(&aside), "{:?}", d.set_aside);
    // A later process loads the model; there the GPU's own shader runs
    // slower, so the variant's one sample is now within 1.5× of it.
    let text = persist::to_json(&d).unwrap();
    let mut later = dispatcher();
    later.absorb(persist::parse(&text, &later.keys.clone(), "the model").unwrap());
    assert!(later.set_aside.contains(&aside));
    for _ in 0..12 {
        later.record(1, "k", GPU, 1000, 2.5e-3);
    }
    for _ in 0..20 {
        let p = later.place(&offers(), None).unwrap();
        let dec = later.log.back().unwrap();
        assert_eq!(p.variant, 0, "the variant set aside ran again: {dec}");
        let id = 1 + u64::from(p.variant);
        let secs = if p.backend == CPU { 2e-3 } else { 2.5e-3 };
        later.record(id, "k", p.backend, 1000, secs);
    }
    // Forgetting the model forgets what was set aside.
    later.reset();
    assert!(later.set_aside.is_empty());
}

#[test]
fn a_forced_call_left_one_implementation_runs_it_without_calibrating() {
    let mut d = dispatcher();
    let mut reasons = Vec::new();
    for _ in 0..8 {
        let c = Candidates {
            forced: Some(GPU),
            ..offers()
        };
        let p = d.place(&c, None).unwrap();
        let dec = d.log.back().cloned().unwrap();
        reasons.push((dec.variant.clone(), dec.reason));
        // The own shader is 5× slower than the variant.
        let secs = if p.variant == 0 { 5e-3 } else { 1e-3 };
        d.record(1 + u64::from(p.variant), "k", GPU, 1000, secs);
    }
    // Each shader: a warm-up and one sample. The own one is then well
    // behind, and the variant, with one sample, is all that is left.
    let calibrating = reasons
        .iter()
        .filter(|(_, r)| *r == Reason::Calibrating)
        .count();
    assert_eq!(calibrating, 4, "{reasons:?}");
    assert_eq!(
        reasons.last().unwrap(),
        &(Some("wide".to_owned()), Reason::Forced)
    );
}
