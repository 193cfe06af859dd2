//! Print a `.mlirb` file as coreai-core does: `cargo run -p anekit-coreai --example print -- FILE`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: print FILE.mlirb")?;
    let m = anekit_mlir::read(bytes::Bytes::from(std::fs::read(path)?))?;
    print!("{}", anekit_coreai::text::print(&m));
    Ok(())
}
