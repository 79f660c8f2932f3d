//! The listening sockets: bound by the supervisor (before any privilege drop), one per worker
//! with SO_REUSEPORT so the kernel spreads connections evenly, and handed to each worker as
//! file descriptor 3. The supervisor keeps its copy, so a restarted worker takes over the same
//! socket and connections queued meanwhile are not lost.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::HostPort;

/// The descriptor number a worker finds its socket at.
pub const INHERITED_FD: RawFd = 3;

/// The accept queue length (the original's aiohttp site uses 1024).
pub const LISTEN_BACKLOG: i32 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot resolve the service address {addr}: {source}")]
    Resolve {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "file descriptor {INHERITED_FD} is not a listening socket (start workers through `bai-manager start-server`): {0}"
    )]
    NotInherited(std::io::Error),
}

/// The address to bind for `service-addr`.
pub fn resolve(addr: &HostPort) -> Result<SocketAddr, ListenError> {
    let text = addr.to_string();
    (addr.host.as_str(), addr.port)
        .to_socket_addrs()
        .and_then(|mut addrs| {
            addrs.next().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no address found")
            })
        })
        .map_err(|source| ListenError::Resolve { addr: text, source })
}

/// `count` sockets listening on `addr` together (SO_REUSEPORT).
pub fn bind_shared(addr: SocketAddr, count: usize) -> Result<Vec<OwnedFd>, ListenError> {
    let bind_err = |source| ListenError::Bind { addr, source };
    // With port 0 the kernel picks a port for the first socket; the others must join it.
    let mut target = addr;
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let socket = Socket::new(
            Domain::for_address(target),
            Type::STREAM,
            Some(Protocol::TCP),
        )
        .map_err(bind_err)?;
        socket.set_reuse_address(true).map_err(bind_err)?;
        socket.set_reuse_port(true).map_err(bind_err)?;
        if target.is_ipv6() {
            socket.set_only_v6(false).map_err(bind_err)?;
        }
        socket.bind(&target.into()).map_err(bind_err)?;
        socket.listen(LISTEN_BACKLOG).map_err(bind_err)?;
        if let Some(local) = socket.local_addr().ok().and_then(|a| a.as_socket()) {
            target = local;
        }
        sockets.push(OwnedFd::from(socket));
    }
    Ok(sockets)
}

/// In a worker: the socket the supervisor handed over.
pub fn inherited() -> Result<TcpListener, ListenError> {
    // SAFETY: fd 3 is set up by the supervisor for this process and owned by nobody else here;
    // fstat-like checks follow before it is used as a listener.
    let fd = unsafe { OwnedFd::from_raw_fd(INHERITED_FD) };
    let socket = Socket::from(fd);
    let is_listener = socket.is_listener().map_err(ListenError::NotInherited)?;
    if !is_listener {
        return Err(ListenError::NotInherited(std::io::Error::other(
            "the socket is not listening",
        )));
    }
    socket
        .set_nonblocking(true)
        .map_err(ListenError::NotInherited)?;
    Ok(socket.into())
}

/// Makes `fd` appear as [`INHERITED_FD`] in a child about to `exec` (call from `pre_exec`).
/// dup2 clears close-on-exec on the copy; the original stays close-on-exec.
pub fn install_in_child(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: dup2 is async-signal-safe; both descriptors are valid in the forked child.
    if unsafe { libc::dup2(fd, INHERITED_FD) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if fd == INHERITED_FD {
        // dup2 onto itself keeps close-on-exec; clear it explicitly.
        // SAFETY: fcntl on a valid descriptor of this (child) process.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
        }
    }
    Ok(())
}

/// The raw descriptor to pass to [`install_in_child`].
pub fn raw(fd: &OwnedFd) -> RawFd {
    fd.as_raw_fd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_sockets_listen_on_one_port() {
        let sockets = bind_shared(SocketAddr::from(([127, 0, 0, 1], 0)), 3).unwrap();
        let ports: Vec<u16> = sockets
            .iter()
            .map(|fd| {
                let socket = Socket::from(fd.try_clone().unwrap());
                assert!(socket.is_listener().unwrap());
                socket.local_addr().unwrap().as_socket().unwrap().port()
            })
            .collect();
        assert_eq!(ports.len(), 3);
        assert!(ports.iter().all(|p| *p == ports[0] && *p != 0), "{ports:?}");
    }

    #[test]
    fn a_taken_port_is_reported_with_its_address() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let error = bind_shared(addr, 1).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot listen on {addr}")),
            "{error}"
        );
    }
}
