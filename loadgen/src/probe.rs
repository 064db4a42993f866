//! Outside-in resource probe over `/proc` (Linux only).
//!
//! Invariant: the probe only reads; it never signals, ptraces or otherwise disturbs the target.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::Path;

/// File descriptors of a process grouped by what they point at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FdCounts {
    pub socket: u32,
    pub pipe: u32,
    pub anon_inode: u32,
    pub file: u32,
    pub other: u32,
}

impl FdCounts {
    pub fn total(&self) -> u32 {
        self.socket + self.pipe + self.anon_inode + self.file + self.other
    }
}

/// Child processes of a process: all direct children, and how many of them are zombies
/// (exited but not yet reaped by the parent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChildCounts {
    pub children: u32,
    pub zombies: u32,
}

/// TCP sockets of a process grouped by connection state (the kernel's `TCP_*` states).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TcpCounts {
    pub established: u32,
    pub syn_sent: u32,
    pub syn_recv: u32,
    pub fin_wait1: u32,
    pub fin_wait2: u32,
    pub time_wait: u32,
    pub close: u32,
    pub close_wait: u32,
    pub last_ack: u32,
    pub listen: u32,
    pub closing: u32,
}

impl TcpCounts {
    pub fn total(&self) -> u32 {
        self.established
            + self.syn_sent
            + self.syn_recv
            + self.fin_wait1
            + self.fin_wait2
            + self.time_wait
            + self.close
            + self.close_wait
            + self.last_ack
            + self.listen
            + self.closing
    }

    /// Counts one socket in state `st` (the hex `st` column); unknown states are ignored.
    fn add(&mut self, st: u8) {
        let slot = match st {
            0x01 => &mut self.established,
            0x02 => &mut self.syn_sent,
            0x03 => &mut self.syn_recv,
            0x04 => &mut self.fin_wait1,
            0x05 => &mut self.fin_wait2,
            0x06 => &mut self.time_wait,
            0x07 => &mut self.close,
            0x08 => &mut self.close_wait,
            0x09 => &mut self.last_ack,
            0x0A => &mut self.listen,
            0x0B => &mut self.closing,
            _ => return,
        };
        *slot += 1;
    }
}

/// Counts the open file descriptors of `pid` by kind, from `/proc/PID/fd`.
pub fn fds(pid: u32) -> io::Result<FdCounts> {
    let mut counts = FdCounts::default();
    for entry in fs::read_dir(format!("/proc/{pid}/fd"))? {
        let entry = entry?;
        // An fd can close between read_dir and readlink: skip it, it is no longer open.
        let Ok(target) = fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        if target.starts_with("socket:") {
            counts.socket += 1;
        } else if target.starts_with("pipe:") {
            counts.pipe += 1;
        } else if target.starts_with("anon_inode:") {
            counts.anon_inode += 1;
        } else if target.starts_with('/') {
            counts.file += 1;
        } else {
            counts.other += 1;
        }
    }
    Ok(counts)
}

/// Counts the TCP sockets (IPv4 and IPv6) *owned by* `pid` by state.
///
/// `/proc/PID/net/tcp{,6}` lists every socket of the process's network namespace, so only
/// the rows whose inode is one of the process's `socket:[INODE]` fds are counted. Sockets no
/// fd refers to any more (in practice every `TIME_WAIT`, and orphans in `FIN_WAIT*` or
/// `LAST_ACK`) belong to the kernel, not to the process, and are not counted.
pub fn tcp_states(pid: u32) -> io::Result<TcpCounts> {
    let inodes = socket_inodes(pid)?;
    let mut counts = TcpCounts::default();
    for table in ["tcp", "tcp6"] {
        let text = match fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
            Ok(text) => text,
            // A kernel without IPv6 has no tcp6 table: that is zero sockets, not an error.
            Err(e) if e.kind() == io::ErrorKind::NotFound && table == "tcp6" => continue,
            Err(e) => return Err(e),
        };
        for (inode, st) in parse_net_tcp(&text) {
            if inodes.contains(&inode) {
                counts.add(st);
            }
        }
    }
    Ok(counts)
}

/// The inodes of `pid`'s `socket:[INODE]` fds.
fn socket_inodes(pid: u32) -> io::Result<HashSet<u64>> {
    let mut inodes = HashSet::new();
    for entry in fs::read_dir(format!("/proc/{pid}/fd"))? {
        let entry = entry?;
        // As in `fds`: an fd closed since read_dir is simply no longer open.
        let Ok(target) = fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|inode| inode.parse::<u64>().ok())
        {
            inodes.insert(inode);
        }
    }
    Ok(inodes)
}

/// Parses the text of a `/proc/net/tcp` or `/proc/net/tcp6` table into `(inode, state)`
/// pairs, one per socket row; the header and malformed rows are skipped.
///
/// Columns are taken by position in the data rows (`st` is the 4th, `inode` the 10th): the
/// header's words do not line up with them (`tx_queue rx_queue` is one data column).
pub fn parse_net_tcp(text: &str) -> Vec<(u64, u8)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let st = u8::from_str_radix(cols.get(3)?, 16).ok()?;
            let inode = cols.get(9)?.parse::<u64>().ok()?;
            Some((inode, st))
        })
        .collect()
}

