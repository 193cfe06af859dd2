//! Opening a package with a ~1 GB weight file must not read the weights.
//!
//! Builds a package whose `weight.bin` holds a few 128 MiB fp16 blobs (the payloads are holes
//! in a sparse file, so building takes no time and no disk), then, several times, opens it
//! with `ModelAsset::open` and resolves every blob reference through the `WeightStore`. For
//! each run it records the wall time, the bytes the process read (`/proc/self/io`: `rchar`
//! counts every read(2), `read_bytes` what hit the block layer) and the growth of the resident
//! set (`VmRSS` in `/proc/self/status`), and prints the median of each.
//!
//! Run with `cargo bench -p anekit-format --bench open_large` (Linux; elsewhere the I/O and
//! RSS columns read "n/a"). `ANEKIT_BENCH_RUNS` sets the number of runs (default 9).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: failing loudly is right

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anekit_format::blob::{ALIGNMENT, HEADER_SIZE, METADATA_SIZE, SENTINEL, VERSION, align64};
use anekit_format::proto::{self, mil_spec};
use anekit_format::{BlobDataType, BlobSource, ModelAsset, PackageWriter, blob_references};

const BLOB_COUNT: u64 = 8;
const BLOB_SIZE: u64 = 128 * 1024 * 1024;

/// Write a blob file with `BLOB_COUNT` fp16 blobs of `BLOB_SIZE` bytes whose payloads are
/// left as holes. Returns the metadata offsets.
fn write_sparse_weights(path: &Path) -> Vec<u64> {
    let mut f = File::create(path).unwrap();
    let mut header = [0u8; HEADER_SIZE as usize];
    header[0..4].copy_from_slice(&(BLOB_COUNT as u32).to_le_bytes());
    header[4..8].copy_from_slice(&VERSION.to_le_bytes());
    f.write_all(&header).unwrap();
    let mut offsets = Vec::new();
    let mut pos = HEADER_SIZE;
    for _ in 0..BLOB_COUNT {
        let meta_at = align64(pos).unwrap();
        let payload_at = meta_at + METADATA_SIZE;
        let mut meta = [0u8; METADATA_SIZE as usize];
        meta[0..4].copy_from_slice(&SENTINEL.to_le_bytes());
        meta[4..8].copy_from_slice(&(BlobDataType::Float16 as u32).to_le_bytes());
        meta[8..16].copy_from_slice(&BLOB_SIZE.to_le_bytes());
        meta[16..24].copy_from_slice(&payload_at.to_le_bytes());
        f.seek(SeekFrom::Start(meta_at)).unwrap();
        f.write_all(&meta).unwrap();
        offsets.push(meta_at);
        pos = payload_at + BLOB_SIZE;
    }
    f.set_len(align64(pos).unwrap()).unwrap();
    assert_eq!(ALIGNMENT, 64);
    offsets
}

fn const_op(i: usize, offset: u64) -> mil_spec::Operation {
    let ty = mil_spec::ValueType {
        r#type: Some(mil_spec::value_type::Type::TensorType(
            mil_spec::TensorType {
                data_type: mil_spec::DataType::Float16 as i32,
                rank: 2,
                dimensions: [8192, BLOB_SIZE / 2 / 8192]
                    .into_iter()
                    .map(|size| mil_spec::Dimension {
                        dimension: Some(mil_spec::dimension::Dimension::Constant(
                            mil_spec::dimension::ConstantDimension { size },
                        )),
                    })
                    .collect(),
                attributes: BTreeMap::new(),
            },
        )),
    };
    let val = mil_spec::Value {
        doc_string: String::new(),
        r#type: Some(ty.clone()),
        value: Some(mil_spec::value::Value::BlobFileValue(
            mil_spec::value::BlobFileValue {
                file_name: "@model_path/weights/weight.bin".into(),
                offset,
            },
        )),
    };
    mil_spec::Operation {
        r#type: "const".into(),
        inputs: BTreeMap::new(),
        outputs: vec![mil_spec::NamedValueType {
            name: format!("w{i}"),
            r#type: Some(ty),
        }],
        blocks: vec![],
        attributes: [("val".to_string(), val)].into_iter().collect(),
    }
}

fn model(offsets: &[u64]) -> proto::Model {
    let ops: Vec<_> = offsets
        .iter()
        .enumerate()
        .map(|(i, &o)| const_op(i, o))
        .collect();
    let block = mil_spec::Block {
        inputs: vec![],
        outputs: ops.iter().map(|o| o.outputs[0].name.clone()).collect(),
        operations: ops,
        attributes: BTreeMap::new(),
    };
    let function = mil_spec::Function {
        inputs: vec![],
        opset: "CoreML8".into(),
        block_specializations: [("CoreML8".to_string(), block)].into_iter().collect(),
        attributes: BTreeMap::new(),
    };
    proto::Model {
        specification_version: 9,
        r#type: Some(proto::model::Type::MlProgram(mil_spec::Program {
            version: 1,
            functions: [("main".to_string(), function)].into_iter().collect(),
            doc_string: String::new(),
            attributes: BTreeMap::new(),
        })),
        ..Default::default()
    }
}

/// `rchar` and `read_bytes` of this process, if /proc says.
fn io_counters() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok())
    };
    Some((get("rchar:")?, get("read_bytes:")?))
}

