//! A machine description: the processors of a machine pel may not be
//! running on, the links between them and where each one's kernel times
//! come from, as a JSON file. The simulator (not built yet) runs pel's
//! scheduler on one; `machines/` in the repository ships two, with their
//! sources in each item's `source`.
//!
//! ```json
//! {
//!   "name": "workstation",
//!   "source": "where the figures come from",
//!   "cpu": { "cores": 16, "memory_bytes": 68719476736,
//!            "times": { "roofline": { "flops": 1.0e12, "bandwidth": 8.0e10, "latency_s": 1e-6 } } },
//!   "gpus": [ { "name": "gpu0", "memory_bytes": 25769803776, "link": "pcie", "peer_link": null,
//!               "shares_host_cores": false,
//!               "times": { "roofline": { "flops": 8.26e13, "bandwidth": 1.008e12, "latency_s": 5e-6 } } } ],
//!   "links": [ { "name": "pcie", "latency_s": 1e-5, "bandwidth": 2.6e10 } ]
//! }
//! ```
//!
//! This module imports nothing of pel but its errors: it is vocabulary.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A machine: its CPU, its GPUs and the links between them and the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// What it is called.
    pub name: String,
    /// Where its figures come from (a datasheet, a measurement, a command).
    #[serde(default)]
    pub source: String,
    /// The host's processor.
    pub cpu: CpuSpec,
    /// Its accelerators, `gpu0` first.
    #[serde(default)]
    pub gpus: Vec<GpuSpec>,
    /// Links between the host and the GPUs; each GPU names one.
    #[serde(default)]
    pub links: Vec<LinkSpec>,
}

/// The host's processor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuSpec {
    /// Cores pel's CPU pool uses.
    pub cores: usize,
    /// Host memory, bytes (`null`: not a limit).
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// Where its kernel times come from.
    pub times: Times,
    /// Host seconds each CPU task costs the runtime beyond its kernel
    /// (placement, staging, a worker's hand-off), on the core that runs
    /// it. `pel simulate describe` measures pel's; 0 (the default) leaves
    /// the runtime's own cost out.
    #[serde(default)]
    pub task_overhead_s: f64,
    /// Bytes per second a read hands back at: what a program's read of a
    /// buffer whose host copy is current costs it (`Runtime::read` hands
    /// back a copy). `pel simulate describe` measures it; absent, reads
    /// cost the host nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_bandwidth: Option<f64>,
    /// Where these figures come from.
    #[serde(default)]
    pub source: String,
}

/// One accelerator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSpec {
    /// Its name (unique in the machine).
    pub name: String,
    /// Its memory, bytes.
    pub memory_bytes: u64,
    /// The link (by name) its transfers to and from the host take.
    pub link: String,
    /// The link (by name) its transfers to and from other GPUs on the same
    /// peer link take (NVLink, Infinity Fabric); absent: through the host.
    #[serde(default)]
    pub peer_link: Option<String>,
    /// Whether it computes on the host's cores (llvmpipe, lavapipe): its
    /// kernels and the CPU pool's then slow each other down.
    #[serde(default)]
    pub shares_host_cores: bool,
    /// Where its kernel times come from.
    pub times: Times,
    /// Where these figures come from.
    #[serde(default)]
    pub source: String,
}

/// Where a processor's kernel times come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Times {
    /// A performance model saved by pel: its device's samples (`file`:
    /// another machine's model file; absent: this machine's).
    Model {
        /// The model file (absent: this machine's, where pel keeps it).
        #[serde(default)]
        file: Option<String>,
        /// The device's key in that model (`cpu`, or a GPU's key).
        device: String,
    },
    /// A roofline: a kernel of `f` FLOPs over `b` bytes takes
    /// `latency_s + max(f / flops, b / bandwidth)` with the whole
    /// processor; a kernel that fills only part of it gets that share of
    /// both peaks (see [`roofline_share_s`](Times::roofline_share_s)).
    Roofline {
        /// Peak FLOP/s.
        flops: f64,
        /// Memory bandwidth, bytes per second.
        bandwidth: f64,
        /// Launch latency, seconds.
        latency_s: f64,
        /// A GPU's: the invocations it runs at once (streaming
        /// multiprocessors × resident threads each). A kernel of fewer
        /// invocations gets that share of the peaks. Absent: every kernel
        /// fills the GPU. (A CPU's share is its cores the kernel's chunks
        /// spread over; see the README's simulator section.)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        threads: Option<f64>,
    },
}

impl Times {
    /// A roofline's time for a kernel of `flops` over `bytes` (`None` for a
    /// model, which needs the kernel's samples).
    pub fn roofline_s(&self, flops: f64, bytes: f64) -> Option<f64> {
        self.roofline_share_s(flops, bytes, 1.0)
    }

