//! The task graph's edges, keyed by buffer id: for each buffer, the
//! submitted task that produces its current version and the submitted
//! tasks that read that version. A new task depends on the producer of
//! everything it uses and on the readers of what it overwrites; a host
//! access waits for the same. The buffer table knows nothing of tasks.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Error;

use super::TaskInner;

/// One buffer's edges.
#[derive(Default)]
pub(crate) struct Edge {
    producer: Option<Arc<TaskInner>>,
    consumers: Vec<Arc<TaskInner>>,
}

/// Every buffer's edges (a buffer no task has touched has none).
#[derive(Default)]
pub(crate) struct Edges {
    by_buffer: HashMap<u64, Edge>,
}

impl Edges {
    /// The submitted task that produces the buffer's current version.
    pub(crate) fn producer(&self, id: u64) -> Option<&Arc<TaskInner>> {
        self.by_buffer.get(&id)?.producer.as_ref()
    }

    /// Submitted tasks reading the current version that may not have run.
    pub(crate) fn consumers(&self, id: u64) -> &[Arc<TaskInner>] {
        self.by_buffer
            .get(&id)
            .map_or(&[], |e| e.consumers.as_slice())
    }

    /// The submitted tasks the host (or a call made now) must wait for
    /// that have not finished: the producer of each buffer read or written,
    /// and the readers of each buffer written.
    pub(crate) fn unsettled(&self, reads: &[u64], writes: &[u64]) -> Vec<Arc<TaskInner>> {
        let mut first = Vec::new();
        for id in reads.iter().chain(writes) {
            if let Some(p) = self.producer(*id) {
                if !p.is_finished() {
                    first.push(Arc::clone(p));
                }
            }
        }
        for id in writes {
            for c in self.consumers(*id) {
                if !c.is_finished() {
                    first.push(Arc::clone(c));
                }
            }
        }
        first
    }

    /// Records `task` as the producer of the buffer's next version (`None`:
    /// the host or a synchronous call wrote it).
    pub(crate) fn set_producer(&mut self, id: u64, task: Option<Arc<TaskInner>>) {
        match task {
            Some(t) => {
                let e = self.by_buffer.entry(id).or_default();
                e.producer = Some(t);
                e.consumers.clear();
            }
            None => {
                self.by_buffer.remove(&id);
            }
        }
    }

    /// Forgets what a synchronous call made stale: a producer that has
    /// finished, where the call wrote a newer version (`overwritten`), or
    /// that finished without failing (a failure stays, for the readers it
    /// fails); and the readers that have finished. An edge left empty goes.
    /// (A producer or reader submitted meanwhile stays.)
    pub(crate) fn prune(&mut self, id: u64, overwritten: bool) {
        let Some(e) = self.by_buffer.get_mut(&id) else {
            return;
        };
        let stale = e.producer.as_ref().is_some_and(|t| {
            t.is_finished()
                && (overwritten || t.state().outcome.as_ref().is_some_and(|o| o.is_ok()))
        });
        if stale {
            e.producer = None;
        }
        e.consumers.retain(|t| !t.is_finished());
        if e.producer.is_none() && e.consumers.is_empty() {
            self.by_buffer.remove(&id);
        }
    }

    /// Whether no buffer has edges.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_buffer.is_empty()
    }

    /// Records `task` as a reader of the buffer's current version.
    pub(crate) fn add_consumer(&mut self, id: u64, task: Arc<TaskInner>) {
        let e = self.by_buffer.entry(id).or_default();
        e.consumers.retain(|t| !t.is_finished());
        e.consumers.push(task);
    }

    /// A freed buffer's edges, for the caller to drop once no lock is held
    /// (a task they hold may hold buffers).
    pub(crate) fn remove(&mut self, id: u64) -> Option<Edge> {
        self.by_buffer.remove(&id)
    }

    /// The failure of a submitted task that produced one of these buffers,
    /// as the error of `what`, which needed them.
    pub(crate) fn failed_input<'a>(
        &self,
        what: &str,
        ids: impl IntoIterator<Item = &'a u64>,
    ) -> Option<Error> {
        ids.into_iter().find_map(|id| {
            let p = self.producer(*id)?;
            match p.state().outcome.as_ref()? {
                Err(e) => Some(p.failure_for(what, e)),
                Ok(_) => None,
            }
        })
    }

    /// The failure of the submitted task that should have written buffer
    /// `id`, as the error of a host access to it.
    pub(crate) fn failed_writer(&self, id: u64) -> Option<Error> {
        let p = self.producer(id)?;
        match p.state().outcome.as_ref()? {
            Err(e) => Some(p.writer_failure(id, e)),
            Ok(_) => None,
        }
    }
}
