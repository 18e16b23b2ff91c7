//! The key range of a backup: `POST /jobs/backup`'s optional JSON body.
//!
//! ```json
//! {"from": 0, "to": 50000, "resume_from": 31744}
//! ```
//!
//! Keys are the store's decimal `u64` keys, as JSON numbers. `from` (default 0) is inclusive,
//! `to` (default: the end of the keyspace) exclusive; `resume_from` (default `from`) starts the
//! export later in the range, where an earlier backup of the same range stopped: the part
//! `from..resume_from` is that backup's, the new file holds `resume_from..to`. Unknown fields are
//! refused, so a misspelt option is never silently ignored.

use serde::{Deserialize, Serialize};

use crate::workload::keyspace::Key;

/// The keys a backup exports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRange {
    /// First key of the range (inclusive); 0 when absent.
    #[serde(default)]
    pub from: u64,
    /// End of the range (exclusive); the end of the keyspace when absent.
    #[serde(default)]
    pub to: Option<u64>,
    /// Where this backup starts within the range (inclusive); `from` when absent.
    #[serde(default)]
    pub resume_from: Option<u64>,
}

impl BackupRange {
    /// The whole keyspace.
    pub const ALL: BackupRange = BackupRange { from: 0, to: None, resume_from: None };

    /// Checks that the range holds a key and that `resume_from` lies inside it.
    ///
    /// # Errors
    /// A message naming the field to change.
    pub fn check(&self) -> Result<(), String> {
        if let Some(to) = self.to {
            if to <= self.from {
                return Err(format!("the range is empty: `to` ({to}) must be above `from` ({})", self.from));
            }
        }
        if let Some(resume) = self.resume_from {
            let inside = resume >= self.from && self.to.is_none_or(|to| resume < to);
            if !inside {
                let to = self.to.map_or_else(|| "the end".to_owned(), |to| to.to_string());
                return Err(format!(
                    "`resume_from` ({resume}) is outside the range {}..{to}: resume at a key of the range",
                    self.from
                ));
            }
        }
        Ok(())
    }

    /// Where the export starts.
    pub fn start(&self) -> Key {
        Key(self.resume_from.unwrap_or(self.from))
    }

    /// Where the export stops (exclusive).
    pub fn until(&self) -> Option<Key> {
        self.to.map(Key)
    }

    /// Whether this is the whole keyspace from its start.
    pub fn is_all(&self) -> bool {
        *self == Self::ALL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_hold_a_key_and_resume_inside_them() {
        let range = |from, to, resume_from| BackupRange { from, to, resume_from };
        assert!(BackupRange::ALL.check().is_ok());
        assert!(range(10, Some(20), Some(10)).check().is_ok());
        assert!(range(10, Some(20), Some(19)).check().is_ok());
        assert!(range(10, None, Some(1_000)).check().is_ok());
        assert!(range(10, Some(10), None).check().unwrap_err().contains("empty"));
        assert!(range(10, Some(5), None).check().unwrap_err().contains("empty"));
        assert!(range(10, Some(20), Some(20)).check().unwrap_err().contains("outside"));
        assert!(range(10, Some(20), Some(9)).check().unwrap_err().contains("outside"));
        assert_eq!(range(10, Some(20), Some(15)).start(), Key(15));
        assert_eq!(range(10, Some(20), None).start(), Key(10));
    }

    #[test]
    fn unknown_fields_and_non_keys_are_refused() {
        let parse = |text: &str| serde_json::from_str::<BackupRange>(text);
        assert_eq!(parse("{}").unwrap(), BackupRange::ALL);
        assert_eq!(
            parse(r#"{"from": 5, "to": 9, "resume_from": 7}"#).unwrap(),
            BackupRange { from: 5, to: Some(9), resume_from: Some(7) }
        );
        assert!(parse(r#"{"keys": 5}"#).unwrap_err().to_string().contains("unknown field `keys`"));
        assert!(parse(r#"{"from": -1}"#).is_err());
        assert!(parse(r#"{"from": 1.5}"#).is_err());
        assert!(parse(r#"{"from": "1"}"#).is_err());
    }
}
