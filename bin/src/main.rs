//! `picam`: ultra-low-latency live video from a camera to a viewer across a LAN.
//!
//! This binary only parses arguments, sets up logging and runs a subcommand; the
//! pipeline wiring lives in `send`, `recv` and `demo`.

// `unsafe` only where a C call needs it: one `getrusage` in `cpu`.
#![deny(unsafe_code)]

mod cli;
mod config;
#[allow(unsafe_code)]
mod cpu;
mod demo;
mod devices;
mod frames_out;
mod latency;
mod latency_out;
mod latest;
mod recv;
mod recv_stats;
mod report;
mod rpicam_choice;
mod security;
mod send;
mod send_stats;
mod shutdown;
mod source_spec;
mod view;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PICAM_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let result = match cli.command {
        cli::Command::Send(args) => send::run(args),
        cli::Command::Recv(args) => recv::run(args),
        cli::Command::Devices(args) => devices::run(args),
        cli::Command::Demo(args) => demo::run(args),
        cli::Command::Keygen(args) => security::keygen(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("picam: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
