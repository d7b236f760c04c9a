//! The admin console at `/ui/`: three static files embedded in the binary
//! (a plain `cargo build` gives a working UI), talking to `/admin/api/` with
//! the admin token the user signs in with. The files themselves hold no
//! data, so they are served without auth; every number comes from the API.

use bytes::Bytes;
use http::{Response, StatusCode};

use crate::server::{ResponseBody, full_body};

const INDEX: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/app.css");

/// The file for a path under `/ui/`; any other path gets the page (the
/// console routes with `#fragments`, so this only catches stray links).
pub fn asset(path: &str) -> Response<ResponseBody> {
    let (body, kind) = match path.trim_start_matches("/ui").trim_start_matches('/') {
        "app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "app.css" => (STYLE, "text/css; charset=utf-8"),
        _ => (INDEX, "text/html; charset=utf-8"),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", kind)
        .header("cache-control", "no-cache")
        // Everything comes from here; nothing may be loaded from elsewhere.
        .header(
            "content-security-policy",
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
        )
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .body(full_body(Bytes::from_static(body.as_bytes())))
        .expect("static parts make a valid response")
}
