//! The bus model: what moving bytes between the host and a GPU costs, as
//! measured once per machine and refined by the transfers calls make.

use serde::{Deserialize, Serialize};

use super::{Dispatcher, profile};
use crate::buffer::Moves;
use crate::device::BusSamples;

/// Cost of moving data one way over one bus: `latency + bytes / bandwidth`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// Fixed cost of a transfer, seconds.
    pub latency_s: f64,
    /// Sustained bandwidth, bytes per second.
    pub bytes_per_s: f64,
}

impl Link {
    /// Seconds to move `bytes`.
    pub fn secs(&self, bytes: u64) -> f64 {
        if bytes == 0 {
            0.0
        } else {
            self.latency_s + bytes as f64 / self.bytes_per_s
        }
    }

    /// The link through two measured transfers of `small` and `large` bytes.
    pub(crate) fn from_two(small: (u64, f64), large: (u64, f64)) -> Link {
        let bw = bandwidth((large.0 - small.0) as f64 / (large.1 - small.1).max(1e-9));
        let latency = small.1 - small.0 as f64 / bw;
        Link {
            // Rounding leaves crumbs near zero; under the clock's resolution
            // there is no latency to speak of.
            latency_s: if latency >= profile::MIN_SECS {
                latency.min(MAX_LATENCY_S)
            } else {
                0.0
            },
            bytes_per_s: bw,
        }
    }

    /// What is wrong with a link read from a file, if anything: a latency
    /// or bandwidth no bus has (the measurements above never give one).
    pub(crate) fn flaw(&self) -> Option<String> {
        let l = self.latency_s;
        if !(l == 0.0 || (profile::MIN_SECS..=MAX_LATENCY_S).contains(&l)) {
            return Some(format!(
                "latency {l:e} s is outside 0 or 1 ns to {MAX_LATENCY_S} s"
            ));
        }
        let b = self.bytes_per_s;
        if !(MIN_BANDWIDTH..=MAX_BANDWIDTH).contains(&b) {
            return Some(format!(
                "bandwidth {b:e} B/s is outside {MIN_BANDWIDTH:e} to {MAX_BANDWIDTH:e} B/s"
            ));
        }
        None
    }
}

/// The slowest bus the model admits, bytes per second: slower readings are
/// taken as this (a bus that slow would be no use for compute anyway).
const MIN_BANDWIDTH: f64 = 1e6;
/// The fastest, bytes per second: beyond any memory system built. A
/// reading above it is a timing artefact (two transfers timed the same).
const MAX_BANDWIDTH: f64 = 1e14;
/// The longest fixed cost of a transfer the model admits, seconds.
const MAX_LATENCY_S: f64 = 10.0;

/// A measured bandwidth, within what the model admits.
fn bandwidth(bytes_per_s: f64) -> f64 {
    if bytes_per_s.is_nan() {
        MIN_BANDWIDTH
    } else {
        bytes_per_s.clamp(MIN_BANDWIDTH, MAX_BANDWIDTH)
    }
}

/// The bus between the host and one GPU, measured when the GPU is first seen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TransferModel {
    /// Host to GPU.
    pub h2d: Link,
    /// GPU to host.
    pub d2h: Link,
}

/// Transfer rates kept per GPU and direction for the bus model.
const SEEN_RATES: usize = 16;
/// Transfers of at least this many bytes refine the bus model; smaller ones
/// say more about the latency, which the first measurement has.
const OBSERVED_BYTES: u64 = 256 << 10;

impl Dispatcher {
    /// Whether GPU `g`'s bus has been measured.
    pub(crate) fn has_bus(&self, g: usize) -> bool {
        self.bus.get(g).is_some_and(Option::is_some)
    }

    /// GPU `g`'s bus, measured now: two sizes each way.
    pub(crate) fn measured_bus(&mut self, g: usize, m: &BusSamples) {
        self.touch();
        self.bus[g] = Some(TransferModel {
            h2d: Link::from_two(m.up[0], m.up[1]),
            d2h: Link::from_two(m.down[0], m.down[1]),
        });
        self.dirty = true;
    }

    /// Seconds to make the moves: uploads and downloads over each GPU's bus
    /// (nothing for a bus never measured).
    pub(super) fn transfer_secs(&self, moves: &Moves) -> f64 {
        let link = |g: usize| self.bus.get(g).copied().flatten();
        let up: f64 = moves
            .up
            .iter()
            .map(|&(g, n)| link(g).map_or(0.0, |l| l.h2d.secs(n)))
            .sum();
        let down: f64 = moves
            .down
            .iter()
            .map(|&(g, n)| link(g).map_or(0.0, |l| l.d2h.secs(n)))
            .sum();
        // An empty sum of f64 is -0.0; no transfer is +0.
        (up + down).max(0.0)
    }

    /// Seconds to download `bytes` from GPU `g` (nothing for a bus never
    /// measured): what [`transfer_secs`](Self::transfer_secs) gives for
    /// that one move, without building it.
    pub(super) fn download_secs(&self, g: usize, bytes: u64) -> f64 {
        self.bus
            .get(g)
            .copied()
            .flatten()
            .map_or(0.0, |l| l.d2h.secs(bytes))
    }

    /// Refines GPU `g`'s bandwidth one way (`up`: host to GPU) from a
    /// transfer of `bytes` that took `secs`. The bus is measured once, with
    /// 16 MiB on warm buffers; real transfers have other sizes, map fresh
    /// staging memory and touch fresh host pages, and here that put the
    /// measured figure 2× off in either direction. The bandwidth becomes the
    /// median of the last 16 rates seen (after the measured latency), once
    /// three are in; the latency stays.
    ///
    /// The call layer calls this right after each transfer it timed (an
    /// upload: staging and the copy, up to the device being idle; a
    /// download: staging, mapping and the copy into host memory). Transfers
    /// under 256 KiB, and times that are not a positive number, are ignored.
    pub(crate) fn observe_transfer(&mut self, g: usize, up: bool, bytes: u64, secs: f64) {
        self.touch();
        if bytes < OBSERVED_BYTES || !(secs.is_finite() && secs > 0.0) {
            return;
        }
        let (Some(Some(bus)), Some(seen)) = (self.bus.get_mut(g), self.seen_rates.get_mut(g))
        else {
            return;
        };
        let (link, seen) = if up {
            (&mut bus.h2d, &mut seen[0])
        } else {
            (&mut bus.d2h, &mut seen[1])
        };
        let moving = (secs - link.latency_s).max(0.5 * secs);
        seen.push_back(bytes as f64 / moving.max(1e-9));
        if seen.len() > SEEN_RATES {
            seen.pop_front();
        }
        if seen.len() >= 3 {
            let mut rates: Vec<f64> = seen.iter().copied().collect();
            rates.sort_by(f64::total_cmp);
            link.bytes_per_s = bandwidth(rates[rates.len() / 2]);
            self.dirty = true;
        }
    }
}
