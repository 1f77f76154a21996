//! One wgpu adapter opened as a device: its queue, its compiled pipelines,
//! its buffer pool, and the primitive moves (upload, download, clear,
//! dispatch). Every wgpu call that can fail runs inside validation and
//! out-of-memory error scopes, so failures come back as values.

mod groups;
mod launch;
mod open;
mod pool;
mod stream;

pub(crate) use open::open_all;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use std::time::Duration;

use super::{Args, BusSamples, Device, DeviceInfo, DeviceLimits, Launch, Liveness, Memory};
use crate::error::{Error, Result};
use pool::{BufferPool, size_class};

/// Usage of pooled buffers that hold kernel arguments.
pub(crate) const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);
const UNIFORM: wgpu::BufferUsages = wgpu::BufferUsages::UNIFORM.union(wgpu::BufferUsages::COPY_DST);
const READBACK: wgpu::BufferUsages =
    wgpu::BufferUsages::MAP_READ.union(wgpu::BufferUsages::COPY_DST);
const RESOLVE: wgpu::BufferUsages =
    wgpu::BufferUsages::QUERY_RESOLVE.union(wgpu::BufferUsages::COPY_SRC);

struct Pipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

pub(crate) struct GpuDevice {
    info: DeviceInfo,
    limits: DeviceLimits,
    device: wgpu::Device,
    queue: wgpu::Queue,
    lost: Liveness,
    pipelines: Mutex<HashMap<u64, Arc<Pipeline>>>,
    pool: Mutex<BufferPool>,
    /// wgpu's GL backend holds one context lock through long waits and
    /// panics when another thread waits for it too long; on GL every device
    /// operation therefore takes this lock first, one thread at a time.
    serial: Option<Mutex<()>>,
    /// Nanoseconds per timestamp tick, where the device has timestamp queries.
    timestamp_period: Option<f32>,
    /// Bytes of the buffers this device holds (in use or pooled).
    used: AtomicU64,
    /// The most it may hold (`PEL_GPU_MEMORY_BUDGET`).
    budget: Option<u64>,
    /// `PEL_INJECT=gpu-oom`: every allocation fails.
    inject_oom: bool,
    /// Times the host blocked until this device finished a submission.
    waits: AtomicU64,
    /// Timestamp query sets of two queries, free for the next timed launch.
    query_sets: Mutex<Vec<wgpu::QuerySet>>,
    /// Bind groups made so far (see [`groups`]).
    groups: Mutex<groups::BindGroups>,
    /// The launches queued and in flight (see [`stream`]).
    stream: Mutex<stream::Stream>,
    /// Launches per batch (`PEL_GPU_BATCH`; 1: every launch waits).
    batch: usize,
    /// The expected time of an open batch at which it is submitted while
    /// the device has nothing in flight (see [`stream`]).
    eager_s: f64,
    /// The device's alignment of uniform buffer offsets.
    uniform_align: u64,
    /// What a waited launch costs beyond its device time (see
    /// [`Device::launch_latency`]), measured as the device opens where it
    /// queues and times its launches.
    latency: Duration,
}

