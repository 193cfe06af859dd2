//! `anekit inspect --mil model | head` ends quietly: when the reader closes the pipe, the
//! command stops with exit status 0 and prints nothing on stderr (no "failed printing to
//! stdout" panic).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::process::{Command, Stdio};

/// A compiled-model folder whose MIL text and reports are far larger than a pipe's buffer
/// (64 KiB on Linux), so the writer is still writing when the reader goes away.
fn big_model(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("chain.mlmodelc");
    std::fs::create_dir_all(&path).unwrap();
    let mut mil =
        String::from("program(1.0)\n{\n    func main<ios16>(tensor<fp16, [1, 10]> x) {\n");
    let mut prev = "x".to_string();
    for i in 0..3000 {
        mil.push_str(&format!(
            "            tensor<fp16, [1, 10]> r{i} = relu(x = {prev})[name = string(\"relu_{i}\")];\n"
        ));
        prev = format!("r{i}");
    }
    mil.push_str(&format!("        }} -> ({prev});\n}}\n"));
    std::fs::write(path.join("model.mil"), mil).unwrap();
    path
}

fn closed_early(args: &[&str]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_anekit"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_BACKTRACE")
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "`anekit {}`: {:?}\n{stderr}",
        args.join(" "),
        out.status
    );
    assert!(stderr.is_empty(), "`anekit {}`: {stderr}", args.join(" "));
}

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let model = big_model(dir.path());
    let model = model.to_str().unwrap();
    closed_early(&["inspect", "--mil", model]);
    closed_early(&["analyze", "--all-ops", "--no-compare", model]);
}
