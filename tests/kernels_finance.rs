//! The finance and genomics kernels (Black–Scholes, Monte Carlo, k-mer
//! counting) against their serial references, on the CPU and on every GPU,
//! at awkward sizes, and their typed errors on bad input. Inputs are seeded
//! random values; outputs start poisoned (NaN or 0xDEADBEEF). The
//! tolerances are stated in each kernel's trial (see pel-kernels).

mod common;

use pel::kernels::black_scholes::{self, BlackScholes, Market, OptionBatch};
use pel::kernels::kmer::{self, KmerCounter};
use pel::kernels::monte_carlo::{self, Contract, McResult, MonteCarlo};
use pel::kernels::samples::{self, run_check};
use pel::{Backend, Error, Result, Target};

use common::{Case, cpu_and_first_gpu, everywhere as all_backends, run_all};

/// Items that take 65,536 workgroups of 256 invocations: past the
/// 65,535-per-dimension limit, so the launch is folded into 2-D, while each
/// f32 buffer stays under 64 MiB.
const OVER_65535_GROUPS: usize = 65_535 * 256 + 1;

/// The argument an `InvalidInput` names (any other error fails the test).
fn invalid_arg<T>(r: Result<T>) -> String {
    match r {
        Err(Error::InvalidInput { arg, .. }) => arg,
        Err(e) => panic!("expected InvalidInput, got {e}"),
        Ok(_) => panic!("expected InvalidInput, got success"),
    }
}

// ---------------------------------------------------------------- Black–Scholes

shape_tests! {
    black_scholes_on_every_backend: "black_scholes", &[0, 1, 63, 257, 1_000_003],
        samples::black_scholes::trial, all_backends;
}

#[test]
fn black_scholes_over_65535_workgroups() {
    common::run_shape(
        "black_scholes",
        samples::black_scholes::trial,
        (OVER_65535_GROUPS, 7),
        &cpu_and_first_gpu("black_scholes_over_65535_workgroups"),
    );
}

#[test]
fn black_scholes_one_option_matches_the_closed_form() {
    // Hull's example: S = 42, K = 40, T = 0.5, r = 10%, σ = 20%.
    let rt = common::rt();
    let bs = BlackScholes::new().unwrap();
    let batch = OptionBatch::new(rt, &[42.0], &[40.0], &[0.5]).unwrap();
    let market = Market::new(0.1, 0.2).unwrap();
    let (want_c, want_p) = black_scholes::closed_form(42.0, 40.0, 0.5, 0.1, 0.2);
    for b in all_backends("black_scholes_one_option_matches_the_closed_form") {
        let (call, put) = (rt.zeros::<f32>(1), rt.zeros::<f32>(1));
        bs.run(rt, Target::On(b), &batch, market, &call, &put)
            .unwrap();
        let (c, p) = (rt.read(&call).unwrap()[0], rt.read(&put).unwrap()[0]);
        assert!(
            (c as f64 - want_c).abs() < 1e-5,
            "{b}: call {c} vs {want_c}"
        );
        assert!((p as f64 - want_p).abs() < 1e-5, "{b}: put {p} vs {want_p}");
    }
}

#[test]
fn black_scholes_splits_between_a_gpu_and_the_cpu() {
    let rt = common::rt();
    if common::gpu(rt, "black_scholes_splits_between_a_gpu_and_the_cpu").is_none() {
        return;
    }
    let mut trial = samples::black_scholes::trial(rt, 100_003, 5).unwrap();
    let split = Target::Split {
        gpu: 0,
        permille: 400,
    };
    let check = run_check(&mut trial, rt, split).unwrap();
    assert!(check.verified(), "split: {check}");
}

#[test]
fn black_scholes_submit_prices_like_run() {
    let rt = common::rt();
    let bs = BlackScholes::new().unwrap();
    let batch = OptionBatch::new(rt, &[42.0, 10.0], &[40.0, 12.0], &[0.5, 2.0]).unwrap();
    let market = Market::new(0.1, 0.2).unwrap();
    let (call, put) = (rt.zeros::<f32>(2), rt.zeros::<f32>(2));
    bs.submit(rt, Target::Auto, &batch, market, &call, &put)
        .unwrap()
        .wait()
        .unwrap();
    let (c, p) = (rt.read(&call).unwrap(), rt.read(&put).unwrap());
    for (i, (s, k, t)) in [(42.0, 40.0, 0.5), (10.0, 12.0, 2.0)]
        .into_iter()
        .enumerate()
    {
        let (wc, wp) = black_scholes::closed_form(s, k, t, 0.1, 0.2);
        assert!((c[i] as f64 - wc).abs() < 1e-5 && (p[i] as f64 - wp).abs() < 1e-5);
    }
}