impl GpuDevice {
    /// The GL serialisation lock (`None` elsewhere); see `serial`.
    fn exclusive(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        self.serial
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs `f` inside out-of-memory and validation error scopes.
    fn scoped<T>(&self, doing: &str, kernel: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = o {
            return Err(Error::OutOfMemory {
                device: self.label(),
                doing: doing.to_owned(),
                message: one_line(&e.to_string()),
            });
        }
        if let Some(e) = v {
            self.check_alive()?;
            return Err(Error::Gpu {
                kernel: kernel.to_owned(),
                device: self.label(),
                message: one_line(&e.to_string()),
            });
        }
        Ok(value)
    }

    /// A buffer of at least `bytes` (from the pool where one is free).
    fn alloc_buffer(&self, bytes: u64) -> Result<wgpu::Buffer> {
        let _serial = self.exclusive();
        self.alloc_usage(bytes, STORAGE)
    }

    fn alloc_usage(&self, bytes: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
        let class = size_class(bytes);
        // A class may round past the largest buffer; then ask for the exact size.
        let class = if class > self.limits.max_buffer {
            bytes.next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT)
        } else {
            class
        };
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = pool.take(usage, class) {
            return Ok(b);
        }
        pool.misses += 1;
        let oom = |message: String| Error::OutOfMemory {
            device: self.label(),
            doing: format!("allocating {}", super::human_bytes(class)),
            message,
        };
        // The budget is for device memory: argument buffers. Staging and
        // uniform buffers are host-visible and small, and a write-back must
        // always find one.
        let counted = usage == STORAGE;
        if self.inject_oom && counted {
            return Err(oom("injected by PEL_INJECT=gpu-oom".to_owned()));
        }
        if let (Some(budget), true) = (self.budget, counted) {
            if self.used.load(Ordering::Relaxed) + class > budget {
                let freed = pool.clear(STORAGE);
                self.forget_groups();
                self.used.fetch_sub(freed, Ordering::Relaxed);
                let used = self.used.load(Ordering::Relaxed);
                if used + class > budget {
                    return Err(oom(format!(
                        "{} in use of a budget of {} (PEL_GPU_MEMORY_BUDGET)",
                        super::human_bytes(used),
                        super::human_bytes(budget)
                    )));
                }
            }
        }
        let create = || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("pel buffer"),
                size: class,
                usage,
                mapped_at_creation: false,
            })
        };
        let made = match self.scoped("allocating a buffer", "buffer", create) {
            Err(Error::OutOfMemory { .. }) => {
                // Free what the pool holds and try once more.
                let freed = pool.clear(STORAGE);
                self.forget_groups();
                self.used.fetch_sub(freed, Ordering::Relaxed);
                self.scoped(&format!("allocating {bytes} bytes"), "buffer", create)
            }
            other => other,
        }?;
        if counted {
            self.used.fetch_add(class, Ordering::Relaxed);
        }
        Ok(made)
    }

    /// Returns a buffer to the pool.
    fn release_buffer(&self, buf: wgpu::Buffer) {
        let _serial = self.exclusive();
        let mut s = self.stream();
        // The open batch may still use it: it goes back once submitted.
        if s.is_open() {
            s.hold(buf);
        } else {
            drop(s);
            self.give_back(buf);
        }
    }

    fn give_back(&self, buf: wgpu::Buffer) {
        let counted = buf.usage() == STORAGE;
        let destroyed = self
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .give(buf);
        if destroyed > 0 {
            self.forget_groups();
        }
        if counted {
            self.used.fetch_sub(destroyed, Ordering::Relaxed);
        }
    }

    /// Empties the bind group cache: the pool has destroyed buffers that
    /// cached groups may bind (and would otherwise keep alive).
    fn forget_groups(&self) {
        self.groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Copies host bytes into the start of `buf`.
    fn upload_buffer(&self, buf: &wgpu::Buffer, bytes: &[u8]) -> Result<()> {
        let _serial = self.exclusive();
        self.check_alive()?;
        if bytes.is_empty() {
            return Ok(());
        }
        // wgpu writes before the next submission's commands: what is
        // queued must go first.
        self.submit_batch(&mut self.stream())?;
        self.scoped("uploading", "upload", || {
            self.queue.write_buffer(buf, 0, bytes)
        })
    }

    /// Zeroes the first `bytes` of `buf` on the device, moving nothing.
    fn clear_buffer(&self, buf: &wgpu::Buffer, bytes: u64) -> Result<()> {
        let _serial = self.exclusive();
        self.check_alive()?;
        let size = bytes.next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT);
        if size == 0 {
            return Ok(());
        }
        // In queue order with the launches (submitted with them).
        let mut s = self.stream();
        self.scoped("clearing a buffer", "clear", || {
            self.encoder(&mut s).clear_buffer(buf, 0, Some(size));
        })
    }

    /// Copies the first `out.len()` bytes of `buf` to the host, waiting.
    fn download_buffer(&self, buf: &wgpu::Buffer, out: &mut [u8]) -> Result<()> {
        let _serial = self.exclusive();
        self.check_alive()?;
        if out.is_empty() {
            return Ok(());
        }
        let size = (out.len() as u64).next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT);
        let staging = self.alloc_usage(size, READBACK)?;
        // The copy goes after what is queued, and the host waits for that
        // submission only.
        let (index, upto) = {
            let mut s = self.stream();
            self.scoped("downloading", "download", || {
                self.encoder(&mut s)
                    .copy_buffer_to_buffer(buf, 0, &staging, 0, size);
            })?;
            (self.submit_batch(&mut s)?, Self::submitted(&s))
        };
        let index = index.expect("the copy opened a batch");
        self.read_mapped(&staging, out, index)?;
        self.finished_before(upto);
        self.give_back(staging);
        Ok(())
    }

    /// Maps a readback buffer whose copy went in submission `index`, waits
    /// for that submission (one host wait), and copies its first
    /// `out.len()` bytes out.
    fn read_mapped(
        &self,
        staging: &wgpu::Buffer,
        out: &mut [u8],
        index: wgpu::SubmissionIndex,
    ) -> Result<()> {
        let size = (out.len() as u64).next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, 0..size, move |r| {
            let _ = tx.send(r);
        });
        self.wait(index)?;
        rx.recv()
            .map_err(|_| self.lost_or("the readback was dropped"))?
            .map_err(|e| self.lost_or(&e.to_string()))?;
        {
            let view = staging
                .get_mapped_range(0..size)
                .map_err(|e| self.lost_or(&e.to_string()))?;
            out.copy_from_slice(&view[..out.len()]);
        }
        staging.unmap();
        Ok(())
    }

    fn lost_or(&self, message: &str) -> Error {
        match self.check_alive() {
            Err(e) => e,
            Ok(()) => Error::Gpu {
                kernel: "download".to_owned(),
                device: self.label(),
                message: one_line(message),
            },
        }
    }

    /// Blocks until submission `index` (and every one before it) has
    /// finished on the device: one host wait.
    fn wait(&self, index: wgpu::SubmissionIndex) -> Result<()> {
        self.waits.fetch_add(1, Ordering::Relaxed);
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .map(|_| ())
            .map_err(|e| match self.check_alive() {
                Err(lost) => lost,
                Ok(()) => Error::DeviceLost {
                    device: self.label(),
                    reason: e.to_string(),
                },
            })
    }
}

