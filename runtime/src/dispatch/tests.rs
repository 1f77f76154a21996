use super::*;
use crate::buffer::Moves;
use crate::error::Error;

const CPU: Backend = Backend::Cpu;
const GPU: Backend = Backend::Gpu(0);

/// 1 GB/s and no latency: a move of n MB takes n ms.
const GBPS: Link = Link {
    latency_s: 0.0,
    bytes_per_s: 1e9,
};

/// A bus that moves data over `link` both ways.
pub(super) fn bus(link: Link) -> Option<TransferModel> {
    Some(TransferModel {
        h2d: link,
        d2h: link,
    })
}

/// A CPU and one GPU, whose bus moves 1 GB/s each way.
pub(super) fn dispatcher() -> Dispatcher {
    let mut d = Dispatcher::new(vec!["cpu".into(), "gpu-a".into()], 5, None);
    d.bus[0] = bus(GBPS);
    d
}

/// What `backend` must receive to take `secs` over a 1 GB/s bus: an upload
/// to a GPU, a download from GPU 0 to the CPU.
pub(super) fn moves(backend: Backend, secs: f64) -> Moves {
    let bytes = (secs * 1e9).round() as u64;
    let mut m = Moves::default();
    match (backend, bytes) {
        (_, 0) => {}
        (Backend::Cpu, n) => m.down.push((0, n)),
        (Backend::Gpu(g), n) => m.up.push((g, n)),
    }
    m
}

/// A call of `kernel` at size 1000, offered to each backend with the
/// seconds its arguments take to move there; it writes nothing.
fn call<'a>(
    kernel: u64,
    name: &'a str,
    offers: &[(Backend, f64)],
    forced: Option<Backend>,
) -> Candidates<'a> {
    Candidates {
        kernel,
        name,
        size: 1000,
        forced,
        splittable: false,
        written: 0,
        queue_s: None,
        backends: offers
            .iter()
            .map(|&(backend, secs)| Candidate {
                backend,
                variant: 0,
                kernel,
                label: None,
                moves: moves(backend, secs),
            })
            .collect(),
        why_none: None,
    }
}

/// Places a call (recorded) and returns the decision as the log keeps it.
fn decide(
    d: &mut Dispatcher,
    kernel: u64,
    name: &str,
    offers: &[(Backend, f64)],
    forced: Option<Backend>,
) -> Result<Decision, Error> {
    let c = call(kernel, name, offers, forced);
    let placement = d.place(&c, None)?;
    let logged = d.log.back().cloned().expect("a placed call is logged");
    assert_eq!(placement, Placement::of(&logged, 0));
    Ok(Decision::clone(&logged))
}

fn both(transfer_gpu: f64) -> [(Backend, f64); 2] {
    [(CPU, 0.0), (GPU, transfer_gpu)]
}

/// Places a call of kernel 1 (`k`) whose data need not move to either
/// backend.
fn decide_k(d: &mut Dispatcher) -> Decision {
    decide(d, 1, "k", &both(0.0), None).unwrap()
}

#[test]
fn calibration_alternates_until_every_backend_has_its_samples() {
    let mut d = dispatcher();
    let mut order = Vec::new();
    for _ in 0..12 {
        let dec = decide_k(&mut d);
        order.push((dec.chosen, dec.reason));
        let t = if dec.chosen == CPU { 2e-3 } else { 1e-3 };
        d.record(1, "k", dec.chosen, 1000, t);
    }
    // Each backend: one warm-up call (not recorded) and five samples.
    let calibrating: Vec<Backend> = order
        .iter()
        .filter(|(_, r)| *r == Reason::Calibrating)
        .map(|(b, _)| *b)
        .collect();
    assert_eq!(calibrating.len(), 12);
    assert_eq!(calibrating.iter().filter(|b| **b == CPU).count(), 6);
    assert_eq!(
        &calibrating[..4],
        &[CPU, CPU, GPU, GPU],
        "warm-up, then alternate"
    );
    let dec = decide_k(&mut d);
    assert_eq!((dec.chosen, dec.reason), (GPU, Reason::Modelled));
    assert_eq!(d.calibration_runs, 12);
}

/// Kernel 1 calibrated with these execution times on each backend.
fn measured(d: &mut Dispatcher, times: &[(Backend, f64)]) {
    for _ in 0..6 {
        for &(b, secs) in times {
            d.record(1, "k", b, 1000, secs);
        }
    }
}

