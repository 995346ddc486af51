//! Attacker-chosen text in refusal details and log fields, cut short: a detail names what
//! was wrong, it never carries the document.

/// At most this many characters of one value go into a detail.
pub const DETAIL_CHARS: usize = 128;

/// `s` cut to [`DETAIL_CHARS`] characters, with `…` when something was left out.
pub fn short(s: &str) -> String {
    let mut out: String = s.chars().take(DETAIL_CHARS).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_and_marked() {
        assert_eq!(short("abc"), "abc");
        let long = "é".repeat(DETAIL_CHARS + 5);
        let cut = short(&long);
        assert_eq!(cut.chars().count(), DETAIL_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
