// histogram: counts of u32 values in `bins` equal-width bins over
// [0, max_value]. Value v goes to bin floor(v·bins / (max_value + 1)),
// computed exactly (with a 64-bit product built from 32-bit halves, mul_wide
// in shaders/lib); values above max_value go to the last bin. Counts are
// added to `hist`, which the host clears first (`clear`).
//
// `main` (bins ≤ 256) and `main_4k` (bins ≤ 4096): each workgroup counts
// `items`·256 consecutive values into its own histogram in workgroup memory
// (atomics there are cheap and rarely contended), reading them coalesced,
// then adds its non-zero bins to `hist` with one global atomic each. The two
// differ only in the size of that histogram: 1 KiB or 16 KiB of workgroup
// memory, which is zeroed for every workgroup and limits how many fit on a
// compute unit at once. Workgroups are numbered linearly (pel folds more
// than 65,535 of them into 2-D).
//
// `direct` (more bins than workgroup memory holds): one invocation per
// value, an atomic add straight into `hist`.

// `Params` is declared once, in Rust (`HistogramParams` in kernels/src/histogram.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(0) var<storage, read> values: array<u32>;
@group(0) @binding(1) var<storage, read_write> hist: array<atomic<u32>>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 256u;
const NO_BIN: u32 = 0xffffffffu;
// WGSL zero-initialises workgroup memory.
var<workgroup> hist_256: array<atomic<u32>, 256>;
var<workgroup> hist_4k: array<atomic<u32>, 4096>;

// a ≤ b for 64-bit (low, high) pairs.
fn le64(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.y < b.y || (a.y == b.y && a.x <= b.x);
}

fn bin_of(v: u32) -> u32 {
    if v > p.max_value {
        return p.bins - 1u;
    }
    let prod = mul_wide(v, p.bins);
    if p.max_value == 0xffffffffu {
        // Dividing by 2^32: the high word.
        return prod.y;
    }
    let d = p.max_value + 1u;
    // The f32 guess is within a few bins; step to the exact floor, the b
    // with b·d ≤ v·bins < (b+1)·d (v ≤ max_value, so b < bins).
    var b = min(u32(f32(v) * p.scale), p.bins - 1u);
    while b > 0u && !le64(mul_wide(b, d), prod) {
        b = b - 1u;
    }
    while b + 1u < p.bins && le64(mul_wide(b + 1u, d), prod) {
        b = b + 1u;
    }
    return b;
}

// The bin of value k·WG + lid of workgroup `group`'s items·WG, or NO_BIN
// past the end (reads are coalesced).
fn item_bin(group: u32, k: u32, lid: u32) -> u32 {
    let i = (group * p.items + k) * WG + lid;
    if i < p.n {
        return bin_of(values[i]);
    }
    return NO_BIN;
}

// Adds a workgroup's count of bin b to `hist`: nothing for no value.
fn flush(b: u32, count: u32) {
    if count != 0u {
        atomicAdd(&hist[b], count);
    }
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    // Uniform across the workgroup: the whole group leaves together.
    if group >= p.groups {
        return;
    }
    for (var k = 0u; k < p.items; k = k + 1u) {
        let b = item_bin(group, k, lid);
        if b != NO_BIN {
            atomicAdd(&hist_256[b], 1u);
        }
    }
    workgroupBarrier();
    if lid < p.bins {
        flush(lid, atomicLoad(&hist_256[lid]));
    }
}

// `main` with up to 4096 bins.
@compute @workgroup_size(256)
fn main_4k(@builtin(local_invocation_index) lid: u32,
           @builtin(workgroup_id) wid: vec3<u32>,
           @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    if group >= p.groups {
        return;
    }
    for (var k = 0u; k < p.items; k = k + 1u) {
        let b = item_bin(group, k, lid);
        if b != NO_BIN {
            atomicAdd(&hist_4k[b], 1u);
        }
    }
    workgroupBarrier();
    for (var b = lid; b < p.bins; b = b + WG) {
        flush(b, atomicLoad(&hist_4k[b]));
    }
}

@compute @workgroup_size(256)
fn direct(@builtin(global_invocation_id) id: vec3<u32>,
          @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pel_index(id, groups);
    if i < p.n {
        atomicAdd(&hist[bin_of(values[i])], 1u);
    }
}

@compute @workgroup_size(256)
fn clear(@builtin(global_invocation_id) id: vec3<u32>,
         @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pel_index(id, groups);
    if i < p.bins {
        atomicStore(&hist[i], 0u);
    }
}
