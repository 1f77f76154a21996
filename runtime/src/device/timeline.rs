//! The virtual clock of a simulated machine: when each processor is free,
//! when each link is free, and when each copy of each buffer is ready.
//!
//! The runtime runs for real on a simulated machine: the dispatcher
//! places, the buffer table stages and invalidates, the graph orders. What
//! it does not do is wait: every kernel and copy is put on this timeline
//! instead, where it starts once its device (or link) is free and its
//! inputs are ready there, and ends its modelled time later. The host has
//! a clock of its own, which moves only where a real program would wait
//! (a read, which also copies the bytes out; `Task::wait`; `wait_all`; a
//! synchronous call on the CPU).
//!
//! Simplifications, stated once:
//! - a GPU runs one kernel at a time, in the order placed;
//! - the CPU has one lane per core; a kernel takes one lane per 64 KiB of
//!   its arguments (a rayon kernel spreads over the pool as its chunks
//!   allow), at most every lane, and runs at its modelled time;
//! - a GPU that shares the host's cores (a software rasteriser) runs at
//!   1/(1+b) of its speed while a share b of the cores is busy with
//!   other work (CPU kernels by their lanes, another such GPU with all of
//!   them), as processes sharing cores do; a kernel placed beside work
//!   already queued on such a GPU pushes that work's end back the same
//!   way. (The CPU's kernels are not slowed in turn: their times,
//!   measured on such a machine, already hold it, and a roofline CPU's
//!   are the cores' own.)
//! - a copy takes its link's latency plus bytes over bandwidth; GPUs on one
//!   link share it (copies queue), each direction apart; a copy between
//!   two GPUs goes through the host, as the buffer table routes it.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::hash::FxMap;
use crate::trace::Tracer;

/// Bytes of arguments per CPU lane a kernel spreads over.
const BYTES_PER_LANE: u64 = 64 << 10;

/// Of `cores` CPU lanes, those a kernel over `bytes` of arguments takes:
/// one per 64 KiB, at least one, at most all.
pub(crate) fn lanes_for(bytes: u64, cores: usize) -> usize {
    (bytes.div_ceil(BYTES_PER_LANE) as usize).clamp(1, cores.max(1))
}

/// A link's figures: seconds before the first byte, bytes per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Link {
    pub(crate) latency_s: f64,
    pub(crate) bandwidth: f64,
}

impl Link {
    pub(crate) fn transfer_s(&self, bytes: u64) -> f64 {
        self.latency_s + bytes as f64 / self.bandwidth
    }
}

/// The machine's shape, fixed when the runtime is built.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// CPU lanes (cores).
    pub(crate) cpu_lanes: usize,
    /// Seconds of a CPU lane each CPU kernel costs the runtime besides
    /// its own time.
    pub(crate) cpu_overhead_s: f64,
    /// Bytes a second the host copies at: a read's copy costs the host
    /// that (`None`: nothing).
    pub(crate) copy_bandwidth: Option<f64>,
    /// Per GPU: the index of its link in `links`.
    pub(crate) link_of: Vec<usize>,
    /// Per GPU: whether it runs on the host's cores (and so runs slower
    /// while CPU kernels run).
    pub(crate) shares_host: Vec<bool>,
    /// The CPU's kernel times were measured while other tasks ran beside
    /// them: each kernel takes one lane, not the lanes its chunks could
    /// spread over (which measured times already show).
    pub(crate) cpu_measured: bool,
    /// The links, with their names for the report.
    pub(crate) links: Vec<(String, Link)>,
    /// Per GPU: the virtual time at which it is lost, if it is.
    pub(crate) lose_at: Vec<Option<f64>>,
}

/// When a buffer's copies are ready (per location: 0 the host, g + 1 GPU
/// g; `None` where it has no current copy), and until when its current
/// version is read.
#[derive(Debug, Clone, Default)]
struct Ready {
    at: Vec<Option<f64>>,
    read_until: f64,
}

