//! Where Core ML will place each op of a model on a chip, and what it will cost.
//!
//! ```sh
//! cargo run -p anekit --example analyze_chip -- MODEL.mlpackage "A17 Pro"
//! cargo run -p anekit --example analyze_chip       # the bundled model on M1
//! ```

use std::collections::BTreeMap;

use anekit::Model;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = match args.next() {
        Some(p) => Model::open(p)?,
        None => Model::open(anekit::bundled::path()?)?,
    };
    let chip = args.next().unwrap_or_else(|| "M1".into());
    let r = model.analyze(&chip)?;
    println!(
        "{} on {} ({:?})",
        r.model.path.as_deref().unwrap_or("model"),
        r.chip,
        r.compute_units
    );
    let c = &r.coverage;
    println!(
        "{} compute ops: {} Neural Engine, {} GPU, {} CPU ({:.0}% of the FLOPs on the Neural Engine)",
        c.compute_ops,
        c.ane_ops,
        c.gpu_ops,
        c.cpu_ops,
        c.ane_fraction_flops * 100.0
    );
    println!(
        "estimated {:.3} ms per prediction ({} segments)",
        r.estimate.latency_ms,
        r.segments.len()
    );
    let mut by_unit: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for op in &r.ops {
        *by_unit
            .entry(format!("{:?}", op.unit))
            .or_default()
            .entry(op.op_type.clone())
            .or_default() += 1;
    }
    for (unit, ops) in &by_unit {
        let list: Vec<String> = ops.iter().map(|(t, n)| format!("{t}×{n}")).collect();
        println!("  {unit}: {}", list.join(", "));
    }
    for f in &r.findings {
        println!("finding: {f:?}");
    }
    Ok(())
}
