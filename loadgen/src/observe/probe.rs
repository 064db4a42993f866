//! Outside-in resource probe over `/proc` (Linux only), read with `procfs`.
//!
//! Invariant: the probe only reads; it never signals, ptraces or otherwise disturbs the target.
//! A process that is gone gives an error (`NotFound`); an fd or task that closes while it is
//! being listed is skipped, it is no longer open.

use std::collections::HashSet;
use std::io;

use procfs::net::{TcpNetEntry, TcpState};
use procfs::process::{FDTarget, Process};

pub use crate::process::tree::{child_pids, process_state};
use crate::process::tree::{io_err, process};
pub use crate::report::sample::{ChildCounts, FdCounts, TcpCounts};

impl TcpCounts {
    /// Counts one socket in `state`.
    pub(crate) fn add(&mut self, state: &TcpState) {
        let slot = match state {
            TcpState::Established => &mut self.established,
            TcpState::SynSent => &mut self.syn_sent,
            TcpState::SynRecv => &mut self.syn_recv,
            TcpState::FinWait1 => &mut self.fin_wait1,
            TcpState::FinWait2 => &mut self.fin_wait2,
            TcpState::TimeWait => &mut self.time_wait,
            TcpState::Close => &mut self.close,
            TcpState::CloseWait => &mut self.close_wait,
            TcpState::LastAck => &mut self.last_ack,
            TcpState::Listen => &mut self.listen,
            TcpState::Closing => &mut self.closing,
            _ => return,
        };
        *slot += 1;
    }
}

/// Counts the open file descriptors of `pid` by kind, from `/proc/PID/fd`.
pub fn fds(pid: u32) -> io::Result<FdCounts> {
    let mut counts = FdCounts::default();
    for fd in process(pid)?.fd().map_err(io_err)? {
        // An fd can close between listing and reading its link: it is no longer open.
        let Ok(fd) = fd else { continue };
        match fd.target {
            FDTarget::Socket(_) => counts.socket += 1,
            FDTarget::Pipe(_) => counts.pipe += 1,
            FDTarget::AnonInode(_) => counts.anon_inode += 1,
            FDTarget::Path(_) => counts.file += 1,
            _ => counts.other += 1,
        }
    }
    Ok(counts)
}

/// The inodes of `pid`'s socket fds.
fn socket_inodes(p: &Process) -> io::Result<HashSet<u64>> {
    Ok(p.fd()
        .map_err(io_err)?
        .filter_map(Result::ok)
        .filter_map(|fd| match fd.target {
            FDTarget::Socket(inode) => Some(inode),
            _ => None,
        })
        .collect())
}

/// The rows of `/proc/PID/net/tcp{,6}` (the process's network namespace) that belong to one
/// of its socket fds.
fn own_tcp_entries(pid: u32) -> io::Result<Vec<TcpNetEntry>> {
    let p = process(pid)?;
    let inodes = socket_inodes(&p)?;
    let mut rows = p.tcp().map_err(io_err)?;
    match p.tcp6() {
        Ok(v6) => rows.extend(v6),
        // A kernel without IPv6 has no tcp6 table: that is zero sockets, not an error.
        Err(procfs::ProcError::NotFound(_)) => {}
        Err(e) => return Err(io_err(e)),
    }
    rows.retain(|r| inodes.contains(&r.inode));
    Ok(rows)
}

/// Counts the TCP sockets (IPv4 and IPv6) *owned by* `pid` by state.
///
/// `/proc/PID/net/tcp{,6}` lists every socket of the process's network namespace, so only
/// the rows whose inode is one of the process's socket fds are counted. Sockets no fd refers
/// to any more (in practice every `TIME_WAIT`, and orphans in `FIN_WAIT*` or `LAST_ACK`)
/// belong to the kernel, not to the process, and are not counted.
pub fn tcp_states(pid: u32) -> io::Result<TcpCounts> {
    let mut counts = TcpCounts::default();
    for row in own_tcp_entries(pid)? {
        counts.add(&row.state);
    }
    Ok(counts)
}

/// One TCP socket of a process, for saying *which* sockets a leak check found.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct TcpSocket {
    pub local: std::net::SocketAddr,
    pub remote: std::net::SocketAddr,
    pub state: String,
}

impl std::fmt::Display for TcpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {} {}", self.local, self.remote, self.state)
    }
}

/// The TCP sockets owned by `pid` (as [`tcp_states`] counts them), with their addresses.
pub fn tcp_sockets(pid: u32) -> io::Result<Vec<TcpSocket>> {
    let mut out: Vec<TcpSocket> = own_tcp_entries(pid)?
        .into_iter()
        .map(|r| TcpSocket {
            local: r.local_address,
            remote: r.remote_address,
            state: format!("{:?}", r.state),
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Counts the children of `pid` and the zombies among them.
pub fn children(pid: u32) -> io::Result<ChildCounts> {
    let mut counts = ChildCounts::default();
    for child in child_pids(pid)? {
        counts.children += 1;
        if process_state(child) == Some('Z') {
            counts.zombies += 1;
        }
    }
    Ok(counts)
}

/// Threads of `pid`.
pub fn threads(pid: u32) -> io::Result<u32> {
    Ok(process(pid)?.stat().map_err(io_err)?.num_threads as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn counts_own_fds_by_kind() {
        // Other tests of this binary open and close a few fds meanwhile (a child's pipes,
        // /dev/null): 20 of each kind cannot be hidden by them.
        let me = std::process::id();
        let before = fds(me).unwrap();
        let listeners: Vec<_> = (0..20)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let files: Vec<_> = (0..20)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let after = fds(me).unwrap();
        assert!(
            after.socket >= before.socket + 15,
            "{before:?} -> {after:?}"
        );
        assert!(after.file >= before.file + 15, "{before:?} -> {after:?}");
        drop((listeners, files));
    }

    #[test]
    fn lists_own_sockets_with_addresses() {
        let me = std::process::id();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let sockets = tcp_sockets(me).unwrap();
        assert!(
            sockets
                .iter()
                .any(|s| s.local == addr && s.state == "Listen"),
            "{sockets:?}"
        );
        assert!(
            sockets.iter().any(|s| s.remote == addr
                && s.local == client.local_addr().unwrap()
                && s.state == "Established"),
            "{sockets:?}"
        );
    }

    #[test]
    fn a_gone_process_is_not_found() {
        let mut child = Command::new("true").stdout(Stdio::null()).spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(fds(pid).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(process_state(pid).is_none());
    }

    #[test]
    fn threads_are_counted() {
        // other tests' threads come and go meanwhile: 20 parked threads cannot be hidden
        let me = std::process::id();
        let before = threads(me).unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let parked: Vec<_> = (0..20)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    let _ = rx.lock().map(|r| r.recv());
                })
            })
            .collect();
        let after = threads(me).unwrap();
        assert!(after >= before + 15, "{before} -> {after}");
        drop(tx);
        for t in parked {
            let _ = t.join();
        }
    }

    #[test]
    fn sees_a_child_and_its_zombie_until_reaped() {
        let me = std::process::id();
        let mut child = Command::new("true").stdout(Stdio::null()).spawn().unwrap();
        let pid = child.id();
        // `true` exits at once; until we wait on it, it is a zombie child of this process.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while process_state(pid) != Some('Z') {
            assert!(
                std::time::Instant::now() < deadline,
                "child never became a zombie"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(child_pids(me).unwrap().contains(&pid));
        assert!(children(me).unwrap().zombies >= 1);
        child.wait().unwrap();
        assert!(!child_pids(me).unwrap().contains(&pid));
        assert_eq!(process_state(pid), None);
    }
}