#[derive(Debug)]
struct State {
    /// The host thread's clock.
    host_now: f64,
    cpu: Vec<f64>,
    gpu: Vec<f64>,
    /// Per link: when each direction (to the device, to the host) is free.
    links: Vec<[f64; 2]>,
    ready: FxMap<u64, Ready>,
    /// Per location: seconds busy (the CPU's summed over lanes).
    busy: Vec<f64>,
    /// Per location: kernels run.
    kernels: Vec<u64>,
    /// Per link: bytes moved.
    link_bytes: Vec<u64>,
    /// The latest end of anything.
    end: f64,
    /// The end of the kernel placed last.
    last_end: f64,
    /// Where a GPU shares the host's cores: the kernels on the host's
    /// cores (the CPU's, and those of GPUs sharing them) that may still
    /// overlap one placed from now on: (start, end, share of the cores,
    /// location).
    spans: Vec<Span>,
}

/// The virtual clock of one simulated runtime (see the module's page).
pub(crate) struct Timeline {
    shape: Shape,
    /// Some GPU shares the host's cores.
    sharing: bool,
    state: Mutex<State>,
    tracer: Arc<Tracer>,
}

/// What the timeline says of a run so far.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Totals {
    pub(crate) now_s: f64,
    pub(crate) busy_s: Vec<f64>,
    pub(crate) kernels: Vec<u64>,
    pub(crate) link_bytes: Vec<(String, u64)>,
    pub(crate) cpu_lanes: usize,
}

