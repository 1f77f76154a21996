//! black_scholes: European call and put prices under the Black–Scholes
//! model, for arrays of options that share one interest rate and one
//! volatility (the arrangement of the classic GPU benchmark).
//!
//! Per option: about 70 floating-point operations, counting each logarithm,
//! exponential, square root and division as one (one log, three exps, one
//! square root, three divisions and two 10-term polynomials), and 20 bytes
//! moved (read spot, strike and expiry; write call and put). Compute-bound.
//!
//! WGSL has no `erf`, so both backends use the same f32 approximation of the
//! normal distribution's tail: the rational Chebyshev fit of erfc from
//! Numerical Recipes (`erfcc`), relative error below 1.2e-7 everywhere. The
//! f64 [`reference()`] and [`closed_form`] use [`normal_cdf`], built on
//! W. J. Cody's rational approximations of erfc (accurate to f64 rounding).
//! The CPU kernel evaluates `exp` and `ln` with branch-free polynomials
//! (within 2 ulp) instead of libm's calls, so its loop over a chunk of
//! options compiles to SIMD.
//!
//! Invalid options (spot, strike or expiry not positive and finite) are
//! refused on the host, from the slices given to [`OptionBatch::new`] and
//! [`OptionBatch::write`], before anything is uploaded; the rate and the
//! volatility are checked by [`Market::new`] and at every run.

use pel_runtime::{Buffer, Kernel, Read, ReadWrite, Result, Runtime};
use rayon::prelude::*;

use crate::launch::{builder, one_kernel};
use crate::simd_math;
use crate::uniform::wgsl_struct;
use crate::{invalid, lengths_match, u32_len};

wgsl_struct! {
    black_scholes_params => Params;
    /// The shader's uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct BlackScholesParams {
        /// The continuously compounded risk-free rate r, per year.
        pub rate: f32,
        /// The volatility σ, per square root of a year.
        pub sigma: f32,
        /// The first option this launch prices (0 for the whole batch).
        pub first: u32,
        /// Options this launch prices (the batch's length for the whole batch).
        pub n: u32,
    }
}

/// The WGSL source.
pub const WGSL: &str = concat!(
    include_str!("../../shaders/black_scholes.wgsl"),
    black_scholes_params!(),
);

/// The market every option of a batch is priced in: one rate and one
/// volatility.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Market {
    /// The continuously compounded risk-free rate r, per year (any finite
    /// value; negative rates exist).
    pub rate: f32,
    /// The volatility σ, per square root of a year (positive).
    pub volatility: f32,
}

impl Market {
    /// A market with rate `rate` and volatility `volatility`, checked.
    pub fn new(rate: f32, volatility: f32) -> Result<Market> {
        let m = Market { rate, volatility };
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<()> {
        if !self.rate.is_finite() {
            return Err(invalid(
                "black_scholes",
                "rate",
                format!("the rate is {}; it must be finite", self.rate),
            ));
        }
        if !(self.volatility > 0.0 && self.volatility.is_finite()) {
            return Err(invalid(
                "black_scholes",
                "volatility",
                format!(
                    "the volatility is {}; it must be positive and finite",
                    self.volatility
                ),
            ));
        }
        Ok(())
    }
}

/// A batch of European options on the host's and the devices' side: spot
/// prices S, strikes K and times to expiry T in years, one element per
/// option. Every value is checked (positive and finite) before it is
/// uploaded, so a batch built or written through this type is always valid.
/// Writing its buffers directly with [`Runtime::write`] skips the check; the
/// kernel then gives whatever its arithmetic makes of an invalid option
/// (NaN, or a limit such as the intrinsic value for T = 0).
#[derive(Debug, Clone)]
pub struct OptionBatch {
    spot: Buffer<f32>,
    strike: Buffer<f32>,
    expiry: Buffer<f32>,
}

impl OptionBatch {
    /// Checks the options and uploads them into new buffers (valid on the
    /// host until a kernel needs them elsewhere).
    pub fn new(rt: &Runtime, spot: &[f32], strike: &[f32], expiry: &[f32]) -> Result<Self> {
        validate(spot, strike, expiry)?;
        Ok(OptionBatch {
            spot: rt.buffer(spot),
            strike: rt.buffer(strike),
            expiry: rt.buffer(expiry),
        })
    }

