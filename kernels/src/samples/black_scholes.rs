//! The black_scholes sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::black_scholes`].

use pel_runtime::{Backend, Buffer, Result, RunInfo, Runtime, Target};
use rand::Rng;
use rayon::prelude::*;

use super::verify::{self, Check, Trial, Work};
use crate::black_scholes::*;

/// Prices of seeded random options: spot in [5, 50), strike in [1, 100),
/// expiry in [0.25, 10) years, one rate in [0, 0.1) and one volatility in
/// [0.1, 0.6) (deep in- and out-of-the-money options included). Call and
/// put start poisoned (NaN).
///
/// Tolerance: against the f64 reference, each price within
/// `1e-6·(S + K) + 1e-5·|price|`: an absolute part for the cancellation of
/// the two terms `S·N(d1)` and `K·e^(−rT)·N(d2)` (each up to S or K, with
/// f32 rounding and the GPU's looser `exp` and `log`), and a relative part
/// for the approximation of N. Put–call parity, `C − P = S − K·e^(−rT)`,
/// holds for the results within the same tolerance. A reported index `3i`
/// is option i's call, `3i + 1` its put and `3i + 2` its parity residual.
pub struct BlackScholesTrial {
    bs: BlackScholes,
    market: Market,
    spot: Vec<f32>,
    strike: Vec<f32>,
    expiry: Vec<f32>,
    options: OptionBatch,
    call: Buffer<f32>,
    put: Buffer<f32>,
    got: (Vec<f32>, Vec<f32>),
    want: Option<Vec<(f64, f64)>>,
}

/// Prepares the pricing of `n` seeded random options.
pub fn trial(rt: &Runtime, n: usize, seed: u64) -> Result<BlackScholesTrial> {
    let mut rng = verify::rng(seed);
    let market = Market::new(rng.random_range(0.0..0.1), rng.random_range(0.1..0.6))?;
    let spot = verify::random_f32(seed + 1, n, 5.0, 50.0);
    let strike = verify::random_f32(seed + 2, n, 1.0, 100.0);
    let expiry = verify::random_f32(seed + 3, n, 0.25, 10.0);
    Ok(BlackScholesTrial {
        bs: BlackScholes::new()?,
        market,
        options: OptionBatch::new(rt, &spot, &strike, &expiry)?,
        call: rt.zeros(n),
        put: rt.zeros(n),
        spot,
        strike,
        expiry,
        got: (Vec::new(), Vec::new()),
        want: None,
    })
}

impl Trial for BlackScholesTrial {
    fn shape(&self) -> String {
        self.spot.len().to_string()
    }
    fn work(&self) -> Work {
        Work::per(self.spot.len(), 70.0, 20.0)
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        self.options
            .write(rt, &self.spot, &self.strike, &self.expiry)?;
        let poison = vec![f32::NAN; self.spot.len()];
        rt.write(&self.call, &poison)?;
        rt.write(&self.put, &poison)
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let info = self.bs.run(
            rt,
            target,
            &self.options,
            self.market,
            &self.call,
            &self.put,
        )?;
        self.got = (rt.read(&self.call)?, rt.read(&self.put)?);
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let (s, k, t) = (&self.spot, &self.strike, &self.expiry);
        let n = s.len();
        let market = self.market;
        // The serial reference, computed once per trial, over chunks of the
        // batch at once: a large batch otherwise takes seconds to check.
        let want = self.want.get_or_insert_with(|| {
            const CHUNK: usize = 1 << 14;
            s.par_chunks(CHUNK)
                .zip(k.par_chunks(CHUNK))
                .zip(t.par_chunks(CHUNK))
                .flat_map_iter(|((s, k), t)| reference(s, k, t, market))
                .collect()
        });
        let r = self.market.rate as f64;
        let (call, put) = &self.got;
        if call.len() != n || put.len() != n {
            let none = verify::compare(std::iter::empty(), std::iter::empty(), |_| 0.0);
            return none.into_check(n.to_string(), backend, 3 * n, TOLERANCE);
        }
        // Value 3i + 0 is option i's call, 3i + 1 its put, 3i + 2 its parity
        // residual C − P against S − K·e^(−rT); chunks of options at once.
        const CHUNK: usize = 1 << 14;
        let want = &*want;
        let parts: Vec<(usize, verify::Compare)> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let (lo, hi) = (c * CHUNK, ((c + 1) * CHUNK).min(n));
                let got = (lo..hi).flat_map(|i| {
                    let (c, p) = (call[i] as f64, put[i] as f64);
                    [c, p, c - p]
                });
                let expected = (lo..hi).flat_map(|i| {
                    let forward = s[i] as f64 - k[i] as f64 * (-r * t[i] as f64).exp();
                    [want[i].0, want[i].1, forward]
                });
                let tol = |j: usize| {
                    let i = lo + j / 3;
                    let (wc, wp) = want[i];
                    let price = [wc, wp, wc - wp][j % 3];
                    1e-6 * (s[i] as f64 + k[i] as f64) + 1e-5 * price.abs()
                };
                (3 * lo, verify::compare(got, expected, tol))
            })
            .collect();
        let mut all = verify::compare(std::iter::empty(), std::iter::empty(), |_| 0.0);
        for (offset, part) in parts {
            all.compared += part.compared;
            all.mismatches += part.mismatches;
            all.worst = all.worst.max(part.worst);
            if all.first_bad.is_none() {
                all.first_bad = part.first_bad.map(|(j, g, w)| (offset + j, g, w));
            }
        }
        all.into_check(n.to_string(), backend, 0, TOLERANCE)
    }
}

const TOLERANCE: &str =
    "1e-6·(S+K) + 1e-5·|price| per price vs f64, and put–call parity as closely";
