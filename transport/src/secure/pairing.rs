//! Pairing with a short code (placeholder until the exchange lands).