    /// Checks new options and writes them over this batch's (same length).
    pub fn write(&self, rt: &Runtime, spot: &[f32], strike: &[f32], expiry: &[f32]) -> Result<()> {
        validate(spot, strike, expiry)?;
        if spot.len() != self.len() {
            return Err(invalid(
                "black_scholes",
                "spot",
                format!(
                    "{} options given for a batch of {}; they must match",
                    spot.len(),
                    self.len()
                ),
            ));
        }
        rt.write(&self.spot, spot)?;
        rt.write(&self.strike, strike)?;
        rt.write(&self.expiry, expiry)
    }

    /// Options in the batch.
    pub fn len(&self) -> usize {
        self.spot.len()
    }

    /// Whether the batch holds no option.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The spot prices S.
    pub fn spot(&self) -> &Buffer<f32> {
        &self.spot
    }

    /// The strikes K.
    pub fn strike(&self) -> &Buffer<f32> {
        &self.strike
    }

    /// The times to expiry T, in years.
    pub fn expiry(&self) -> &Buffer<f32> {
        &self.expiry
    }
}

/// Checks a batch of options: the three slices have one element per option,
/// and every spot, strike and expiry is positive and finite.
pub fn validate(spot: &[f32], strike: &[f32], expiry: &[f32]) -> Result<()> {
    lengths_match(
        "black_scholes",
        spot.len(),
        || format!("spot has {} options", spot.len()),
        "",
        &[("strike", strike.len()), ("expiry", expiry.len())],
    )?;
    u32_len("black_scholes", "spot", spot.len())?;
    for (arg, xs) in [("spot", spot), ("strike", strike), ("expiry", expiry)] {
        // A vectorisable scan first; the position only once it fails.
        if !xs.iter().all(|&v| v > 0.0 && v.is_finite()) {
            let (i, v) = xs
                .iter()
                .enumerate()
                .find(|&(_, &v)| !(v > 0.0 && v.is_finite()))
                .map_or((0, f32::NAN), |(i, &v)| (i, v));
            return Err(invalid(
                "black_scholes",
                arg,
                format!("{arg}[{i}] is {v}; every {arg} must be positive and finite"),
            ));
        }
    }
    Ok(())
}

/// P(Z > |x|) for a standard normal Z, as `0.5 · erfc(|x|/√2)` by the
/// Numerical Recipes fit (relative error < 1.2e-7), in f32: the shader's
/// arithmetic, in the same order.
// The coefficients as published, digit for digit as in the shader, so both
// round them to the same f32.
#[allow(clippy::excessive_precision)]
#[inline(always)]
fn upper_tail(x: f32) -> f32 {
    let z = x.abs() * 0.70710677;
    let t = 1.0 / (1.0 + 0.5 * z);
    let mut poly = 0.17087277f32;
    for c in [
        -0.82215223,
        1.48851587,
        -1.13520398,
        0.27886807,
        -0.18628806,
        0.09678418,
        0.37409196,
        1.00002368,
        -1.26551223,
    ] {
        poly = poly * t + c;
    }
    0.5 * t * simd_math::exp(poly - z * z)
}

/// One option's (call, put) in f32, as the shader computes it, with `ln`
/// for the logarithm of S/K.
#[inline(always)]
fn price_f32(s: f32, x: f32, t: f32, rate: f32, sigma: f32, ln: impl Fn(f32) -> f32) -> (f32, f32) {
    let sd = sigma * t.sqrt();
    let d1 = (ln(s / x) + (rate + 0.5 * sigma * sigma) * t) / sd;
    let d2 = d1 - sd;
    let (q1, q2) = (upper_tail(d1), upper_tail(d2));
    let (n1, m1) = if d1 > 0.0 {
        (1.0 - q1, q1)
    } else {
        (q1, 1.0 - q1)
    };
    let (n2, m2) = if d2 > 0.0 {
        (1.0 - q2, q2)
    } else {
        (q2, 1.0 - q2)
    };
    let xd = x * simd_math::exp(-rate * t);
    (s * n1 - xd * n2, xd * m2 - s * m1)
}

/// Prices one chunk of options. The loop has no calls and no branches, so
/// it compiles to SIMD; a chunk where some S/K is not a normal f32 (an
/// extreme ratio the branch-free logarithm does not handle) takes libm's.
#[inline(never)]
fn price_chunk(
    (s, k, t): (&[f32], &[f32], &[f32]),
    (call, put): (&mut [f32], &mut [f32]),
    rate: f32,
    sigma: f32,
) {
    let options = s.iter().zip(k).zip(t);
    let prices = call.iter_mut().zip(put.iter_mut());
    if s.iter().zip(k).all(|(&s, &k)| (s / k).is_normal()) {
        for ((c, p), ((&s, &k), &t)) in prices.zip(options) {
            (*c, *p) = price_f32(s, k, t, rate, sigma, simd_math::ln);
        }
    } else {
        for ((c, p), ((&s, &k), &t)) in prices.zip(options) {
            (*c, *p) = price_f32(s, k, t, rate, sigma, f32::ln);
        }
    }
}

one_kernel! {
    /// The Black–Scholes kernel.
    BlackScholes = build();
    /// Prices every option of `options` in `market` into `call` and `put`
    /// (one element per option) at `target`.
    run,
    /// Submits the pricing of [`run`](Self::run) and returns its task at once.
    submit(options: &OptionBatch, market: Market, call: &Buffer<f32>, put: &Buffer<f32>)
        => [&options.spot, &options.strike, &options.expiry, call, put],
        Self::params(options, market, call, put);
}

fn build() -> Result<Kernel> {
    type Args = (
        Read<f32>,
        Read<f32>,
        Read<f32>,
        ReadWrite<f32>,
        ReadWrite<f32>,
    );
    builder::<BlackScholesParams, Args>("black_scholes", WGSL, |(s, k, t, call, put), p| {
        // Every argument has one element per option (`run` checks);
        // a hand-made call with fewer prices only what all hold.
        let len = [s.len(), k.len(), t.len(), call.len(), put.len()]
            .into_iter()
            .min()
            .unwrap_or(0);
        let first = (p.first as usize).min(len);
        let last = (first + p.n as usize).min(len);
        let (rate, sigma) = (p.rate, p.sigma);
        // 4 Ki options a task: some 100 µs of work, enough to
        // amortise rayon's cost and still balance two or many cores.
        const CHUNK: usize = 1 << 12;
        call[first..last]
            .par_chunks_mut(CHUNK)
            .zip(put[first..last].par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(c, (call, put))| {
                let lo = first + c * CHUNK;
                let hi = lo + call.len();
                let inputs = (&s[lo..hi], &k[lo..hi], &t[lo..hi]);
                price_chunk(inputs, (call, put), rate, sigma);
            });
    })
    .invocations(|p, _| p.n as u64)
    // Options are independent: any range of them can go to a GPU
    // while the CPU prices the rest.
    .splittable(
        |p, lens| {
            let whole = p.first == 0 && p.n as usize == lens[0];
            if whole { p.n as u64 } else { 1 }
        },
        |p, range| BlackScholesParams {
            first: range.start as u32,
            n: (range.end - range.start) as u32,
            ..*p
        },
    )
    .build()
}

impl BlackScholes {
    /// The params of a whole-batch run, checked.
    pub fn params(
        options: &OptionBatch,
        market: Market,
        call: &Buffer<f32>,
        put: &Buffer<f32>,
    ) -> Result<BlackScholesParams> {
        market.check()?;
        lengths_match(
            "black_scholes",
            options.len(),
            || format!("the batch has {} options", options.len()),
            " elements",
            &[("call", call.len()), ("put", put.len())],
        )?;
        Ok(BlackScholesParams {
            rate: market.rate,
            sigma: market.volatility,
            first: 0,
            n: u32_len("black_scholes", "spot", options.len())?,
        })
    }
}

/// The complementary error function erfc(x) = 1 − erf(x), in f64, by
/// W. J. Cody's rational Chebyshev approximations ("Rational Chebyshev
/// approximations for the error function", Math. Comp. 1969; the CALERF
/// routine of SPECFUN): relative error near f64 rounding over the whole
/// line, including the far tail where `1 − erf(x)` would cancel to zero.
// The coefficients digit for digit as Cody published them.
#[allow(clippy::excessive_precision)]
pub fn erfc(x: f64) -> f64 {
    const A: [f64; 5] = [
        3.161_123_743_870_565_6e0,
        1.138_641_541_510_501_6e2,
        3.774_852_376_853_020_2e2,
        3.209_377_589_138_469_5e3,
        1.857_777_061_846_031_5e-1,
    ];
    const B: [f64; 4] = [
        2.360_129_095_234_412_1e1,
        2.440_246_379_344_441_7e2,
        1.282_616_526_077_372_3e3,
        2.844_236_833_439_170_6e3,
    ];
    const C: [f64; 9] = [
        5.641_884_969_886_701e-1,
        8.883_149_794_388_376e0,
        6.611_919_063_714_163e1,
        2.986_351_381_974_001_3e2,
        8.819_522_212_417_691e2,
        1.712_047_612_634_070_6e3,
        2.051_078_377_826_071_5e3,
        1.230_339_354_797_997_2e3,
        2.153_115_354_744_038_5e-8,
    ];
    const D: [f64; 8] = [
        1.574_492_611_070_983_5e1,
        1.176_939_508_913_125e2,
        5.371_811_018_620_098_6e2,
        1.621_389_574_566_690_2e3,
        3.290_799_235_733_459_6e3,
        4.362_619_090_143_247e3,
        3.439_367_674_143_721_6e3,
        1.230_339_354_803_749_4e3,
    ];
    const P: [f64; 6] = [
        3.053_266_349_612_323_4e-1,
        3.603_448_999_498_044_4e-1,
        1.257_817_261_112_292_5e-1,
        1.608_378_514_874_227_7e-2,
        6.587_491_615_298_378e-4,
        1.631_538_713_730_209_8e-2,
    ];
    const Q: [f64; 5] = [
        2.568_520_192_289_822_4e0,
        1.872_952_849_923_460_5e0,
        5.279_051_029_514_284e-1,
        6.051_834_131_244_132e-2,
        2.335_204_976_268_691_8e-3,
    ];
    // 1/√π.
    const FRAC_1_SQRT_PI: f64 = 0.564_189_583_547_756_3;
    // Beyond this erfc(x) underflows to 0.
    const XBIG: f64 = 26.543;

    if x.is_nan() {
        return f64::NAN;
    }
    let y = x.abs();
    if y <= 0.468_75 {
        // erf by a rational function of x², then 1 − erf.
        let ysq = if y > f64::EPSILON / 2.0 { y * y } else { 0.0 };
        let (mut num, mut den) = (A[4] * ysq, ysq);
        for i in 0..3 {
            num = (num + A[i]) * ysq;
            den = (den + B[i]) * ysq;
        }
        return 1.0 - x * (num + A[3]) / (den + B[3]);
    }
    let tail = if y <= 4.0 {
        let (mut num, mut den) = (C[8] * y, y);
        for i in 0..7 {
            num = (num + C[i]) * y;
            den = (den + D[i]) * y;
        }
        (num + C[7]) / (den + D[7]) * exp_neg_square(y)
    } else if y >= XBIG {
        0.0
    } else {
        let ysq = 1.0 / (y * y);
        let (mut num, mut den) = (P[5] * ysq, ysq);
        for i in 0..4 {
            num = (num + P[i]) * ysq;
            den = (den + Q[i]) * ysq;
        }
        let r = ysq * (num + P[4]) / (den + Q[4]);
        (FRAC_1_SQRT_PI - r) / y * exp_neg_square(y)
    };
    if x < 0.0 { 2.0 - tail } else { tail }
}

/// exp(−y²) without the rounding error of y²: y is split into a part with
/// 4 fraction bits, whose square is exact, and the rest (Cody's device).
fn exp_neg_square(y: f64) -> f64 {
    let ysq = (y * 16.0).trunc() / 16.0;
    let del = (y - ysq) * (y + ysq);
    (-ysq * ysq).exp() * (-del).exp()
}

/// The standard normal distribution function Φ(x) = P(Z ≤ x), in f64, with
/// relative accuracy near f64 rounding in both tails (see [`erfc`]).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x * std::f64::consts::FRAC_1_SQRT_2)
}

