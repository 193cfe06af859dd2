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

/// A UNet-like program: two down stages, two up stages whose `concat`s read the skip
/// connections from the down path (edges spanning several layers), and a `split` (a
/// multi-output op) feeding two consumers.
fn unet_program() -> String {
    let conv = |name: &str, x: &str, cin: usize, cout: usize, h: usize| {
        let w = vec!["0.01"; cout * cin * 9].join(", ");
        format!(
            "    tensor<fp16, [{cout}, {cin}, 3, 3]> {name}_w = const()[name = string(\"{name}_w\"), val = tensor<fp16, [{cout}, {cin}, 3, 3]>([{w}])];\n    tensor<fp16, [1, {cout}, {h}, {h}]> {name} = conv(x = {x}, weight = {name}_w, strides = tensor<int32, [2]>([1, 1]), pad_type = string(\"same\"), dilations = tensor<int32, [2]>([1, 1]), groups = int32(1))[name = string(\"{name}\")];\n    tensor<fp16, [1, {cout}, {h}, {h}]> {name}_r = relu(x = {name})[name = string(\"{name}_r\")];\n"
        )
    };
    let pool = |name: &str, x: &str, c: usize, h: usize| {
        format!(
            "    tensor<fp16, [1, {c}, {h}, {h}]> {name} = max_pool(x = {x}, kernel_sizes = tensor<int32, [2]>([2, 2]), strides = tensor<int32, [2]>([2, 2]), pad_type = string(\"valid\"), ceil_mode = bool(false))[name = string(\"{name}\")];\n"
        )
    };
    let up = |name: &str, x: &str, c: usize, h: usize| {
        format!(
            "    tensor<fp16, [1, {c}, {h}, {h}]> {name} = upsample_nearest_neighbor(x = {x}, scale_factor_height = int32(2), scale_factor_width = int32(2))[name = string(\"{name}\")];\n"
        )
    };
    let cat = |name: &str, a: &str, b: &str, c: usize, h: usize| {
        format!(
            "    tensor<fp16, [1, {c}, {h}, {h}]> {name} = concat(values = ({a}, {b}), axis = int32(1), interleave = bool(false))[name = string(\"{name}\")];\n"
        )
    };
    let mut body = String::new();
    body += &conv("enc1", "x", 4, 8, 32);
    body += &pool("down1", "enc1_r", 8, 16);
    body += &conv("enc2", "down1", 8, 16, 16);
    body += &pool("down2", "enc2_r", 16, 8);
    body += &conv("mid", "down2", 16, 16, 8);
    body += &up("up2", "mid_r", 16, 16);
    body += &cat("skip2", "enc2_r", "up2", 32, 16);
    body += &conv("dec2", "skip2", 32, 8, 16);
    body += &up("up1", "dec2_r", 8, 32);
    body += &cat("skip1", "enc1_r", "up1", 16, 32);
    body += &conv("dec1", "skip1", 16, 4, 32);
    body += "    tensor<fp16, [1, 2, 32, 32]> half_a, tensor<fp16, [1, 2, 32, 32]> half_b = split(x = dec1_r, num_splits = int32(2), axis = int32(1))[name = string(\"halves\")];\n";
    body +=
        "    tensor<fp16, [1, 2, 32, 32]> gate = sigmoid(x = half_b)[name = string(\"gate\")];\n";
    body +=
        "    tensor<fp16, [1, 2, 32, 32]> y = mul(x = half_a, y = gate)[name = string(\"y\")];\n";
    program("ios17", "tensor<fp16, [1, 4, 32, 32]> x", &body, "y")
}

/// The attributes of every `<tag …>` in `dom` whose class is `class`.
fn elements(dom: &str, tag: &str, class: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut out = Vec::new();
    let open = format!("<{tag} ");
    let mut rest = dom;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let end = after.find('>').unwrap();
        let attrs_text = &after[..end];
        let mut attrs = std::collections::HashMap::new();
        let mut s = attrs_text;
        while let Some(eq) = s.find("=\"") {
            let key = s[..eq].trim().to_string();
            let v = &s[eq + 2..];
            let close = v.find('"').unwrap();
            attrs.insert(key, v[..close].to_string());
            s = &v[close + 1..];
        }
        if attrs
            .get("class")
            .is_some_and(|c| c.split(' ').any(|c| c == class))
        {
            out.push(attrs);
        }
        rest = &after[end..];
    }
    out
}

