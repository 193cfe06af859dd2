//! Compiles `src/exception.m` (an `@try`/`@catch` trampoline; Rust cannot catch
//! Objective-C exceptions by itself) when the target is an Apple platform and the build runs
//! on a Mac, whose Xcode clang compiles Objective-C. When Apple targets are only
//! type-checked from Linux (CI's `apple-check` step: `cargo check`, nothing is
//! linked) there is no Objective-C compiler, and nothing needs one: the helper is declared
//! in Rust and only the link step would look for it.

fn main() {
    println!("cargo:rerun-if-changed=src/exception.m");
    let target_vendor = std::env::var("CARGO_CFG_TARGET_VENDOR").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    if target_vendor == "apple" && host.contains("apple-darwin") {
        cc::Build::new()
            .file("src/exception.m")
            .flag("-fobjc-exceptions")
            .compile("anekit_objc_exception");
    }
}
