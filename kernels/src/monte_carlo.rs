//! monte_carlo: the Monte Carlo price of a European call and put under
//! geometric Brownian motion, with a counter-based generator that draws the
//! same random stream on every backend.
//!
//! Per path: one quarter of a Philox4x32-10 block (10 rounds of two 32×32
//! multiplies; about 70 integer operations for the quarter), half a
//! Box–Muller transform (a log, a square root, a sine or cosine), one exp
//! and about 10 floating-point operations for the payoffs and their
//! squares: some 20 floating-point operations counting each transcendental
//! as one. Bytes moved: none per path (the output is 16 bytes per 1,024
//! paths). Compute-bound.
//!
//! Invocation i draws Philox4x32-10 at counter (i, 0, 0, 0) under the
//! 64-bit seed as key, turns its four 32-bit words into uniforms in (0, 1)
//! (the top 23 bits, exactly), and those into four standard normals by
//! Box–Muller in f32; the normals drive paths 4i..4i+3. The CPU and the
//! shader draw bit-identical uniforms: the generator is integer arithmetic,
//! exact on both (see [`philox4x32_10`]); the normals then agree to the
//! rounding of each backend's `log`, `sin` and `cos`.
//!
//! Each workgroup adds its 1,024 paths' call, call², put and put² payoffs
//! in workgroup memory and writes one partial; reduction passes on the same
//! device add the partials up (as `sum` does). The host discounts the means
//! and computes the standard errors in f64 ([`McResult`]).
//!
//! The CPU computes a workgroup's 1,024 paths in three passes that each
//! compile to SIMD: the 256 Philox blocks, the normals (with branch-free
//! `ln`, `sin_cos` and `exp` within 2 ulp, rather than libm's calls), and
//! the payoffs summed in eight lanes. The serial [`reference`](fn@reference) uses libm.

use pel_runtime::{Buffer, Kernel, Read, ReadWrite, Result, Runtime, Target};
use rayon::prelude::*;

use crate::black_scholes;
use crate::invalid;
use crate::launch::{Launch, builder, reduce_to_one, run_and_submit};
use crate::par::for_each_block;
use crate::simd_math;
use crate::uniform::wgsl_struct;

/// Paths one invocation simulates: one Philox block gives four normals.
pub const PATHS_PER_INVOCATION: usize = 4;

/// Invocations in a workgroup (the shaders' workgroup size).
pub const WG: usize = 256;

/// Paths one workgroup of `simulate` adds into one partial sum.
pub const PATHS_PER_GROUP: usize = PATHS_PER_INVOCATION * WG;

/// The most paths one call simulates: 2³¹ (so the shader's path indices
/// stay within u32).
pub const MAX_PATHS: u64 = 1 << 31;

wgsl_struct! {
    mc_sim_params => SimParams;
    /// The `simulate` shader's uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct McSimParams {
        /// Spot price S.
        pub spot: f32,
        /// Strike K.
        pub strike: f32,
        /// `(r − σ²/2)·T`, rounded once from f64.
        pub drift: f32,
        /// `σ·√T`, rounded once from f64.
        pub vol: f32,
        /// Paths to simulate.
        pub paths: u32,
        /// Partial sums written: `ceil(paths / 1024)`.
        pub groups: u32,
        /// Low word of the seed (Philox key word 0).
        pub key0: u32,
        /// High word of the seed (Philox key word 1).
        pub key1: u32,
    }
}

wgsl_struct! {
    mc_sum_params => SumParams;
    /// The `reduce` shader's uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct McSumParams {
        /// Partial sums in this pass's input.
        pub n: u32,
        /// Partial sums this pass writes: `max(1, ceil(n / 256))`.
        pub groups: u32,
    }
}

/// The WGSL source (entry points `simulate` and `reduce`).
pub const WGSL: &str = concat!(
    include_str!("../../shaders/monte_carlo.wgsl"),
    include_str!("../../shaders/lib/workgroup_sum.wgsl"),
    include_str!("../../shaders/lib/mul_wide.wgsl"),
    mc_sim_params!(),
    mc_sum_params!(),
);

