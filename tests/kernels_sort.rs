//! Prefix scan and radix sort against their serial references, on the CPU
//! and on every GPU, at awkward sizes: 0, 1, 2, 255, 256, 257, the prime
//! 100,003, then 1,000,003 and (scan) one size whose first pass needs more
//! than 65,535 workgroups, on the CPU and the first GPU only (GL runs
//! workgroup barriers very slowly). Scans of both kinds and both element
//! types; sorts of keys and of pairs, with keys over the whole u32 range,
//! with few distinct keys (ties: stability) and below a bound (constant high
//! digits). The CPU sorts with its whole-sort kernel and, separately, with
//! the GPU's multi-pass kernels. Inputs are seeded random values; scan
//! outputs start poisoned (NaN or 0xDEADBEEF). Tolerances are stated in
//! pel-kernels' `scan` and `sort`.

mod common;

use common::{Case, run_all};
use pel::kernels::samples::run_check;
use pel::kernels::samples::scan::{ScanF32Trial, ScanU32Trial};
use pel::kernels::samples::sort::{Keys, SortPairsTrial, SortTrial};
use pel::kernels::scan::{self, Scan, ScanKind};
use pel::kernels::sort::{self, Digits, Sort, WholeSortParams};
use pel::{Backend, Error, Target};

/// Sizes every backend runs.
const SMALL: [usize; 7] = [0, 1, 2, 255, 256, 257, 100_003];

/// A million and three: many tiles, and histograms whose scan has three
/// levels.
const MILLION: usize = 1_000_003;

/// Elements whose first scan pass takes 65,536 workgroups of 256 elements:
/// past the 65,535-per-dimension limit, so the launch is folded into 2-D
/// (64 MiB of u32, the most a test buffer may hold).
const OVER_65535_GROUPS: usize = 65_535 * 256 + 1;

fn scan_case(n: usize, f32: bool, kind: ScanKind) -> Case {
    let ty = if f32 { "f32" } else { "u32" };
    (
        format!("{ty} n={n} {}", kind.name()),
        Box::new(move |t, seed| {
            let rt = common::rt();
            if f32 {
                run_check(&mut ScanF32Trial::new(rt, n, kind, seed)?, rt, t)
            } else {
                run_check(&mut ScanU32Trial::new(rt, n, kind, seed)?, rt, t)
            }
        }),
    )
}

/// Both kinds of both types at each size.
fn scan_cases(sizes: &[usize]) -> Vec<Case> {
    let mut cases = Vec::new();
    for &n in sizes {
        for kind in [ScanKind::Inclusive, ScanKind::Exclusive] {
            cases.push(scan_case(n, false, kind));
            cases.push(scan_case(n, true, kind));
        }
    }
    cases
}

#[derive(Clone, Copy)]
enum Algorithm {
    /// `radix_sort`: the whole-sort kernel on the CPU, the passes on a GPU.
    Chosen,
    /// `radix_sort_passes`: the multi-pass kernels wherever they run.
    MultiPass,
    /// `radix_sort_passes_with(.., Digits::Eight)`: the wide passes.
    Wide,
}

fn sort_case(n: usize, pairs: bool, keys: Keys, algorithm: Algorithm) -> Case {
    let digits = match algorithm {
        Algorithm::Chosen => None,
        Algorithm::MultiPass => Some(Digits::Four),
        Algorithm::Wide => Some(Digits::Eight),
    };
    (
        format!(
            "{} n={n} {keys:?}{}",
            if pairs { "pairs" } else { "keys" },
            digits.map_or(String::new(), |d| format!(" multi-pass {}", d.label()))
        ),
        Box::new(move |t, seed| {
            let rt = common::rt();
            if pairs {
                let trial = SortPairsTrial::new(rt, n, keys, seed)?;
                let mut trial = match digits {
                    Some(d) => trial.multi_pass_with(d),
                    None => trial,
                };
                run_check(&mut trial, rt, t)
            } else {
                let trial = SortTrial::new(rt, n, keys, seed)?;
                let mut trial = match digits {
                    Some(d) => trial.multi_pass_with(d),
                    None => trial,
                };
                run_check(&mut trial, rt, t)
            }
        }),
    )
}

/// Keys and pairs, uniform and with ties, at each of `small`; at each of
/// `large`, keys uniform and pairs with ties.
fn sort_cases(small: &[usize], large: &[usize], algorithm: Algorithm) -> Vec<Case> {
    let mut cases = Vec::new();
    for &n in small {
        for keys in [Keys::Full, Keys::Ties(16)] {
            cases.push(sort_case(n, false, keys, algorithm));
            cases.push(sort_case(n, true, keys, algorithm));
        }
    }
    for &n in large {
        cases.push(sort_case(n, false, Keys::Full, algorithm));
        cases.push(sort_case(n, true, Keys::Ties(16), algorithm));
    }
    cases
}

#[test]
fn scan_cpu() {
    let mut cases = scan_cases(&SMALL);
    cases.extend(scan_cases(&[MILLION]));
    cases.push(scan_case(OVER_65535_GROUPS, false, ScanKind::Inclusive));
    run_all("scan", &[Backend::Cpu], &cases);
}

