//! Print a bytecode file's tables and operations (no dialect knowledge), and check that it
//! writes back byte for byte.
//!
//! `cargo run -p anekit-mlir --example dump -- FILE.mlirb [--tables]`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: dump FILE.mlirb [--tables]")?;
    let mode = args.next().unwrap_or_default();
    let tables = mode == "--tables";
    let bytes = std::fs::read(&path)?;
    let m = anekit_mlir::read(bytes::Bytes::from(bytes.clone()))?;
    println!(
        "version {} producer {:?}; {} strings, {} dialects, {} op names, {} attributes, {} types, {} properties, {} resource groups, {} ops",
        m.version,
        m.producer,
        m.strings.len(),
        m.dialects.len(),
        m.op_names.len(),
        m.attributes.len(),
        m.types.len(),
        m.properties.len(),
        m.resources.len(),
        m.ir.ops.len()
    );
    let again = anekit_mlir::write(&m)?;
    println!(
        "round trip: {}",
        if again == bytes {
            "identical"
        } else {
            "DIFFERENT"
        }
    );
    if mode == "--ops" {
        for op in m.ir.walk() {
            let o = m.ir.op(op);
            let props = match o.properties {
                Some(anekit_mlir::Properties::Encoded(p)) => {
                    format!("{:02x?}", &m.properties[p.index()][..])
                }
                _ => String::new(),
            };
            println!("{} {props}", m.name_of(op));
        }
        return Ok(());
    }
    if tables {
        for (i, a) in m.attributes.iter().enumerate() {
            println!(
                "attr {i} {} {:02x?}",
                m.dialect_name(a.dialect),
                &a.data[..a.data.len().min(48)]
            );
        }
        for (i, t) in m.types.iter().enumerate() {
            println!(
                "type {i} {} {:02x?}",
                m.dialect_name(t.dialect),
                &t.data[..]
            );
        }
        for (i, p) in m.properties.iter().enumerate() {
            println!("prop {i} {:02x?}", &p[..]);
        }
        for (d, e) in m.dialect_resources() {
            let size = match &e.value {
                anekit_mlir::ResourceValue::Blob { data, alignment } => {
                    format!("blob {} bytes align {alignment}", data.len())
                }
                other => format!("{other:?}"),
            };
            println!("resource {} {} {size}", m.dialect_name(d), m.string(e.key));
        }
    } else {
        print!(
            "{}",
            anekit_mlir::print::print(&m, &anekit_mlir::print::NoHooks)
        );
    }
    Ok(())
}
