use std::process::ExitCode;

fn main() -> ExitCode {
    fhirsurge::cli::main()
}
