//! The words every layer uses: where a call runs ([`Backend`], [`Target`])
//! and how a size reads. A leaf: it uses nothing else of pel.

use std::fmt;

/// Where a kernel runs: the CPU, or the GPU with this index in
/// [`Runtime::devices`](crate::Runtime::devices) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Backend {
    /// The rayon pool on the host.
    Cpu,
    /// A wgpu adapter, by index (0 is the preferred one).
    Gpu(usize),
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Cpu => f.write_str("cpu"),
            Backend::Gpu(i) => write!(f, "gpu{i}"),
        }
    }
}

/// Where a call should run: chosen by pel, or forced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Target {
    /// Let the runtime choose.
    #[default]
    Auto,
    /// Run on this backend.
    On(Backend),
    /// Split a splittable kernel's items (see
    /// [`KernelBuilder::splittable`](crate::KernelBuilder::splittable)):
    /// the first `permille`/1000 of them on GPU `gpu`, the rest on the CPU.
    Split {
        /// The GPU's index.
        gpu: usize,
        /// The GPU's share, in thousandths (1 to 999).
        permille: u16,
    },
}

impl From<Backend> for Target {
    fn from(b: Backend) -> Self {
        Target::On(b)
    }
}

/// `134217728` → `128 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 || v.fract() == 0.0 {
        format!("{} {}", v as u64, UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