impl Timeline {
    pub(crate) fn new(shape: Shape, tracer: Arc<Tracer>) -> Self {
        let gpus = shape.link_of.len();
        let state = State {
            host_now: 0.0,
            cpu: vec![0.0; shape.cpu_lanes.max(1)],
            gpu: vec![0.0; gpus],
            links: vec![[0.0; 2]; shape.links.len()],
            ready: FxMap::default(),
            busy: vec![0.0; gpus + 1],
            kernels: vec![0; gpus + 1],
            link_bytes: vec![0; shape.links.len()],
            end: 0.0,
            last_end: 0.0,
            spans: Vec::new(),
        };
        Timeline {
            sharing: shape.shares_host.iter().any(|&x| x),
            shape,
            state: Mutex::new(state),
            tracer,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn locations(&self) -> usize {
        self.shape.link_of.len() + 1
    }

    /// CPU lanes a kernel over `bytes` of arguments takes.
    fn lanes_for(&self, bytes: u64) -> usize {
        if self.shape.cpu_measured {
            return 1;
        }
        lanes_for(bytes, self.shape.cpu_lanes)
    }

    /// Seconds each location would make a call released now wait before
    /// it could start: its backlog, for the dispatcher's queue estimate.
    /// `reads`, `writes`: the call's access sets; `bytes`: its arguments'.
    pub(crate) fn backlogs(&self, (reads, writes): (&[u64], &[u64]), bytes: u64) -> Vec<f64> {
        let s = self.state();
        let release = self.release(&s, reads.iter().chain(writes));
        let lanes = self.lanes_for(bytes);
        (0..self.locations())
            .map(|loc| (self.free_at(&s, loc, lanes) - release).max(0.0))
            .collect()
    }

    /// The earliest a call on `ids` can start anywhere: the host has
    /// issued it, and each buffer has a current copy somewhere.
    fn release<'a>(&self, s: &State, ids: impl Iterator<Item = &'a u64>) -> f64 {
        ids.filter_map(|id| s.ready.get(id))
            .filter_map(|r| r.at.iter().flatten().copied().reduce(f64::min))
            .fold(s.host_now, f64::max)
    }

    /// When location `loc` has room for a kernel taking `lanes` CPU lanes.
    fn free_at(&self, s: &State, loc: usize, lanes: usize) -> f64 {
        match loc {
            0 if lanes <= 1 => s.cpu.iter().copied().fold(f64::INFINITY, f64::min),
            0 => {
                let mut lanes_free = s.cpu.clone();
                lanes_free.sort_by(f64::total_cmp);
                lanes_free[lanes.min(lanes_free.len()) - 1]
            }
            g => s.gpu[g - 1],
        }
    }

    fn ready_mut<'s>(&self, s: &'s mut State, id: u64) -> &'s mut Ready {
        let n = self.locations();
        s.ready.entry(id).or_insert_with(|| Ready {
            at: vec![None; n],
            read_until: 0.0,
        })
    }

    /// A new buffer, its copy on the host now.
    pub(crate) fn created(&self, id: u64) {
        let mut s = self.state();
        let now = s.host_now;
        let r = self.ready_mut(&mut s, id);
        r.at[0] = Some(now);
    }

    /// The buffer is gone.
    pub(crate) fn forget(&self, id: u64) {
        self.state().ready.remove(&id);
    }

    /// The host wrote buffer `id`: it waits for the current version's
    /// readers and writer, and its copy is the only one.
    pub(crate) fn host_wrote(&self, id: u64) {
        let mut s = self.state();
        let r = self.ready_mut(&mut s, id);
        let after = r.at.iter().flatten().copied().fold(r.read_until, f64::max);
        let now = s.host_now.max(after);
        s.host_now = now;
        let r = self.ready_mut(&mut s, id);
        r.at.iter_mut().for_each(|a| *a = None);
        r.at[0] = Some(now);
    }

    /// The host waits for buffer `id`'s host copy, then copies its
    /// `bytes` out.
    pub(crate) fn host_reads(&self, id: u64, bytes: u64) {
        let mut s = self.state();
        if let Some(at) = s.ready.get(&id).and_then(|r| r.at[0]) {
            s.host_now = s.host_now.max(at);
        }
        if let Some(bw) = self.shape.copy_bandwidth {
            s.host_now += bytes as f64 / bw;
        }
    }

    /// The end of the kernel placed last.
    pub(crate) fn last_end(&self) -> f64 {
        self.state().last_end
    }

    /// The host waits until `t`.
    pub(crate) fn host_waits_until(&self, t: f64) {
        let mut s = self.state();
        s.host_now = s.host_now.max(t);
    }

    /// The host waits for everything placed so far.
    pub(crate) fn wait_all(&self) {
        let mut s = self.state();
        s.host_now = s.host_now.max(s.end);
    }

    /// Buffer `id` made ready at `loc` with nothing moved (zeros).
    pub(crate) fn cleared(&self, id: u64, loc: usize) {
        let mut s = self.state();
        let now = s.host_now;
        let r = self.ready_mut(&mut s, id);
        r.at[loc] = Some(r.at[loc].unwrap_or(now));
    }

    /// Copies `bytes` of buffer `id` between the host and GPU `g` (`up`:
    /// to the GPU), over the GPU's link.
    pub(crate) fn transfer(&self, id: u64, g: usize, up: bool, bytes: u64) {
        let (from, to) = if up { (0, g + 1) } else { (g + 1, 0) };
        let link = self.shape.link_of[g];
        let (name, figures) = &self.shape.links[link];
        let mut s = self.state();
        let now = s.host_now;
        let source = self.ready_mut(&mut s, id).at[from].unwrap_or(now);
        let dir = usize::from(!up);
        let start = source.max(s.links[link][dir]).max(now);
        let dur = figures.transfer_s(bytes);
        let end = start + dur;
        s.links[link][dir] = end;
        s.link_bytes[link] += bytes;
        s.end = s.end.max(end);
        self.ready_mut(&mut s, id).at[to] = Some(end);
        drop(s);
        let what = if up { "to" } else { "from" };
        self.tracer.span_at(
            format!("{what} gpu{g} over {name}"),
            self.tracer.transfer_lane(),
            start,
            dur,
        );
    }

    /// Whether GPU `g` is lost by now: its clock (or the host's) has
    /// reached the time it was to be lost at.
    pub(crate) fn lost_by_now(&self, g: usize) -> Option<f64> {
        let at = self.shape.lose_at.get(g).copied().flatten()?;
        let s = self.state();
        (s.gpu[g].max(s.host_now) >= at).then_some(at)
    }

    /// Runs a kernel of `dur` seconds at `loc` on the buffers it only
    /// `reads` and those it `writes` (`bytes`: theirs together, as the
    /// call's access sets give them): it starts once the location has
    /// room, each argument's copy there is ready and each written one's
    /// readers are done. Returns its start.
    pub(crate) fn kernel(
        &self,
        name: &str,
        loc: usize,
        (reads, writes): (&[u64], &[u64]),
        bytes: u64,
        dur: f64,
    ) -> f64 {
        let lanes = self.lanes_for(bytes);
        let dur = match loc {
            0 => dur + self.shape.cpu_overhead_s,
            _ => dur,
        };
        let mut s = self.state();
        let mut start = s.host_now.max(self.free_at(&s, loc, lanes));
        let args = reads.iter().map(|&id| (id, false));
        for (id, written) in args.chain(writes.iter().map(|&id| (id, true))) {
            let r = self.ready_mut(&mut s, id);
            if let Some(at) = r.at[loc] {
                start = start.max(at);
            }
            if written {
                start = start.max(r.read_until);
            }
        }
        let sharing = self.sharing;
        let on_host_cores = loc == 0 || self.shape.shares_host[loc - 1];
        let dur = match loc {
            g if g > 0 && self.shape.shares_host[g - 1] => {
                let now = s.host_now;
                s.spans.retain(|span| span.end > now);
                stretched(&s.spans, loc, start, dur)
            }
            _ => dur,
        };
        let end = start + dur;
        match loc {
            0 if lanes <= 1 => {
                let lane = (0..s.cpu.len())
                    .min_by(|&a, &b| s.cpu[a].total_cmp(&s.cpu[b]))
                    .expect("at least one lane");
                s.cpu[lane] = end;
                s.busy[0] += dur;
            }
            0 => {
                // The `lanes` lanes free soonest.
                let mut order: Vec<usize> = (0..s.cpu.len()).collect();
                order.sort_by(|&a, &b| s.cpu[a].total_cmp(&s.cpu[b]));
                for &lane in &order[..lanes.min(order.len())] {
                    s.cpu[lane] = end;
                }
                s.busy[0] += dur * lanes as f64;
            }
            g => {
                s.gpu[g - 1] = end;
                s.busy[g] += dur;
            }
        }
        if sharing && on_host_cores {
            // A GPU on the host's cores takes all of them while it runs.
            let share = match loc {
                0 => lanes as f64 / s.cpu.len() as f64,
                _ => 1.0,
            };
            s.spans.push(Span {
                start,
                end,
                share,
                loc,
            });
            // The work queued on another GPU sharing the cores loses ground
            // while this kernel runs: what follows it there starts later.
            for g in 0..s.gpu.len() {
                if self.shape.shares_host[g] && g + 1 != loc {
                    let overlap = (end.min(s.gpu[g]) - start).max(0.0);
                    s.gpu[g] += overlap * share / (1.0 + share);
                }
            }
        }
        s.kernels[loc] += 1;
        s.end = s.end.max(end);
        s.last_end = end;
        for &id in reads {
            let r = self.ready_mut(&mut s, id);
            r.read_until = r.read_until.max(end);
        }
        for &id in writes {
            let r = self.ready_mut(&mut s, id);
            r.at.iter_mut().for_each(|a| *a = None);
            r.at[loc] = Some(end);
            r.read_until = end;
        }
        drop(s);
        self.tracer.span_at(name, loc as u32, start, dur);
        start
    }

    /// What the run has done so far.
    pub(crate) fn totals(&self) -> Totals {
        let s = self.state();
        Totals {
            now_s: s.host_now.max(s.end),
            busy_s: s.busy.clone(),
            kernels: s.kernels.clone(),
            link_bytes: self
                .shape
                .links
                .iter()
                .map(|(n, _)| n.clone())
                .zip(s.link_bytes.iter().copied())
                .collect(),
            cpu_lanes: self.shape.cpu_lanes.max(1),
        }
    }
}

