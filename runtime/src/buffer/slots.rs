//! The table's entries, addressed by id without hashing: an id names a
//! slot of a vector and the slot's generation, so a lookup (every lease,
//! host copy and write of every call) is an index and a compare. A freed
//! slot is used again under the next generation, so an old id never finds
//! a new buffer (until one slot has been used 2^32 times: its generation
//! then starts again).

/// Bits of an id that name its slot (plus one: no id is 0).
const SLOT_BITS: u32 = 32;

/// Entries by id.
pub(super) struct Slots<E> {
    /// Each slot's current id (its generation and index) and entry.
    slots: Vec<(u64, Option<E>)>,
    /// Slots free for the next insert.
    free: Vec<u32>,
}

impl<E> Default for Slots<E> {
    fn default() -> Self {
        Slots {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

/// The slot an id names.
fn slot(id: u64) -> usize {
    ((id as u32).wrapping_sub(1)) as usize
}

impl<E> Slots<E> {
    /// Keeps `entry`; its id (never 0, never one given before).
    pub(super) fn insert(&mut self, entry: E) -> u64 {
        match self.free.pop() {
            Some(i) => {
                let (id, e) = &mut self.slots[i as usize];
                let generation = ((*id >> SLOT_BITS) + 1) & u64::from(u32::MAX);
                *id = (generation << SLOT_BITS) | (u64::from(i) + 1);
                *e = Some(entry);
                *id
            }
            None => {
                let index = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|&i| i < u32::MAX)
                    .expect("fewer than 2^32 - 1 buffers live at once");
                let id = u64::from(index) + 1;
                self.slots.push((id, Some(entry)));
                id
            }
        }
    }

    /// The entry of `id`, if it is live.
    pub(super) fn get(&self, id: &u64) -> Option<&E> {
        match self.slots.get(slot(*id)) {
            Some((live, e)) if live == id => e.as_ref(),
            _ => None,
        }
    }

    /// The entry of `id`, if it is live.
    pub(super) fn get_mut(&mut self, id: &u64) -> Option<&mut E> {
        match self.slots.get_mut(slot(*id)) {
            Some((live, e)) if live == id => e.as_mut(),
            _ => None,
        }
    }

    /// Takes the entry of `id` out, if it is live; its slot is free.
    pub(super) fn remove(&mut self, id: &u64) -> Option<E> {
        let i = slot(*id);
        match self.slots.get_mut(i) {
            Some((live, e)) if live == id && e.is_some() => {
                self.free.push(i as u32);
                e.take()
            }
            _ => None,
        }
    }

    /// Every live entry and its id.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&u64, &E)> {
        self.slots
            .iter()
            .filter_map(|(id, e)| e.as_ref().map(|e| (id, e)))
    }

    /// Every live entry.
    pub(super) fn values(&self) -> impl Iterator<Item = &E> {
        self.slots.iter().filter_map(|(_, e)| e.as_ref())
    }

    /// Every live entry, to change.
    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut E> {
        self.slots.iter_mut().filter_map(|(_, e)| e.as_mut())
    }
}

impl<E> std::ops::Index<&u64> for Slots<E> {
    type Output = E;

    fn index(&self, id: &u64) -> &E {
        self.get(id).expect("a live handle keeps its table entry")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_find_their_entries_and_a_freed_ones_never_a_new_one() {
        let mut s = Slots::default();
        let a = s.insert("a");
        let b = s.insert("b");
        assert_eq!((a, b), (1, 2), "fresh slots give 1, 2, ...");
        assert_eq!((s.get(&a), s[&b]), (Some(&"a"), "b"));
        assert_eq!(s.remove(&a), Some("a"));
        assert_eq!(s.get(&a), None);
        assert_eq!(s.remove(&a), None);
        let c = s.insert("c");
        assert_ne!(c, a, "the slot is used again under a new id");
        assert_eq!((s.get(&a), s.get(&c)), (None, Some(&"c")));
        *s.get_mut(&c).unwrap() = "c2";
        let mut live: Vec<(u64, &str)> = s.iter().map(|(id, e)| (*id, *e)).collect();
        live.sort_unstable();
        assert_eq!(live, vec![(b, "b"), (c, "c2")]);
        assert_eq!(s.values().count(), 2);
        assert_eq!(
            (s.get(&0), s.get(&99), s.get(&(c + (1 << 32)))),
            (None, None, None)
        );
    }
}