/// A European option and its market under geometric Brownian motion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contract {
    /// Spot price S (positive).
    pub spot: f32,
    /// Strike K (positive).
    pub strike: f32,
    /// Time to expiry T in years (positive).
    pub expiry: f32,
    /// Continuously compounded risk-free rate r (finite).
    pub rate: f32,
    /// Volatility σ (positive).
    pub volatility: f32,
}

impl Contract {
    /// A contract, checked: S, K, T and σ positive and finite, r finite.
    pub fn new(spot: f32, strike: f32, expiry: f32, rate: f32, volatility: f32) -> Result<Self> {
        let c = Contract {
            spot,
            strike,
            expiry,
            rate,
            volatility,
        };
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<()> {
        for (arg, v) in [
            ("spot", self.spot),
            ("strike", self.strike),
            ("expiry", self.expiry),
            ("volatility", self.volatility),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(invalid(
                    "monte_carlo",
                    arg,
                    format!("{arg} is {v}; it must be positive and finite"),
                ));
            }
        }
        if !self.rate.is_finite() {
            return Err(invalid(
                "monte_carlo",
                "rate",
                format!("the rate is {}; it must be finite", self.rate),
            ));
        }
        Ok(())
    }

    /// The discount factor `e^(−rT)`.
    pub fn discount(&self) -> f64 {
        (-(self.rate as f64) * self.expiry as f64).exp()
    }

    /// The Black–Scholes (call, put) prices of this contract, in f64.
    pub fn closed_form(&self) -> (f64, f64) {
        black_scholes::closed_form(
            self.spot as f64,
            self.strike as f64,
            self.expiry as f64,
            self.rate as f64,
            self.volatility as f64,
        )
    }
}

/// A Monte Carlo price with its standard errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct McResult {
    /// The discounted mean call payoff.
    pub call: f64,
    /// The discounted mean put payoff.
    pub put: f64,
    /// The standard error of `call`: the sample standard deviation of the
    /// discounted payoffs over √paths (infinite for a single path, whose
    /// spread cannot be estimated).
    pub call_stderr: f64,
    /// The standard error of `put`, likewise.
    pub put_stderr: f64,
    /// Paths simulated.
    pub paths: u64,
}

impl McResult {
    /// The result of `paths` paths whose undiscounted payoffs sum to
    /// `sums` = (Σ call, Σ call², Σ put, Σ put²), discounted by `discount`.
    pub fn from_sums(sums: [f64; 4], paths: u64, discount: f64) -> McResult {
        let n = paths as f64;
        let stat = |s: f64, s2: f64| {
            if paths == 0 {
                return (f64::NAN, f64::NAN);
            }
            let mean = s / n;
            let stderr = if paths > 1 {
                let var = ((s2 - s * mean) / (n - 1.0)).max(0.0);
                (var / n).sqrt()
            } else {
                f64::INFINITY
            };
            (discount * mean, discount * stderr)
        };
        let (call, call_stderr) = stat(sums[0], sums[1]);
        let (put, put_stderr) = stat(sums[2], sums[3]);
        McResult {
            call,
            put,
            call_stderr,
            put_stderr,
            paths,
        }
    }
}

/// One Philox4x32-10 round's multiply: (high, low) words of `a·b`. The
/// shader builds the high word from 16-bit halves ([`mulhi_halves`]); both
/// are the exact product, so the streams are bit-identical.
#[inline]
pub(crate) fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// The high word of `a·b` as the shader computes it, from four 16×16-bit
/// products in u32 arithmetic (WGSL has no 64-bit integers).
pub fn mulhi_halves(a: u32, b: u32) -> u32 {
    let (al, ah, bl, bh) = (a & 0xffff, a >> 16, b & 0xffff, b >> 16);
    let (lh, hl) = (al * bh, ah * bl);
    let mid = ((al * bl) >> 16) + (lh & 0xffff) + (hl & 0xffff);
    ah * bh + (lh >> 16) + (hl >> 16) + (mid >> 16)
}

