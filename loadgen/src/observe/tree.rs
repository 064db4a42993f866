//! The target's whole process tree read from `/proc`: each process of a
//! [`TreeWalk`](crate::process::tree::TreeWalk) (root, descendants, orphans) read once, and
//! summed into the probe's figures ([`TreeReading`]) or kept per process ([`TreeSnapshot`]).
//!
//! Invariants: only reads. A socket inode is counted once however many fds and processes
//! share it; each network namespace's tables are read once per reading. A process that goes
//! away during the reading is left out (it is gone); only the root's absence is an error.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use procfs::net::{TcpNetEntry, UnixNetEntry};
use procfs::process::FDTarget;

use crate::process::tree::{ProcId, TreeWalk, io_err, process};
pub use crate::report::sample::{ChildCounts, FdCounts, TcpCounts, UnixCounts};
pub use crate::report::tree::{ProcessInfo, SocketInfo, TreeSnapshot};

/// Longest command line kept in a snapshot.
const CMDLINE_MAX: usize = 160;

/// One process read: what a snapshot keeps, and what summing needs.
struct ProcRead {
    info: ProcessInfo,
    inodes: Vec<u64>,
    ticks: u64,
    netns: String,
}

fn read_process(id: ProcId, orphan: bool) -> io::Result<ProcRead> {
    let p = process(id.pid)?;
    let stat = p.stat().map_err(io_err)?;
    if stat.starttime != id.start {
        return Err(io::Error::new(io::ErrorKind::NotFound, "PID reused"));
    }
    let mut fds = FdCounts::default();
    let mut inodes = Vec::new();
    // a zombie has no fds to list; an fd that closes while listed is no longer open
    for fd in p.fd().into_iter().flatten().flatten() {
        match fd.target {
            FDTarget::Socket(inode) => {
                fds.socket += 1;
                inodes.push(inode);
            }
            FDTarget::Pipe(_) => fds.pipe += 1,
            FDTarget::AnonInode(_) => fds.anon_inode += 1,
            FDTarget::Path(_) => fds.file += 1,
            _ => fds.other += 1,
        }
    }
    let mut cmdline = p.cmdline().unwrap_or_default().join(" ");
    if cmdline.chars().count() > CMDLINE_MAX {
        cmdline = cmdline.chars().take(CMDLINE_MAX).collect::<String>() + "…";
    }
    let netns = std::fs::read_link(format!("/proc/{}/ns/net", id.pid))
        .map(|l| l.display().to_string())
        .unwrap_or_default();
    Ok(ProcRead {
        info: ProcessInfo {
            pid: id.pid,
            ppid: stat.ppid as u32,
            start: id.start,
            comm: stat.comm.clone(),
            cmdline,
            state: stat.state,
            orphan,
            fds,
            tcp: 0,
            unix: 0,
            threads: stat.num_threads.max(0) as u32,
            rss_bytes: stat.rss * procfs::page_size(),
        },
        inodes,
        ticks: stat.utime + stat.stime,
        netns,
    })
}

/// The socket tables of one network namespace, by inode.
#[derive(Default)]
struct NetTables {
    tcp: BTreeMap<u64, TcpNetEntry>,
    unix: BTreeMap<u64, UnixNetEntry>,
}

impl NetTables {
    /// Read through `pid`'s view of `/proc/net` (its namespace's).
    fn of(pid: u32) -> NetTables {
        let Ok(p) = process(pid) else {
            return NetTables::default();
        };
        let mut tcp = p.tcp().unwrap_or_default();
        // a kernel without IPv6 has no tcp6 table: zero sockets
        tcp.extend(p.tcp6().unwrap_or_default());
        NetTables {
            tcp: tcp.into_iter().map(|e| (e.inode, e)).collect(),
            unix: p
                .unix()
                .unwrap_or_default()
                .into_iter()
                .map(|e| (e.inode, e))
                .collect(),
        }
    }
}

fn unix_type(t: u16) -> &'static str {
    match t {
        1 => "stream",
        2 => "dgram",
        5 => "seqpacket",
        _ => "other",
    }
}

