//! Socket options beyond what tokio sets, through socket2.

/// Keeps the kernel's queue of not-yet-sent TCP bytes small, so that when the path is
/// slow, data waits in picam's own queue (where stale frames are dropped) rather than
/// in the kernel (where they would be sent late). Also shrinks the send buffer, which
/// bounds how much the connection keeps in flight in a router's queue.
pub(crate) fn keep_tcp_send_queue_small(
    stream: &tokio::net::TcpStream,
    send_buffer: usize,
    not_sent_low_water: u32,
) {
    let socket = socket2::SockRef::from(stream);
    if let Err(e) = socket.set_send_buffer_size(send_buffer) {
        tracing::warn!(error = %e, "could not shrink the TCP send buffer");
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = socket.set_tcp_notsent_lowat(not_sent_low_water) {
        tracing::warn!(error = %e, "could not set TCP_NOTSENT_LOWAT");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = not_sent_low_water;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[tokio::test]
    async fn sets_the_not_sent_low_water_mark() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, _server) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let client = client.unwrap();
        super::keep_tcp_send_queue_small(&client, 32 * 1024, 16 * 1024);
        let socket = socket2::SockRef::from(&client);
        assert_eq!(socket.tcp_notsent_lowat().unwrap(), 16 * 1024);
    }
}