    /// A roofline's time for a kernel of `flops` over `bytes` that has
    /// `share` (0 to 1) of the processor.
    pub fn roofline_share_s(&self, flops: f64, bytes: f64, share: f64) -> Option<f64> {
        match *self {
            Times::Roofline {
                flops: peak,
                bandwidth,
                latency_s,
                ..
            } => {
                let share = share.clamp(1e-9, 1.0);
                Some(latency_s + (flops / (peak * share)).max(bytes / (bandwidth * share)))
            }
            Times::Model { .. } => None,
        }
    }
}

/// A link between the host and one or more GPUs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// Its name, which GPUs give as their `link`; GPUs that give the same
    /// name share it (and its bandwidth).
    pub name: String,
    /// Seconds before the first byte.
    pub latency_s: f64,
    /// Bytes per second, each way.
    pub bandwidth: f64,
    /// Where these figures come from.
    #[serde(default)]
    pub source: String,
}

impl LinkSpec {
    /// Seconds to move `bytes` over the link alone.
    pub fn transfer_s(&self, bytes: u64) -> f64 {
        self.latency_s + bytes as f64 / self.bandwidth
    }
}

impl Machine {
    /// Reads and checks the description in `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Machine> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Machine {
            file: file.clone(),
            field: "(file)".to_owned(),
            message: e.to_string(),
        })?;
        Machine::from_json(&text, &file)
    }

    /// Parses and checks a description; `file` names it in errors.
    pub fn from_json(text: &str, file: &str) -> Result<Machine> {
        let m: Machine = serde_json::from_str(text).map_err(|e| Error::Machine {
            file: file.to_owned(),
            field: format!("line {}, column {}", e.line(), e.column()),
            message: e.to_string(),
        })?;
        m.check(file)?;
        Ok(m)
    }

    /// The description as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a machine description is plain data")
    }

    /// The link GPU `g` uses.
    pub fn link_of(&self, g: usize) -> Option<&LinkSpec> {
        let name = &self.gpus.get(g)?.link;
        self.links.iter().find(|l| &l.name == name)
    }

    /// The GPUs sharing each GPU's link, `g` included.
    pub fn sharing_link(&self, g: usize) -> Vec<usize> {
        let Some(link) = self.gpus.get(g).map(|s| &s.link) else {
            return Vec::new();
        };
        (0..self.gpus.len())
            .filter(|&o| &self.gpus[o].link == link)
            .collect()
    }

    /// Every figure positive and finite, names unique, each GPU's link
    /// described.
    pub fn check(&self, file: &str) -> Result<()> {
        let bad = |field: String, message: String| Error::Machine {
            file: file.to_owned(),
            field,
            message,
        };
        if self.cpu.cores == 0 {
            return Err(bad("cpu.cores".into(), "0; at least 1".into()));
        }
        check_times(&self.cpu.times, "cpu.times", &bad)?;
        figure(self.cpu.task_overhead_s, true, "cpu.task_overhead_s", &bad)?;
        if let Some(b) = self.cpu.copy_bandwidth {
            figure(b, false, "cpu.copy_bandwidth", &bad)?;
        }
        let mut names = BTreeSet::new();
        for (i, l) in self.links.iter().enumerate() {
            if !names.insert(l.name.as_str()) {
                return Err(bad(
                    format!("links[{i}].name"),
                    format!("`{}` twice", l.name),
                ));
            }
            figure(l.bandwidth, false, &format!("links[{i}].bandwidth"), &bad)?;
            figure(l.latency_s, true, &format!("links[{i}].latency_s"), &bad)?;
        }
        let mut gpus = BTreeSet::new();
        for (i, g) in self.gpus.iter().enumerate() {
            if !gpus.insert(g.name.as_str()) {
                return Err(bad(
                    format!("gpus[{i}].name"),
                    format!("`{}` twice", g.name),
                ));
            }
            if !names.contains(g.link.as_str()) {
                let known: Vec<&str> = names.iter().copied().collect();
                return Err(bad(
                    format!("gpus[{i}].link"),
                    format!("`{}` is not among the links ({})", g.link, known.join(", ")),
                ));
            }
            if let Some(p) = g.peer_link.as_deref().filter(|p| !names.contains(p)) {
                return Err(bad(
                    format!("gpus[{i}].peer_link"),
                    format!("`{p}` is not among the links"),
                ));
            }
            if g.memory_bytes == 0 {
                return Err(bad(
                    format!("gpus[{i}].memory_bytes"),
                    "0; at least 1".into(),
                ));
            }
            check_times(&g.times, &format!("gpus[{i}].times"), &bad)?;
        }
        Ok(())
    }
}

fn check_times(t: &Times, field: &str, bad: &impl Fn(String, String) -> Error) -> Result<()> {
    match *t {
        Times::Roofline {
            flops,
            bandwidth,
            latency_s,
            threads,
        } => {
            figure(flops, false, &format!("{field}.flops"), bad)?;
            figure(bandwidth, false, &format!("{field}.bandwidth"), bad)?;
            if let Some(t) = threads {
                figure(t, false, &format!("{field}.threads"), bad)?;
            }
            figure(latency_s, true, &format!("{field}.latency_s"), bad)
        }
        Times::Model { ref device, .. } if device.is_empty() => Err(bad(
            format!("{field}.device"),
            "empty; the device's key in the model".into(),
        )),
        Times::Model { .. } => Ok(()),
    }
}