fn calibrated(cpu: f64, gpu: f64) -> Dispatcher {
    let mut d = dispatcher();
    measured(&mut d, &[(CPU, cpu), (GPU, gpu)]);
    d
}

#[test]
fn data_on_the_gpu_keeps_a_follow_up_there() {
    // GPU compute 1 ms, CPU 3 ms; moving the data to the GPU costs 5 ms.
    let mut d = calibrated(3e-3, 1e-3);
    let far = decide(&mut d, 1, "k", &both(5e-3), None).unwrap();
    assert_eq!((far.chosen, far.reason), (CPU, Reason::Modelled), "{far}");
    // Already there: nothing to move, the GPU wins.
    let near = decide_k(&mut d);
    assert_eq!(near.chosen, GPU, "{near}");
    // Data resident on the GPU costs the CPU a download instead.
    let back = decide(&mut d, 1, "k", &[(CPU, 5e-3), (GPU, 0.0)], None).unwrap();
    assert_eq!(back.chosen, GPU, "{back}");
}

#[test]
fn a_single_spike_does_not_flip_the_decision() {
    let mut d = calibrated(3e-3, 1e-3);
    d.record(1, "k", GPU, 1000, 0.5);
    let dec = decide_k(&mut d);
    assert_eq!((dec.chosen, dec.reason), (GPU, Reason::Modelled), "{dec}");
}

#[test]
fn drift_sends_the_pair_back_to_calibration_and_then_elsewhere() {
    let mut d = calibrated(3e-3, 1e-3);
    for _ in 0..3 {
        d.record(1, "k", GPU, 1000, 20e-3); // the GPU got 20× slower
    }
    let dec = decide_k(&mut d);
    assert_eq!(dec.reason, Reason::Calibrating, "{dec}");
    assert_eq!(dec.chosen, GPU);
    d.record(1, "k", GPU, 1000, 20e-3);
    d.record(1, "k", GPU, 1000, 20e-3);
    let dec = decide_k(&mut d);
    assert_eq!((dec.chosen, dec.reason), (CPU, Reason::Modelled), "{dec}");
}

#[test]
fn observed_transfers_refine_the_measured_bandwidths() {
    let mut d = dispatcher();
    let link = Link {
        latency_s: 1e-4,
        bytes_per_s: 2e9,
    };
    d.bus[0] = bus(link);
    let mib4 = 4u64 << 20;
    // Two downloads are not enough to move it.
    d.observe_transfer(0, false, mib4, 4.3e-3);
    d.observe_transfer(0, false, mib4, 4.3e-3);
    assert_eq!(d.bus[0].unwrap().d2h.bytes_per_s, 2e9);
    // A third is, and a spike among many does not move the median.
    d.observe_transfer(0, false, mib4, 4.3e-3);
    d.observe_transfer(0, false, mib4, 0.5);
    let bw = d.bus[0].unwrap().d2h.bytes_per_s;
    let want = mib4 as f64 / 4.2e-3;
    assert!((bw - want).abs() < 1e-6 * want, "{bw} vs {want}");
    assert_eq!(d.bus[0].unwrap().d2h.latency_s, 1e-4);
    assert_eq!(d.bus[0].unwrap().h2d, link, "the other way is left alone");
    for _ in 0..3 {
        d.observe_transfer(0, true, mib4, 2.1e-3);
    }
    let up = d.bus[0].unwrap().h2d.bytes_per_s;
    assert!((up - mib4 as f64 / 2e-3).abs() < 1e-6 * up, "{up}");
    // A GPU without a bus model, or one that does not exist: nothing.
    d.observe_transfer(5, true, mib4, 1.0);
}

#[test]
fn drift_that_cannot_change_the_choice_is_only_a_sample() {
    // The CPU takes 1 ms, a GPU 100 ms. Three CPU calls of 5 ms (a cold
    // cache, a busy machine) change nothing: no calibration again.
    let mut d = calibrated(1e-3, 100e-3);
    for _ in 0..3 {
        d.record(1, "k", CPU, 1000, 5e-3);
    }
    let dec = decide_k(&mut d);
    assert_eq!((dec.chosen, dec.reason), (CPU, Reason::Modelled), "{dec}");
    // Three of 80 ms come near the GPU's 100 ms: calibrate again.
    for _ in 0..3 {
        d.record(1, "k", CPU, 1000, 80e-3);
    }
    let dec = decide_k(&mut d);
    assert_eq!(dec.reason, Reason::Calibrating, "{dec}");
}

