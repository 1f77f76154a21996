// sort: one pass of an LSD radix sort of u32 keys, 4-bit digits, in tiles of
// 1,024 keys (one workgroup of 64 invocations, 16 keys each).
//
// The host runs, for each of the 8 digits, lowest first:
//   `histogram`:     hist[d · tiles + t] = keys of tile t whose digit is d;
//   (the host scans hist, exclusively, with the scan kernels: digit-major
//    order makes offsets[d · tiles + t] the first output slot of tile t's
//    keys with digit d)
//   `scatter_keys` / `scatter_pairs`: each tile ranks its keys by digit in
//                    workgroup memory (a stable local sort), then writes them
//                    out in that order, so neighbouring invocations write
//                    neighbouring slots (coalesced).
// Passes alternate between two buffers; 8 passes leave the result where the
// keys started.

struct Params {
    // Keys.
    n: u32,
    // The digit's lowest bit: 0, 4, …, 28.
    shift: u32,
    // Tiles of 1,024 keys: max(1, ceil(n / 1024)).
    tiles: u32,
}

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read> src_vals: array<u32>;
@group(0) @binding(2) var<storage, read_write> hist: array<u32>;
@group(0) @binding(3) var<storage, read> offsets: array<u32>;
@group(0) @binding(4) var<storage, read_write> dst: array<u32>;
@group(0) @binding(5) var<storage, read_write> dst_vals: array<u32>;
@group(0) @binding(6) var<uniform> p: Params;

const WG: u32 = 64u;      // invocations per workgroup
const PER: u32 = 16u;     // keys per invocation
const TILE: u32 = 1024u;  // WG · PER keys per workgroup
const RADIX: u32 = 16u;   // digit values
const ROW: u32 = 65u;     // counts row stride: WG plus one slot against bank conflicts

// The tile's keys (and values), one padding slot per 16 so that invocation i
// reads its keys 16i..16i+15 without bank conflicts.
var<workgroup> keys_sh: array<u32, 1088>;
var<workgroup> vals_sh: array<u32, 1088>;
// counts[d · ROW + i]: invocation i's keys with digit d (each invocation
// owns its column, so no atomics), then their exclusive scan in digit-major
// order.
var<workgroup> counts: array<u32, 1040>;
// Two halves of WG values: a double-buffered Hillis–Steele scan.
var<workgroup> sums: array<u32, 128>;
// Per digit: the global slot of the tile's first key with that digit, less
// that key's slot in the tile's sorted order.
var<workgroup> base: array<u32, 16>;

// Per invocation: its keys, and each one's rank among the tile's keys.
var<private> key: array<u32, 16>;
var<private> pos: array<u32, 16>;

fn kpad(i: u32) -> u32 {
    return i + (i >> 4u);
}

fn digit(k: u32) -> u32 {
    return (k >> p.shift) & (RADIX - 1u);
}

// The sum of entries 16·lid .. 16·lid + 15 of counts in digit-major order
// (digit lid / 4, columns 16·(lid % 4) ..).
fn rake_start(lid: u32) -> u32 {
    return (lid / 4u) * ROW + (lid % 4u) * 16u;
}

@compute @workgroup_size(64)
fn histogram(@builtin(local_invocation_index) lid: u32,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nw: vec3<u32>) {
    // pel folds more than 65,535 workgroups into 2-D. Uniform across the
    // workgroup: a whole folded-in spare group leaves together.
    let tile = wid.x + wid.y * nw.x;
    if tile >= p.tiles {
        return;
    }
    let start = tile * TILE;
    let m = min(TILE, p.n - min(start, p.n));
    for (var d = 0u; d < RADIX; d = d + 1u) {
        counts[d * ROW + lid] = 0u;
    }
    for (var j = 0u; j < PER; j = j + 1u) {
        let i = j * WG + lid; // coalesced
        if i < m {
            let c = digit(src[start + i]) * ROW + lid;
            counts[c] = counts[c] + 1u;
        }
    }
    workgroupBarrier();
    let r = rake_start(lid);
    var s = 0u;
    for (var c = 0u; c < 16u; c = c + 1u) {
        s = s + counts[r + c];
    }
    sums[lid] = s;
    workgroupBarrier();
    if lid < RADIX {
        let q = lid * 4u;
        hist[lid * p.tiles + tile] = sums[q] + sums[q + 1u] + sums[q + 2u] + sums[q + 3u];
    }
}

