//! `pel bench peers`: pel against what a user would otherwise write, each
//! pair measured in the same run (shuffled rounds, medians) and reported as
//! a ratio. The peer programs themselves ([`faer_gemm`], [`rayon_saxpy`],
//! [`rayon_sum`], [`RawWgpu`]) are public, so the criterion benches and the
//! kernels suite measure against the same code.
//!
//! - `gemm_vs_faer`: pel's CPU matmul over faer's `matmul` called directly,
//!   1024³ (pel's CPU matmul *is* faer's: a runtime should use the best
//!   implementation it can get; the ratio shows what pel adds).
//! - `saxpy_vs_rayon`: pel's CPU saxpy over a hand-written rayon loop, 16M.
//! - `sort_speedup_vs_par_sort`: rayon's `par_sort_unstable` over pel's CPU
//!   radix sort, 16M random u32 keys.
//! - `gpu_vs_raw_wgpu_saxpy` / `_matmul`: pel on its first GPU over a
//!   hand-written wgpu program dispatching the same shader on the same
//!   adapter, from host data to the result on the host, 16M and 512³.
//! - `dispatch_overhead_us`: per-call time of `rt.run` with automatic
//!   placement (which picks the CPU) minus a direct call of the same
//!   closure, 16 elements.
//! - `chain_vs_raw_wgpu` and `sort_gpu_waits`: see [`chain`].

use std::collections::BTreeMap;

use pel::kernels::matmul::MatmulParams;
use pel::kernels::saxpy::SaxpyParams;
use pel::kernels::{Matmul, Saxpy, Sort};
use pel::{Backend, Error, Kernel, ReadWrite, Result, Runtime, Target};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;

use crate::interleaved;

pub mod chain;

/// The peers benchmark's report: the six ratios, then every median.
#[derive(Debug, Clone, Serialize)]
pub struct PeersReport {
    /// pel CPU matmul time / faer time (target ≤ 1.10).
    pub gemm_vs_faer: f64,
    /// pel CPU saxpy time / hand-written rayon loop time (target ≤ 1.10).
    pub saxpy_vs_rayon: f64,
    /// `par_sort_unstable` time / pel CPU radix sort time (target ≥ 1.5).
    pub sort_speedup_vs_par_sort: f64,
    /// pel on the first GPU / the hand-written wgpu program, saxpy
    /// (target ≤ 1.05; `null` without a GPU).
    pub gpu_vs_raw_wgpu_saxpy: Option<f64>,
    /// The same for matmul.
    pub gpu_vs_raw_wgpu_matmul: Option<f64>,
    /// Per-call overhead of `rt.run`, microseconds (target ≤ 0.6).
    pub dispatch_overhead_us: f64,
    /// pel over a hand-written wgpu program that records a chain of
    /// [`chain::CALLS`] saxpy calls into one submit: the worst ratio over
    /// the sizes and over `run` and `submit` (`null` without a GPU).
    pub chain_vs_raw_wgpu: Option<f64>,
    /// Host waits during one GPU radix sort of 1M keys, its result read
    /// back included (`null` without a GPU).
    pub sort_gpu_waits: Option<u64>,
    /// Median seconds of every measured program.
    pub medians_s: BTreeMap<String, f64>,
    /// Problem sizes: matmul n, saxpy and sort elements, GPU matmul n.
    pub sizes: BTreeMap<String, usize>,
    /// Timed rounds per pair.
    pub reps: usize,
    /// The GPU compared, if any.
    pub gpu: Option<String>,
}

impl PeersReport {
    /// Every median as CSV rows: the mode is the program measured
    /// (`gemm_pel`, `gemm_faer`...), the kernel its first word.
    pub fn csv_rows(&self) -> Vec<pel::csv::Row> {
        self.medians_s
            .iter()
            .map(|(k, v)| pel::csv::Row {
                suite: "peers",
                kernel: k.split('_').next().unwrap_or(k).to_owned(),
                size: 0,
                shape: String::new(),
                mode: k.clone(),
                seconds: *v,
            })
            .collect()
    }
}

