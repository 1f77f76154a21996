// nbody, one step of all-pairs gravity (G = 1) with Plummer softening ε²,
// by semi-implicit (symplectic) Euler:
//   a_i = Σ_j m_j (x_j − x_i) / (|x_j − x_i|² + ε²)^(3/2)
//   v_i' = v_i + a_i·dt,   x_i' = x_i + v_i'·dt.
// Positions are (x, y, z, m); velocities (vx, vy, vz, w), w kept as is.
//
// The classic tiled scheme of GPU Gems 3, ch. 31: each invocation owns one
// body; the workgroup walks the bodies 256 at a time, each invocation
// staging one of them in workgroup memory, and every invocation then reads
// all 256 from there, so each position is read from global memory once per
// workgroup rather than once per body. Bodies past n are staged with zero
// mass and contribute nothing; a body's pull on itself is zero (its
// difference vector is).

// `Params` is declared once, in Rust (`NbodyParams` in kernels/src/nbody.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(0) var<storage, read> pos: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> vel: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> pos_out: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = 256u;

var<workgroup> tile: array<vec4<f32>, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pel_workgroup_index(wid, groups) * WG + lid;
    var me = vec4<f32>(0.0);
    if i < p.n {
        me = pos[i];
    }
    var acc = vec3<f32>(0.0);
    // Every invocation of the group runs every tile (barriers need it),
    // including those past n.
    for (var base = 0u; base < p.n; base = base + WG) {
        let j = base + lid;
        var other = vec4<f32>(0.0);
        if j < p.n {
            other = pos[j];
        }
        tile[lid] = other;
        workgroupBarrier();
        // Each tile's pull is summed on its own, then added to the total:
        // rounding grows with 256 + n/256 terms rather than with n.
        let count = min(WG, p.n - base);
        var part = vec3<f32>(0.0);
        for (var k = 0u; k < count; k = k + 1u) {
            let q = tile[k];
            let d = q.xyz - me.xyz;
            let inv = inverseSqrt(dot(d, d) + p.eps2);
            part = part + d * (q.w * inv * inv * inv);
        }
        acc = acc + part;
        workgroupBarrier();
    }
    if i < p.n {
        let v = vel[i];
        let nv = v.xyz + acc * p.dt;
        vel[i] = vec4<f32>(nv, v.w);
        pos_out[i] = vec4<f32>(me.xyz + nv * p.dt, me.w);
    }
}