#[test]
fn a_hopeless_backend_is_not_explored_further() {
    let mut d = dispatcher();
    measured(&mut d, &[(CPU, 1e-3)]);
    d.record(1, "k", GPU, 1000, 1.0); // warm-up
    d.record(1, "k", GPU, 1000, 1.0);
    d.record(1, "k", GPU, 1000, 1.0);
    let dec = decide_k(&mut d);
    assert_eq!((dec.chosen, dec.reason), (CPU, Reason::Modelled), "{dec}");
}

#[test]
fn forced_and_only_backends() {
    let mut d = calibrated(3e-3, 1e-3);
    let dec = decide(&mut d, 1, "k", &both(0.0), Some(CPU)).unwrap();
    assert_eq!((dec.chosen, dec.reason), (CPU, Reason::Forced));
    let dec = decide(&mut d, 1, "k", &[(CPU, 0.0)], None).unwrap();
    assert_eq!((dec.chosen, dec.reason), (CPU, Reason::OnlyBackend));
    d.forced = Some(CPU);
    let dec = decide_k(&mut d);
    assert_eq!((dec.chosen, dec.reason), (CPU, Reason::Forced));
}

#[test]
fn a_busy_device_counts_its_queue() {
    let mut d = calibrated(3e-3, 1e-3);
    // Four calls already running on the GPU (1 ms each; CPU takes 3 ms).
    for _ in 0..4 {
        d.enqueue(1, GPU, 1000);
    }
    assert!((d.queued(GPU) - 4e-3).abs() < 1e-9, "{}", d.queued(GPU));
    let dec = decide_k(&mut d);
    assert_eq!(dec.estimates[1].queue_s, d.queued(GPU), "{dec}");
    assert_eq!(dec.chosen, CPU, "the idle CPU finishes first: {dec}");
    for _ in 0..4 {
        d.finished(1, GPU, 1000);
    }
    assert_eq!(d.queued(GPU), 0.0, "an idle device owes nothing");
    let dec = decide_k(&mut d);
    assert_eq!(dec.chosen, GPU);
}

#[test]
fn an_excluded_backend_is_skipped_and_the_next_best_chosen() {
    let mut d = calibrated(3e-3, 1e-3);
    let dec = decide_k(&mut d);
    assert_eq!(dec.chosen, GPU, "{dec}");
    d.exclude(1, GPU, "wrong results".into(), false);
    assert_eq!(d.excluded(1, GPU), Some("wrong results"));
    assert_eq!(d.excluded(1, CPU), None);
    assert_eq!(d.excluded(2, GPU), None, "another kernel is not affected");
    let dec = decide_k(&mut d);
    assert_eq!(
        (dec.chosen, dec.reason),
        (CPU, Reason::OnlyBackend),
        "{dec}"
    );
    assert_eq!(
        dec.estimates.iter().map(|e| e.backend).collect::<Vec<_>>(),
        [CPU]
    );
    assert_eq!(
        dec.excluded,
        [Exclusion {
            backend: GPU,
            variant: None,
            reason: "wrong results".into(),
            permanent: false
        }]
    );
    assert!(
        dec.to_string().contains("gpu0 excluded: wrong results"),
        "{dec}"
    );
    // Another kernel still goes to the GPU.
    let mut other = calibrated(3e-3, 1e-3);
    other.excluded = d.excluded.clone();
    for _ in 0..6 {
        other.record(2, "j", CPU, 1000, 3e-3);
        other.record(2, "j", GPU, 1000, 1e-3);
    }
    assert_eq!(
        decide(&mut other, 2, "j", &both(0.0), None).unwrap().chosen,
        GPU
    );
}