#[test]
fn scan_gpu() {
    let gpus = common::gpus(common::rt(), "scan_gpu");
    run_all("scan", &gpus, &scan_cases(&SMALL));
    let first = &gpus[..gpus.len().min(1)];
    let mut large = scan_cases(&[MILLION]);
    large.push(scan_case(OVER_65535_GROUPS, false, ScanKind::Inclusive));
    run_all("scan", first, &large);
}

#[test]
fn sort_cpu() {
    let mut cases = sort_cases(&SMALL, &[MILLION], Algorithm::Chosen);
    // Either side of the switch to the parallel sort; one dominant bucket
    // (two distinct keys); high bytes all zero.
    for n in [65_535, 65_537] {
        cases.push(sort_case(n, true, Keys::Full, Algorithm::Chosen));
    }
    cases.push(sort_case(MILLION, true, Keys::Ties(2), Algorithm::Chosen));
    cases.push(sort_case(
        MILLION,
        false,
        Keys::Below(1000),
        Algorithm::Chosen,
    ));
    cases.push(sort_case(
        MILLION,
        true,
        Keys::Below(1 << 20),
        Algorithm::Chosen,
    ));
    run_all("sort", &[Backend::Cpu], &cases);
}

#[test]
fn sort_multi_pass_cpu() {
    let mut cases = sort_cases(&SMALL, &[MILLION], Algorithm::MultiPass);
    cases.push(sort_case(
        100_003,
        true,
        Keys::Below(1000),
        Algorithm::MultiPass,
    ));
    run_all("sort", &[Backend::Cpu], &cases);
}

#[test]
fn sort_gpu() {
    let gpus = common::gpus(common::rt(), "sort_gpu");
    let mut cases = sort_cases(&SMALL[..6], &[100_003], Algorithm::Chosen);
    cases.push(sort_case(5_000, true, Keys::Below(1000), Algorithm::Chosen));
    run_all("sort", &gpus, &cases);
    let first = &gpus[..gpus.len().min(1)];
    run_all(
        "sort",
        first,
        &sort_cases(&[], &[MILLION], Algorithm::Chosen),
    );
}

/// The wide passes (8-bit digits) on the CPU and every GPU: keys and pairs,
/// uniform and with ties, at the small sizes (100,003: keys uniform, pairs
/// with ties); keys whose high bits are all zero; a million and three on
/// the CPU and the first GPU.
#[test]
fn sort_wide_passes() {
    let mut cases = sort_cases(&SMALL[..6], &[100_003], Algorithm::Wide);
    cases.push(sort_case(5_000, true, Keys::Below(1000), Algorithm::Wide));
    let gpus = common::gpus(common::rt(), "sort_wide_passes");
    let mut all = vec![Backend::Cpu];
    all.extend(&gpus);
    run_all("sort", &all, &cases);
    let mut first = vec![Backend::Cpu];
    first.extend(gpus.first());
    run_all(
        "sort",
        &first,
        &sort_cases(&[], &[MILLION], Algorithm::Wide),
    );
}

/// The whole-sort kernels' shader (one workgroup), on every GPU at small
/// sizes: pel runs these kernels on the CPU, but a kernel must compute the
/// same on every device.
#[test]
fn whole_sort_kernels_on_gpu() {
    let rt = common::rt();
    let sort = Sort::new().unwrap();
    let [.., whole_keys, whole_pairs] = sort.kernels();
    for gpu in common::gpus(rt, "whole_sort_kernels_on_gpu") {
        for n in [0usize, 1, 2, 63, 64, 65, 1_000] {
            let keys: Vec<u32> = (0..n as u32)
                .map(|i| i.wrapping_mul(2_654_435_761) % 50)
                .collect();
            let values: Vec<u32> = (0..n as u32).collect();
            let (k, v) = (rt.buffer(&keys), rt.buffer(&values));
            let (tk, tv) = (rt.zeros::<u32>(n), rt.zeros::<u32>(n));
            let params = WholeSortParams { n: n as u32 };
            let on = Target::On(gpu);
            rt.execute(on, whole_pairs, &[&k, &tk, &v, &tv], &params)
                .unwrap();
            let (wk, wv) = sort::reference_pairs(&keys, &values);
            assert_eq!(rt.read(&k).unwrap(), wk, "pairs' keys, n={n} on {gpu}");
            assert_eq!(rt.read(&v).unwrap(), wv, "pairs' values, n={n} on {gpu}");
            let k = rt.buffer(&keys);
            rt.execute(on, whole_keys, &[&k, &tk], &params).unwrap();
            assert_eq!(rt.read(&k).unwrap(), wk, "keys, n={n} on {gpu}");
        }
    }
}