/// The time between two timestamps `[start, end]` of a device whose tick
/// is `period` nanoseconds (`None` where the pair is not in order: a
/// query that was not written, or a driver's wrap).
fn stamp_span(period: f32, [start, end]: [u64; 2]) -> Option<Duration> {
    (end > start).then(|| Duration::from_nanos(((end - start) as f64 * period as f64) as u64))
}

impl Device for GpuDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Declares the device lost (`PEL_INJECT=gpu-lost@N`): every later
    /// operation fails with [`Error::DeviceLost`], as after a driver reset.
    fn lose(&self, reason: &str) {
        self.lost.lose(reason);
        self.abandon();
    }

    /// The memory budget, bytes, if one is set.
    fn budget(&self) -> Option<u64> {
        self.budget
    }

    fn wgpu(&self) -> Option<(wgpu::Device, wgpu::Queue)> {
        Some((self.device.clone(), self.queue.clone()))
    }

    /// Destroys the pool's free buffers.
    fn trim(&self) {
        let _serial = self.exclusive();
        let freed = self
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear(STORAGE);
        self.forget_groups();
        self.used.fetch_sub(freed, Ordering::Relaxed);
    }

    /// `Err(DeviceLost)` once the driver reported the device lost.
    fn check_alive(&self) -> Result<()> {
        self.lost.check(|| self.label())
    }

    /// Pool statistics: (hits, misses, free bytes).
    fn pool_stats(&self) -> (u64, u64, u64) {
        let p = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        (p.hits, p.misses, p.free_bytes())
    }

    /// Sets the pool's hit and miss counters back to zero (the free
    /// buffers stay).
    fn reset_pool_stats(&self) {
        let mut p = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        p.hits = 0;
        p.misses = 0;
    }

    /// Measures the bus both ways: the best of three transfers of 4 KiB and
    /// of 16 MiB each way gives the latency and the bandwidth.
    fn measure_bus(&self) -> Result<BusSamples> {
        const SMALL: u64 = 4 << 10;
        const LARGE: u64 = 16 << 20;
        let buf = self.alloc_buffer(LARGE)?;
        let mut host = vec![0x5au8; LARGE as usize];
        // upload, flush and download each serialise themselves on GL.
        let best = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
            let mut best = f64::INFINITY;
            for _ in 0..3 {
                let t = std::time::Instant::now();
                f()?;
                best = best.min(t.elapsed().as_secs_f64());
            }
            Ok(best)
        };
        let up = |n: u64| -> Result<f64> {
            best(&mut || {
                self.upload_buffer(&buf, &host[..n as usize])?;
                self.flush()
            })
        };
        let (up_small, up_large) = (up(SMALL)?, up(LARGE)?);
        let mut down = |n: u64| -> Result<f64> {
            best(&mut || self.download_buffer(&buf, &mut host[..n as usize]))
        };
        let (down_small, down_large) = (down(SMALL)?, down(LARGE)?);
        self.release_buffer(buf);
        Ok(BusSamples {
            up: [(SMALL, up_small), (LARGE, up_large)],
            down: [(SMALL, down_small), (LARGE, down_large)],
        })
    }

    /// Whether every operation on this device takes a lock (GL): then work
    /// is not queued to it from a second thread while it runs.
    fn serialised(&self) -> bool {
        self.serial.is_some()
    }

    /// Submits what is queued (launches, uploads) without waiting for it.
    fn kick(&self) -> usize {
        let mut s = self.stream();
        let launches = s.open_launches();
        if self.submit_batch(&mut s).ok().flatten().is_none() {
            self.queue.submit([]);
            return 0;
        }
        launches
    }

    /// Submits what is queued (launches, uploads) and waits for it.
    fn flush(&self) -> Result<()> {
        let _serial = self.exclusive();
        let (index, upto) = {
            let mut s = self.stream();
            self.submit_batch(&mut s)?;
            // Uploads written since wait for a submission of their own.
            (self.queue.submit([]), Self::submitted(&s))
        };
        self.wait(index)?;
        self.finished_before(upto);
        Ok(())
    }

    fn queue_launch(&self, l: Launch<'_>) -> Result<Option<u64>> {
        let Args::Device(bound) = l.args else {
            return Err(self.wrong_args());
        };
        if !self.batches() || l.timed {
            return self
                .dispatch(l.kernel, bound, l.params, l.workgroups, l.timed)
                .map(|_| None);
        }
        self.dispatch_queued(
            l.kernel,
            bound,
            l.params,
            l.workgroups,
            (l.expect_s, l.sample),
        )
    }

    fn finished(&self) -> Vec<(u64, Option<Duration>)> {
        self.take_finished()
    }

    fn launch_latency(&self) -> Duration {
        self.latency
    }

    fn queues(&self) -> bool {
        self.batches()
    }

    fn quiet(&self) -> bool {
        GpuDevice::quiet(self)
    }

    fn host_waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    fn reset_host_waits(&self) {
        self.waits.store(0, Ordering::Relaxed);
    }

    /// Whether this device has made the kernel's pipeline: a failure before
    /// it was made is the shader's, and lasts.
    fn has_pipeline(&self, kernel: u64) -> bool {
        self.pipelines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&kernel)
    }

    fn execute(&self, l: Launch<'_>) -> Result<Option<Duration>> {
        let Args::Device(bound) = l.args else {
            return Err(self.wrong_args());
        };
        self.dispatch(l.kernel, bound, l.params, l.workgroups, l.timed)
    }

    fn limits(&self) -> Option<&DeviceLimits> {
        Some(&self.limits)
    }

    fn alloc(&self, bytes: u64) -> Result<Memory> {
        self.alloc_buffer(bytes).map(Memory::Wgpu)
    }

    fn release(&self, memory: Memory) {
        if let Memory::Wgpu(b) = memory {
            self.release_buffer(b);
        }
    }

    fn upload(&self, memory: &Memory, bytes: &[u8]) -> Result<()> {
        self.upload_buffer(wgpu_buffer(memory), bytes)
    }

    fn clear(&self, memory: &Memory, bytes: u64) -> Result<()> {
        self.clear_buffer(wgpu_buffer(memory), bytes)
    }

    fn download(&self, memory: &Memory, out: &mut [u8]) -> Result<()> {
        self.download_buffer(wgpu_buffer(memory), out)
    }
}

