//! The HTML report in headless Chromium (Debian's `chromium`, installed by
//! scripts/setup-chromium.sh): the page loads with no console message at all (errors and
//! uncaught exceptions are console messages), its script draws one node per computing op,
//! and a screenshot is not blank (it shows the units' colours).
//!
//! Without a browser the test is skipped with a message, unless ANEKIT_REQUIRE_CHROMIUM=1
//! (set by scripts/test.sh), where a missing browser fails it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use anekit_plan::ComputeUnits;
use anekit_plan::cost::Unit;
use support::*;

fn browser() -> Option<PathBuf> {
    let p = std::env::var_os("ANEKIT_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let ok = Command::new(&p)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(p);
    }
    assert!(
        std::env::var("ANEKIT_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
        "ANEKIT_REQUIRE_CHROMIUM=1 but {} does not run (scripts/setup-chromium.sh installs it)",
        p.display()
    );
    eprintln!(
        "skipped: no Chromium at {} (scripts/setup-chromium.sh)",
        p.display()
    );
    None
}

/// Run Chromium headless on `page` with extra arguments; returns (stdout, console lines).
fn chromium(browser: &Path, page: &Path, profile: &Path, extra: &[&str]) -> (String, Vec<String>) {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

/// Decode an 8-bit RGB/RGBA non-interlaced PNG into RGB pixels.
fn decode_png(data: &[u8]) -> (usize, usize, Vec<[u8; 3]>) {
    assert_eq!(&data[..8], b"\x89PNG\r\n\x1a\n");
    let (mut pos, mut w, mut h, mut channels) = (8, 0usize, 0usize, 0usize);
    let mut idat = Vec::new();
    while pos + 8 <= data.len() {
        let len = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &data[pos + 4..pos + 8];
        let body = &data[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => {
                w = u32::from_be_bytes(body[0..4].try_into().unwrap()) as usize;
                h = u32::from_be_bytes(body[4..8].try_into().unwrap()) as usize;
                assert_eq!(body[8], 8, "bit depth");
                channels = match body[9] {
                    2 => 3,
                    6 => 4,
                    c => panic!("colour type {c}"),
                };
                assert_eq!(body[12], 0, "interlaced");
            }
            b"IDAT" => idat.extend_from_slice(body),
            b"IEND" => break,
            _ => {}
        }
        pos += 12 + len;
    }
    let raw = miniz_oxide::inflate::decompress_to_vec_zlib(&idat).expect("inflate");
    let stride = w * channels;
    let mut prev = vec![0u8; stride];
    let mut px = Vec::with_capacity(w * h);
    for y in 0..h {
        let line = &raw[y * (stride + 1)..(y + 1) * (stride + 1)];
        let (f, src) = (line[0], &line[1..]);
        let mut cur = vec![0u8; stride];
        for i in 0..stride {
            let a = if i >= channels { cur[i - channels] } else { 0 };
            let b = prev[i];
            let c = if i >= channels { prev[i - channels] } else { 0 };
            let pred = match f {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = (
                        (p - i16::from(a)).abs(),
                        (p - i16::from(b)).abs(),
                        (p - i16::from(c)).abs(),
                    );
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                _ => panic!("filter {f}"),
            };
            cur[i] = src[i].wrapping_add(pred);
        }
        for x in 0..w {
            px.push([
                cur[x * channels],
                cur[x * channels + 1],
                cur[x * channels + 2],
            ]);
        }
        prev = cur;
    }
    (w, h, px)
}

fn close(p: [u8; 3], q: [u8; 3]) -> bool {
    p.iter().zip(q).all(|(a, b)| a.abs_diff(b) <= 12)
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let Some(browser) = browser() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (fixture_name, units) in [
        ("decoder_sdpa_fp16_ios18", ComputeUnits::All),
        ("lstm_fp32_ios15", ComputeUnits::CpuAndNe),
        ("convnet_fp16_ios16", ComputeUnits::All),
    ] {
        let r = fixture(fixture_name, "M4", units);
        let html = anekit_plan::render::html(&r);
        // Self-contained: no external resources.
        for needle in ["<link", " src=", "@import", "url("] {
            assert!(
                !html.contains(needle),
                "{fixture_name}: `{needle}` in the page"
            );
        }
        let page = dir.path().join(format!("{fixture_name}.html"));
        std::fs::write(&page, &html).unwrap();
        let profile = dir.path().join(format!("profile-{fixture_name}"));

        let (dom, console) = chromium(&browser, &page, &profile, &["--dump-dom"]);
        assert!(
            console.is_empty(),
            "{fixture_name}: console output {console:?}"
        );
        let compute = r.ops.iter().filter(|o| o.unit != Unit::None).count();
        assert!(
            dom.contains(&format!("data-rendered=\"{compute}\"")),
            "{fixture_name}: the script did not draw {compute} nodes"
        );

        let shot = dir.path().join(format!("{fixture_name}.png"));
        let (_, console) = chromium(
            &browser,
            &page,
            &profile,
            &[&format!("--screenshot={}", shot.display())],
        );
        assert!(
            console.is_empty(),
            "{fixture_name}: console output {console:?}"
        );
        let (w, h, px) = decode_png(&std::fs::read(&shot).unwrap());
        assert!(w >= 800 && h >= 600, "{w}x{h}");
        let distinct: std::collections::HashSet<[u8; 3]> = px.iter().copied().collect();
        assert!(
            distinct.len() > 50,
            "{fixture_name}: {} colours: blank page?",
            distinct.len()
        );
        // The unit colours of the ops it predicted are on screen.
        let colour = |u: Unit| match u {
            Unit::Ane => [0x2e, 0x9d, 0x57],
            Unit::Gpu => [0x3b, 0x7d, 0xd8],
            _ => [0xe0, 0x8a, 0x1e],
        };
        for u in [Unit::Ane, Unit::Gpu, Unit::Cpu] {
            let n = r.ops.iter().filter(|o| o.unit == u).count();
            let shown = px.iter().filter(|p| close(**p, colour(u))).count();
            if n > 0 {
                assert!(
                    shown > 500,
                    "{fixture_name}: {u:?} has {n} ops but {shown} pixels of its colour"
                );
            }
        }
    }
}
