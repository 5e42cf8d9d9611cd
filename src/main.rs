//! The `tglml` binary: every command; those that need libtorch are handed
//! to tglml-torch ([`tglml::commands::Torch`]).

fn main() -> std::process::ExitCode {
    tglml::entry::main(&tglml::commands::HandOff::beside_current_exe())
}
