//! Reuse of GPU buffers. Allocation is slow on every driver and a kernel
//! chain allocates the same sizes over and over, so freed buffers wait here,
//! grouped by usage and size class, for the next request of that class.

use std::collections::HashMap;

/// Rounds a request up to its size class: multiples of a quarter of the
/// request's power of two, so at most 25% is wasted, and never under 256 B.
pub(crate) fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(256);
    let pow = bytes.next_power_of_two();
    let step = (pow / 8).max(64);
    bytes.div_ceil(step) * step
}

/// Free GPU buffers by (usage, size class), with a cap on the bytes held.
pub(crate) struct BufferPool {
    free: HashMap<(u32, u64), Vec<wgpu::Buffer>>,
    free_bytes: u64,
    cap_bytes: u64,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
}

impl BufferPool {
    pub(crate) fn new(cap_bytes: u64) -> Self {
        BufferPool {
            free: HashMap::new(),
            free_bytes: 0,
            cap_bytes,
            hits: 0,
            misses: 0,
        }
    }

    /// A free buffer of this usage and class, if one waits.
    pub(crate) fn take(&mut self, usage: wgpu::BufferUsages, class: u64) -> Option<wgpu::Buffer> {
        let buf = self.free.get_mut(&(usage.bits(), class))?.pop()?;
        self.free_bytes -= class;
        self.hits += 1;
        Some(buf)
    }

    /// Gives a buffer back; past the cap it is destroyed instead. Returns
    /// the bytes destroyed.
    pub(crate) fn give(&mut self, buf: wgpu::Buffer) -> u64 {
        let class = buf.size();
        if self.free_bytes + class > self.cap_bytes {
            buf.destroy();
            return class;
        }
        self.free_bytes += class;
        self.free
            .entry((buf.usage().bits(), class))
            .or_default()
            .push(buf);
        0
    }

    /// Destroys every free buffer (used when memory runs short); returns
    /// the bytes of those with `counted` usage.
    pub(crate) fn clear(&mut self, counted: wgpu::BufferUsages) -> u64 {
        let freed: u64 = self
            .free
            .iter()
            .filter(|((usage, _), _)| *usage == counted.bits())
            .map(|((_, class), bufs)| class * bufs.len() as u64)
            .sum();
        for (_, bufs) in self.free.drain() {
            for b in bufs {
                b.destroy();
            }
        }
        self.free_bytes = 0;
        freed
    }

    /// Bytes held by free buffers.
    pub(crate) fn free_bytes(&self) -> u64 {
        self.free_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn classes_round_up_by_at_most_a_quarter() {
        for bytes in [
            0u64,
            1,
            4,
            255,
            256,
            257,
            1000,
            4096,
            4097,
            1 << 20,
            3 << 20,
            123_456_789,
        ] {
            let c = size_class(bytes);
            assert!(c >= bytes.max(256), "{bytes} -> {c}");
            assert!(
                c <= bytes.max(256) + bytes.max(256) / 4 + 64,
                "{bytes} -> {c}"
            );
            assert_eq!(size_class(c), c, "a class is its own class");
        }
    }
}