#[test]
fn with_three_backends_the_next_best_is_modelled() {
    let mut d = Dispatcher::new(vec!["cpu".into(), "a".into(), "b".into()], 5, None);
    let gpu1 = Backend::Gpu(1);
    measured(&mut d, &[(CPU, 4e-3), (GPU, 1e-3), (gpu1, 2e-3)]);
    let all = [(CPU, 0.0), (GPU, 0.0), (gpu1, 0.0)];
    assert_eq!(decide(&mut d, 1, "k", &all, None).unwrap().chosen, GPU);
    d.exclude(1, GPU, "lost its results".into(), true);
    let dec = decide(&mut d, 1, "k", &all, None).unwrap();
    assert_eq!((dec.chosen, dec.reason), (gpu1, Reason::Modelled), "{dec}");
    assert!(
        dec.to_string()
            .contains("gpu0 excluded, permanently: lost its results"),
        "{dec}"
    );
}

#[test]
fn a_forced_call_goes_to_an_excluded_backend() {
    let mut d = calibrated(3e-3, 1e-3);
    d.exclude(1, GPU, "wrong results".into(), false);
    let dec = decide(&mut d, 1, "k", &both(0.0), Some(GPU)).unwrap();
    assert_eq!((dec.chosen, dec.reason), (GPU, Reason::Forced), "{dec}");
    assert_eq!(dec.excluded.len(), 1, "shown, not applied: {dec}");
    d.forced = Some(GPU);
    let dec = decide_k(&mut d);
    assert_eq!((dec.chosen, dec.reason), (GPU, Reason::Forced), "{dec}");
    // Forced, even when every backend is excluded.
    d.exclude(1, CPU, "panicked".into(), false);
    assert!(decide(&mut d, 1, "k", &both(0.0), None).is_ok());
}