/// The Philox4x32-10 block at `counter` under `key` (Salmon, Moraes, Dror
/// and Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011), as
/// Random123 defines it.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    philox(counter, key)
}

/// [`philox4x32_10`], always inlined so loops over blocks vectorise.
#[inline(always)]
fn philox(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (counter, key);
    for _ in 0..10 {
        let (hi0, lo0) = mulhilo(0xD251_1F53, c[0]);
        let (hi1, lo1) = mulhilo(0xCD9E_8D57, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        k = [
            k[0].wrapping_add(0x9E37_79B9),
            k[1].wrapping_add(0xBB67_AE85),
        ];
    }
    c
}

/// A uniform in (0, 1) from the top 23 bits of `x`: exact, never 0 or 1.
#[inline]
pub(crate) fn uniform(x: u32) -> f32 {
    ((x >> 9) as f32 + 0.5) * (1.0 / 8_388_608.0)
}

/// Two standard normals from two uniforms, as the shader computes them.
#[inline]
pub(crate) fn box_muller(u1: f32, u2: f32) -> [f32; 2] {
    let r = (-2.0 * u1.ln()).sqrt();
    let (sin, cos) = (std::f32::consts::PI * (2.0 * u2 - 1.0)).sin_cos();
    [r * cos, r * sin]
}

/// The four normals of invocation `i`, in path order.
#[inline]
fn normals(i: u32, key: [u32; 2]) -> [f32; 4] {
    let r = philox([i, 0, 0, 0], key);
    let [z0, z1] = box_muller(uniform(r[0]), uniform(r[1]));
    let [z2, z3] = box_muller(uniform(r[2]), uniform(r[3]));
    [z0, z1, z2, z3]
}

/// (call, call², put, put²) of the path ending at normal draw `z`, in f32
/// as the shader computes them.
#[inline]
fn payoffs(p: &McSimParams, z: f32) -> [f32; 4] {
    let st = p.spot * (p.drift + p.vol * z).exp();
    let c = (st - p.strike).max(0.0);
    let q = (p.strike - st).max(0.0);
    [c, c * c, q, q * q]
}

/// The sums of invocation `i`'s paths (those below `p.paths`), in the
/// shader's order.
#[inline]
fn invocation_sums(p: &McSimParams, i: u32) -> [f32; 4] {
    let first = i as u64 * PATHS_PER_INVOCATION as u64;
    let left = (p.paths as u64).saturating_sub(first);
    let mut acc = [0.0f32; 4];
    if left == 0 {
        return acc;
    }
    for z in normals(i, [p.key0, p.key1]).iter().take(left as usize) {
        for (a, v) in acc.iter_mut().zip(payoffs(p, *z)) {
            *a += v;
        }
    }
    acc
}

/// The sums of workgroup `g`'s paths (invocations 256g..256g+255), in
/// three passes over the group that each compile to SIMD: the Philox
/// blocks, the Box–Muller normals (with branch-free `ln`, `sin_cos` and
/// `exp`), then the payoffs summed in eight lanes.
#[inline(never)]
fn group_sums(p: &McSimParams, g: usize) -> [f32; 4] {
    let first = (g * WG) as u32;
    let key = [p.key0, p.key1];
    let mut words = [[0u32; WG]; 4];
    for j in 0..WG {
        let r = philox([first + j as u32, 0, 0, 0], key);
        for (w, r) in words.iter_mut().zip(r) {
            w[j] = r;
        }
    }
    // z[m][j] drives path 4(first + j) + m.
    let mut z = [[0.0f32; WG]; 4];
    let [z0, z1, z2, z3] = &mut z;
    for j in 0..WG {
        (z0[j], z1[j]) = box_muller_simd(uniform(words[0][j]), uniform(words[1][j]));
        (z2[j], z3[j]) = box_muller_simd(uniform(words[2][j]), uniform(words[3][j]));
    }
    // Paths of this group below p.paths: path 4j + m counts when below it.
    let live = (p.paths as u64)
        .saturating_sub(first as u64 * 4)
        .min(PATHS_PER_GROUP as u64) as u32;
    let mut sums = [0.0f32; 4];
    let (mut call, mut put) = ([0.0f32; WG], [0.0f32; WG]);
    for (m, z) in z.iter().enumerate() {
        for (j, ((c, q), &z)) in call.iter_mut().zip(&mut put).zip(z).enumerate() {
            let st = p.spot * simd_math::exp(p.drift + p.vol * z);
            // Whether path 4j + m is one of the call's.
            let on = ((4 * j + m) as u32) < live;
            *c = if on { (st - p.strike).max(0.0) } else { 0.0 };
            *q = if on { (p.strike - st).max(0.0) } else { 0.0 };
        }
        sums[0] += sum8(&call, |x| x);
        sums[1] += sum8(&call, |x| x * x);
        sums[2] += sum8(&put, |x| x);
        sums[3] += sum8(&put, |x| x * x);
    }
    sums
}

/// `Σ f(x)` over `xs` (a multiple of 8 long) in eight interleaved lanes, so
/// it vectorises.
#[inline(always)]
fn sum8(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    for c in xs.chunks_exact(8) {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x);
        }
    }
    let a = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (a[0] + a[2]) + (a[1] + a[3])
}