/// Whether the segment p–q enters the interior of the rectangle (shrunk by `eps`).
fn crosses(p: (f64, f64), q: (f64, f64), r: (f64, f64, f64, f64), eps: f64) -> bool {
    let (x0, y0, x1, y1) = (r.0 + eps, r.1 + eps, r.0 + r.2 - eps, r.1 + r.3 - eps);
    // Liang–Barsky clipping of the segment against the rectangle.
    let (dx, dy) = (q.0 - p.0, q.1 - p.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (pk, qk) in [
        (-dx, p.0 - x0),
        (dx, x1 - p.0),
        (-dy, p.1 - y0),
        (dy, y1 - p.1),
    ] {
        if pk == 0.0 {
            if qk < 0.0 {
                return false;
            }
        } else {
            let t = qk / pk;
            if pk < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
        }
    }
    t0 < t1
}

#[test]
fn unet_graph_draws_every_edge_and_none_behind_a_node() {
    let Some(browser) = browser() else { return };
    let r = analyze(&unet_program(), "M4");
    let html = anekit_plan::render::html(&r);
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("unet.html");
    std::fs::write(&page, &html).unwrap();
    // ANEKIT_UNET_HTML=FILE keeps the page (docs/analyze.md's screenshot is taken from it).
    if let Some(keep) = std::env::var_os("ANEKIT_UNET_HTML") {
        std::fs::write(keep, &html).unwrap();
    }
    // The geometry check itself can fail: a segment through a rectangle crosses it, one
    // along its edge does not.
    assert!(crosses(
        (10.0, 0.0),
        (10.0, 100.0),
        (0.0, 40.0, 20.0, 10.0),
        0.5
    ));
    assert!(!crosses(
        (0.0, 50.0),
        (20.0, 50.0),
        (0.0, 40.0, 20.0, 10.0),
        0.5
    ));
    let (full_dom, console) = chromium(
        &browser,
        &page,
        &dir.path().join("profile"),
        &["--dump-dom"],
    );
    assert!(console.is_empty(), "console output {console:?}");

    // The graph's edges: distinct (producer, output, consumer) among computing ops.
    let computing: std::collections::HashSet<usize> = r
        .ops
        .iter()
        .filter(|o| o.unit != Unit::None)
        .map(|o| o.index)
        .collect();
    let mut expected = std::collections::HashSet::new();
    for o in r.ops.iter().filter(|o| computing.contains(&o.index)) {
        for e in &o.edges_in {
            if computing.contains(&e[0]) {
                expected.insert((e[0], e[1], o.index));
            }
        }
    }
    // Only what the script drew inside the graph's <svg>.
    let svg_start = full_dom.find("<svg id=\"graph\"").expect("the graph's svg");
    let svg_end = svg_start + full_dom[svg_start..].find("</svg>").expect("svg end");
    let dom = &full_dom[svg_start..svg_end];
    let paths = elements(dom, "path", "edge");
    let drawn: std::collections::HashSet<(usize, usize, usize)> = paths
        .iter()
        .map(|p| {
            (
                p["data-from"].parse().unwrap(),
                p["data-port"].parse().unwrap(),
                p["data-to"].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(paths.len(), expected.len(), "one path per edge");
    assert_eq!(drawn, expected);
    assert!(full_dom.contains(&format!("data-edges=\"{}\"", expected.len())));

    // Node rectangles by op index.
    let rects: std::collections::HashMap<usize, (f64, f64, f64, f64)> =
        elements(dom, "rect", "node")
            .iter()
            .map(|a| {
                let f = |k: &str| a[k].parse::<f64>().unwrap();
                (
                    a["data-index"].parse().unwrap(),
                    (f("x"), f("y"), f("width"), f("height")),
                )
            })
            .collect();
    assert_eq!(rects.len(), computing.len());
    let index = |name: &str| r.ops.iter().find(|o| o.name == name).unwrap().index;
    let mut long_edges = 0;
    for p in &paths {
        let pts: Vec<(f64, f64)> = p["d"]
            .split(['M', 'L'])
            .filter(|s| !s.is_empty())
            .map(|s| {
                let mut it = s.split_whitespace().map(|v| v.parse::<f64>().unwrap());
                (it.next().unwrap(), it.next().unwrap())
            })
            .collect();
        let (from, to): (usize, usize) = (
            p["data-from"].parse().unwrap(),
            p["data-to"].parse().unwrap(),
        );
        // It starts on its producer's bottom edge and ends on its consumer's top edge.
        let (a, b) = (rects[&from], rects[&to]);
        let (first, last) = (pts[0], pts[pts.len() - 1]);
        assert!((first.1 - (a.1 + a.3)).abs() < 0.2 && first.0 > a.0 && first.0 < a.0 + a.2);
        assert!((last.1 - b.1).abs() < 0.2 && last.0 > b.0 && last.0 < b.0 + b.2);
        // No piece of it enters any node's rectangle, its own two included.
        for w in pts.windows(2) {
            for (i, rect) in &rects {
                assert!(
                    !crosses(w[0], w[1], *rect, 0.5),
                    "edge {from}->{to} passes behind op {i} ({w:?} through {rect:?})"
                );
            }
        }
        if pts.len() > 2 {
            long_edges += 1;
        }
    }
    // The skip connections are long edges routed around the nodes in between.
    assert!(long_edges >= 2, "{long_edges}");
    for (skip, source) in [("skip1", "enc1_r"), ("skip2", "enc2_r")] {
        let e = paths
            .iter()
            .find(|p| {
                p["data-from"] == index(source).to_string()
                    && p["data-to"] == index(skip).to_string()
            })
            .unwrap_or_else(|| panic!("no edge {source} -> {skip}"));
        assert!(
            e["d"].matches('L').count() >= 3,
            "{source} -> {skip} is not routed: {}",
            e["d"]
        );
    }
    // The split's two outputs leave from two ports.
    let split = index("halves").to_string();
    let ports: std::collections::HashSet<&str> = paths
        .iter()
        .filter(|p| p["data-from"] == split)
        .map(|p| p["data-port"].as_str())
        .collect();
    assert_eq!(ports, ["0", "1"].into_iter().collect());
    // Segments are boxed, and search and zoom are there.
    assert!(!elements(dom, "rect", "segment").is_empty());
    for id in [
        "id=\"filter\"",
        "id=\"zoomin\"",
        "id=\"zoomout\"",
        "id=\"zoomfit\"",
        "id=\"viewport\"",
    ] {
        assert!(full_dom.contains(id), "{id}");
    }
    // The page stays self-contained.
    for needle in ["<link", " src=", "@import", "url("] {
        assert!(!html.contains(needle), "`{needle}` in the page");
    }
}
