//! What happens after a failed attempt: the host's one table from error kind
//! to next step (answer, next key, next backend) and cooldowns (of the key,
//! of the backend, how long).
//!
//! | kind                                        | next         | cools down                          |
//! |---------------------------------------------|--------------|-------------------------------------|
//! | bad_request, context_length, content_filter | answer       | nothing: the client must change     |
//! | auth, forbidden                             | next key     | the key, `auth_cooldown`            |
//! | quota_exhausted                             | next key     | the key, Retry-After or `quota_cooldown` |
//! | rate_limited                                | next key     | the key, Retry-After or `rate_limit_cooldown` |
//! | overloaded                                  | next backend | the backend, Retry-After or escalating |
//! | timeout, upstream (5xx), not_found, unreachable | next backend | the backend, escalating        |
//! | internal (a plugin failed)                  | next backend | nothing: not the backend's fault    |
//! | untranslatable (the route cannot carry it)  | next backend | nothing: nothing was sent           |
//!
//! "Next key" retries the same backend with another key that is not cooling
//! down, and moves to the next backend when there is none. Escalating
//! cooldowns double with each consecutive failure of the backend.

use std::time::Duration;

use crate::balance::BackendStats;
use crate::config::Routing;
use crate::error::GatewayError;
use crate::plugins::ErrorKind;

/// Where the pipeline goes after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Give the error to the client; no other backend would do better.
    Answer,
    /// Try the same backend with another key.
    NextKey,
    /// Try the next backend.
    NextBackend,
}

/// The full decision for one failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Where to go next.
    pub next: Next,
    /// Take the key used out of rotation for this long.
    pub key_cooldown: Option<Duration>,
    /// Take the backend out of the first choices for this long.
    pub backend_cooldown: Option<Duration>,
}

/// Decides what a failure means. `stats` already counts this failure.
pub fn decide(err: &GatewayError, routing: &Routing, stats: &BackendStats) -> Decision {
    let escalating =
        || stats.escalating_cooldown(routing.backend_cooldown, routing.backend_cooldown_max);
    let answer = Decision {
        next: Next::Answer,
        key_cooldown: None,
        backend_cooldown: None,
    };
    let next_key = |cooldown| Decision {
        next: Next::NextKey,
        key_cooldown: Some(cooldown),
        backend_cooldown: None,
    };
    let next_backend = |cooldown| Decision {
        next: Next::NextBackend,
        key_cooldown: None,
        backend_cooldown: cooldown,
    };
    match err {
        GatewayError::Upstream { error, .. } => {
            let asked = error
                .retry_after_ms
                .map(|ms| Duration::from_millis(u64::from(ms)));
            match error.kind {
                ErrorKind::BadRequest | ErrorKind::ContextLength | ErrorKind::ContentFilter => {
                    answer
                }
                ErrorKind::Auth | ErrorKind::Forbidden => next_key(routing.auth_cooldown),
                ErrorKind::QuotaExhausted => next_key(asked.unwrap_or(routing.quota_cooldown)),
                ErrorKind::RateLimited => next_key(asked.unwrap_or(routing.rate_limit_cooldown)),
                ErrorKind::Overloaded => next_backend(Some(asked.unwrap_or_else(escalating))),
                ErrorKind::Timeout | ErrorKind::Upstream | ErrorKind::NotFound => {
                    next_backend(Some(escalating()))
                }
                ErrorKind::Internal => next_backend(None),
            }
        }
        GatewayError::Unreachable { .. } => next_backend(Some(escalating())),
        GatewayError::Plugin { .. } | GatewayError::Untranslatable { .. } => next_backend(None),
        _ => answer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::RoutingConfig;
    use crate::plugins::PluginError;

    fn upstream(kind: ErrorKind, retry_after_ms: Option<u32>) -> GatewayError {
        GatewayError::Upstream {
            provider: "p".into(),
            error: PluginError {
                kind,
                retry_after_ms,
                upstream_status: None,
                code: None,
                message: String::new(),
            },
        }
    }

    #[test]
    fn the_table() {
        let routing = Routing::from(&RoutingConfig::default());
        let stats = BackendStats::default();
        stats.record(false, Duration::ZERO, None);
        let d = |err| decide(&err, &routing, &stats);

        assert_eq!(d(upstream(ErrorKind::BadRequest, None)).next, Next::Answer);
        assert_eq!(
            d(upstream(ErrorKind::ContextLength, None)).next,
            Next::Answer
        );

        let quota = d(upstream(ErrorKind::QuotaExhausted, None));
        assert_eq!(quota.next, Next::NextKey);
        assert_eq!(quota.key_cooldown, Some(routing.quota_cooldown));
        assert_eq!(
            quota.backend_cooldown, None,
            "one key's quota is not the backend's health"
        );

        let limited = d(upstream(ErrorKind::RateLimited, Some(1500)));
        assert_eq!(limited.key_cooldown, Some(Duration::from_millis(1500)));

        let auth = d(upstream(ErrorKind::Auth, None));
        assert_eq!(
            (auth.next, auth.key_cooldown),
            (Next::NextKey, Some(routing.auth_cooldown))
        );

        let down = d(upstream(ErrorKind::Upstream, None));
        assert_eq!(down.next, Next::NextBackend);
        assert_eq!(down.backend_cooldown, Some(routing.backend_cooldown));

        let overloaded = d(upstream(ErrorKind::Overloaded, Some(3000)));
        assert_eq!(overloaded.backend_cooldown, Some(Duration::from_secs(3)));

        let refused = d(GatewayError::Unreachable {
            provider: "p".into(),
            message: "connection refused".into(),
            timeout: false,
        });
        assert_eq!(refused.next, Next::NextBackend);

        let plugin = d(GatewayError::Plugin {
            plugin: "x".into(),
            message: "trap".into(),
        });
        assert_eq!(
            (plugin.next, plugin.backend_cooldown),
            (Next::NextBackend, None)
        );

        let refused = d(GatewayError::Untranslatable {
            adapter: "anthropic".into(),
            message: "input_audio".into(),
        });
        assert_eq!(
            (refused.next, refused.backend_cooldown),
            (Next::NextBackend, None)
        );

        assert_eq!(d(GatewayError::UnknownModel("m".into())).next, Next::Answer);
    }
}
