//! TLS setup for upstream connections: rustls with the ring provider,
//! installed once per process before any HTTP client is built.

use std::sync::Once;

/// Makes ring the process-wide rustls provider (idempotent).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only if another provider was installed first, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
