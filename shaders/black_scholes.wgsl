// black_scholes: European call and put prices, one invocation per option.
// Spot, strike and expiry are arrays; the rate and the volatility are shared.
// A launch computes the n options from `first` on (all of them, or its part
// of a call split with the CPU).
//
// The normal distribution's tail comes from the rational Chebyshev fit of
// erfc in Numerical Recipes (`erfcc`, relative error < 1.2e-7 everywhere),
// written identically in black_scholes.rs. One evaluation gives both N(d)
// and N(-d), each from the small side, so deep in- and out-of-the-money
// prices keep their relative accuracy.

// `Params` is declared once, in Rust (`BlackScholesParams` in kernels/src/black_scholes.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(0) var<storage, read> spot: array<f32>;
@group(0) @binding(1) var<storage, read> strike: array<f32>;
@group(0) @binding(2) var<storage, read> expiry: array<f32>;
@group(0) @binding(3) var<storage, read_write> call: array<f32>;
@group(0) @binding(4) var<storage, read_write> put: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

// P(Z > |x|) for a standard normal Z: 0.5 · erfc(|x| / √2).
fn upper_tail(x: f32) -> f32 {
    let z = abs(x) * 0.70710677;
    let t = 1.0 / (1.0 + 0.5 * z);
    var poly = 0.17087277;
    poly = poly * t - 0.82215223;
    poly = poly * t + 1.48851587;
    poly = poly * t - 1.13520398;
    poly = poly * t + 0.27886807;
    poly = poly * t - 0.18628806;
    poly = poly * t + 0.09678418;
    poly = poly * t + 0.37409196;
    poly = poly * t + 1.00002368;
    poly = poly * t - 1.26551223;
    return 0.5 * t * exp(poly - z * z);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let k = pel_index(id, groups);
    if k >= p.n {
        return;
    }
    let i = p.first + k;
    let s = spot[i];
    let x = strike[i];
    let t = expiry[i];
    let sd = p.sigma * sqrt(t);
    let d1 = (log(s / x) + (p.rate + 0.5 * p.sigma * p.sigma) * t) / sd;
    let d2 = d1 - sd;
    let q1 = upper_tail(d1);
    let q2 = upper_tail(d2);
    // N(d) and N(-d): the tail is the smaller of the two.
    let n1 = select(q1, 1.0 - q1, d1 > 0.0);
    let m1 = select(1.0 - q1, q1, d1 > 0.0);
    let n2 = select(q2, 1.0 - q2, d2 > 0.0);
    let m2 = select(1.0 - q2, q2, d2 > 0.0);
    let xd = x * exp(-p.rate * t);
    call[i] = s * n1 - xd * n2;
    put[i] = xd * m2 - s * m1;
}
