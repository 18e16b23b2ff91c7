//! The order of the runs within each round: a balanced Latin square.
//!
//! Run one after another, the modes of a round see a machine that drifts (other tenants of the
//! VM, caches, the kernel's load balancing). If one mode always ran first, or always right after
//! the same mode, that drift would pass for an effect of the mode. [`order`] gives each round a
//! row of a Williams design: over `n` rounds (`2n` when `n` is odd) every item runs once in every
//! position and immediately after every other item equally often.

/// The order in which `items` runs go in round `round` (0-based): a permutation of
/// `0..items`.
///
/// Row `r` of a Williams design: the first row is `0, 1, n-1, 2, n-2, …`, row `r` adds `r`
/// modulo `n`, and for odd `n` rows `n..2n` are rows `0..n` reversed. The rows repeat with a
/// period of `n` (even) or `2n` (odd).
pub fn order(items: usize, round: usize) -> Vec<usize> {
    if items == 0 {
        return Vec::new();
    }
    let period = if items % 2 == 0 { items } else { 2 * items };
    let row = round % period;
    let shift = row % items;
    // 0, 1, n-1, 2, n-2, …: alternately the next from the bottom and the next from the top.
    let first = (0..items).map(|j| if j % 2 == 1 { j.div_ceil(2) } else { (items - j / 2) % items });
    let mut order: Vec<usize> = first.map(|item| (item + shift) % items).collect();
    if row >= items {
        order.reverse();
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_rows_are_williams_rows() {
        assert_eq!(order(4, 0), [0, 1, 3, 2]);
        assert_eq!(order(4, 1), [1, 2, 0, 3]);
        assert_eq!(order(3, 0), [0, 1, 2]);
        assert_eq!(order(3, 3), [2, 1, 0]);
        assert_eq!(order(1, 5), [0]);
        assert!(order(0, 2).is_empty());
    }

    #[test]
    fn every_item_runs_once_in_every_position() {
        for items in 1..=10 {
            for round in 0..3 * items {
                let mut seen = order(items, round);
                seen.sort_unstable();
                assert_eq!(seen, (0..items).collect::<Vec<_>>(), "round {round} of {items} is a permutation");
            }
            // Over the n rounds of each half of the period (any n consecutive rounds when n is
            // even), each item holds each position once.
            let starts: &[usize] = if items % 2 == 0 { &[0, 1, 3] } else { &[0, items] };
            for &start in starts {
                let mut count = vec![vec![0; items]; items];
                for round in start..start + items {
                    for (position, &item) in order(items, round).iter().enumerate() {
                        count[item][position] += 1;
                    }
                }
                assert!(
                    count.iter().flatten().all(|&c| c == 1),
                    "{items} items from round {start}: {count:?}"
                );
            }
        }
    }

    #[test]
    fn every_item_follows_every_other_equally_often() {
        for items in 2..=10 {
            let rounds = if items % 2 == 0 { items } else { 2 * items };
            let mut follows = vec![vec![0; items]; items];
            for round in 0..rounds {
                for pair in order(items, round).windows(2) {
                    follows[pair[0]][pair[1]] += 1;
                }
            }
            let each = rounds / items;
            for (a, row) in follows.iter().enumerate() {
                for (b, &count) in row.iter().enumerate() {
                    assert_eq!(count, if a == b { 0 } else { each }, "{items} items: {b} after {a}");
                }
            }
        }
    }

    #[test]
    fn no_item_always_first_or_always_after_the_same_item() {
        // The demo's default: eight modes and the second baseline, over two and five rounds.
        for rounds in [2, 5] {
            for item in 0..9 {
                let mut before = Vec::new();
                for round in 0..rounds {
                    let order = order(9, round);
                    let at = order.iter().position(|&i| i == item).unwrap();
                    before.push(at.checked_sub(1).map(|p| order[p]));
                }
                before.sort_unstable();
                before.dedup();
                assert!(before.len() > 1, "item {item} always after {before:?} in {rounds} rounds");
            }
        }
    }
}
