//! Build script: makes the binary find libtorch at run time, forces CUDA
//! linking when asked, and records the git revision for output stamps.

use std::env;
use std::process::Command;

fn main() {
    // torch-sys (a direct dependency for this reason) tells dependents where
    // libtorch's shared libraries are. Embedding that directory as an rpath
    // lets `target/release/tglml` run without LD_LIBRARY_PATH.
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

    let revision = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    let suffix = if dirty { "-dirty" } else { "" };
    println!("cargo:rustc-env=TGLML_GIT_REVISION={revision}{suffix}");
    for path in [".git/HEAD", ".git/index", ".git/refs/heads"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