#[test]
fn black_scholes_bad_input_is_a_typed_error() {
    let rt = common::rt();
    let bs = BlackScholes::new().unwrap();
    let ok = [1.0f32, 2.0];
    assert_eq!(
        invalid_arg(OptionBatch::new(rt, &ok, &[1.0], &ok)),
        "strike"
    );
    assert_eq!(
        invalid_arg(OptionBatch::new(rt, &ok, &ok, &[1.0, 0.0])),
        "expiry"
    );
    assert_eq!(
        invalid_arg(OptionBatch::new(rt, &[1.0, -2.0], &ok, &ok)),
        "spot"
    );
    assert_eq!(
        invalid_arg(OptionBatch::new(rt, &ok, &[f32::NAN, 1.0], &ok)),
        "strike"
    );
    let batch = OptionBatch::new(rt, &ok, &ok, &ok).unwrap();
    assert_eq!(
        invalid_arg(batch.write(rt, &ok, &ok, &[1.0, f32::NAN])),
        "expiry"
    );
    assert_eq!(invalid_arg(batch.write(rt, &[1.0], &[1.0], &[1.0])), "spot");
    assert_eq!(invalid_arg(Market::new(0.05, -0.2)), "volatility");
    assert_eq!(invalid_arg(Market::new(0.05, 0.0)), "volatility");
    assert_eq!(invalid_arg(Market::new(f32::INFINITY, 0.2)), "rate");
    let market = Market::new(0.05, 0.2).unwrap();
    let (a, b, three) = (rt.zeros::<f32>(2), rt.zeros::<f32>(2), rt.zeros::<f32>(3));
    let run = |m: Market, call, put| bs.run(rt, Target::Auto, &batch, m, call, put);
    assert_eq!(invalid_arg(run(market, &three, &b)), "call");
    assert_eq!(invalid_arg(run(market, &a, &three)), "put");
    let nan_vol = Market {
        rate: 0.05,
        volatility: f32::NAN,
    };
    assert_eq!(invalid_arg(run(nan_vol, &a, &b)), "volatility");
    run(market, &a, &b).unwrap();
}

// ------------------------------------------------------------------ Monte Carlo

shape_tests! {
    monte_carlo_on_every_backend: "monte_carlo", &[1, 1_000, 1_000_003],
        samples::monte_carlo::trial, all_backends;
}

/// A contract near the money, where both the call and the put are worth
/// something.
fn contract() -> Contract {
    Contract::new(100.0, 105.0, 1.0, 0.03, 0.25).unwrap()
}

/// Prices `contract` on every backend in `backends` and checks that they
/// agree with each other to f32 rounding (they draw the same stream), and
/// with Black–Scholes within 4 standard errors.
fn prices_agree(c: Contract, paths: u64, seed: u64, backends: &[Backend]) {
    let (rt, mc) = (common::rt(), MonteCarlo::new().unwrap());
    let (bs_call, bs_put) = c.closed_form();
    let results: Vec<(Backend, McResult)> = backends
        .iter()
        .map(|&b| {
            let r = mc
                .price(
                    rt,
                    Target::On(b),
                    c.spot,
                    c.strike,
                    c.expiry,
                    c.rate,
                    c.volatility,
                    paths,
                    seed,
                )
                .unwrap();
            eprintln!("monte_carlo {paths} paths seed {seed} on {b}: {r:?} (closed form {bs_call}, {bs_put})");
            (b, r)
        })
        .collect();
    let (_, first) = results[0];
    // f32 rounding of each path's payoff and of the partial sums.
    let rounding = |price: f64| 1e-5 * (c.spot + c.strike) as f64 + 1e-4 * price.abs();
    for (b, r) in &results {
        assert_eq!(r.paths, paths);
        assert!(
            (r.call - first.call).abs() <= rounding(first.call)
                && (r.put - first.put).abs() <= rounding(first.put),
            "{b} vs {}: {r:?} vs {first:?}",
            results[0].0
        );
        // Within 4 standard errors, plus the rounding (a put no path ends
        // in the money for has a standard error of 0).
        if paths > 1 {
            assert!(
                (r.call - bs_call).abs() <= 4.0 * r.call_stderr + rounding(bs_call),
                "{b}: call {} ± {} vs Black–Scholes {bs_call}",
                r.call,
                r.call_stderr
            );
            assert!(
                (r.put - bs_put).abs() <= 4.0 * r.put_stderr + rounding(bs_put),
                "{b}: put {} ± {} vs Black–Scholes {bs_put}",
                r.put,
                r.put_stderr
            );
        }
    }
}

