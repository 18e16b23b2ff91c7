//! How many malloc arenas `serve` lets glibc keep.
//!
//! glibc gives threads up to eight arenas per core, and memory freed in one arena is reused by
//! the threads that landed on it only. `serve`'s threads (runtime workers, the blocking pool, the
//! job threads, the probe, the limiter) allocate in turn, so over a long run the freed memory
//! spreads across more and more arenas and the resident set keeps creeping up. The soak
//! (`scripts/soak.sh`, ten minutes) measured RSS 11.2 % above its after-warm-up figure with
//! glibc's default, 4.6 % with two arenas.

/// Arenas `serve` asks for unless told otherwise.
pub const DEFAULT_ARENAS: u32 = 2;

/// What became of the request, for the startup log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arenas {
    /// Capped at this many.
    Capped(u32),
    /// `MALLOC_ARENA_MAX` is set in the environment: glibc already follows it.
    FromEnvironment,
    /// Left to the allocator (asked for 0, or not glibc).
    Default,
    /// glibc refused the setting.
    Refused,
}

/// Caps glibc's arenas at `max` (0 leaves the allocator's default). Call before other threads
/// start: threads already running keep the arenas they have.
pub fn cap(max: u32) -> Arenas {
    if max == 0 {
        return Arenas::Default;
    }
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return Arenas::FromEnvironment;
    }
    set_arena_max(max)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_arena_max(max: u32) -> Arenas {
    let Ok(value) = libc::c_int::try_from(max) else { return Arenas::Refused };
    // SAFETY: `mallopt` takes two integers and changes a tunable of the allocator under its own
    // lock; it touches no memory of ours, and M_ARENA_MAX with a positive value is documented
    // (mallopt(3)). It returns 1 on success, 0 on error.
    let done = unsafe { libc::mallopt(libc::M_ARENA_MAX, value) };
    if done == 1 { Arenas::Capped(max) } else { Arenas::Refused }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_max: u32) -> Arenas {
    Arenas::Default
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_leaves_the_default() {
        assert_eq!(cap(0), Arenas::Default);
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_a_cap() {
        // The test harness may set MALLOC_ARENA_MAX; then glibc already follows it.
        let expected = if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            Arenas::FromEnvironment
        } else {
            Arenas::Capped(4)
        };
        assert_eq!(cap(4), expected);
    }
}
