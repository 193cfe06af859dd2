//! Decode and re-encode a module: `cargo run -p anekit-coreai --example reencode -- IN.mlirb OUT.mlirb`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut a = std::env::args().skip(1);
    let (src, dst) = (
        a.next().ok_or("usage: reencode IN OUT")?,
        a.next().ok_or("usage: reencode IN OUT")?,
    );
    let m = anekit_mlir::read(bytes::Bytes::from(std::fs::read(src)?))?;
    let out = anekit_coreai::reencode::reencode(&m, "anekit")?;
    std::fs::write(dst, anekit_mlir::write(&out)?)?;
    Ok(())
}