/// `n` seeded random f32 in [-1, 1).
pub fn random_f32(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// The CPU GEMM a user would call: faer's `c = a·b`, row-major n×n, on
/// rayon's pool.
pub fn faer_gemm(a: &[f32], b: &[f32], c: &mut [f32], n: usize) {
    use faer::{Accum, MatMut, MatRef, Par};
    faer::linalg::matmul::matmul(
        MatMut::from_row_major_slice_mut(c, n, n),
        Accum::Replace,
        MatRef::from_row_major_slice(a, n, n),
        MatRef::from_row_major_slice(b, n, n),
        1.0f32,
        Par::rayon(0),
    );
}

/// The saxpy a user would write with rayon: `y += a·x` in chunks of 16K.
pub fn rayon_saxpy(a: f32, x: &[f32], y: &mut [f32]) {
    y.par_chunks_mut(1 << 14)
        .zip(x.par_chunks(1 << 14))
        .for_each(|(y, x)| {
            for (y, &x) in y.iter_mut().zip(x) {
                *y += a * x;
            }
        });
}

/// The sum a user would write with rayon: chunks of 16K, each summed in
/// eight lanes so it vectorises, then the chunk sums.
pub fn rayon_sum(x: &[f32]) -> f32 {
    x.par_chunks(1 << 14)
        .map(|c| {
            let mut lanes = [0.0f32; 8];
            let mut it = c.chunks_exact(8);
            for v in &mut it {
                for (l, &x) in lanes.iter_mut().zip(v) {
                    *l += x;
                }
            }
            lanes.iter().sum::<f32>() + it.remainder().iter().sum::<f32>()
        })
        .sum()
}

/// Times pel (`ours`) against its peer in shuffled rounds, each run's input
/// made untimed by `prepare` (mode 0 is pel's, 1 the peer's), files both
/// medians under `names` and returns pel's over the peer's.
fn pair<T>(
    medians: &mut BTreeMap<String, f64>,
    names: [&str; 2],
    reps: usize,
    seed: u64,
    prepare: impl FnMut(u8) -> Result<T>,
    mut ours: impl FnMut(&mut T) -> Result<()>,
    mut peer: impl FnMut(&mut T) -> Result<()>,
) -> Result<f64> {
    let t = interleaved(
        &[0u8, 1],
        reps,
        seed,
        prepare,
        |m, input| if m == 0 { ours(input) } else { peer(input) },
        |_| false,
    )?;
    medians.insert(names[0].to_owned(), t[&0]);
    medians.insert(names[1].to_owned(), t[&1]);
    Ok(t[&0] / t[&1])
}

/// Puts each host vector into its buffer, as a user's new data would come.
fn upload(rt: &Runtime, vectors: &[(&pel::Buffer<f32>, &[f32])]) -> Result<()> {
    vectors.iter().try_for_each(|(b, v)| rt.write(b, v))
}

/// Runs the peers benchmark (`quick`: smaller sizes). `step` is told after
/// each pair.
pub fn peers(
    rt: &Runtime,
    quick: bool,
    reps: usize,
    step: &mut dyn FnMut(usize, usize, &str),
) -> Result<PeersReport> {
    let reps = reps.max(3);
    let (gemm_n, elems, gpu_n) = if quick {
        (256, 1 << 20, 128)
    } else {
        (1024, 1 << 24, 512)
    };
    let mut medians = BTreeMap::new();
    let total = 7;
    let cpu = Target::On(Backend::Cpu);

    // GEMM: pel's CPU matmul against faer called directly.
    let (a, b) = (
        random_f32(1, gemm_n * gemm_n),
        random_f32(2, gemm_n * gemm_n),
    );
    let matmul = Matmul::new()?;
    let (ab, bb) = (rt.buffer(&a), rt.buffer(&b));
    let cb = rt.zeros::<f32>(gemm_n * gemm_n);
    let mut c = vec![0.0f32; gemm_n * gemm_n];
    let gemm = pair(
        &mut medians,
        ["gemm_pel_cpu", "gemm_faer"],
        reps,
        1,
        |_| Ok(()),
        |_| {
            matmul.run(rt, cpu, &ab, &bb, &cb, gemm_n, gemm_n, gemm_n)?;
            Ok(())
        },
        |_| {
            faer_gemm(&a, &b, &mut c, gemm_n);
            Ok(())
        },
    )?;
    step(1, total, "gemm");

    // saxpy: pel's CPU saxpy against a hand-written rayon loop.
    let (x, y0) = (random_f32(3, elems), random_f32(4, elems));
    let saxpy = Saxpy::new()?;
    let (xb, yb) = (rt.buffer(&x), rt.buffer(&y0));
    let mut y = y0.clone();
    let sax = pair(
        &mut medians,
        ["saxpy_pel_cpu", "saxpy_rayon"],
        reps * 3,
        2,
        |_| Ok(()),
        |_| {
            saxpy.run(rt, cpu, 0.5, &xb, &yb)?;
            Ok(())
        },
        |_| {
            rayon_saxpy(0.5, &x, &mut y);
            Ok(())
        },
    )?;
    step(2, total, "saxpy");

    // Sort: fresh random keys each run, put in place untimed (pel's into
    // its buffer on the host, the peer's into a Vec).
    let sort = Sort::new()?;
    let keys_b = rt.zeros::<u32>(elems);
    let mut rng = StdRng::seed_from_u64(5);
    let sorted = pair(
        &mut medians,
        ["sort_pel_cpu", "sort_par_sort_unstable"],
        reps,
        3,
        |m| {
            let keys: Vec<u32> = (0..elems).map(|_| rng.random()).collect();
            if m == 0 {
                rt.write(&keys_b, &keys)?;
                return Ok(Vec::new());
            }
            Ok(keys)
        },
        |_| {
            sort.radix_sort(rt, cpu, &keys_b)?;
            Ok(())
        },
        |keys| {
            keys.par_sort_unstable();
            Ok(())
        },
    )?;
    step(3, total, "sort");

    // The GPU against a hand-written wgpu program on the same adapter, from
    // host data to the result on the host.
    let gpu = rt.gpu_backends().first().copied();
    let (mut gpu_saxpy, mut gpu_matmul) = (None, None);
    // The peer runs on pel's own wgpu device, so that both sides meet the
    // same driver state: lavapipe can run a device's small dispatches up
    // to 2x slower for the rest of its life once it has run large ones
    // (a 1K chain took 4.6 ms on pel's device after five 16M saxpys, 2.1
    // on a fresh peer device; on one device both slowed alike).
    let raw = gpu.map(|g| RawWgpu::on(rt, g)).transpose()?;
    if let (Some(g), Some(raw)) = (gpu, &raw) {
        type Run<'a> = &'a mut dyn FnMut(&mut ()) -> Result<()>;
        let mut vs_raw = |names, seed, ours: Run<'_>, raw: Run<'_>| {
            pair(&mut medians, names, reps, seed, |_| Ok(()), ours, raw)
        };
        let (sx, sy) = (random_f32(6, elems), random_f32(7, elems));
        let (sxb, syb) = (rt.buffer(&sx), rt.buffer(&sy));
        let p = SaxpyParams {
            a: 0.5,
            n: elems as u32,
        };
        gpu_saxpy = Some(vs_raw(
            ["saxpy_pel_gpu", "saxpy_raw_wgpu"],
            4,
            &mut |_| {
                upload(rt, &[(&sxb, &sx), (&syb, &sy)])?;
                saxpy.run(rt, Target::On(g), 0.5, &sxb, &syb)?;
                rt.read(&syb).map(drop)
            },
            &mut |_| {
                let args = [bytemuck::cast_slice(&sx), bytemuck::cast_slice(&sy)];
                let groups = (elems as u64).div_ceil(256);
                let params = bytemuck::bytes_of(&p);
                raw.run(pel::kernels::saxpy::WGSL, &args, params, groups)
                    .map(drop)
            },
        )?);
        step(4, total, "gpu saxpy");

        let (ga, gb) = (random_f32(8, gpu_n * gpu_n), random_f32(9, gpu_n * gpu_n));
        let (gab, gbb) = (rt.buffer(&ga), rt.buffer(&gb));
        let gcb = rt.zeros::<f32>(gpu_n * gpu_n);
        let zero_c = vec![0.0f32; gpu_n * gpu_n];
        let mp = MatmulParams::new(gpu_n, gpu_n, gpu_n)?;
        gpu_matmul = Some(vs_raw(
            ["matmul_pel_gpu", "matmul_raw_wgpu"],
            5,
            &mut |_| {
                upload(rt, &[(&gab, &ga), (&gbb, &gb)])?;
                matmul.run(rt, Target::On(g), &gab, &gbb, &gcb, gpu_n, gpu_n, gpu_n)?;
                rt.read(&gcb).map(drop)
            },
            &mut |_| {
                let args = [
                    bytemuck::cast_slice(&ga),
                    bytemuck::cast_slice(&gb),
                    bytemuck::cast_slice(&zero_c),
                ];
                let params = bytemuck::bytes_of(&mp);
                raw.run(pel::kernels::matmul::WGSL, &args, params, mp.tiles as u64)
                    .map(drop)
            },
        )?);
    }
    step(5, total, "gpu matmul");

    let (mut chain_ratio, mut sort_waits) = (None, None);
    if let (Some(g), Some(raw)) = (gpu, &raw) {
        chain_ratio = Some(chain::chain_vs_raw(rt, g, raw, reps, &mut medians)?);
        sort_waits = Some(chain::sort_gpu_waits(rt, g)?);
    }
    step(6, total, "gpu chains");

    let overhead = dispatch_overhead_us(rt)?;
    step(7, total, "overhead");

    Ok(PeersReport {
        gemm_vs_faer: gemm,
        saxpy_vs_rayon: sax,
        sort_speedup_vs_par_sort: 1.0 / sorted,
        gpu_vs_raw_wgpu_saxpy: gpu_saxpy,
        gpu_vs_raw_wgpu_matmul: gpu_matmul,
        dispatch_overhead_us: overhead,
        chain_vs_raw_wgpu: chain_ratio,
        sort_gpu_waits: sort_waits,
        medians_s: medians,
        sizes: [
            ("gemm_n".to_owned(), gemm_n),
            ("elements".to_owned(), elems),
            ("gpu_matmul_n".to_owned(), gpu_n),
        ]
        .into_iter()
        .collect(),
        reps,
        gpu: gpu.and_then(|g| rt.device(g).ok()).map(|d| d.label()),
    })
}

/// `rt.run` of a 16-element kernel, placed automatically (on the CPU, once
/// calibrated), against a direct call of the same closure: the difference
/// per call, microseconds (medians of rounds of 20,000 calls each).
fn dispatch_overhead_us(rt: &Runtime) -> Result<f64> {
    fn add_one(x: &mut [f32]) {
        for v in x {
            *v += 1.0;
        }
    }
    let kernel = Kernel::builder(
        "overhead_probe",
        r#"
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pel_index(id, groups);
    if i < arrayLength(&x) { x[i] = x[i] + 1.0; }
}
"#,
    )
    .cpu::<(ReadWrite<f32>,)>(|args, _: &()| {
        let (x,) = args.split();
        add_one(x);
    })
    .build()?;
    let buf = rt.buffer(&[0.0f32; 16]);
    let mut host = [0.0f32; 16];
    const CALLS: usize = 20_000;
    // Untimed: the model learns the kernel (a few calls on each GPU), so
    // the timed calls are placed as a calibrated program's are.
    for _ in 0..300 {
        rt.run(&kernel, &[&buf], &())?;
    }
    let mut medians = BTreeMap::new();
    pair(
        &mut medians,
        ["rt.run", "direct"],
        7,
        6,
        |_| Ok(()),
        |_| {
            for _ in 0..CALLS {
                rt.run(&kernel, &[&buf], &())?;
            }
            Ok(())
        },
        |_| {
            for _ in 0..CALLS {
                add_one(std::hint::black_box(&mut host));
            }
            Ok(())
        },
    )?;
    Ok((medians["rt.run"] - medians["direct"]) / CALLS as f64 * 1e6)
}

