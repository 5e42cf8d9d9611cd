//! The `tglml-torch` binary: the commands that need libtorch (`tglml train`
//! hands over to it) and every other command of `tglml`.

fn main() -> std::process::ExitCode {
    tglml::entry::main(&tglml_torch::Commands)
}
