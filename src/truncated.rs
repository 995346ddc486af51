//! A list that reports how many there were and names only the first few: what a run
//! document or a record can carry without growing with a hostile or unlucky input.

use serde::Serialize;

/// How many items a document names before it only counts.
pub const SHOWN: usize = 100;

/// `{"count": N, "keys": [the first 100]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Truncated<T> {
    pub count: u64,
    pub keys: Vec<T>,
}

impl<T> Default for Truncated<T> {
    fn default() -> Self {
        Truncated {
            count: 0,
            keys: Vec::new(),
        }
    }
}

impl<T> Truncated<T> {
    pub fn push(&mut self, item: T) {
        self.count += 1;
        if self.keys.len() < SHOWN {
            self.keys.push(item);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds another list's count and as many of its names as there is room for.
    pub fn merge(&mut self, other: Truncated<T>) {
        self.count += other.count;
        let room = SHOWN.saturating_sub(self.keys.len());
        self.keys.extend(other.keys.into_iter().take(room));
    }
}

impl<T> FromIterator<T> for Truncated<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut out = Truncated::default();
        for item in iter {
            out.push(item);
        }
        out
    }
}

impl<T> Extend<T> for Truncated<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for item in iter {
            self.push(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_everything_and_names_the_first_hundred() {
        let t: Truncated<u32> = (0..250).collect();
        assert_eq!(t.count, 250);
        assert_eq!(t.keys.len(), SHOWN);
        assert_eq!(t.keys.first(), Some(&0));
        assert_eq!(t.keys.last(), Some(&99));
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["count"], 250);
    }

    #[test]
    fn merging_keeps_the_count_and_the_cap() {
        let mut a: Truncated<u32> = (0..90).collect();
        a.merge((0..30).collect());
        assert_eq!(a.count, 120);
        assert_eq!(a.keys.len(), SHOWN);
    }
}