/// The tree read at one instant.
#[derive(Debug, Clone, Default)]
pub struct TreeReading {
    pub fds: FdCounts,
    pub tcp: TcpCounts,
    pub unix: UnixCounts,
    pub children: ChildCounts,
    pub threads: u32,
    pub rss_bytes: u64,
    /// utime + stime of each process (clock ticks), for CPU between two readings.
    pub ticks: BTreeMap<ProcId, u64>,
    pub snapshot: TreeSnapshot,
}

/// Reads every process of `walk`. `NotFound` when the root is gone.
pub fn read(walk: &TreeWalk) -> io::Result<TreeReading> {
    let Some(root) = walk.root else {
        return Err(io::Error::new(io::ErrorKind::NotFound, "the root is gone"));
    };
    let mut procs = vec![read_process(root, false)?];
    let below = walk.below.iter().map(|id| (id, false));
    let orphans = walk.orphans.iter().map(|id| (id, true));
    procs.extend(
        below
            .chain(orphans)
            .filter_map(|(id, o)| read_process(*id, o).ok()),
    );
    let mut out = TreeReading::default();
    let mut tables: BTreeMap<String, NetTables> = BTreeMap::new();
    let mut counted = BTreeSet::new();
    for r in &mut procs {
        let t = tables
            .entry(r.netns.clone())
            .or_insert_with(|| NetTables::of(r.info.pid));
        for inode in &r.inodes {
            let first = counted.insert(*inode);
            if let Some(e) = t.tcp.get(inode) {
                r.info.tcp += 1;
                if first {
                    out.tcp.add(&e.state);
                    out.snapshot.sockets.push(socket(r, *inode, tcp_what(e)));
                }
            } else if let Some(e) = t.unix.get(inode) {
                r.info.unix += 1;
                if first {
                    out.unix.add(e.socket_type);
                    out.snapshot.sockets.push(socket(r, *inode, unix_what(e)));
                }
            }
        }
        out.fds += r.info.fds;
        out.threads += r.info.threads;
        out.rss_bytes += r.info.rss_bytes;
        let zombie = r.info.state == 'Z';
        out.children.zombies += u32::from(zombie);
        out.ticks.insert(
            ProcId {
                pid: r.info.pid,
                start: r.info.start,
            },
            r.ticks,
        );
    }
    out.children.children = walk.below.len() as u32;
    out.children.orphans = procs.iter().filter(|r| r.info.orphan).count() as u32;
    out.snapshot.procs = procs.into_iter().map(|r| r.info).collect();
    Ok(out)
}

fn socket(r: &ProcRead, inode: u64, what: String) -> SocketInfo {
    SocketInfo {
        inode,
        pid: r.info.pid,
        comm: r.info.comm.clone(),
        what,
    }
}

fn tcp_what(e: &TcpNetEntry) -> String {
    format!(
        "tcp {} -> {} {:?}",
        e.local_address, e.remote_address, e.state
    )
}

fn unix_what(e: &UnixNetEntry) -> String {
    let path = e
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "unnamed".into());
    format!("unix {} {path}", unix_type(e.socket_type))
}

impl UnixCounts {
    fn add(&mut self, socket_type: u16) {
        match socket_type {
            1 => self.stream += 1,
            2 => self.dgram += 1,
            5 => self.seqpacket += 1,
            _ => {}
        }
    }
}

/// CPU of the tree between two readings `secs` apart, % of one core: each process's ticks
/// since the earlier reading (all of them for a process new since then).
pub fn cpu_percent(before: &BTreeMap<ProcId, u64>, now: &BTreeMap<ProcId, u64>, secs: f64) -> f32 {
    if secs <= 0.0 {
        return 0.0;
    }
    let ticks: u64 = now
        .iter()
        .map(|(id, t)| t.saturating_sub(before.get(id).copied().unwrap_or(0)))
        .sum();
    (ticks as f64 / procfs::ticks_per_second() as f64 / secs * 100.0) as f32
}
