//! `picam devices`: the cameras and encoders here, what they offer (like
//! `v4l2-ctl --list-formats-ext`), which `--source` uses each, and what
//! `--source auto` would pick.

use anyhow::Result;

use crate::cli::DevicesArgs;

/// Prints the list; never fails for a device that cannot be opened (it says why).
pub fn run(args: DevicesArgs) -> Result<()> {
    let rpicam: Vec<(String, String)> = capture::rpicam::PROGRAMS
        .iter()
        .filter_map(|p| {
            capture::rpicam::find_on_path(p).map(|path| (p.to_string(), path.display().to_string()))
        })
        .collect();
    list(&args, &rpicam);
    Ok(())
}

#[cfg(target_os = "linux")]
fn list(args: &DevicesArgs, rpicam: &[(String, String)]) {
    use capture::v4l2::{self, formats, Kind};

    let all = v4l2::list_devices();
    let paths = v4l2::device_paths();
    let mut infos = Vec::new();
    for (path, dev) in paths.iter().zip(all) {
        match dev {
            Ok(info) => {
                if args.json {
                    let formats: Vec<_> = info
                        .formats
                        .iter()
                        .map(|f| serde_json::json!({"format": f.format.to_string(), "description": f.description, "sizes": formats::summarize(std::slice::from_ref(f))}))
                        .collect();
                    let line = serde_json::json!({
                        "path": info.path, "driver": info.driver, "card": info.card, "bus": info.bus,
                        "kind": format!("{:?}", info.kind), "source": use_line(&info), "formats": formats,
                    });
                    println!("{line}");
                } else {
                    let kind = match info.kind {
                        Kind::Camera if info.has_h264() => "camera, emits H.264",
                        Kind::Camera if info.has_raw() => "camera, raw",
                        Kind::Camera => "camera, no format picam uses",
                        Kind::Encoder => "H.264 encoder (memory-to-memory)",
                        Kind::Other => "not a camera picam uses",
                    };
                    println!(
                        "{}: {} ({}, {}) - {kind}",
                        info.path, info.card, info.driver, info.bus
                    );
                    if let Some(line) = use_line(&info) {
                        println!("  use: {line}");
                    }
                    let (label, list) = if info.kind == Kind::Encoder {
                        ("  takes", &info.inputs)
                    } else {
                        ("", &info.formats)
                    };
                    if !label.is_empty() {
                        let names: Vec<String> =
                            list.iter().map(|f| f.format.to_string()).collect();
                        println!("{label}: {}", names.join(", "));
                    } else {
                        for f in list {
                            println!("  {} ({}):", f.format, f.description);
                            for part in formats::summarize(std::slice::from_ref(f))
                                .split(": ")
                                .skip(1)
                            {
                                for size in part.split("), ") {
                                    let size = size.trim_end_matches(')');
                                    println!(
                                        "    {size}{}",
                                        if size.contains('(') { ")" } else { "" }
                                    );
                                }
                            }
                        }
                    }
                }
                infos.push(info);
            }
            Err(e) => {
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({"path": path, "error": e.to_string()})
                    );
                } else {
                    println!("{path}: cannot open: {e}");
                }
            }
        }
    }
    if !args.json {
        if paths.is_empty() {
            println!("no V4L2 devices (/dev/video*)");
        }
        for (name, path) in rpicam {
            let source = if name == "libcamera-vid" {
                "libcamera"
            } else {
                "rpicam"
            };
            println!("{name}: {path} - use: --source {source}");
        }
        match v4l2::auto::choose(&infos, !rpicam.is_empty()) {
            Some(c) => println!(
                "--source auto picks {}{}: {}",
                c.source,
                c.encoder
                    .map(|e| format!(" --encoder {e}"))
                    .unwrap_or_default(),
                c.why
            ),
            None => println!(
                "--source auto finds no camera here; --source test is the synthetic camera"
            ),
        }
    }
}

#[cfg(target_os = "linux")]
fn use_line(info: &capture::v4l2::DeviceInfo) -> Option<String> {
    use capture::v4l2::Kind;
    match info.kind {
        Kind::Camera if info.has_h264() && info.has_raw() => Some(format!(
            "--source v4l2:{0} (its own H.264), or --source v4l2:{0} --encoder x264 (raw frames, encoded here)",
            info.path
        )),
        Kind::Camera if info.has_h264() || info.has_raw() => Some(format!("--source v4l2:{}", info.path)),
        Kind::Encoder => Some(format!("--encoder {} (with a raw camera)", info.path)),
        _ => None,
    }
}

#[cfg(not(target_os = "linux"))]
fn list(_args: &DevicesArgs, rpicam: &[(String, String)]) {
    println!("V4L2 cameras are Linux only; this system has: ");
    for (name, path) in rpicam {
        println!("{name}: {path}");
    }
}
