//! Which processes are whose children, read from `/proc` (the live list's strays, and the
//! probe's child counts through `observe::probe`, which re-exports these).

use std::io;

use procfs::process::Process;

pub(crate) fn io_err(e: procfs::ProcError) -> io::Error {
    match e {
        procfs::ProcError::NotFound(p) => io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} not found",
                p.map(|p| p.display().to_string()).unwrap_or_default()
            ),
        ),
        other => io::Error::other(other),
    }
}

pub(crate) fn process(pid: u32) -> io::Result<Process> {
    Process::new(pid as i32).map_err(io_err)
}

/// Lists the direct children of `pid` (every thread's `children` file, since a child
/// belongs to the thread that forked it).
pub fn child_pids(pid: u32) -> io::Result<Vec<u32>> {
    let mut pids = Vec::new();
    for task in process(pid)?.tasks().map_err(io_err)? {
        let Ok(task) = task else { continue };
        if let Ok(children) = task.children() {
            pids.extend(children);
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

/// The one-letter state of a process (`R`, `S`, `Z`, …), or `None` if it is gone.
pub fn process_state(pid: u32) -> Option<char> {
    process(pid).ok()?.stat().ok().map(|s| s.state)
}