/// [`box_muller`] with the branch-free `ln` and `sin_cos`.
#[inline(always)]
fn box_muller_simd(u1: f32, u2: f32) -> (f32, f32) {
    let r = (-2.0 * simd_math::ln(u1)).sqrt();
    let (sin, cos) = simd_math::sin_cos(std::f32::consts::PI * (2.0 * u2 - 1.0));
    (r * cos, r * sin)
}

/// Adds `xs` in f64 (the CPU can afford it) and rounds once to f32.
fn add_f64(xs: impl Iterator<Item = [f32; 4]>) -> [f32; 4] {
    let mut acc = [0.0f64; 4];
    for x in xs {
        for (a, v) in acc.iter_mut().zip(x) {
            *a += v as f64;
        }
    }
    acc.map(|a| a as f32)
}

/// The Monte Carlo pricer: the simulation kernel and the reduction kernel.
#[derive(Debug, Clone)]
pub struct MonteCarlo {
    simulate: Kernel,
    reduce: Kernel,
}

impl MonteCarlo {
    /// Builds the kernels.
    pub fn new() -> Result<Self> {
        type Sums = (ReadWrite<[f32; 4]>,);
        let simulate = builder::<McSimParams, Sums>("monte_carlo", WGSL, |(sums,), p| {
            let groups = (p.groups as usize).min(sums.len());
            // A workgroup's 1,024 paths take about 10 µs: four per task
            // amortise rayon's cost and still balance the cores.
            sums[..groups]
                .par_iter_mut()
                .enumerate()
                .with_min_len(4)
                .for_each(|(g, out)| *out = group_sums(p, g));
        })
        .entry("simulate")
        .workgroups(|p, _| p.groups as u64)
        .cost(|p, _| p.paths as u64)
        .build()?;
        type Parts = (Read<[f32; 4]>, ReadWrite<[f32; 4]>);
        let reduce =
            builder::<McSumParams, Parts>("monte_carlo_reduce", WGSL, |(parts, total), p| {
                let n = (p.n as usize).min(parts.len());
                let groups = (p.groups as usize).min(total.len());
                let outs = total[..groups].par_iter_mut();
                for_each_block(outs, n, WG, 64, |out, r| {
                    *out = add_f64(parts[r].iter().copied())
                });
            })
            .entry("reduce")
            .invocations(|p, _| p.groups as u64 * WG as u64)
            .build()?;
        Ok(MonteCarlo { simulate, reduce })
    }

    /// The simulation kernel (`simulate`).
    pub fn kernel(&self) -> &Kernel {
        &self.simulate
    }

    /// The reduction kernel (`reduce`).
    pub fn reduce_kernel(&self) -> &Kernel {
        &self.reduce
    }