/// `v` finite and above 0, or at least 0 where `zero_ok`.
fn figure(
    v: f64,
    zero_ok: bool,
    field: &str,
    bad: &impl Fn(String, String) -> Error,
) -> Result<()> {
    if v.is_finite() && (v > 0.0 || zero_ok && v == 0.0) {
        return Ok(());
    }
    let want = if zero_ok { "of 0 or more" } else { "above 0" };
    Err(bad(field.to_owned(), format!("{v}; a finite value {want}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: [(&str, &str); 2] = [
        (
            "workstation-pcie4.json",
            include_str!("../../machines/workstation-pcie4.json"),
        ),
        (
            "h200x4-nvlink.json",
            include_str!("../../machines/h200x4-nvlink.json"),
        ),
    ];

    #[test]
    fn the_shipped_descriptions_load_and_say_where_their_figures_come_from() {
        for (file, text) in SHIPPED {
            let m = Machine::from_json(text, file).unwrap();
            assert!(!m.source.is_empty(), "{file}");
            assert!(m.gpus.iter().all(|g| !g.source.is_empty()), "{file}");
            assert!(m.links.iter().all(|l| !l.source.is_empty()), "{file}");
            assert_eq!(Machine::from_json(&m.to_json(), file).unwrap(), m);
        }
        let h200 = Machine::from_json(SHIPPED[1].1, "h200").unwrap();
        assert_eq!(h200.gpus.len(), 4);
        assert_eq!(h200.sharing_link(0), [0]);
        let ws = Machine::from_json(SHIPPED[0].1, "ws").unwrap();
        // 1 GiB over PCIe 4.0 x16 takes tens of milliseconds, not microseconds.
        let t = ws.link_of(0).unwrap().transfer_s(1 << 30);
        assert!((0.02..0.1).contains(&t), "{t}");
    }

    #[test]
    fn a_roofline_is_bound_by_compute_or_by_memory() {
        let t = Times::Roofline {
            flops: 1e12,
            bandwidth: 1e11,
            latency_s: 1e-6,
            threads: None,
        };
        // 1 GFLOP over 1 MB: compute-bound, 1 ms.
        assert!((t.roofline_s(1e9, 1e6).unwrap() - 1.001e-3).abs() < 1e-12);
        // 1 MFLOP over 1 GB: memory-bound, 10 ms.
        assert!((t.roofline_s(1e6, 1e9).unwrap() - 10.001e-3).abs() < 1e-12);
        // A tenth of the processor: ten times as long.
        assert!((t.roofline_share_s(1e9, 1e6, 0.1).unwrap() - 10.001e-3).abs() < 1e-12);
        let m = Times::Model {
            file: None,
            device: "cpu".into(),
        };
        assert_eq!(m.roofline_s(1.0, 1.0), None);
    }

    #[test]
    fn a_bad_description_is_an_error_naming_the_field() {
        let base = Machine::from_json(SHIPPED[0].1, "ws").unwrap();
        let cases: Vec<(Machine, &str)> = vec![
            (
                Machine {
                    cpu: CpuSpec {
                        cores: 0,
                        ..base.cpu.clone()
                    },
                    ..base.clone()
                },
                "cpu.cores",
            ),
            (
                Machine {
                    gpus: vec![GpuSpec {
                        link: "nvlink".into(),
                        ..base.gpus[0].clone()
                    }],
                    ..base.clone()
                },
                "gpus[0].link",
            ),
            (
                Machine {
                    links: vec![LinkSpec {
                        bandwidth: 0.0,
                        ..base.links[0].clone()
                    }],
                    ..base.clone()
                },
                "links[0].bandwidth",
            ),
            (
                Machine {
                    gpus: vec![base.gpus[0].clone(), base.gpus[0].clone()],
                    ..base.clone()
                },
                "gpus[1].name",
            ),
        ];
        for (m, field) in cases {
            let e = m.check("bad.json").unwrap_err();
            assert!(
                matches!(&e, Error::Machine { field: f, .. } if f == field),
                "{field}: {e}"
            );
        }
        let e = Machine::from_json("{\"name\": 3}", "x.json").unwrap_err();
        assert!(e.to_string().contains("x.json"), "{e}");
        let e =
            Machine::from_json(&SHIPPED[0].1.replace("\"cores\"", "\"kores\""), "y").unwrap_err();
        assert!(e.to_string().contains("kores"), "{e}");
        let e = Machine::load("/nonexistent/machine.json").unwrap_err();
        assert!(matches!(e, Error::Machine { .. }), "{e}");
    }
}
