//! Branch-free f32 `exp`, `ln` and `sin_cos` for the CPU kernels: loops over
//! them compile to SIMD, where libm's functions are opaque calls that keep a
//! loop scalar. Cephes' reductions and minimax polynomials (S. L. Moshier),
//! within 2 ulp of the correctly rounded result over the ranges stated.

/// Adding 1.5·2^23 to an f32 below 2^22 in magnitude rounds it to the
/// nearest integer, which the sum's low mantissa bits then hold (SSE2
/// has no rounding instruction, and `as i32` would saturate lane by
/// lane).
const ROUND: f32 = 12_582_912.0;

/// (n as f32, n) for the integer n nearest `x` (|x| < 2^22).
#[inline(always)]
fn round(x: f32) -> (f32, i32) {
    let t = x + ROUND;
    (t - ROUND, t.to_bits() as i32 - ROUND.to_bits() as i32)
}

/// e^x for every f32: +∞ above 88.72, 0 below −103.9 (where e^x
/// rounds to 0), NaN for NaN.
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let xc = x.clamp(-103.9, 88.72);
    // x = n·ln 2 + r, |r| ≤ ln 2 / 2, with ln 2 in two parts so n·ln 2
    // is exact in its high part.
    let (n, ni) = round(xc * std::f32::consts::LOG2_E);
    let r = xc - n * 0.693_359_375 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_15e-4f32;
    for c in [
        1.398_199_950_7e-3,
        8.333_451_907_3e-3,
        4.166_579_589_4e-2,
        1.666_666_545_9e-1,
        5.000_000_120_1e-1,
    ] {
        p = p * r + c;
    }
    let y = p * r * r + r + 1.0;
    // 2^n in two factors, each a normal f32 for n in [−150, 128]; the
    // second product rounds into the subnormals as IEEE says.
    let half = |e: i32| f32::from_bits(((e + 127) as u32) << 23);
    let v = y * half(ni >> 1) * half(ni - (ni >> 1));
    if x < -103.9 {
        0.0
    } else if x > 88.72 {
        f32::INFINITY
    } else {
        v
    }
}

/// ln x for a positive normal f32 (anything else gives garbage).
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub(crate) fn ln(x: f32) -> f32 {
    // x = m·2^e, m in [√½, √2).
    let bits = x.to_bits();
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let small = m < std::f32::consts::FRAC_1_SQRT_2;
    let e = ((bits >> 23) & 0xff) as i32 - 126 - small as i32;
    let m = if small { m + m - 1.0 } else { m - 1.0 };
    let z = m * m;
    let mut y = 7.037_683_629_2e-2f32;
    for c in [
        -1.151_461_031_0e-1,
        1.167_699_874_0e-1,
        -1.242_014_084_6e-1,
        1.424_932_278_7e-1,
        -1.666_805_766_5e-1,
        2.000_071_476_5e-1,
        -2.499_999_399_3e-1,
        3.333_333_117_4e-1,
    ] {
        y = y * m + c;
    }
    let e = e as f32;
    let y = y * m * z + e * -2.121_944_4e-4 - 0.5 * z;
    m + y + e * 0.693_359_375
}

/// (sin θ, cos θ) for |θ| ≤ 2^20 (the kernels take θ in (−π, π)).
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub(crate) fn sin_cos(theta: f32) -> (f32, f32) {
    // θ = j·π/2 + r, |r| ≤ π/4, with π/2 in three parts.
    let (j, q) = round(theta * std::f32::consts::FRAC_2_PI);
    let r = ((theta - j * 1.570_312_5) - j * 4.837_512_969_970_703_1e-4)
        - j * 7.549_789_954_891_882_2e-8;
    let z = r * r;
    let s = ((-1.951_529_589_1e-4 * z + 8.332_160_873_6e-3) * z - 1.666_665_461_1e-1) * z * r + r;
    let c = ((2.443_315_711_809_948e-5 * z - 1.388_731_625_493_765e-3) * z
        + 4.166_664_568_298_827e-2)
        * z
        * z
        - 0.5 * z
        + 1.0;
    // The quadrant j mod 4 picks and signs them.
    let (sn, cs) = if q & 1 != 0 { (c, s) } else { (s, c) };
    let sin = if q & 2 != 0 { -sn } else { sn };
    let cos = if (q + 1) & 2 != 0 { -cs } else { cs };
    (sin, cos)
}

#[cfg(test)]
mod tests {
    use super as simd_math;

    /// Distance in units in the last place between `got` and the f64 `want`.
    fn ulps(got: f32, want: f64) -> f64 {
        let ulp = (want.abs() as f32).max(f32::MIN_POSITIVE);
        let ulp = (f32::from_bits(ulp.to_bits() + 1) - ulp) as f64;
        (got as f64 - want).abs() / ulp
    }

    #[test]
    fn simd_math_is_within_2_ulp() {
        let mut worst = [0.0f64; 4];
        for i in 0..200_001 {
            let x = -87.0 + i as f32 * (175.7 / 200_000.0);
            worst[0] = worst[0].max(ulps(simd_math::exp(x), (x as f64).exp()));
            let y = f32::from_bits(0x0080_0000 + i * 10_600);
            worst[1] = worst[1].max(ulps(simd_math::ln(y), (y as f64).ln()));
            let th = -4.0 + i as f32 * (8.0 / 200_000.0);
            let (sn, cs) = simd_math::sin_cos(th);
            // Near a zero of sin or cos, ulps of the result mislead: count
            // the error in ulps of 1 there.
            let (ws, wc) = (th as f64).sin_cos();
            worst[2] = worst[2].max(ulps(sn, ws).min((sn as f64 - ws).abs() / 1.2e-7));
            worst[3] = worst[3].max(ulps(cs, wc).min((cs as f64 - wc).abs() / 1.2e-7));
        }
        assert!(
            worst.iter().all(|&w| w <= 2.0),
            "worst exp, ln, sin, cos: {worst:?}"
        );
        assert_eq!(simd_math::exp(-104.0), 0.0);
        let tiny = simd_math::exp(-100.0) as f64;
        assert!((tiny - (-100.0f64).exp()).abs() < 1.5e-45, "{tiny}");
        assert_eq!(simd_math::exp(100.0), f32::INFINITY);
        assert!(simd_math::exp(f32::NAN).is_nan());
        assert_eq!(simd_math::exp(0.0), 1.0);
        assert_eq!(simd_math::ln(1.0), 0.0);
    }
}
