//! Human durations on the command line: `10s`, `500ms`, `2m`, `1.5s`, `250us`, `1h`.

use std::time::Duration;

/// Parses a number followed by a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`).
///
/// # Errors
///
/// A message saying what was wrong and what a valid duration looks like.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let hint = "write a number and a unit, e.g. 500ms, 10s, 2m (units: ns, us, ms, s, m, h)";
    if number.is_empty() {
        return Err(format!("`{text}` is not a duration: {hint}"));
    }
    let value: f64 = number.parse().map_err(|_| format!("`{number}` is not a number: {hint}"))?;
    let unit_secs = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "" => return Err(format!("`{text}` has no unit: {hint}")),
        other => return Err(format!("`{other}` is not a unit: {hint}")),
    };
    Duration::try_from_secs_f64(value * unit_secs).map_err(|_| format!("`{text}` is too long: {hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn refuses_bad_input_with_a_hint() {
        for bad in ["", "10", "s", "ten s", "10 parsecs", "1.2.3s", "1e300h"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("e.g. 500ms"), "{bad}: {err}");
        }
    }
}
