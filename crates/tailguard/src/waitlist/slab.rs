//! Waiters stored at reusable indices, named by keys that go stale when they leave.

/// Names a waiter in a [`Slab`]: where it lives, and its arrival number.
///
/// Arrival numbers are never reused, so a key kept after its waiter left (in a list, in the
/// heap) never names the next waiter stored at the same index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct WaiterKey {
    /// Arrival number: unique over the queue's life, and the FIFO order.
    pub(crate) seq: u64,
    pub(crate) index: usize,
}

/// Values stored at reusable indices, each named by a [`WaiterKey`].
pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    /// Indices of empty entries, reused last-freed first.
    free: Vec<usize>,
}

struct Entry<T> {
    seq: u64,
    value: Option<T>,
}

impl<T> Slab<T> {
    pub(crate) fn new() -> Self {
        Slab { entries: Vec::new(), free: Vec::new() }
    }

    /// Stores `value` under arrival number `seq`, which the caller never uses twice.
    pub(crate) fn insert(&mut self, seq: u64, value: T) -> WaiterKey {
        let entry = Entry { seq, value: Some(value) };
        let index = match self.free.pop() {
            Some(index) => {
                self.entries[index] = entry;
                index
            }
            None => {
                self.entries.push(entry);
                self.entries.len() - 1
            }
        };
        WaiterKey { seq, index }
    }

    /// The value `key` names, unless it was removed.
    #[inline]
    pub(crate) fn get(&self, key: WaiterKey) -> Option<&T> {
        self.entries.get(key.index).filter(|entry| entry.seq == key.seq)?.value.as_ref()
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, key: WaiterKey) -> Option<&mut T> {
        self.entries.get_mut(key.index).filter(|entry| entry.seq == key.seq)?.value.as_mut()
    }

    /// Takes the value `key` names out; its index is reused by a later insert.
    pub(crate) fn remove(&mut self, key: WaiterKey) -> Option<T> {
        let entry = self.entries.get_mut(key.index).filter(|entry| entry.seq == key.seq)?;
        let value = entry.value.take()?;
        self.free.push(key.index);
        Some(value)
    }

    /// Keys of the values stored, in index order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = WaiterKey> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, entry)| entry.value.is_some())
            .map(|(index, entry)| WaiterKey { seq: entry.seq, index })
    }

    /// Values stored.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }
}
