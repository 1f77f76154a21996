// radix_sort and radix_sort_pairs as one kernel each: the whole stable LSD
// sort (8 passes of 4-bit digits) in a single dispatch of one workgroup.
//
// pel runs these kernels on the CPU, where the rayon implementation is the
// fast one; GPUs sort with the multi-pass kernels of sort.wgsl, which spread
// each pass over every core. This shader makes the kernels whole (correct on
// any device, as a pel kernel must be), not fast: one workgroup walks the
// keys 64 at a time.
//
// Each pass counts the digit over all keys, turns the counts into each
// digit's first slot, then moves 64 keys at a time: a key goes after the
// keys of its digit already placed and those of its digit among the lanes
// before it. Passes alternate keys → tmp → keys, so 8 of them end in keys.

struct Params {
    // Keys.
    n: u32,
}

@group(0) @binding(0) var<storage, read_write> keys: array<u32>;
@group(0) @binding(1) var<storage, read_write> tmp: array<u32>;
@group(0) @binding(2) var<storage, read_write> vals: array<u32>;
@group(0) @binding(3) var<storage, read_write> tmp_vals: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = 64u;
const RADIX: u32 = 16u;
const ROW: u32 = 65u;
const PASSES: u32 = 8u;
const NONE: u32 = 16u; // the digit of a lane past the end

// counts[d · ROW + i]: keys of digit d that invocation i counted.
var<workgroup> counts: array<u32, 1040>;
// The next free slot of each digit.
var<workgroup> next: array<u32, 16>;
// The digits of the 64 keys in hand.
var<workgroup> lane_digit: array<u32, 64>;

fn digit(k: u32, pass_no: u32) -> u32 {
    return (k >> (4u * pass_no)) & (RADIX - 1u);
}

fn load_key(pass_no: u32, i: u32) -> u32 {
    if (pass_no & 1u) == 0u {
        return keys[i];
    }
    return tmp[i];
}

fn store_key(pass_no: u32, i: u32, k: u32) {
    if (pass_no & 1u) == 0u {
        tmp[i] = k;
    } else {
        keys[i] = k;
    }
}

fn move_val(pass_no: u32, at: u32, slot: u32) {
    if (pass_no & 1u) == 0u {
        tmp_vals[slot] = vals[at];
    } else {
        vals[slot] = tmp_vals[at];
    }
}

// Sets next[d] to the first slot of digit d in this pass's output.
fn digit_starts(lid: u32, pass_no: u32) {
    for (var d = 0u; d < RADIX; d = d + 1u) {
        counts[d * ROW + lid] = 0u;
    }
    for (var i = lid; i < p.n; i = i + WG) {
        let c = digit(load_key(pass_no, i), pass_no) * ROW + lid;
        counts[c] = counts[c] + 1u;
    }
    workgroupBarrier();
    if lid == 0u {
        var run = 0u;
        for (var d = 0u; d < RADIX; d = d + 1u) {
            next[d] = run;
            for (var c = 0u; c < WG; c = c + 1u) {
                run = run + counts[d * ROW + c];
            }
        }
    }
    workgroupBarrier();
}

// The slot of this lane's key among the 64 in hand (NONE past the end),
// then, once every lane has its slot, advances next[] past the 64.
fn place(lid: u32, d: u32) -> u32 {
    lane_digit[lid] = d;
    workgroupBarrier();
    var slot = NONE;
    if d != NONE {
        var r = 0u;
        for (var j = 0u; j < lid; j = j + 1u) {
            r = r + select(0u, 1u, lane_digit[j] == d);
        }
        slot = next[d] + r;
    }
    workgroupBarrier();
    if lid < RADIX {
        var c = 0u;
        for (var j = 0u; j < WG; j = j + 1u) {
            c = c + select(0u, 1u, lane_digit[j] == lid);
        }
        next[lid] = next[lid] + c;
    }
    workgroupBarrier();
    return slot;
}

@compute @workgroup_size(64)
fn sort_keys(@builtin(local_invocation_index) lid: u32) {
    for (var pass_no = 0u; pass_no < PASSES; pass_no = pass_no + 1u) {
        digit_starts(lid, pass_no);
        for (var base = 0u; base < p.n; base = base + WG) {
            let i = base + lid;
            var k = 0u;
            var d = NONE;
            if i < p.n {
                k = load_key(pass_no, i);
                d = digit(k, pass_no);
            }
            let slot = place(lid, d);
            if d != NONE {
                store_key(pass_no, slot, k);
            }
        }
        // This pass's output is the next one's input.
        storageBarrier();
    }
}

@compute @workgroup_size(64)
fn sort_pairs(@builtin(local_invocation_index) lid: u32) {
    for (var pass_no = 0u; pass_no < PASSES; pass_no = pass_no + 1u) {
        digit_starts(lid, pass_no);
        for (var base = 0u; base < p.n; base = base + WG) {
            let i = base + lid;
            var k = 0u;
            var d = NONE;
            if i < p.n {
                k = load_key(pass_no, i);
                d = digit(k, pass_no);
            }
            let slot = place(lid, d);
            if d != NONE {
                store_key(pass_no, slot, k);
                move_val(pass_no, i, slot);
            }
        }
        storageBarrier();
    }
}
