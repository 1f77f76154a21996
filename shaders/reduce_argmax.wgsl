// argmax, one pass: each workgroup reduces 256 consecutive candidates to the
// best one, a (value, index) pair. An invocation first folds 4 candidates,
// 64 apart (coalesced loads), then the 64 pairs are halved in workgroup
// memory (6 steps). Entry `first` reads the input, where a candidate's index
// is its position; entry `merge` reads the partial pairs of a previous pass.
// The host side runs passes until one pair is left, all on the GPU.
//
// The best candidate: NaNs are ignored, the larger value wins, and on a tie
// (-0 and +0 included) the lower index wins, so the result is the first
// maximum whatever the order of the tree. A group whose candidates are all
// NaN gives (NaN, 0xffffffff). NaN is recognised by its bits, since a shader
// compiler may assume `v != v` false. Past the end of the input an
// invocation reads the last candidate again, which changes nothing.

struct Params {
    n: u32,
    groups: u32,
}

@group(0) @binding(0) var<storage, read> vals: array<f32>;
@group(0) @binding(1) var<storage, read> idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> best_val: array<f32>;
@group(0) @binding(3) var<storage, read_write> best_idx: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = 64u;
const PER: u32 = 4u;
const CHUNK: u32 = 256u; // WG · PER
const NONE: u32 = 0xffffffffu;
var<workgroup> sval: array<f32, 64>;
var<workgroup> sidx: array<u32, 64>;

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// Whether candidate (b, j) beats (a, i).
fn beats(b: f32, j: u32, a: f32, i: u32) -> bool {
    if is_nan(b) {
        return false;
    }
    if is_nan(a) {
        return true;
    }
    return b > a || (b == a && j < i);
}

// The tree over the workgroup's 64 candidates; writes the group's best.
fn finish(lid: u32, group: u32, v: f32, i: u32) {
    sval[lid] = v;
    sidx[lid] = i;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if lid < s {
            let b = sval[lid + s];
            let j = sidx[lid + s];
            if beats(b, j, sval[lid], sidx[lid]) {
                sval[lid] = b;
                sidx[lid] = j;
            }
        }
        workgroupBarrier();
    }
    if lid == 0u {
        let best = sval[0];
        best_val[group] = best;
        best_idx[group] = select(sidx[0], NONE, is_nan(best));
    }
}

@compute @workgroup_size(64)
fn first(@builtin(local_invocation_index) lid: u32,
         @builtin(workgroup_id) wid: vec3<u32>,
         @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    // Uniform across the workgroup: the whole group leaves together.
    if group >= p.groups {
        return;
    }
    let base = group * CHUNK + lid;
    var i = min(base, p.n - 1u);
    var v = vals[i];
    for (var k = 1u; k < PER; k = k + 1u) {
        let j = min(base + k * WG, p.n - 1u);
        let b = vals[j];
        if beats(b, j, v, i) {
            v = b;
            i = j;
        }
    }
    finish(lid, group, v, i);
}

@compute @workgroup_size(64)
fn merge(@builtin(local_invocation_index) lid: u32,
         @builtin(workgroup_id) wid: vec3<u32>,
         @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    if group >= p.groups {
        return;
    }
    let base = group * CHUNK + lid;
    let e = min(base, p.n - 1u);
    var v = vals[e];
    var i = idx[e];
    for (var k = 1u; k < PER; k = k + 1u) {
        let f = min(base + k * WG, p.n - 1u);
        let b = vals[f];
        let j = idx[f];
        if beats(b, j, v, i) {
            v = b;
            i = j;
        }
    }
    finish(lid, group, v, i);
}
