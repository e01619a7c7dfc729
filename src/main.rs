//! The `fhirsurge` binary: everything lives in the library; this only hands over.

/// The runner, the mock EHR and the proxy allocate per request on every thread; mimalloc
/// keeps that off glibc's arena locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    fhirsurge::cli::main()
}
