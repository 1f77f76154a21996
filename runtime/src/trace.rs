//! Chrome trace events (they open in ui.perfetto.dev): one lane per device,
//! named by a `thread_name` metadata event, plus a lane for transfers. Off
//! unless asked for (`PEL_TRACE=FILE`, the builder, or
//! [`Runtime::enable_trace`](crate::Runtime::enable_trace)); when off,
//! recording costs one atomic load.
//!
//! Spans are wall-clock times on the host, except that a GPU kernel on a
//! device with timestamp queries lasts as long as the device measured, and
//! ends when the host saw it end; on other devices a GPU span runs from
//! submission to completion as the host saw it.
//!
//! Counter tracks (`"ph": "C"`) follow values over time: each GPU's host
//! waits, sampled after each of its kernels and readbacks.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use serde::Serialize;

/// One span of work on one lane.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceEvent {
    /// What ran: a kernel's name, or a transfer.
    pub name: String,
    /// The lane: 0 is the CPU, `g + 1` GPU g, and the last the transfers.
    pub tid: u32,
    /// Start, microseconds since the runtime started.
    pub ts: f64,
    /// Duration, microseconds.
    pub dur: f64,
}

pub(crate) struct Tracer {
    start: Instant,
    enabled: AtomicBool,
    /// A simulated runtime's: only spans on the virtual clock
    /// ([`span_at`](Self::span_at)) are recorded.
    virtual_clock: AtomicBool,
    lanes: Vec<String>,
    events: Mutex<Vec<TraceEvent>>,
    /// Counter samples: (counter, microseconds since the start, value).
    counters: Mutex<Vec<(String, f64, u64)>>,
}

impl Tracer {
    pub(crate) fn new(lanes: Vec<String>, enabled: bool) -> Self {
        Tracer {
            start: Instant::now(),
            enabled: AtomicBool::new(enabled),
            virtual_clock: AtomicBool::new(false),
            lanes,
            events: Mutex::new(Vec::new()),
            counters: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    pub(crate) fn on(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// From now on, records only spans on the virtual clock.
    pub(crate) fn use_virtual_clock(&self) {
        self.virtual_clock.store(true, Ordering::Relaxed);
    }

    /// Whether host-clock spans are recorded.
    fn host_clock(&self) -> bool {
        self.on() && !self.virtual_clock.load(Ordering::Relaxed)
    }

    /// Records a span on the virtual clock: `start_s` and `dur_s` seconds.
    pub(crate) fn span_at(&self, name: impl Into<String>, tid: u32, start_s: f64, dur_s: f64) {
        if !self.on() {
            return;
        }
        self.push(name.into(), tid, start_s * 1e6, dur_s * 1e6);
    }

    /// Keeps one span (microseconds).
    fn push(&self, name: String, tid: u32, ts: f64, dur: f64) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(TraceEvent { name, tid, ts, dur });
    }

    /// The lane of the transfers.
    pub(crate) fn transfer_lane(&self) -> u32 {
        self.lanes.len() as u32 - 1
    }

    /// Records a span that began at `began` and ends now.
    pub(crate) fn span(&self, name: impl Into<String>, tid: u32, began: Instant) {
        // The clock is read only for a trace: a CPU call reads it enough.
        if !self.host_clock() {
            return;
        }
        let end = Instant::now();
        self.span_ending(name, tid, end, end.saturating_duration_since(began));
    }

    /// Records a span of `dur` that ended at `end` (a kernel timed on its
    /// device: the host saw it end at `end`).
    pub(crate) fn span_ending(
        &self,
        name: impl Into<String>,
        tid: u32,
        end: Instant,
        dur: std::time::Duration,
    ) {
        if !self.host_clock() {
            return;
        }
        let began = end.checked_sub(dur).unwrap_or(end);
        let ts = began.saturating_duration_since(self.start).as_secs_f64() * 1e6;
        self.push(name.into(), tid, ts, dur.as_secs_f64() * 1e6);
    }

    /// Records counter `name`'s value now (a counter track in Perfetto),
    /// where it changed since its last sample.
    pub(crate) fn counter(&self, name: &str, value: u64) {
        if !self.host_clock() {
            return;
        }
        let ts = self.start.elapsed().as_secs_f64() * 1e6;
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let last = counters.iter().rev().find(|(n, ..)| n == name);
        if last.is_none_or(|&(_, _, v)| v != value) {
            counters.push((name.to_owned(), ts, value));
        }
    }

    pub(crate) fn events(&self) -> Vec<TraceEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The trace as Chrome trace-event JSON.
    pub(crate) fn to_json(&self) -> String {
        let mut out = Vec::new();
        for (tid, name) in self.lanes.iter().enumerate() {
            out.push(serde_json::json!({
                "name": "thread_name", "ph": "M", "pid": 1, "tid": tid,
                "args": { "name": name },
            }));
        }
        for e in self.events() {
            out.push(serde_json::json!({
                "name": e.name, "ph": "X", "pid": 1, "tid": e.tid,
                "ts": e.ts, "dur": e.dur, "cat": if e.tid == self.transfer_lane() { "transfer" } else { "kernel" },
            }));
        }
        for (name, ts, value) in self
            .counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            out.push(serde_json::json!({
                "name": name, "ph": "C", "pid": 1, "ts": ts,
                "args": { "count": value },
            }));
        }
        serde_json::json!({ "traceEvents": out, "displayTimeUnit": "ms" }).to_string()
    }

    /// Writes the trace to `path`, atomically.
    pub(crate) fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, self.to_json())?;
        std::fs::rename(&tmp, path)
    }
}
