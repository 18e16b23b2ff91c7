//! One key range per node, sized by the node's CPU capacity, so that nodes backing up at rates
//! proportional to their cores finish together.

/// A node's part of the keyspace: keys `from..to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KeyRange {
    /// First key (inclusive).
    pub from: u64,
    /// End (exclusive).
    pub to: u64,
}

impl KeyRange {
    /// Keys in the range.
    pub fn len(&self) -> u64 {
        self.to - self.from
    }
}

/// Splits `0..keys` into one contiguous range per weight, each as near `keys × weight / total`
/// as whole keys allow, in order, every range holding at least one key.
///
/// # Errors
/// A message when a weight is not positive and finite, or there are fewer keys than weights.
pub fn split(keys: u64, weights: &[f64]) -> Result<Vec<KeyRange>, String> {
    if weights.is_empty() {
        return Err("no node to split the keyspace over".into());
    }
    if let Some(bad) = weights.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
        return Err(format!("a node's capacity is {bad} cores: every node needs a positive capacity"));
    }
    let n = weights.len() as u64;
    if keys < n {
        return Err(format!("{keys} keys cannot be split over {n} nodes: use at least one key per node"));
    }
    let total: f64 = weights.iter().sum();
    let mut ranges = Vec::with_capacity(weights.len());
    let (mut from, mut before) = (0u64, 0.0f64);
    for (i, weight) in weights.iter().enumerate() {
        before += weight;
        let left = n - i as u64 - 1; // ranges after this one, each needing a key
        let to = if left == 0 {
            keys
        } else {
            ((keys as f64 * before / total).round() as u64).clamp(from + 1, keys - left)
        };
        ranges.push(KeyRange { from, to });
        from = to;
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_the_weights_and_tile_the_keyspace() {
        let r = |from, to| KeyRange { from, to };
        assert_eq!(split(30_000, &[1.0, 2.0]).unwrap(), vec![r(0, 10_000), r(10_000, 30_000)]);
        assert_eq!(split(10, &[1.0, 1.0, 1.0]).unwrap(), vec![r(0, 3), r(3, 7), r(7, 10)]);
        assert_eq!(split(7, &[0.5]).unwrap(), vec![r(0, 7)]);
        // A tiny weight still gets a key, and the others keep theirs.
        assert_eq!(split(3, &[0.001, 10.0, 10.0]).unwrap(), vec![r(0, 1), r(1, 2), r(2, 3)]);
        for (keys, weights) in [(1_000_003u64, vec![1.5, 2.0, 0.25]), (5, vec![4.0, 1.0])] {
            let ranges = split(keys, &weights).unwrap();
            assert_eq!(ranges.first().unwrap().from, 0);
            assert_eq!(ranges.last().unwrap().to, keys);
            assert!(ranges.windows(2).all(|w| w[0].to == w[1].from && w[0].len() > 0));
        }
    }

    #[test]
    fn bad_splits_are_refused() {
        assert!(split(1, &[1.0, 1.0]).unwrap_err().contains("at least one key per node"));
        assert!(split(10, &[]).is_err());
        assert!(split(10, &[1.0, 0.0]).unwrap_err().contains("positive"));
        assert!(split(10, &[f64::NAN]).is_err());
    }
}
