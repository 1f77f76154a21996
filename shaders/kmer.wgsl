// kmer: counts of every k-mer (k ≤ 12) of a DNA sequence, 2-bit encoded
// (A=0, C=1, G=2, T=3) and packed 16 bases per u32, base i of the sequence
// in bits 2(i mod 16)..2(i mod 16)+1 of word i/16 (the first base in the
// lowest bits). A k-mer's code puts its first base in the most significant
// position, so counts are in lexicographic order: AA..A, AA..C, ..., TT..T.
//
// Three entry points, all adding into `counts` (4^k of them):
// - `clear` zeroes the counts (one invocation per count);
// - `count` takes one invocation per position and adds 1 to its k-mer's
//   count with a global atomic;
// - `count_local` (k ≤ 4, 256 counts or fewer) counts a tile of 4,096
//   positions per workgroup into a private histogram in workgroup memory,
//   then adds its non-zero bins to the global counts: far fewer global
//   atomics where few distinct k-mers make them contend. Its histogram is
//   kept to 1 KiB, which costs little occupancy and little zeroing (WGSL
//   zeroes workgroup memory at every launch; a 16 KiB histogram for k = 6
//   made each workgroup 50 times slower on GL's software rasteriser).

// `Params` is declared once, in Rust (`KmerParams` in kernels/src/kmer.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(0) var<storage, read> seq: array<u32>;
@group(0) @binding(1) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 256u;
// Positions one invocation of `count_local` takes, WG apart (coalesced).
const PER_INVOCATION: u32 = 16u;
var<workgroup> local_bins: array<atomic<u32>, 256>;

// The code of the k-mer starting at base `pos`: its k bases span at most
// two words, since k ≤ 12 < 16.
fn code_at(pos: u32) -> u32 {
    let w = pos >> 4u;
    let off = (pos & 15u) * 2u;
    var bits = seq[w] >> off;
    if off + 2u * p.k > 32u {
        bits = bits | (seq[w + 1u] << (32u - off));
    }
    // Base j sits at bits 2j..2j+1. Reversing the word puts it at
    // 31−2j..30−2j with its two bits swapped; swapping each pair back gives
    // the base at 4^(15−j), and the shift leaves the k-mer's code with its
    // first base most significant.
    let r = reverseBits(bits);
    let fixed = ((r >> 1u) & 0x55555555u) | ((r & 0x55555555u) << 1u);
    return fixed >> (32u - 2u * p.k);
}

@compute @workgroup_size(256)
fn clear(@builtin(global_invocation_id) id: vec3<u32>,
         @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pel_index(id, groups);
    if i < p.bins {
        atomicStore(&counts[i], 0u);
    }
}

@compute @workgroup_size(256)
fn count(@builtin(global_invocation_id) id: vec3<u32>,
         @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pel_index(id, groups);
    if i < p.positions {
        atomicAdd(&counts[code_at(i)], 1u);
    }
}

@compute @workgroup_size(256)
fn count_local(@builtin(local_invocation_index) lid: u32,
               @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) groups: vec3<u32>) {
    // Workgroup memory starts zeroed (WGSL guarantees it).
    let group = pel_workgroup_index(wid, groups);
    let base = group * (WG * PER_INVOCATION);
    for (var j = 0u; j < PER_INVOCATION; j = j + 1u) {
        let pos = base + j * WG + lid;
        if pos < p.positions {
            atomicAdd(&local_bins[code_at(pos)], 1u);
        }
    }
    workgroupBarrier();
    // One bin per invocation (p.bins ≤ 256 = WG).
    if lid < p.bins {
        let c = atomicLoad(&local_bins[lid]);
        if c != 0u {
            atomicAdd(&counts[lid], c);
        }
    }
}