#[test]
fn every_backend_excluded_is_an_error_naming_each() {
    let mut d = calibrated(3e-3, 1e-3);
    d.exclude(1, GPU, "wrong results".into(), false);
    d.exclude(1, CPU, "panicked".into(), true);
    let e = decide(&mut d, 1, "k", &both(0.0), None).unwrap_err();
    assert_eq!(
        e,
        Error::NoBackend {
            kernel: "k".into(),
            reason: "cpu: panicked; gpu0: wrong results".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "kernel `k`: no backend can run it: cpu: panicked; gpu0: wrong results"
    );
    // Only the CPU offered, and it is excluded: the same.
    assert!(matches!(
        decide(&mut d, 1, "k", &[(CPU, 0.0)], None),
        Err(Error::NoBackend { .. })
    ));
    d.reset();
    assert_eq!(d.excluded(1, CPU), None, "a reset forgets exclusions");
    assert!(decide(&mut d, 1, "k", &both(0.0), None).is_ok());
}

#[test]
fn permanent_exclusions_survive_the_model_file_and_others_do_not() {
    let mut d = calibrated(3e-3, 1e-3);
    d.exclude(1, GPU, "wrong results".into(), true);
    d.exclude(1, CPU, "panicked once".into(), false);
    d.exclude(0xabc, CPU, "line one\nline two".into(), true);
    let text = persist::to_json(&d).unwrap();
    let loaded = persist::parse(&text, &d.keys, "the test").unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let mut again = Dispatcher::new(d.keys.clone(), 5, None);
    again.absorb(loaded);
    assert_eq!(again.excluded(1, GPU), Some("wrong results"));
    assert_eq!(again.excluded(1, CPU), None, "not permanent: not saved");
    assert_eq!(again.excluded(0xabc, CPU), Some("line one line two"));
    let dec = decide(&mut again, 1, "k", &both(0.0), None).unwrap();
    assert_eq!(dec.chosen, CPU, "{dec}");
    assert!(dec.excluded[0].permanent);
    // On another machine (other device keys) nothing is excluded.
    let elsewhere = vec!["cpu".to_owned(), "gpu-b".to_owned()];
    let loaded = persist::parse(&text, &elsewhere, "the test").unwrap();
    assert!(loaded.excluded.iter().all(|((_, dev), _)| *dev == 0));
    // A reset writes a file without them.
    again.reset();
    let text = persist::to_json(&again).unwrap();
    let loaded = persist::parse(&text, &d.keys, "the test").unwrap();
    assert!(loaded.excluded.is_empty());
}

#[test]
fn links_come_from_two_transfers() {
    let l = Link::from_two(
        (4096, 10e-6 + 4096.0 / 1e9),
        (1 << 24, 10e-6 + (1 << 24) as f64 / 1e9),
    );
    assert!((l.bytes_per_s - 1e9).abs() / 1e9 < 1e-6);
    assert!((l.latency_s - 10e-6).abs() < 1e-9);
    assert_eq!(l.secs(0), 0.0);
}

// `place` on synthetic measurements: what the call layer hands over is
// candidates and their moves; the estimates are the dispatcher's.

#[test]
fn place_picks_the_earliest_finish_of_execution_transfers_and_queue() {
    let mut d = Dispatcher::new(vec!["cpu".into(), "a".into(), "b".into()], 5, None);
    let gpu1 = Backend::Gpu(1);
    d.bus[0] = bus(GBPS);
    d.bus[1] = d.bus[0];
    measured(&mut d, &[(CPU, 6e-3), (GPU, 1e-3), (gpu1, 2e-3)]);
    // gpu0 computes fastest but must receive 4 MB (4 ms): 5 ms; gpu1 has
    // the data already: 2 ms; the CPU: 6 ms.
    let c = call(1, "k", &[(CPU, 0.0), (GPU, 4e-3), (gpu1, 0.0)], None);
    let dec = d.explain(&c).unwrap();
    assert_eq!((dec.chosen, dec.reason), (gpu1, Reason::Modelled), "{dec}");
    let finish: Vec<f64> = dec
        .estimates
        .iter()
        .map(|e| e.finish_s().unwrap())
        .collect();
    for (got, want) in finish.iter().zip([6e-3, 5e-3, 2e-3]) {
        assert!((got - want).abs() < 1e-9, "{finish:?}");
    }
    // Four 2 ms calls queued on gpu1 make gpu0 the earliest.
    for _ in 0..4 {
        d.enqueue(1, gpu1, 1000);
    }
    let p = d.place(&c, None).unwrap();
    assert_eq!(
        (p.backend, p.reason, p.split),
        (GPU, Reason::Modelled, None)
    );
    let logged = d.decisions().pop().unwrap();
    assert!(
        (logged.estimates[2].queue_s - 8e-3).abs() < 1e-9,
        "{logged}"
    );
}

#[test]
fn place_counts_uploads_downloads_and_the_expected_readback() {
    let mut d = dispatcher();
    measured(&mut d, &[(CPU, 3e-3), (GPU, 1e-3)]);
    // 2 MB to upload to the GPU; the CPU must download 1 MB from it.
    let mut c = call(1, "k", &[(CPU, 1e-3), (GPU, 2e-3)], None);
    let dec = d.explain(&c).unwrap();
    assert!((dec.estimates[0].transfer_s - 1e-3).abs() < 1e-12, "{dec}");
    assert!((dec.estimates[1].transfer_s - 2e-3).abs() < 1e-12, "{dec}");
    // Writing 4 MB: left on the GPU, it comes home with the readback
    // probability (a prior of a half for a kernel never read back; six
    // GPU runs recorded, of which the first warmed up): the GPU pays
    // p × 4 ms more, the CPU nothing.
    c.written = 4_000_000;
    let p = d.readback_probability(1);
    assert!((p - 0.5 / 7.0).abs() < 1e-12, "{p}");
    let dec = d.explain(&c).unwrap();
    assert!((dec.estimates[0].transfer_s - 1e-3).abs() < 1e-12, "{dec}");
    let want = 2e-3 + p * 4e-3;
    assert!((dec.estimates[1].transfer_s - want).abs() < 1e-12, "{dec}");
    // Read back after every run, the output's way home tips it to the CPU.
    for _ in 0..10 {
        d.note_readback(1);
    }
    assert_eq!(d.readback_probability(1), 1.0);
    let dec = d.explain(&c).unwrap();
    assert_eq!(
        dec.chosen, CPU,
        "1 + 2 + 4 ms on the GPU, 1 + 3 on the CPU: {dec}"
    );
    // A GPU whose bus was never measured moves for free.
    d.bus[0] = None;
    assert_eq!(d.explain(&c).unwrap().chosen, GPU);
}

#[test]
fn explain_records_nothing_and_place_records_once() {
    let mut d = dispatcher();
    let c = call(1, "k", &both(0.0), None);
    let first = d.explain(&c).unwrap();
    assert_eq!(first.reason, Reason::Calibrating);
    assert_eq!(d.explain(&c).unwrap(), first, "nothing moved");
    assert_eq!(d.calibration_runs(), 0);
    assert!(d.decisions().is_empty());
    let p = d.place(&c, None).unwrap();
    assert_eq!(p, Placement::of(&first, 0));
    assert_eq!(d.calibration_runs(), 1);
    assert_eq!(d.decisions(), [first]);
    // A split that would start calibrating: explained, it is not started.
    let mut d = dispatcher();
    measured(&mut d, &[(CPU, 2e-3), (GPU, 1e-3)]);
    let c = Candidates {
        splittable: true,
        ..call(1, "k", &both(0.0), None)
    };
    let dec = d.explain(&c).unwrap();
    assert_eq!(
        (dec.chosen, dec.reason),
        (GPU, Reason::Calibrating),
        "{dec}"
    );
    let share = dec.split.expect("a split");
    assert!(
        (share - 2.0 / 3.0).abs() < 1e-9,
        "balances the estimates: {share}"
    );
    assert!(d.splits.is_empty() && d.split_rows().is_empty());
    assert_eq!((d.calibration_runs(), d.decisions().len()), (0, 0));
    let p = d.place(&c, None).unwrap();
    assert_eq!(
        (p.backend, p.reason, p.split),
        (GPU, Reason::Calibrating, Some(share))
    );
    assert_eq!(d.split_rows().len(), 1);
    assert_eq!((d.calibration_runs(), d.decisions().len()), (1, 1));
    // Not splittable: the GPU alone.
    let c = call(1, "k", &both(0.0), None);
    let p = d.place(&c, None).unwrap();
    assert_eq!(
        (p.backend, p.reason, p.split),
        (GPU, Reason::Modelled, None)
    );
}

#[test]
fn place_honours_a_forced_backend_from_the_call_or_the_dispatcher() {
    let mut d = dispatcher();
    measured(&mut d, &[(CPU, 3e-3), (GPU, 1e-3)]);
    let p = d.place(&call(1, "k", &both(0.0), Some(CPU)), None).unwrap();
    assert_eq!((p.backend, p.reason, p.split), (CPU, Reason::Forced, None));
    // Forced, a splittable call runs unsplit.
    let c = Candidates {
        splittable: true,
        ..call(1, "k", &both(0.0), Some(GPU))
    };
    let p = d.place(&c, None).unwrap();
    assert_eq!((p.backend, p.reason, p.split), (GPU, Reason::Forced, None));
    // Nothing can run it, and nothing is forced: the call layer's words.
    let why = || "it has no CPU implementation; this runtime has no GPU".to_owned();
    let none = Candidates {
        why_none: Some(&why),
        ..call(1, "k", &[], None)
    };
    assert_eq!(
        d.place(&none, None).unwrap_err(),
        Error::NoBackend {
            kernel: "k".into(),
            reason: why()
        }
    );
    assert_eq!(d.decisions().len(), 2, "an error is not logged");
    // Every automatic call forced by the dispatcher (`PEL_BACKEND`): it
    // goes there even with no candidate offered.
    let mut d = Dispatcher::new(d.keys.clone(), 5, Some(GPU));
    assert_eq!(d.forced(), Some(GPU));
    let p = d.place(&none, None).unwrap();
    assert_eq!((p.backend, p.reason), (GPU, Reason::Forced));
    let p = d.place(&call(1, "k", &both(0.0), Some(CPU)), None).unwrap();
    assert_eq!(p.backend, CPU, "the call's own target comes first");
}

#[test]
fn place_skips_excluded_pairs_and_says_so() {
    let mut d = dispatcher();
    measured(&mut d, &[(CPU, 3e-3), (GPU, 1e-3)]);
    let c = call(1, "k", &both(0.0), None);
    d.exclude(1, GPU, "wrong results".into(), false);
    let p = d.place(&c, None).unwrap();
    assert_eq!((p.backend, p.reason), (CPU, Reason::OnlyBackend));
    let logged = d.decisions().pop().unwrap();
    assert_eq!(logged.estimates.len(), 1);
    assert_eq!(logged.excluded[0].backend, GPU);
    // Another kernel on the same GPU is not affected.
    for _ in 0..6 {
        d.record(2, "j", CPU, 1000, 3e-3);
        d.record(2, "j", GPU, 1000, 1e-3);
    }
    assert_eq!(
        d.place(&call(2, "j", &both(0.0), None), None)
            .unwrap()
            .backend,
        GPU
    );
    // Both excluded: an error naming each, and nothing logged or counted.
    d.exclude(1, CPU, "panicked".into(), false);
    let (runs, logged) = (d.calibration_runs(), d.decisions().len());
    assert!(matches!(
        d.place(&c, None),
        Err(Error::NoBackend { reason, .. }) if reason == "cpu: panicked; gpu0: wrong results"
    ));
    assert_eq!((d.calibration_runs(), d.decisions().len()), (runs, logged));
}

#[test]
fn small_or_untimed_transfers_leave_the_bus_alone() {
    let mut d = dispatcher();
    for secs in [1e-3, 0.0, -1.0, f64::NAN, f64::INFINITY] {
        for _ in 0..3 {
            // 100 KiB in 1 ms: under the size that says anything about
            // the bandwidth; the others are no times at all.
            let bytes = if secs == 1e-3 { 100 << 10 } else { 4 << 20 };
            d.observe_transfer(0, true, bytes, secs);
        }
    }
    assert_eq!(d.bus[0].unwrap().h2d, GBPS);
    assert!(!d.dirty);
}

/// The key of a call of kernel 1 at size 1000 (one argument, on the host).
fn memo_key(forced: Option<Backend>) -> MemoKey {
    MemoKey {
        kernel: 1,
        variants: 0,
        size: 1000,
        workgroups: 4,
        forced,
        args: [(64, 1), (0, 0), (0, 0), (0, 0)],
    }
}

#[test]
fn a_decision_for_the_cpu_is_remembered_until_something_it_read_changes() {
    let mut d = calibrated(1e-6, 1e-3);
    let key = memo_key(None);
    assert_eq!(d.recall(&key), None, "nothing remembered yet");
    let placed = d.place(&call(1, "k", &both(0.0), None), Some(key)).unwrap();
    assert_eq!((placed.backend, placed.reason), (CPU, Reason::Modelled));
    // Recalled, and logged as the decision it repeats.
    let logged = d.log.len();
    assert_eq!(d.recall(&key), Some(placed));
    assert_eq!(d.log.len(), logged + 1);
    assert_eq!(d.log.back().unwrap().chosen, CPU);
    // Another key (the argument now on the GPU only) is not the same call.
    let moved = MemoKey {
        args: [(64, 1 << 2), (0, 0), (0, 0), (0, 0)],
        ..key
    };
    assert_eq!(d.recall(&moved), None);
    // A call running somewhere: its queue could change the choice.
    d.charge(GPU, 1e-3);
    assert_eq!(d.recall(&key), None);
    d.finished(1, GPU, 1000);
    assert_eq!(d.recall(&key), Some(placed));
    // A GPU sample, an exclusion: decided afresh.
    d.record(1, "k", GPU, 1000, 1e-3);
    assert_eq!(d.recall(&key), None);
    d.place(&call(1, "k", &both(0.0), None), Some(key)).unwrap();
    assert_eq!(d.recall(&key), Some(placed));
    d.exclude(1, GPU, "test".into(), false);
    assert_eq!(d.recall(&key), None);
}

#[test]
fn a_remembered_decision_is_made_afresh_every_few_uses() {
    let mut d = calibrated(1e-6, 1e-3);
    let key = memo_key(Some(CPU));
    d.place(&call(1, "k", &both(0.0), Some(CPU)), Some(key))
        .unwrap();
    let mut recalled = 0;
    while d.recall(&key).is_some() {
        recalled += 1;
        assert!(recalled <= 64, "never made afresh");
    }
    assert!(recalled >= 1, "never recalled");
}

#[test]
fn decisions_for_a_gpu_or_to_calibrate_are_not_remembered() {
    // The GPU is faster: its decision is not remembered.
    let mut d = calibrated(1e-3, 1e-6);
    let key = memo_key(None);
    let p = d.place(&call(1, "k", &both(0.0), None), Some(key)).unwrap();
    assert_eq!(p.backend, GPU);
    assert_eq!(d.recall(&key), None);
    // Calibrating: neither.
    let mut d = dispatcher();
    let p = d.place(&call(1, "k", &both(0.0), None), Some(key)).unwrap();
    assert_eq!(p.reason, Reason::Calibrating);
    assert_eq!(d.recall(&key), None);
}