/// Resident set size in bytes, if /proc says.
fn rss() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = text.lines().find_map(|l| {
        l.strip_prefix("VmRSS:")?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse::<u64>()
            .ok()
    })?;
    Some(kb * 1024)
}

struct Run {
    open: Duration,
    resolve: Duration,
    rchar: Option<u64>,
    read_bytes: Option<u64>,
    rss_growth: Option<i64>,
    resolved_bytes: u64,
}

fn run(path: &Path, touch: bool) -> Run {
    // RSS is read outside the I/O window so that reading /proc/self/status is not counted.
    let rss0 = rss();
    let io0 = io_counters();
    let t0 = Instant::now();
    let asset = ModelAsset::open(path).unwrap();
    let open = t0.elapsed();
    let t1 = Instant::now();
    let refs = blob_references(asset.spec.as_ref().unwrap());
    let mut resolved_bytes = 0;
    for r in &refs {
        let blob = asset.weights.blob(&r.file_name, r.offset).unwrap();
        resolved_bytes += blob.data.len() as u64;
    }
    let resolve = t1.elapsed();
    let io1 = io_counters();
    let rss1 = rss();
    if touch {
        // Control: actually read one blob's bytes, to show the instruments see it.
        let r = &refs[0];
        let blob = asset.weights.blob(&r.file_name, r.offset).unwrap();
        let sum: u64 = blob.data.iter().map(|&b| u64::from(b)).sum();
        std::hint::black_box(sum);
        let rss2 = rss();
        let io2 = io_counters();
        println!(
            "control (sum the {} MiB of one blob through the same map): RSS growth {} KiB, rchar {} B",
            blob.data.len() >> 20,
            fmt_opt(rss1.zip(rss2).map(|(a, b)| (b as i64 - a as i64) / 1024)),
            fmt_opt(io1.zip(io2).map(|(a, b)| b.0 - a.0)),
        );
    }
    let (rchar, read_bytes) = match (io0, io1) {
        (Some(a), Some(b)) => (Some(b.0 - a.0), Some(b.1 - a.1)),
        _ => (None, None),
    };
    drop(asset);
    Run {
        open,
        resolve,
        rchar,
        read_bytes,
        rss_growth: rss0.zip(rss1).map(|(a, b)| b as i64 - a as i64),
        resolved_bytes,
    }
}

fn median<T: Ord + Copy>(mut v: Vec<T>) -> T {
    v.sort();
    v[v.len() / 2]
}

fn fmt_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "n/a".to_string(), |x| x.to_string())
}

fn main() {
    let runs: usize = std::env::var("ANEKIT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9)
        .max(1);
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("large.mlpackage");
    let t = Instant::now();
    let writer = PackageWriter::create(&pkg).unwrap();
    let offsets = write_sparse_weights(&writer.weight_file_path());
    writer.finish(&model(&offsets)).unwrap();
    let weight_file = pkg.join("Data/com.apple.CoreML/weights/weight.bin");
    let weight_len = std::fs::metadata(&weight_file).unwrap().len();
    println!(
        "built {} in {:.1?}: weight.bin {:.2} GiB ({} blobs of {} MiB, sparse)",
        pkg.display(),
        t.elapsed(),
        weight_len as f64 / (1u64 << 30) as f64,
        BLOB_COUNT,
        BLOB_SIZE >> 20
    );

    let results: Vec<Run> = (0..runs).map(|_| run(&pkg, false)).collect();
    for r in &results {
        assert_eq!(r.resolved_bytes, BLOB_COUNT * BLOB_SIZE);
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!();
    println!(
        "| run | open (µs) | resolve {BLOB_COUNT} blobs (µs) | rchar (B) | read_bytes (B) | RSS growth (KiB) |"
    );
    println!("|---|---|---|---|---|---|");
    for (i, r) in results.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.0} | {} | {} | {} |",
            i + 1,
            us(r.open),
            us(r.resolve),
            fmt_opt(r.rchar),
            fmt_opt(r.read_bytes),
            fmt_opt(r.rss_growth.map(|b| b / 1024)),
        );
    }
    let med_open = median(results.iter().map(|r| r.open).collect());
    let med_resolve = median(results.iter().map(|r| r.resolve).collect());
    let med_rchar = results
        .iter()
        .map(|r| r.rchar)
        .collect::<Option<Vec<_>>>()
        .map(median);
    let med_read = results
        .iter()
        .map(|r| r.read_bytes)
        .collect::<Option<Vec<_>>>()
        .map(median);
    let med_rss = results
        .iter()
        .map(|r| r.rss_growth)
        .collect::<Option<Vec<_>>>()
        .map(median);
    println!(
        "| **median of {runs}** | **{:.0}** | **{:.0}** | **{}** | **{}** | **{}** |",
        us(med_open),
        us(med_resolve),
        fmt_opt(med_rchar),
        fmt_opt(med_read),
        fmt_opt(med_rss.map(|b| b / 1024)),
    );
    println!();
    run(&pkg, true);
    println!(
        "blob bytes resolved per run: {} ({:.2} GiB); bytes read per run (median rchar): {} = {:.6}% of the weight file",
        BLOB_COUNT * BLOB_SIZE,
        (BLOB_COUNT * BLOB_SIZE) as f64 / (1u64 << 30) as f64,
        fmt_opt(med_rchar),
        med_rchar.map_or(f64::NAN, |b| b as f64 * 100.0 / weight_len as f64),
    );
}
