//! `probe::tcp_states` against real loopback sockets of this test process.
//!
//! Its own test binary with a single test, so no other test opens sockets in this process
//! while the deltas against the baseline are measured.

use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use mcp_loadgen::observe::probe::{TcpCounts, tcp_states};

/// Polls the TCP counts of this process until `want` holds, or panics after a few seconds.
fn eventually(what: &str, want: impl Fn(&TcpCounts) -> bool) -> TcpCounts {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = tcp_states(std::process::id()).unwrap();
        if want(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "{what}: still {now:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn counts_listen_established_and_close_wait_of_own_sockets() {
    let base = tcp_states(std::process::id()).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let after_listen = tcp_states(std::process::id()).unwrap();
    assert_eq!(
        after_listen.listen,
        base.listen + 1,
        "{base:?} -> {after_listen:?}"
    );
    assert_eq!(after_listen.total(), base.total() + 1);

    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    // Both ends are fds of this process: client and server side count once each.
    eventually("client and server established", |now| {
        now.established == base.established + 2 && now.listen == base.listen + 1
    });

    // Closing the client sends FIN: the server side, still open, moves to CLOSE_WAIT. The
    // client side's socket leaves our fds (FIN_WAIT2 orphan owned by the kernel).
    drop(client);
    let mut buf = [0u8; 1];
    assert_eq!(server.read(&mut buf).unwrap(), 0, "server should see EOF");
    let now = eventually("server in close_wait", |now| {
        now.close_wait == base.close_wait + 1 && now.established == base.established
    });
    assert_eq!(now.listen, base.listen + 1);
    assert_eq!(now.total(), base.total() + 2, "{base:?} -> {now:?}");

    server.shutdown(Shutdown::Both).ok();
    drop(server);
    drop(listener);
    eventually("back to baseline", |now| *now == base);
}