/// The wgpu buffer of a copy this device made (it makes no other kind).
fn wgpu_buffer(memory: &Memory) -> &wgpu::Buffer {
    match memory {
        Memory::Wgpu(b) => b,
        Memory::Sim(_) => unreachable!(
            "a GPU holds only wgpu buffers: the table pairs each copy with the device that made it"
        ),
    }
}

/// wgpu's message as one line: its validation errors span several (the
/// error, then its causes, indented), and a log line or a test's assertion
/// reads an error as one. Lines are joined with "; ", runs of whitespace
/// become one space, blank lines go.
pub(crate) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::one_line;
    use crate::device::limits::fold;

    #[test]
    fn messages_fold_into_one_line() {
        let wgpu = "Validation Error\n\nCaused by:\n  In Device::create_compute_pipeline, label = 'k'\n    Error matching shader requirements\r\n\t  too   much  \n\n";
        assert_eq!(
            one_line(wgpu),
            "Validation Error; Caused by:; In Device::create_compute_pipeline, label = 'k'; Error matching shader requirements; too much"
        );
        assert_eq!(one_line("one line"), "one line");
        assert_eq!(one_line(""), "");
    }

    #[test]
    fn folding_covers_every_workgroup_within_the_limit() {
        for (w, d) in [
            (0u64, 65535u32),
            (1, 65535),
            (65535, 65535),
            (65536, 65535),
            (131071, 65535),
            (65535 * 65535, 65535),
            (999_999, 1000),
            (15, 4),
            (16, 4),
        ] {
            let (x, y) = fold(w, d).expect("fits");
            assert!(x <= d && y <= d, "{w} over {d}: {x}×{y}");
            let total = x as u64 * y as u64;
            assert!(total >= w, "{w}: {x}×{y} covers too few");
            assert!(total - w < y as u64, "{w}: {x}×{y} wastes a whole row");
        }
        assert_eq!(fold(65535u64 * 65535 + 1, 65535), None);
        assert_eq!(fold(17, 4), None);
    }
}
