// sum, one pass: each workgroup reduces 256 consecutive elements to one
// partial sum in workgroup memory (a tree of 8 halvings). The host side runs
// passes until one value is left, so the data never leaves the GPU.

struct Params {
    n: u32,
    groups: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 256u;
var<workgroup> scratch: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let group = wid.x + wid.y * groups.x;
    let i = group * WG + lid;
    var v = 0.0;
    if i < p.n {
        v = x[i];
    }
    scratch[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if lid < s {
            scratch[lid] = scratch[lid] + scratch[lid + s];
        }
        workgroupBarrier();
    }
    if lid == 0u && group < p.groups {
        partial[group] = scratch[0];
    }
}
