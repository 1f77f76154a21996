//! # pel — Parallel Execution Layer
//!
//! Runs compute kernels on whichever processor does them best. Each kernel is
//! a WGSL compute shader for wgpu plus a Rust implementation for a rayon
//! pool; the runtime knows from the shader itself what each kernel reads and
//! writes, and keeps every buffer's valid copy where it was last written, so
//! data moves only when it must.
//!
//! This crate is the front door: the engine ([`pel_runtime`]) re-exported at
//! the top, the sample kernels as [`kernels`], and what the `pel` command
//! line does with them, as functions that return reports: the [`tour`],
//! [`calibrate`]-ing the performance model, the [`demo`] task graph, and
//! the [`csv`] every median is written as. The command line itself (crate
//! `pel-cli`) and the benchmark suites (`pel-bench`) are crates of their
//! own, so a program that depends on pel compiles neither.
//!
//! # Examples
//!
//! ```
//! use pel::{Backend, Runtime, Target};
//! use pel::kernels::Saxpy;
//!
//! let rt = Runtime::new()?;
//! let saxpy = Saxpy::new()?;
//! let x = rt.buffer(&[1.0f32, 2.0, 3.0]);
//! let y = rt.buffer(&[10.0f32, 20.0, 30.0]);
//! saxpy.run(&rt, Target::On(Backend::Cpu), 2.0, &x, &y)?;
//! assert_eq!(rt.read(&y)?, vec![12.0, 24.0, 36.0]);
//! # Ok::<(), pel::Error>(())
//! ```

#![deny(missing_docs, unreachable_pub)]

pub mod calibrate;
pub mod csv;
pub mod demo;
#[cfg(feature = "cluster")]
pub mod distributed;
pub mod tour;

pub use pel_kernels as kernels;
pub use pel_runtime::*;

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