#[test]
fn scan_refuses_mismatched_and_aliased_buffers() {
    let rt = common::rt();
    let scan = Scan::new().unwrap();
    let x = rt.buffer(&[1u32, 2, 3]);
    let short = rt.zeros::<u32>(2);
    let cpu = Target::On(Backend::Cpu);
    common::assert_invalid_input(
        scan.scan_u32(rt, cpu, &x, &short, ScanKind::Inclusive),
        "scan_u32",
        "output",
    );
    let xf = rt.buffer(&[1.0f32; 300]);
    let yf = rt.zeros::<f32>(299);
    assert!(matches!(
        scan.submit_f32(rt, cpu, &xf, &yf, ScanKind::Exclusive),
        Err(Error::InvalidInput { .. })
    ));
    // Not in place: the output must be another buffer.
    assert!(matches!(
        scan.scan_u32(rt, cpu, &x, &x, ScanKind::Inclusive),
        Err(Error::AliasedArguments { .. })
    ));
}

#[test]
fn sort_refuses_mismatched_and_aliased_buffers() {
    let rt = common::rt();
    let sort = Sort::new().unwrap();
    let keys = rt.buffer(&[3u32, 1, 2]);
    let values = rt.zeros::<u32>(4);
    for target in [Target::On(Backend::Cpu), Target::Auto] {
        common::assert_invalid_input(
            sort.radix_sort_pairs(rt, target, &keys, &values),
            "radix_sort_pairs",
            "values",
        );
    }
    assert!(matches!(
        sort.submit_radix_sort_pairs(rt, Target::Auto, &keys, &values),
        Err(Error::InvalidInput { .. })
    ));
    // The keys are untouched by a refused call.
    assert_eq!(rt.read(&keys).unwrap(), vec![3, 1, 2]);
    // Keys and values must be different buffers.
    assert!(matches!(
        sort.radix_sort_pairs(rt, Target::On(Backend::Cpu), &keys, &keys),
        Err(Error::AliasedArguments { .. })
    ));
}

/// Automatic placement (the first histogram decides, the rest follows) and
/// submitted passes (each placed when it runs); the data follows.
#[test]
fn automatic_and_submitted() {
    let rt = common::rt();
    let xs: Vec<u32> = (0..70_001u32)
        .map(|i| i.wrapping_mul(2_654_435_761) >> (i % 7))
        .collect();
    let ids: Vec<u32> = (0..xs.len() as u32).collect();
    let scan = Scan::new().unwrap();
    let sort = Sort::new().unwrap();
    for round in 0..3 {
        let x = rt.buffer(&xs);
        let y = rt.zeros::<u32>(xs.len());
        scan.submit_u32(rt, Target::Auto, &x, &y, ScanKind::Exclusive)
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(
            rt.read(&y).unwrap(),
            scan::reference_u32(&xs, ScanKind::Exclusive),
            "round {round}"
        );

        let (keys, values) = (rt.buffer(&xs), rt.buffer(&ids));
        sort.submit_radix_sort_pairs(rt, Target::Auto, &keys, &values)
            .unwrap()
            .wait()
            .unwrap();
        let (wk, wv) = sort::reference_pairs(&xs, &ids);
        assert_eq!(rt.read(&keys).unwrap(), wk, "round {round}");
        assert_eq!(rt.read(&values).unwrap(), wv, "round {round}");

        let (keys, values) = (rt.buffer(&xs), rt.buffer(&ids));
        let info = sort
            .radix_sort_pairs(rt, Target::Auto, &keys, &values)
            .unwrap();
        assert_eq!(
            rt.read(&keys).unwrap(),
            wk,
            "round {round} on {}",
            info.backend
        );
        assert_eq!(
            rt.read(&values).unwrap(),
            wv,
            "round {round} on {}",
            info.backend
        );
    }
}

/// On a GPU the sort runs the digit width the model chooses there: each
/// width's whole sort is measured (both named in the decisions), then one
/// is modelled; every sort is right.
#[test]
fn a_gpu_sort_chooses_its_digit_width_by_measurement() {
    let rt = common::fresh("");
    let sort = Sort::new().unwrap();
    for gpu in common::gpus(&rt, "a_gpu_sort_chooses_its_digit_width_by_measurement") {
        let keys: Vec<u32> = (0..5_000u32)
            .map(|i| i.wrapping_mul(2_654_435_761))
            .collect();
        let want = sort::reference(&keys);
        for _ in 0..10 {
            let k = rt.buffer(&keys);
            sort.radix_sort(&rt, Target::On(gpu), &k).unwrap();
            assert_eq!(rt.read(&k).unwrap(), want, "{gpu}");
        }
        let plans: Vec<_> = rt
            .decisions()
            .into_iter()
            .filter(|d| d.kernel == "radix_sort" && d.chosen == gpu)
            .collect();
        assert_eq!(plans.len(), 10, "one decision a sort");
        for label in ["digits4", "digits8"] {
            assert!(
                plans.iter().any(|d| d.variant.as_deref() == Some(label)),
                "{gpu}: {label} never ran"
            );
        }
        let last = plans.last().unwrap();
        assert_eq!(last.reason, pel::Reason::Modelled, "{last}");
    }
}
