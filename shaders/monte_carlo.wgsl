// monte_carlo: European call and put payoffs over simulated paths of
// geometric Brownian motion, and the reduction of their sums.
//
// `simulate`: invocation i draws one Philox4x32-10 block from counter
// (i, 0, 0, 0) under the seed's key, turns its four uniforms into four
// normals by Box–Muller, and prices paths 4i..4i+3 (those below `paths`).
// Its sums (call, call², put, put²) are added up in workgroup memory and
// each workgroup writes one vec4: 1,024 paths' worth.
//
// `reduce`: each workgroup adds 256 consecutive vec4 partial sums, as in
// sum.wgsl; the host runs passes until one is left, all on the device.
//
// The generator is u32 arithmetic only (WGSL has no 64-bit integers, so the
// high word of a 32×32 product is built from 16-bit halves: mul_wide, in
// shaders/lib); monte_carlo.rs draws the same bits on the CPU.

// `SimParams` is declared once, in Rust (`McSimParams` in kernels/src/monte_carlo.rs),
// and appended to this source by pel-kernels.

// `SumParams` is declared once, in Rust (`McSumParams` in kernels/src/monte_carlo.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(0) var<storage, read_write> sums: array<vec4<f32>>;
@group(0) @binding(1) var<uniform> sim: SimParams;
@group(0) @binding(2) var<storage, read> parts: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> total: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> red: SumParams;

const WG: u32 = 256u;
alias WgSum = vec4<f32>;

// Philox4x32-10 (Salmon et al., SC 2011), as in Random123.
fn philox(counter: vec4<u32>, seed: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = seed;
    for (var round = 0u; round < 10u; round = round + 1u) {
        let hi0 = mul_wide(0xD2511F53u, c.x).y;
        let lo0 = 0xD2511F53u * c.x;
        let hi1 = mul_wide(0xCD9E8D57u, c.z).y;
        let lo1 = 0xCD9E8D57u * c.z;
        c = vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
        k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

// A uniform in (0, 1) from the top 23 bits: exact, never 0 or 1.
fn unit_interval(x: u32) -> f32 {
    return (f32(x >> 9u) + 0.5) * (1.0 / 8388608.0);
}

// Two standard normals from two uniforms; the angle kept in (−π, π).
fn box_muller(u1: f32, u2: f32) -> vec2<f32> {
    let r = sqrt(-2.0 * log(u1));
    let theta = 3.14159265 * (2.0 * u2 - 1.0);
    return vec2<f32>(r * cos(theta), r * sin(theta));
}

// (call, call², put, put²) of the path ending at normal draw z.
fn payoffs(z: f32) -> vec4<f32> {
    let st = sim.spot * exp(sim.drift + sim.vol * z);
    let c = max(st - sim.strike, 0.0);
    let p = max(sim.strike - st, 0.0);
    return vec4<f32>(c, c * c, p, p * p);
}

@compute @workgroup_size(256)
fn simulate(@builtin(local_invocation_index) lid: u32,
            @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    let i = group * WG + lid;
    var acc = vec4<f32>(0.0);
    let first = i * 4u;
    if first < sim.paths {
        let r = philox(vec4<u32>(i, 0u, 0u, 0u), vec2<u32>(sim.key0, sim.key1));
        let z01 = box_muller(unit_interval(r.x), unit_interval(r.y));
        let z23 = box_muller(unit_interval(r.z), unit_interval(r.w));
        let left = sim.paths - first;
        acc = payoffs(z01.x);
        if left > 1u {
            acc = acc + payoffs(z01.y);
        }
        if left > 2u {
            acc = acc + payoffs(z23.x);
        }
        if left > 3u {
            acc = acc + payoffs(z23.y);
        }
    }
    let sum = workgroup_sum(lid, acc);
    if lid == 0u && group < sim.groups {
        sums[group] = sum;
    }
}

@compute @workgroup_size(256)
fn reduce(@builtin(local_invocation_index) lid: u32,
          @builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    let i = group * WG + lid;
    var v = vec4<f32>(0.0);
    if i < red.n {
        v = parts[i];
    }
    let sum = workgroup_sum(lid, v);
    if lid == 0u && group < red.groups {
        total[group] = sum;
    }
}
