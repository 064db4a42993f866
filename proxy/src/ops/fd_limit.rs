//! The open-files limit: raised to its hard limit at start, and the connection budget derived
//! from it.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// `RLIMIT_NOFILE` before and after [`raise_nofile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit the process was started with.
    pub soft_before: u64,
    /// The soft limit now in force.
    pub soft: u64,
    /// The hard limit (the ceiling an unprivileged process may raise its soft limit to).
    pub hard: u64,
}

/// Raises the soft open-files limit to the hard limit. When the hard limit is unlimited (or
/// above what the kernel allows, `fs.nr_open`), the soft limit goes to `fs.nr_open`. On failure
/// the limit is left as it was and the error says why.
pub fn raise_nofile() -> Result<NofileLimit, nix::Error> {
    let (soft_before, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let target = hard.min(nr_open().unwrap_or(hard));
    if target > soft_before {
        setrlimit(Resource::RLIMIT_NOFILE, target, hard)?;
    }
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    Ok(NofileLimit {
        soft_before,
        soft,
        hard,
    })
}

fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The fewest client connections a derived budget gives (a tiny fd limit still serves some).
pub const MIN_CONNECTIONS: usize = 8;
/// The most a derived budget gives: past this, memory (not fds) is what runs out first.
pub const MAX_CONNECTIONS: usize = 32_768;

/// Client connections an fd limit of `nofile` leaves room for once `reserved` fds are set aside
/// for everything else, clamped to [`MIN_CONNECTIONS`, `MAX_CONNECTIONS`].
pub fn connection_budget(nofile: u64, reserved: u64) -> usize {
    let free = usize::try_from(nofile.saturating_sub(reserved)).unwrap_or(usize::MAX);
    free.clamp(MIN_CONNECTIONS, MAX_CONNECTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_what_the_reserve_leaves_within_bounds() {
        assert_eq!(connection_budget(1024, 400), 624);
        assert_eq!(connection_budget(256, 400), MIN_CONNECTIONS);
        assert_eq!(connection_budget(1 << 20, 400), MAX_CONNECTIONS);
    }

    #[test]
    fn raising_ends_at_the_hard_limit() {
        let limit = raise_nofile().unwrap();
        assert!(limit.soft >= limit.soft_before);
        assert!(limit.soft <= limit.hard);
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap().0, limit.soft);
    }
}
