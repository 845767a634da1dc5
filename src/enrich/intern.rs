//! Strings numbered 0, 1, 2, … in the order they first arrive, kept side by side in one
//! buffer.
//!
//! A map keyed by owned strings finds the slot fast, then compares the key through a
//! pointer to wherever that string was allocated: on a large text that read misses the
//! cache more often than not, and it was most of the time of analysing a long post. Here
//! every comparison reads the one buffer, which stays cached.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

#[derive(Default, Clone)]
pub struct Interner {
    /// Ids, found by the hash of their string.
    table: HashTable<u32>,
    /// Every string, one after the other.
    text: String,
    /// Where string `i` ends in `text` (it starts where `i - 1` ends).
    ends: Vec<usize>,
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner")
            .field("strings", &self.ends.len())
            .finish()
    }
}

fn hash(s: &str) -> u64 {
    FxBuildHasher.hash_one(s)
}

/// String `id` of `text` and `ends`.
fn string<'a>(text: &'a str, ends: &[usize], id: u32) -> &'a str {
    let i = id as usize;
    let start = if i == 0 { 0 } else { ends[i - 1] };
    &text[start..ends[i]]
}

impl Interner {
    /// The id of `s`, numbering it when it is new; and whether it was new.
    pub fn intern(&mut self, s: &str) -> (u32, bool) {
        let h = hash(s);
        let (text, ends) = (&self.text, &self.ends);
        if let Some(id) = self.table.find(h, |id| string(text, ends, *id) == s) {
            return (*id, false);
        }
        let id = self.ends.len() as u32;
        self.text.push_str(s);
        self.ends.push(self.text.len());
        let (text, ends) = (&self.text, &self.ends);
        self.table
            .insert_unique(h, id, |id| hash(string(text, ends, *id)));
        (id, true)
    }

    /// String `id` (an id this interner gave).
    pub fn resolve(&self, id: u32) -> &str {
        string(&self.text, &self.ends, id)
    }

    /// Every string, by id.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.ends.len() as u32).map(|id| self.resolve(id))
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Bytes held by the strings.
    pub fn bytes(&self) -> usize {
        self.text.len()
    }

    pub fn clear(&mut self) {
        self.table.clear();
        self.text.clear();
        self.ends.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_strings_in_order_of_arrival_and_finds_them_again() {
        let mut interner = Interner::default();
        assert_eq!(interner.intern("tide"), (0, true));
        assert_eq!(interner.intern("moon"), (1, true));
        assert_eq!(interner.intern("tide"), (0, false));
        assert_eq!(interner.intern(""), (2, true));
        assert_eq!(interner.intern("moon"), (1, false));
        assert_eq!(interner.intern("mo"), (3, true));
        assert_eq!(interner.resolve(1), "moon");
        assert_eq!(interner.resolve(2), "");
        assert_eq!(
            interner.iter().collect::<Vec<_>>(),
            ["tide", "moon", "", "mo"]
        );
        // Many strings, the table growing under them, and prefixes of one another.
        for n in 0..20_000u32 {
            let s = "x".repeat((n % 7) as usize) + &n.to_string();
            let (id, _) = interner.intern(&s);
            assert_eq!(interner.resolve(id), s);
            assert_eq!(interner.intern(&s), (id, false));
        }
        interner.clear();
        assert_eq!((interner.len(), interner.bytes()), (0, 0));
        assert_eq!(interner.intern("moon"), (0, true));
    }
}
