//! The process's own resource limits, at the edge: the open-file limit (from
//! `/proc/self/limits`), a warning before a run whose users need more descriptors than
//! it allows, and a plain explanation on an error that says they ran out. Uses std only.

/// Descriptors a run needs beyond its users: the history, interval logs, the in-process
/// mock's listener, the runtime.
const BASE: u64 = 64;
/// Per user: its connection, the in-process mock's side of it, a probe's and a retry's.
const PER_USER: u64 = 4;

/// The soft limit on open files, when the platform says.
pub(super) fn open_files() -> Option<u64> {
    parse_open_files(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

/// The soft `Max open files` of a `/proc/<pid>/limits` text; `None` when unlimited or
/// absent.
fn parse_open_files(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Says on stderr when `users` likely need more descriptors than the limit allows.
pub(super) fn warn_if_low(users: usize) {
    let Some(limit) = open_files() else {
        return;
    };
    let need = BASE + PER_USER * users as u64;
    if limit < need {
        eprintln!(
            "warning: the open-file limit is {limit} (`ulimit -n`); {users} users need about \
             {need}: connections may fail with \"Too many open files\" (recorded as errors) \
             and the history may not be writable — raise the limit or run fewer users"
        );
    }
}

/// The error message, with what it means when it says descriptors ran out.
pub(super) fn explain(message: String) -> String {
    let ran_out = message.contains("os error 24") || message.contains("os error 23");
    if !ran_out {
        return message;
    }
    let limit = open_files().map_or_else(|| "unknown".to_owned(), |n| n.to_string());
    format!(
        "{message}\n  the process ran out of file descriptors (open-file limit: {limit}, \
         `ulimit -n`): raise the limit or run fewer users"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_open_file_limit_is_read() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            1024                 1048576              files     \n";
        assert_eq!(parse_open_files(text), Some(1024));
        let unlimited = text.replace("1024   ", "unlimited");
        assert_eq!(parse_open_files(&unlimited), None);
        assert_eq!(parse_open_files("nothing"), None);
    }

    #[test]
    fn only_running_out_of_descriptors_is_explained() {
        let e = explain("x.zst: Too many open files (os error 24)".into());
        assert!(e.contains("ran out of file descriptors"), "{e}");
        assert_eq!(
            explain("x: No space left on device (os error 28)".into()),
            "x: No space left on device (os error 28)"
        );
    }
}