/// The Black–Scholes (call, put) prices of a European option with spot `s`,
/// strike `k` and `t` years to expiry, at rate `r` and volatility `sigma`,
/// in f64.
pub fn closed_form(s: f64, k: f64, t: f64, r: f64, sigma: f64) -> (f64, f64) {
    let sd = sigma * t.sqrt();
    let d1 = ((s / k).ln() + (r + 0.5 * sigma * sigma) * t) / sd;
    let d2 = d1 - sd;
    let kd = k * (-r * t).exp();
    let (n1, m1) = cdf_both(d1);
    let (n2, m2) = cdf_both(d2);
    (s * n1 - kd * n2, kd * m2 - s * m1)
}

/// (Φ(x), Φ(−x)) from one erfc, each as accurate as [`normal_cdf`]: the
/// smaller is the tail itself, the larger `1 −` it (which cannot cancel).
fn cdf_both(x: f64) -> (f64, f64) {
    let tail = normal_cdf(-x.abs());
    if x > 0.0 {
        (1.0 - tail, tail)
    } else {
        (tail, 1.0 - tail)
    }
}

/// The serial reference: each option's (call, put) by [`closed_form`], in
/// f64, from the f32 inputs.
pub fn reference<'a>(
    spot: &'a [f32],
    strike: &'a [f32],
    expiry: &'a [f32],
    market: Market,
) -> impl Iterator<Item = (f64, f64)> + 'a {
    let (r, sigma) = (market.rate as f64, market.volatility as f64);
    spot.iter()
        .zip(strike)
        .zip(expiry)
        .map(move |((&s, &k), &t)| closed_form(s as f64, k as f64, t as f64, r, sigma))
}

