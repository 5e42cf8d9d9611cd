//! Build script: makes tglml-torch find libtorch at run time, and forces
//! CUDA linking when asked.

use std::env;

fn main() {
    // torch-sys (a direct dependency for this reason) tells dependents where
    // libtorch's shared libraries are. Embedding that directory as an rpath
    // lets `target/release/tglml-torch` run without LD_LIBRARY_PATH.
    if let Ok(lib) = env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        // The linker drops libtorch_cuda with --as-needed because no symbol of
        // it is referenced directly; CUDA then silently looks unavailable.
        // TGLML_CUDA=1 at build time keeps it (README: "Building for CUDA").
        println!("cargo:rerun-if-env-changed=TGLML_CUDA");
        if env::var("TGLML_CUDA").is_ok_and(|v| v == "1") {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
