//! Socket options the standard library and socket2 do not cover.

use std::os::fd::AsRawFd;

/// Keeps the kernel's queue of not-yet-sent TCP bytes small, so that when the path is
/// slow, data waits in picam's own queue (where stale frames are dropped) rather than
/// in the kernel (where they would be sent late). Also shrinks the send buffer, which
/// bounds how much the connection keeps in flight in a router's queue.
pub(crate) fn keep_tcp_send_queue_small(
    stream: &tokio::net::TcpStream,
    send_buffer: usize,
    not_sent_low_water: u32,
) {
    if let Err(e) = socket2::SockRef::from(stream).set_send_buffer_size(send_buffer) {
        tracing::warn!(error = %e, "could not shrink the TCP send buffer");
    }
    set_not_sent_low_water(stream, not_sent_low_water);
}

#[cfg(target_os = "linux")]
fn set_not_sent_low_water(stream: &tokio::net::TcpStream, bytes: u32) {
    let value = bytes as libc::c_int;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a valid pointer to a
    // c_int on a file descriptor that `stream` keeps open for the call's duration.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "could not set TCP_NOTSENT_LOWAT");
    }
}

#[cfg(not(target_os = "linux"))]
fn set_not_sent_low_water(_stream: &tokio::net::TcpStream, _bytes: u32) {}
