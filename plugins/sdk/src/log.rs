//! Logging into the host's tracing. Natively (unit tests) messages go to stderr.

use crate::wit::provider::llmgate::plugin::host_log::{self, Level};

fn emit(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    host_log::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = host_log::log; // the import only exists inside a component
        eprintln!("[{level:?}] {message}");
    }
}

/// Logs at debug level.
pub fn debug(message: &str) {
    emit(Level::Debug, message)
}

/// Logs at info level.
pub fn info(message: &str) {
    emit(Level::Info, message)
}

/// Logs at warn level.
pub fn warn(message: &str) {
    emit(Level::Warn, message)
}