/// Lists the direct children of `pid` (every thread's `children` file, since a child
/// belongs to the thread that forked it).
pub fn child_pids(pid: u32) -> io::Result<Vec<u32>> {
    let mut pids = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let task = task?;
        let Ok(text) = fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        pids.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
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

/// The one-letter state of a process (`R`, `S`, `Z`, …) from `/proc/PID/stat`, or `None` if
/// it is gone.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces or parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

/// One TCP socket of a process, for saying *which* sockets a leak check found.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct TcpSocket {
    pub local: std::net::SocketAddr,
    pub remote: std::net::SocketAddr,
    pub state: &'static str,
}

impl std::fmt::Display for TcpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {} {}", self.local, self.remote, self.state)
    }
}

fn state_name(st: u8) -> &'static str {
    match st {
        0x01 => "ESTABLISHED",
        0x02 => "SYN_SENT",
        0x03 => "SYN_RECV",
        0x04 => "FIN_WAIT1",
        0x05 => "FIN_WAIT2",
        0x06 => "TIME_WAIT",
        0x07 => "CLOSE",
        0x08 => "CLOSE_WAIT",
        0x09 => "LAST_ACK",
        0x0A => "LISTEN",
        0x0B => "CLOSING",
        _ => "UNKNOWN",
    }
}

/// `0100007F:1F90` (IPv4) or 32 hex digits + port (IPv6), as the kernel prints them: the
/// address in host-order 32-bit words, the port big-endian.
fn parse_hex_addr(text: &str) -> Option<std::net::SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip: std::net::IpAddr = match addr.len() {
        8 => std::net::Ipv4Addr::from(u32::from_str_radix(addr, 16).ok()?.swap_bytes()).into(),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, word) in bytes.chunks_mut(4).enumerate() {
                let w = u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16).ok()?;
                word.copy_from_slice(&w.swap_bytes().to_be_bytes());
            }
            std::net::Ipv6Addr::from(bytes).into()
        }
        _ => return None,
    };
    Some(std::net::SocketAddr::new(ip, port))
}

/// The TCP sockets owned by `pid` (as [`tcp_states`] counts them), with their addresses.
pub fn tcp_sockets(pid: u32) -> io::Result<Vec<TcpSocket>> {
    let inodes = socket_inodes(pid)?;
    let mut out = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = match fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound && table == "tcp6" => continue,
            Err(e) => return Err(e),
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(remote), Some(st), Some(inode)) = (
                cols.get(1).and_then(|c| parse_hex_addr(c)),
                cols.get(2).and_then(|c| parse_hex_addr(c)),
                cols.get(3).and_then(|c| u8::from_str_radix(c, 16).ok()),
                cols.get(9).and_then(|c| c.parse::<u64>().ok()),
            ) else {
                continue;
            };
            if inodes.contains(&inode) {
                out.push(TcpSocket {
                    local,
                    remote,
                    state: state_name(st),
                });
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Threads of `pid` (entries of `/proc/PID/task`).
pub fn threads(pid: u32) -> io::Result<u32> {
    Ok(fs::read_dir(format!("/proc/{pid}/task"))?.count() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn counts_own_fds_by_kind() {
        let me = std::process::id();
        let before = fds(me).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let after = fds(me).unwrap();
        assert!(after.socket > before.socket, "{before:?} -> {after:?}");
        drop(listener);
    }

    #[test]
    fn parses_a_net_tcp_table() {
        // Verbatim shape of /proc/net/tcp (trailing spaces included), plus one broken row.
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     \n\
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1049 1 00000000bda4d13e 100 0 0 10 0                      \n\
   1: 0100007F:A5BE 0100007F:07E8 01 00000000:00000000 00:00000000 00000000  1000        0 4358 1 0000000079842c70 20 4 1 76 146                     \n\
   2: 0100007F:07E8 0100007F:A5BE 08 00000000:00000000 00:00000000 00000000  1000        0 4359 1 000000003e77777d 20 4 29 15 -1                     \n\
   3: 0100007F:A5C0 0100007F:07E8 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000\n\
   4: garbage\n";
        assert_eq!(
            parse_net_tcp(text),
            vec![(1049, 0x0A), (4358, 0x01), (4359, 0x08), (0, 0x06)]
        );
        assert!(parse_net_tcp("").is_empty());
    }

    #[test]
    fn kernel_hex_addresses_parse() {
        assert_eq!(
            parse_hex_addr("0100007F:1F90"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            parse_hex_addr("00000000000000000000000001000000:0050"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(parse_hex_addr("zz:1"), None);
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
                .any(|s| s.local == addr && s.state == "LISTEN"),
            "{sockets:?}"
        );
        assert!(
            sockets.iter().any(|s| s.remote == addr
                && s.local == client.local_addr().unwrap()
                && s.state == "ESTABLISHED"),
            "{sockets:?}"
        );
    }

    #[test]
    fn tcp_counts_add_and_total() {
        let mut counts = TcpCounts::default();
        for st in [0x01, 0x01, 0x0A, 0x08, 0x0B, 0x00, 0x0C] {
            counts.add(st);
        }
        assert_eq!(counts.established, 2);
        assert_eq!(counts.listen, 1);
        assert_eq!(counts.close_wait, 1);
        assert_eq!(counts.closing, 1);
        assert_eq!(counts.total(), 5);
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
