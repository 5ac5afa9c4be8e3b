//! Loss repair: retransmission on NACK and per-frame Reed-Solomon FEC.
//!
//! Sans-IO building blocks, each bounded and fed untrusted network data without
//! panicking:
//! - [`fec`]: frame geometry, parity encoding and recovery of missing fragments;
//! - [`history`]: the sender's bounded store of sent packets, for retransmission;
//! - [`nack`]: the receiver's gap tracking, NACK timing and loss counters;
//! - [`policy`]: how many parity packets a frame gets for the measured loss and round
//!   trip;
//! - [`resend`]: the sender's half of retransmission for both wires (the history and
//!   the queue of NACKed packets);
//! - [`seq64`]: wire sequence numbers (RTP's 16 bits, picam's 32) extended to 64 bits,
//!   the numbers the history keeps.
//!
//! Sequence numbers here are the per-packet `seq` (data and parity, in send order).

pub(crate) mod fec;
pub(crate) mod history;
pub(crate) mod nack;
pub(crate) mod policy;
pub(crate) mod resend;
pub(crate) mod seq64;
