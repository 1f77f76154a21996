//! The monte_carlo sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::monte_carlo`].

use pel_runtime::{Buffer, Result, RunInfo, Runtime, Target};
use rand::Rng;

use super::verify::{self, Compare, Problem, Sampled, Work};
use crate::monte_carlo::*;

/// A Monte Carlo price of a seeded random contract: spot and strike in
/// [50, 150), expiry in [0.1, 2) years, rate in [0, 0.08), volatility in
/// [0.1, 0.5); the result starts poisoned (NaN).
///
/// Tolerance: call and put within `1e-5·(S + K) + 1e-4·|price|` of the
/// serial reference, which draws the same stream (the difference is f32
/// rounding: the backends' `log`, `sin`, `cos` and `exp`, and the order of
/// the f32 partial sums); and within 5 standard errors (plus that
/// tolerance) of the Black–Scholes closed form.
pub type MonteCarloTrial = Sampled<MonteCarloProblem>;

/// The contract of a [`MonteCarloTrial`], and the reference's price once
/// known.
pub struct MonteCarloProblem {
    mc: MonteCarlo,
    contract: Contract,
    paths: u64,
    seed: u64,
    want: Option<McResult>,
}

/// Prepares a price over `paths` paths of a seeded random contract.
pub fn trial(rt: &Runtime, paths: usize, seed: u64) -> Result<MonteCarloTrial> {
    let mut rng = verify::rng(seed);
    let contract = Contract::new(
        rng.random_range(50.0..150.0),
        rng.random_range(50.0..150.0),
        rng.random_range(0.1..2.0),
        rng.random_range(0.0..0.08),
        rng.random_range(0.1..0.5),
    )?;
    let problem = MonteCarloProblem {
        mc: MonteCarlo::new()?,
        contract,
        paths: paths as u64,
        seed,
        want: None,
    };
    Ok(Sampled::poisoned(rt, problem, 1, [f32::NAN; 4]))
}

impl MonteCarloProblem {
    /// The price the sums `got` (if any) come to.
    fn price(&self, got: &[[f32; 4]]) -> Option<McResult> {
        let sums = got.first()?.map(|v| v as f64);
        Some(McResult::from_sums(
            sums,
            self.paths,
            self.contract.discount(),
        ))
    }
}

impl MonteCarloTrial {
    /// The last result.
    pub fn result(&self) -> Option<McResult> {
        self.problem.price(&self.got)
    }

    /// The contract priced.
    pub fn contract(&self) -> Contract {
        self.problem.contract
    }
}

impl Problem for MonteCarloProblem {
    type Out = [f32; 4];
    const TOLERANCE: &'static str =
        "1e-5·(S+K) + 1e-4·|price| vs the same stream; 5 standard errors vs Black–Scholes";
    fn shape(&self) -> String {
        format!("{} paths", self.paths)
    }
    fn work(&self, _: &[[f32; 4]]) -> Work {
        Work {
            flops: 20.0 * self.paths as f64,
            bytes: 16.0 * self.paths.div_ceil(1024) as f64,
        }
    }
    fn reset(&self, _: &Runtime) -> Result<()> {
        Ok(())
    }
    fn run(&mut self, rt: &Runtime, target: Target, sums: &Buffer<[f32; 4]>) -> Result<RunInfo> {
        let (c, paths) = (&self.contract, self.paths);
        self.mc.run(rt, target, c, paths, self.seed, sums)
    }
    fn compare(&mut self, got: &[[f32; 4]]) -> Compare {
        let c = self.contract;
        let nan = McResult::from_sums([f64::NAN; 4], 0, f64::NAN);
        let want = match self.want {
            Some(w) => w,
            None => match reference(&c, self.paths, self.seed) {
                Ok(w) => *self.want.insert(w),
                Err(_) => nan,
            },
        };
        let got = self.price(got).unwrap_or(nan);
        let (bs_call, bs_put) = c.closed_form();
        let scale = 1e-5 * (c.spot as f64 + c.strike as f64);
        let rounding = |price: f64| scale + 1e-4 * price.abs();
        // Against the reference, then against the closed form.
        let tols = [
            rounding(want.call),
            rounding(want.put),
            5.0 * got.call_stderr + rounding(bs_call),
            5.0 * got.put_stderr + rounding(bs_put),
        ];
        verify::compare(
            [got.call, got.put, got.call, got.put],
            [want.call, want.put, bs_call, bs_put],
            |i| tols[i],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_matches_random123_known_answers() {
        // Random123's tests/kat_vectors for philox4x32_10.
        let kat = [
            (
                [0u32; 4],
                [0u32; 2],
                [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8],
            ),
            (
                [u32::MAX; 4],
                [u32::MAX; 2],
                [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd],
            ),
            (
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0],
                [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1],
            ),
        ];
        for (ctr, key, want) in kat {
            assert_eq!(philox4x32_10(ctr, key), want, "ctr {ctr:x?} key {key:x?}");
        }
    }

    #[test]
    fn mulhi_from_halves_is_exact() {
        let edges = [0, 1, 0xffff, 0x1_0000, 0x7fff_ffff, 0x8000_0000, u32::MAX];
        let mut x = 0x1234_5678u32;
        let mut values = edges.to_vec();
        for _ in 0..2000 {
            // xorshift32: cheap varied operands.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            values.push(x);
        }
        for &a in &values {
            for &b in edges.iter().chain([0xD251_1F53, 0xCD9E_8D57].iter()) {
                assert_eq!(mulhi_halves(a, b), mulhilo(a, b).0, "{a:#x}·{b:#x}");
                assert_eq!(mulhi_halves(b, a), mulhilo(a, b).0, "{b:#x}·{a:#x}");
            }
        }
    }

    #[test]
    fn uniforms_are_inside_the_open_interval() {
        assert_eq!(uniform(0), 0.5 / 8_388_608.0);
        assert!(uniform(u32::MAX) < 1.0);
        let [z0, z1] = box_muller(uniform(0), uniform(u32::MAX));
        assert!(z0.is_finite() && z1.is_finite());
    }

    #[test]
    fn reference_agrees_with_the_closed_form() {
        let c = Contract::new(100.0, 110.0, 1.0, 0.03, 0.25).unwrap();
        let (call, put) = c.closed_form();
        let r = reference(&c, 200_000, 11).unwrap();
        assert!(
            (r.call - call).abs() < 4.0 * r.call_stderr,
            "{r:?} vs {call}"
        );
        assert!((r.put - put).abs() < 4.0 * r.put_stderr, "{r:?} vs {put}");
    }

    #[test]
    fn one_path_has_no_spread() {
        let r = McResult::from_sums([2.0, 4.0, 0.0, 0.0], 1, 1.0);
        assert_eq!((r.call, r.put), (2.0, 0.0));
        assert!(r.call_stderr.is_infinite());
    }
}