    /// The simulation's params, checked: `paths` in 1..=2³¹.
    pub fn params(contract: &Contract, paths: u64, seed: u64) -> Result<McSimParams> {
        contract.check()?;
        if paths == 0 || paths > MAX_PATHS {
            return Err(invalid(
                "monte_carlo",
                "paths",
                format!("{paths} paths asked; a call simulates 1 to {MAX_PATHS}"),
            ));
        }
        let (r, sigma, t) = (
            contract.rate as f64,
            contract.volatility as f64,
            contract.expiry as f64,
        );
        Ok(McSimParams {
            spot: contract.spot,
            strike: contract.strike,
            drift: ((r - 0.5 * sigma * sigma) * t) as f32,
            vol: (sigma * t.sqrt()) as f32,
            paths: paths as u32,
            groups: paths.div_ceil(PATHS_PER_GROUP as u64) as u32,
            key0: seed as u32,
            key1: (seed >> 32) as u32,
        })
    }

    run_and_submit! {
        /// Simulates `paths` paths of `contract` from `seed` at `target` and
        /// writes their undiscounted sums (Σ call, Σ call², Σ put, Σ put²) into
        /// `sums` (one element). Every pass runs at `target`; with
        /// [`Target::Auto`] each is placed on its own.
        run,
        /// Submits the passes of [`run`](Self::run) and returns the last one's
        /// task without waiting; each pass waits for the one before.
        submit = passes(contract: &Contract, paths: u64, seed: u64, sums: &Buffer<[f32; 4]>);
    }

    /// The Monte Carlo price of the European call and put with spot `spot`,
    /// strike `strike`, `t` years to expiry, rate `r` and volatility
    /// `sigma`, over `paths` paths drawn from `seed`, at `target`.
    #[allow(clippy::too_many_arguments)]
    pub fn price(
        &self,
        rt: &Runtime,
        target: Target,
        spot: f32,
        strike: f32,
        t: f32,
        r: f32,
        sigma: f32,
        paths: u64,
        seed: u64,
    ) -> Result<McResult> {
        let contract = Contract::new(spot, strike, t, r, sigma)?;
        let sums = rt.buffer(&[[f32::NAN; 4]]);
        self.run(rt, target, &contract, paths, seed, &sums)?;
        let s = rt.read(&sums)?[0].map(|v| v as f64);
        Ok(McResult::from_sums(s, paths, contract.discount()))
    }

    /// Launches the simulation, then the reductions of its per-workgroup
    /// sums; returns what the last launch gave.
    fn passes<L: Launch>(
        &self,
        l: &mut L,
        contract: &Contract,
        paths: u64,
        seed: u64,
        sums: &Buffer<[f32; 4]>,
    ) -> Result<L::Out> {
        if sums.len() != 1 {
            return Err(invalid(
                "monte_carlo",
                "sums",
                format!("sums has {} elements; it must have exactly 1", sums.len()),
            ));
        }
        let p = Self::params(contract, paths, seed)?;
        let n = p.groups as usize;
        if n == 1 {
            return l.launch(&self.simulate, &[sums], &p);
        }
        let parts = l.rt().zeros(n);
        l.launch(&self.simulate, &[&parts], &p)?;
        reduce_to_one(l, &self.reduce, &parts, n, WG, sums, |n, groups| {
            McSumParams { n, groups }
        })
    }
}

/// The serial reference: the same paths, from the same stream, with each
/// payoff in f32 as the kernels compute it and every sum in f64.
pub fn reference(contract: &Contract, paths: u64, seed: u64) -> Result<McResult> {
    let p = MonteCarlo::params(contract, paths, seed)?;
    let mut sums = [0.0f64; 4];
    let invocations = paths.div_ceil(PATHS_PER_INVOCATION as u64) as u32;
    for i in 0..invocations {
        for (s, v) in sums.iter_mut().zip(invocation_sums(&p, i)) {
            *s += v as f64;
        }
    }
    Ok(McResult::from_sums(sums, paths, contract.discount()))
}