// Loads tile `tile` (m keys from `start`) into keys_sh and ranks it: on
// return, key[j] and pos[j] hold this invocation's keys 16·lid + j (those
// below m) and their slots in the tile's stable order by digit, and base[d]
// maps a slot of digit d to its global slot.
fn rank(lid: u32, tile: u32, start: u32, m: u32) {
    for (var j = 0u; j < PER; j = j + 1u) {
        let i = j * WG + lid; // coalesced
        var k = 0u;
        if i < m {
            k = src[start + i];
        }
        keys_sh[kpad(i)] = k;
    }
    for (var d = 0u; d < RADIX; d = d + 1u) {
        counts[d * ROW + lid] = 0u;
    }
    workgroupBarrier();

    // Each invocation counts its 16 consecutive keys, in order: a key's rank
    // among its invocation's keys of the same digit is the count before it.
    for (var j = 0u; j < PER; j = j + 1u) {
        let i = lid * PER + j;
        let k = keys_sh[kpad(i)];
        key[j] = k;
        pos[j] = 0u;
        if i < m {
            let c = digit(k) * ROW + lid;
            pos[j] = counts[c];
            counts[c] = counts[c] + 1u;
        }
    }
    workgroupBarrier();

    // Exclusive scan of counts in digit-major order: each invocation sums 16
    // entries, the 64 sums are scanned (6 steps), then each invocation
    // rewrites its 16 entries as running totals.
    let r = rake_start(lid);
    var s = 0u;
    for (var c = 0u; c < 16u; c = c + 1u) {
        s = s + counts[r + c];
    }
    sums[lid] = s;
    workgroupBarrier();
    var half = 0u;
    for (var d = 1u; d < WG; d = d << 1u) {
        var t = sums[half + lid];
        if lid >= d {
            t = t + sums[half + lid - d];
        }
        sums[(WG - half) + lid] = t;
        half = WG - half;
        workgroupBarrier();
    }
    var run = 0u;
    if lid > 0u {
        run = sums[half + lid - 1u];
    }
    for (var c = 0u; c < 16u; c = c + 1u) {
        let v = counts[r + c];
        counts[r + c] = run;
        run = run + v;
    }
    workgroupBarrier();

    // counts[d · ROW + i] is now the tile slot of invocation i's first key
    // with digit d; counts[d · ROW] the tile slot of the first key with d.
    if lid < RADIX {
        base[lid] = offsets[lid * p.tiles + tile] - counts[lid * ROW];
    }
    for (var j = 0u; j < PER; j = j + 1u) {
        if lid * PER + j < m {
            pos[j] = pos[j] + counts[digit(key[j]) * ROW + lid];
        }
    }
    // Every read of keys_sh is done before the caller overwrites it, and
    // base is visible to all.
    workgroupBarrier();
}

@compute @workgroup_size(64)
fn scatter_keys(@builtin(local_invocation_index) lid: u32,
                @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nw: vec3<u32>) {
    let tile = wid.x + wid.y * nw.x;
    if tile >= p.tiles {
        return;
    }
    let start = tile * TILE;
    let m = min(TILE, p.n - min(start, p.n));
    rank(lid, tile, start, m);
    for (var j = 0u; j < PER; j = j + 1u) {
        if lid * PER + j < m {
            keys_sh[kpad(pos[j])] = key[j];
        }
    }
    workgroupBarrier();
    // Slot i of the sorted tile goes to base[digit] + i: a digit's keys are
    // consecutive both in the tile and in the output.
    for (var j = 0u; j < PER; j = j + 1u) {
        let i = j * WG + lid;
        if i < m {
            let k = keys_sh[kpad(i)];
            dst[base[digit(k)] + i] = k;
        }
    }
}

@compute @workgroup_size(64)
fn scatter_pairs(@builtin(local_invocation_index) lid: u32,
                 @builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nw: vec3<u32>) {
    let tile = wid.x + wid.y * nw.x;
    if tile >= p.tiles {
        return;
    }
    let start = tile * TILE;
    let m = min(TILE, p.n - min(start, p.n));
    for (var j = 0u; j < PER; j = j + 1u) {
        let i = j * WG + lid; // coalesced; visible after rank's first barrier
        var v = 0u;
        if i < m {
            v = src_vals[start + i];
        }
        vals_sh[kpad(i)] = v;
    }
    rank(lid, tile, start, m);
    var val: array<u32, 16>;
    for (var j = 0u; j < PER; j = j + 1u) {
        val[j] = vals_sh[kpad(lid * PER + j)];
    }
    workgroupBarrier();
    for (var j = 0u; j < PER; j = j + 1u) {
        if lid * PER + j < m {
            keys_sh[kpad(pos[j])] = key[j];
            vals_sh[kpad(pos[j])] = val[j];
        }
    }
    workgroupBarrier();
    for (var j = 0u; j < PER; j = j + 1u) {
        let i = j * WG + lid;
        if i < m {
            let k = keys_sh[kpad(i)];
            let slot = base[digit(k)] + i;
            dst[slot] = k;
            dst_vals[slot] = vals_sh[kpad(i)];
        }
    }
}