#[test]
fn monte_carlo_backends_agree_and_match_black_scholes() {
    let backends = all_backends("monte_carlo_backends_agree_and_match_black_scholes");
    for seed in [1, 2, 0xFEED_FACE_CAFE_BEEF] {
        for paths in [1, 1_000, 1_000_003] {
            prices_agree(contract(), paths, seed, &backends);
        }
    }
    // Far from the money: a put worth almost nothing, a call mostly
    // intrinsic value.
    let deep = Contract::new(150.0, 80.0, 0.5, 0.05, 0.2).unwrap();
    prices_agree(deep, 100_000, 3, &backends);
}

#[test]
fn monte_carlo_over_65535_workgroups() {
    // 65,536 workgroups of 1,024 paths: 67 million paths, on the first GPU
    // only (the CPU would add seconds and folds nothing), against
    // Black–Scholes.
    let paths = 65_536 * monte_carlo::PATHS_PER_GROUP as u64;
    let rt = common::rt();
    if let Some(gpu) = common::gpu(rt, "monte_carlo_over_65535_workgroups") {
        prices_agree(contract(), paths, 9, &[gpu]);
    }
}

#[test]
fn monte_carlo_submit_prices_like_run() {
    let rt = common::rt();
    let mc = MonteCarlo::new().unwrap();
    let c = contract();
    let sums = rt.zeros::<[f32; 4]>(1);
    mc.submit(rt, Target::Auto, &c, 300_000, 4, &sums)
        .unwrap()
        .wait()
        .unwrap();
    let s = rt.read(&sums).unwrap()[0].map(|v| v as f64);
    let submitted = McResult::from_sums(s, 300_000, c.discount());
    let want = monte_carlo::reference(&c, 300_000, 4).unwrap();
    assert!(
        (submitted.call - want.call).abs() < 1e-3,
        "{submitted:?} vs {want:?}"
    );
    assert!(
        (submitted.put - want.put).abs() < 1e-3,
        "{submitted:?} vs {want:?}"
    );
}

#[test]
fn monte_carlo_bad_input_is_a_typed_error() {
    let rt = common::rt();
    let mc = MonteCarlo::new().unwrap();
    let price = |s, k, t, r, sigma, paths| mc.price(rt, Target::Auto, s, k, t, r, sigma, paths, 1);
    assert_eq!(invalid_arg(price(100.0, 100.0, 1.0, 0.05, 0.2, 0)), "paths");
    let too_many = monte_carlo::MAX_PATHS + 1;
    assert_eq!(
        invalid_arg(price(100.0, 100.0, 1.0, 0.05, 0.2, too_many)),
        "paths"
    );
    assert_eq!(invalid_arg(price(0.0, 100.0, 1.0, 0.05, 0.2, 10)), "spot");
    assert_eq!(
        invalid_arg(price(100.0, -1.0, 1.0, 0.05, 0.2, 10)),
        "strike"
    );
    assert_eq!(
        invalid_arg(price(100.0, 100.0, 0.0, 0.05, 0.2, 10)),
        "expiry"
    );
    assert_eq!(
        invalid_arg(price(100.0, 100.0, f32::NAN, 0.05, 0.2, 10)),
        "expiry"
    );
    assert_eq!(
        invalid_arg(price(100.0, 100.0, 1.0, 0.05, -0.2, 10)),
        "volatility"
    );
    assert_eq!(
        invalid_arg(price(100.0, 100.0, 1.0, f32::NAN, 0.2, 10)),
        "rate"
    );
    let c = contract();
    let two = rt.zeros::<[f32; 4]>(2);
    assert_eq!(
        invalid_arg(mc.run(rt, Target::Auto, &c, 10, 1, &two)),
        "sums"
    );
    // A contract built by hand is checked too.
    let bad = Contract { spot: -1.0, ..c };
    let one = rt.zeros::<[f32; 4]>(1);
    assert_eq!(
        invalid_arg(mc.run(rt, Target::Auto, &bad, 10, 1, &one)),
        "spot"
    );
    assert!(price(100.0, 100.0, 1.0, -0.01, 0.2, 10).is_ok());
}

// ------------------------------------------------------------------------ k-mers

/// The lengths to count: 0, 1, k−1, k, 17 and 1,000,003 bases.
fn kmer_lengths(k: usize) -> Vec<usize> {
    let mut lens = vec![0, 1, k - 1, k, 17, 1_000_003];
    lens.sort_unstable();
    lens.dedup();
    lens
}

