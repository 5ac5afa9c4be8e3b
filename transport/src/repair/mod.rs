//! Loss repair: retransmission on NACK and per-frame Reed-Solomon FEC.
//!
//! Sans-IO building blocks, each bounded and fed untrusted network data without
//! panicking:
//! - [`fec`]: frame geometry, parity encoding and recovery of missing fragments;
//! - [`history`]: the sender's bounded store of sent packets, for retransmission;
//! - [`nack`]: the receiver's gap tracking, NACK timing and loss counters;
//! - [`policy`]: how many parity packets a frame gets for the measured loss.
//!
//! Sequence numbers here are the per-packet `seq` (data and parity, in send order),
//! compared with the wrapping half-range rule of [`crate::seq`].

// Until the sender and receiver use these blocks, non-test builds see them unused.
// Remove once `send/` and `recv/` are wired to `repair/`.

pub(crate) mod fec;
pub(crate) mod history;
pub(crate) mod nack;
pub(crate) mod policy;