/// A hand-written wgpu program: the adapter pel calls `gpu`, a compute
/// pipeline and buffers made once per shader, and per run an upload of
/// every argument, one dispatch and the download of the last argument —
/// what a user writing against wgpu directly would do.
pub struct RawWgpu {
    label: String,
    device: wgpu::Device,
    queue: wgpu::Queue,
    /// Per shader and argument sizes: its pipeline, argument buffers,
    /// uniform and staging.
    programs: std::cell::RefCell<BTreeMap<(String, Vec<usize>), Program>>,
}

struct Program {
    pipeline: wgpu::ComputePipeline,
    buffers: Vec<wgpu::Buffer>,
    uniform: wgpu::Buffer,
    staging: wgpu::Buffer,
    group: wgpu::BindGroup,
}

impl RawWgpu {
    /// Opens a wgpu device of its own on the adapter that `rt` calls `gpu`.
    pub fn open(rt: &Runtime, gpu: Backend) -> Result<RawWgpu> {
        let info = rt.device(gpu)?;
        let label = info.label();
        let fail = |message: String| Error::Gpu {
            kernel: "raw wgpu program".to_owned(),
            device: label.clone(),
            message,
        };
        let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        let backends = desc.backends;
        let instance = wgpu::Instance::new(desc);
        let adapter = pollster::block_on(instance.enumerate_adapters(backends))
            .into_iter()
            .find(|a| {
                let i = a.get_info();
                i.name == info.name && i.backend.to_str() == info.api
            })
            .ok_or_else(|| fail("wgpu lists no such adapter".to_owned()))?;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("raw"),
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| fail(e.to_string()))?;
        Ok(RawWgpu {
            label,
            device,
            queue,
            programs: Default::default(),
        })
    }

    /// Runs on the wgpu device and queue of `rt`'s GPU `gpu` itself (see
    /// [`Runtime::wgpu_device`]): pel and the peer then share the device
    /// and whatever state its driver keeps.
    pub fn on(rt: &Runtime, gpu: Backend) -> Result<RawWgpu> {
        let label = rt.device(gpu)?.label();
        let (device, queue) = rt.wgpu_device(gpu)?.ok_or_else(|| Error::Gpu {
            kernel: "raw wgpu program".to_owned(),
            device: label.clone(),
            message: "not a wgpu device".to_owned(),
        })?;
        Ok(RawWgpu {
            label,
            device,
            queue,
            programs: Default::default(),
        })
    }

    fn program(&self, wgsl: &str, args: &[&[u8]], params: &[u8]) -> Program {
        let d = &self.device;
        let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: None,
            source: wgpu::ShaderSource::Wgsl(wgsl.into()),
        });
        let pipeline = d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: None,
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let buffers: Vec<wgpu::Buffer> = args
            .iter()
            .map(|a| {
                d.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size: a.len() as u64,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        let uniform = d.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: params.len() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: buffers.len() as u32,
            resource: uniform.as_entire_binding(),
        });
        let group = d.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let staging = d.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: args.last().map_or(0, |a| a.len() as u64),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Program {
            pipeline,
            buffers,
            uniform,
            staging,
            group,
        }
    }

    /// Uploads `args`, dispatches `groups` workgroups (folded into 2-D past
    /// 65,535, as pel's shaders expect) and reads the last argument back.
    /// The pipeline and buffers are made on a shader's first run with
    /// arguments of these sizes, and kept for the next.
    pub fn run(&self, wgsl: &str, args: &[&[u8]], params: &[u8], groups: u64) -> Result<Vec<u8>> {
        self.chain(wgsl, args, params, groups, 1, true)
    }

    /// The same dispatch `calls` times in a row, all recorded into one
    /// compute pass of one command buffer and submitted once, then the last argument read back
    /// (one host wait): what a program that batches its work does. With
    /// `upload` false the arguments stay as the last run left them, on the
    /// device.
    pub fn chain(
        &self,
        wgsl: &str,
        args: &[&[u8]],
        params: &[u8],
        groups: u64,
        calls: usize,
        upload: bool,
    ) -> Result<Vec<u8>> {
        let fail = |message: String| Error::Gpu {
            kernel: "raw wgpu program".to_owned(),
            device: self.label.clone(),
            message,
        };
        let mut programs = self.programs.borrow_mut();
        let sizes = args.iter().chain([&params]).map(|a| a.len()).collect();
        let p = programs
            .entry((wgsl.to_owned(), sizes))
            .or_insert_with(|| self.program(wgsl, args, params));
        let out = p
            .buffers
            .last()
            .ok_or_else(|| fail("no argument to read back".to_owned()))?;
        if upload {
            for (b, a) in p.buffers.iter().zip(args) {
                self.queue.write_buffer(b, 0, a);
            }
        }
        self.queue.write_buffer(&p.uniform, 0, params);
        let size = out.size();
        let x = groups.min(65_535) as u32;
        let y = groups.div_ceil(65_535) as u32;
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            // One pass for the chain: a pass costs the driver more than a
            // dispatch (wgpu gives each its own command buffers), and
            // wgpu's barriers order dispatches inside a pass.
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&p.pipeline);
            pass.set_bind_group(0, &p.group, &[]);
            for _ in 0..calls {
                pass.dispatch_workgroups(x, y, 1);
            }
        }
        enc.copy_buffer_to_buffer(out, 0, &p.staging, 0, size);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        p.staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| fail(e.to_string()))?;
        rx.recv()
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(e.to_string()))?;
        let data = p
            .staging
            .get_mapped_range(..)
            .map_err(|e| fail(e.to_string()))?
            .to_vec();
        p.staging.unmap();
        Ok(data)
    }
}