#[cfg(test)]
// Reference values to 17 digits, as mpmath prints them.
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, rel: f64) -> bool {
        (got - want).abs() <= rel * want.abs()
    }

    #[test]
    fn erfc_matches_known_values() {
        // erfc and Φ to 17 significant digits (from mpmath at 40 digits).
        let known = [
            (0.0, 1.0),
            (0.1, 0.887_537_083_981_715_1),
            (0.5, 0.479_500_122_186_953_46),
            (1.0, 0.157_299_207_050_285_13),
            (2.0, 0.004_677_734_981_047_265_8),
            (3.0, 2.209_049_699_858_544_1e-5),
            (5.0, 1.537_459_794_428_034_9e-12),
            (10.0, 2.088_487_583_762_544_8e-45),
            (-1.0, 1.842_700_792_949_714_9),
            (-3.0, 1.999_977_909_503_001_4),
        ];
        for (x, want) in known {
            assert!(close(erfc(x), want, 1e-14), "erfc({x}) = {}", erfc(x));
        }
        assert_eq!(erfc(30.0), 0.0);
        assert_eq!(erfc(-30.0), 2.0);
        assert!(erfc(f64::NAN).is_nan());
    }

    #[test]
    fn normal_cdf_matches_tables() {
        let known = [
            (0.0, 0.5),
            (0.5, 0.691_462_461_274_013_1),
            (1.0, 0.841_344_746_068_542_9),
            (-1.0, 0.158_655_253_931_457_05),
            (2.0, 0.977_249_868_051_820_8),
            (-2.0, 0.022_750_131_948_179_207),
            (3.0, 0.998_650_101_968_369_9),
            (-5.0, 2.866_515_718_791_939e-7),
            (-10.0, 7.619_853_024_160_527e-24),
            (-20.0, 2.753_624_118_606_233_7e-89),
        ];
        for (x, want) in known {
            assert!(
                close(normal_cdf(x), want, 1e-13),
                "Φ({x}) = {}",
                normal_cdf(x)
            );
        }
        // Symmetry, where 1 − Φ does not cancel.
        for x in [0.1, 0.7, 1.3, 2.9] {
            assert!((normal_cdf(x) + normal_cdf(-x) - 1.0).abs() < 1e-15);
        }
    }

    #[test]
    fn f32_tail_is_within_its_stated_error() {
        for i in 0..2000 {
            let x = i as f64 * 0.004;
            let want = normal_cdf(-x);
            let got = upper_tail(x as f32) as f64;
            // 1.2e-7 for the fit, plus f32 rounding of x²·(1 + ...).
            let allowed = want * (2e-7 + 4.0 * f32::EPSILON as f64 * (1.0 + x * x));
            assert!((got - want).abs() <= allowed, "Q({x}): {got} vs {want}");
        }
    }

    #[test]
    fn closed_form_matches_a_textbook_price_and_parity() {
        // Hull's example: S = 42, K = 40, T = 0.5, r = 10%, σ = 20%:
        // c = 4.76, p = 0.81.
        let (c, p) = closed_form(42.0, 40.0, 0.5, 0.1, 0.2);
        assert!((c - 4.7594).abs() < 1e-4, "call {c}");
        assert!((p - 0.8086).abs() < 1e-4, "put {p}");
        assert!((c - p - (42.0 - 40.0 * (-0.05f64).exp())).abs() < 1e-12);
        let (c, p) = price_f32(42.0, 40.0, 0.5, 0.1, 0.2, simd_math::ln);
        assert!((c as f64 - 4.7594).abs() < 1e-4 && (p as f64 - 0.8086).abs() < 1e-4);
    }

    #[test]
    fn bad_options_are_refused_before_upload() {
        assert!(validate(&[1.0], &[1.0], &[1.0]).is_ok());
        assert!(validate(&[1.0, 2.0], &[1.0], &[1.0]).is_err());
        assert!(validate(&[1.0], &[0.0], &[1.0]).is_err());
        assert!(validate(&[1.0], &[1.0], &[f32::NAN]).is_err());
        assert!(validate(&[-1.0], &[1.0], &[1.0]).is_err());
        assert!(validate(&[f32::INFINITY], &[1.0], &[1.0]).is_err());
        assert!(Market::new(0.05, 0.0).is_err());
        assert!(Market::new(f32::NAN, 0.2).is_err());
        assert!(Market::new(-0.01, 0.2).is_ok());
    }
}
