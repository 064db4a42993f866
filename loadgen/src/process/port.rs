//! Free loopback ports: bound, then released for the server to take.

use std::net::{SocketAddr, TcpListener};

use anyhow::{Context, bail};

/// A free loopback address.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?)
}

/// A free loopback port.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(free_addr()?.port())
}

/// `listen` if it is free (`what` names it in the error), else a free loopback address.
pub fn addr_or_free(listen: Option<SocketAddr>, what: &str) -> anyhow::Result<SocketAddr> {
    match listen {
        Some(addr) => match TcpListener::bind(addr) {
            Ok(l) => Ok(l.local_addr()?),
            Err(e) => bail!("{what} {addr}: cannot listen there ({e})"),
        },
        None => free_addr(),
    }
}