/// Every length for k in {1, 3, 8}: on a GPU, k ≤ 4 counts in workgroup
/// memory first, larger k with global atomics only.
fn kmer_cases() -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for k in [1usize, 3, 8] {
        for len in kmer_lengths(k) {
            cases.push((
                format!("{len} bases, k={k}"),
                Box::new(move |t, seed| {
                    let rt = common::rt();
                    run_check(&mut samples::kmer::trial(rt, (len, k), seed)?, rt, t)
                }),
            ));
        }
    }
    cases
}

#[test]
fn kmer_on_every_backend() {
    run_all(
        "kmer",
        &all_backends("kmer_on_every_backend"),
        &kmer_cases(),
    );
}

#[test]
fn kmer_k12_on_every_backend() {
    // 4^12 counts (64 MiB): one trial per length, run on every backend, so
    // the reference table is built once.
    let backends = all_backends("kmer_k12_on_every_backend");
    for len in kmer_lengths(12) {
        let seed = 1000 + len as u64;
        common::run_shape("kmer", samples::kmer::trial, ((len, 12), seed), &backends);
    }
}

#[test]
fn kmer_over_65535_workgroups() {
    // k = 8 takes one invocation per position: 65,536 workgroups.
    let k = 8;
    common::run_shape(
        "kmer",
        samples::kmer::trial,
        ((OVER_65535_GROUPS + k - 1, k), 11),
        &all_backends("kmer_over_65535_workgroups"),
    );
}

#[test]
fn kmer_counts_a_known_sequence() {
    let rt = common::rt();
    let counter = KmerCounter::new().unwrap();
    let ascii = b"ACGTACGTTTACGNOPE";
    assert_eq!(invalid_arg(kmer::encode(ascii)), "sequence");
    let ascii = &ascii[..13];
    let seq = rt.buffer(&kmer::encode(ascii).unwrap());
    for b in all_backends("kmer_counts_a_known_sequence") {
        let counts = rt.buffer(&[0xDEAD_BEEFu32; 64]);
        counter
            .run(rt, Target::On(b), &seq, ascii.len(), 3, &counts)
            .unwrap();
        let counts = rt.read(&counts).unwrap();
        let count = |kmer: &[u8]| counts[kmer::kmer_code(kmer).unwrap()];
        assert_eq!(count(b"ACG"), 3, "{b}");
        assert_eq!(count(b"CGT"), 2, "{b}");
        assert_eq!(count(b"GTA"), 1, "{b}");
        assert_eq!(count(b"TTT"), 1, "{b}");
        assert_eq!(count(b"AAA"), 0, "{b}");
        assert_eq!(counts.iter().sum::<u32>(), 11, "{b}");
    }
}

#[test]
fn kmer_submit_counts_like_run() {
    let rt = common::rt();
    let counter = KmerCounter::new().unwrap();
    let mut trial_words = Vec::new();
    for i in 0..10_000u32 {
        trial_words.push(i.wrapping_mul(2_654_435_761));
    }
    let seq = rt.buffer(&trial_words);
    let len = 16 * trial_words.len() - 5;
    let counts = rt.zeros::<u32>(1 << 10);
    counter
        .submit(rt, Target::Auto, &seq, len, 5, &counts)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(
        rt.read(&counts).unwrap(),
        kmer::reference(&trial_words, len, 5)
    );
}

#[test]
fn kmer_bad_input_is_a_typed_error() {
    let rt = common::rt();
    let counter = KmerCounter::new().unwrap();
    let seq = rt.buffer(&kmer::encode(b"ACGTACGTACGTACGTACGT").unwrap());
    let run =
        |len, k, counts: &pel::Buffer<u32>| counter.run(rt, Target::Auto, &seq, len, k, counts);
    let c16 = rt.zeros::<u32>(16);
    assert_eq!(invalid_arg(run(20, 0, &c16)), "k");
    assert_eq!(invalid_arg(run(20, 13, &rt.zeros::<u32>(1 << 26))), "k");
    assert_eq!(invalid_arg(run(20, 3, &c16)), "counts");
    assert_eq!(invalid_arg(run(33, 2, &c16)), "seq");
    assert_eq!(invalid_arg(kmer::encode(b"ACGU")), "sequence");
    assert_eq!(invalid_arg(kmer::kmer_code(b"ACGTACGTACGTA")), "k");
    assert_eq!(invalid_arg(samples::kmer::trial(rt, (10, 0), 1)), "k");
    run(20, 2, &c16).unwrap();
    // Fewer bases than the words hold: the rest of the last word is ignored.
    run(17, 2, &c16).unwrap();
    assert_eq!(rt.read(&c16).unwrap().iter().sum::<u32>(), 16);
}