/// A kernel on the host's cores, as a GPU sharing them sees it.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: f64,
    end: f64,
    /// The share of the cores it takes.
    share: f64,
    /// Where it runs.
    loc: usize,
}

/// How long a kernel of `dur` seconds of work takes from `start` on the
/// GPU at `loc`, which shares the host's cores, beside the other `spans`
/// on them: while a share `b` of the cores is busy it runs at `1 / (1 +
/// b)` of its speed (half, beside a busy CPU or another such GPU).
fn stretched(spans: &[Span], loc: usize, start: f64, dur: f64) -> f64 {
    let others = || spans.iter().filter(move |s| s.loc != loc);
    let mut edges: Vec<f64> = others()
        .flat_map(|s| [s.start, s.end])
        .filter(|&t| t > start)
        .collect();
    edges.sort_by(f64::total_cmp);
    let busy = |t: f64| -> f64 {
        others()
            .filter(|s| s.start <= t && t < s.end)
            .map(|s| s.share)
            .sum::<f64>()
            .min(1.0)
    };
    let (mut t, mut left) = (start, dur);
    for edge in edges {
        let rate = 1.0 / (1.0 + busy(t));
        let can = (edge - t) * rate;
        if can >= left {
            return t + left / rate - start;
        }
        left -= can;
        t = edge;
    }
    t + left - start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(cpu_lanes: usize, gpus: usize, shares: bool) -> Timeline {
        let link = Link {
            latency_s: 1.0,
            bandwidth: 1.0,
        };
        Timeline::new(
            Shape {
                cpu_lanes,
                cpu_overhead_s: 0.0,
                copy_bandwidth: None,
                cpu_measured: false,
                link_of: vec![0; gpus],
                shares_host: vec![shares; gpus],
                links: vec![("bus".to_owned(), link)],
                lose_at: vec![None; gpus],
            },
            Arc::new(Tracer::new(vec!["cpu".into(), "t".into()], false)),
        )
    }

    #[test]
    fn a_kernel_waits_for_its_inputs_copy_and_its_device() {
        let t = timeline(2, 1, false);
        t.created(1);
        t.created(2);
        // 2 bytes up: 1 s latency + 2 s.
        t.transfer(1, 0, true, 2);
        assert_eq!(t.kernel("k", 1, (&[1], &[2]), 8, 5.0), 3.0);
        // Behind the first on the same GPU.
        assert_eq!(t.kernel("k", 1, (&[1], &[]), 8, 1.0), 8.0);
        // Reads buffer 2 on the host: after it comes back down.
        t.transfer(2, 0, false, 1);
        assert_eq!(t.kernel("k", 0, (&[2], &[]), 8, 1.0), 10.0);
        t.host_reads(2, 0);
        assert_eq!(t.totals().now_s, 11.0);
    }

    #[test]
    fn a_write_waits_for_the_readers_of_the_version_it_replaces() {
        let t = timeline(4, 0, false);
        t.created(1);
        t.created(2);
        assert_eq!(t.kernel("read", 0, (&[1], &[2]), 8, 4.0), 0.0);
        // Another lane is free, but buffer 1 is read until 4.
        assert_eq!(t.kernel("write", 0, (&[], &[1]), 8, 1.0), 4.0);
    }

    #[test]
    fn cpu_lanes_run_small_kernels_side_by_side_and_a_wide_one_alone() {
        let t = timeline(2, 1, true);
        for id in 1..=4 {
            t.created(id);
        }
        assert_eq!(t.kernel("a", 0, (&[], &[1]), 8, 1.0), 0.0);
        assert_eq!(t.kernel("b", 0, (&[], &[2]), 8, 1.0), 0.0);
        // Wide: both lanes.
        assert_eq!(t.kernel("c", 0, (&[], &[3]), 1 << 20, 1.0), 1.0);
        // A GPU on the host's cores starts at once but runs at half speed
        // while every core is busy: 1 s of work ends at 2.
        assert_eq!(t.kernel("d", 1, (&[], &[]), 0, 1.0), 0.0);
        assert_eq!(t.kernel("e", 0, (&[], &[4]), 8, 1.0), 2.0);
        let totals = t.totals();
        assert_eq!(totals.kernels, vec![4, 1]);
        assert_eq!(totals.busy_s, vec![5.0, 2.0]);
        // Half the cores busy for 1 s, then none: 1 s of work takes 1.5.
        let half = Span {
            start: 0.0,
            end: 1.0,
            share: 0.5,
            loc: 0,
        };
        assert!((stretched(&[half], 1, 0.0, 1.0) - 4.0 / 3.0).abs() < 1e-12);
        assert_eq!(stretched(&[], 1, 3.0, 1.0), 1.0);
        // Its own spans do not slow it.
        assert_eq!(stretched(&[Span { loc: 1, ..half }], 1, 0.0, 1.0), 1.0);
    }

    #[test]
    fn backlogs_count_from_the_calls_release() {
        let t = timeline(1, 1, false);
        t.created(1);
        t.kernel("k", 1, (&[], &[1]), 8, 3.0);
        // Buffer 1 is ready on gpu0 at 3: nothing waits there after it.
        assert_eq!(t.backlogs((&[1], &[]), 8), vec![0.0, 0.0]);
        t.created(2);
        assert_eq!(t.backlogs((&[2], &[]), 8), vec![0.0, 3.0]);
    }
}
