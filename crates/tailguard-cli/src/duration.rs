//! Human durations on the command line: `10s`, `500ms`, `2m`, `1.5s`, `250us`, `1h` (the
//! library's grammar, which the `x-tailguard-deadline` header shares).

pub(crate) use tailguard::clock::parse_duration;
