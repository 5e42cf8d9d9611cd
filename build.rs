//! Build script: records the git revision for output stamps, and finds the
//! TrueType font that the PNG plots embed (libtorch is crates/torch's, which
//! has its own).

use std::process::Command;

fn main() {
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
    font();
}

/// The font of the plots' text (axes, titles, legends), compiled into the
/// binary so that a run never depends on fonts at run time: TGLML_FONT, or
/// DejaVu Sans where Debian (fonts-dejavu-core), RHEL (dejavu-sans-fonts)
/// or Arch put it.
fn font() {
    println!("cargo:rerun-if-env-changed=TGLML_FONT");
    let given = std::env::var("TGLML_FONT").ok().filter(|s| !s.is_empty());
    let candidates = given.clone().into_iter().chain(
        [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
        ]
        .map(String::from),
    );
    for path in candidates {
        if std::path::Path::new(&path).is_file() {
            println!("cargo:rustc-env=TGLML_FONT_FILE={path}");
            println!("cargo:rerun-if-changed={path}");
            return;
        }
        if given.as_deref() == Some(path.as_str()) {
            panic!("TGLML_FONT={path}: no such file (give a TrueType font, e.g. DejaVuSans.ttf)");
        }
    }
    panic!(
        "no DejaVuSans.ttf for the plots' text: install fonts-dejavu-core (Debian, Ubuntu; scripts/setup.sh does) or dejavu-sans-fonts (RHEL), or set TGLML_FONT=/path/to/a/font.ttf"
    );
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
