//! Fault points that only test builds can trigger (cargo feature
//! `test-hooks`): the end-to-end suite uses them to make the core panic or
//! die at a named step of a pull. In every other build [`point`] is an empty
//! inline function.
//!
//! In a test build, `DRAGONFLY_ENDPOINT_TEST_HOOKS` names a file read at each
//! point; each line is `<point> <action>`: `panic`, `kill` (SIGKILL of the
//! whole process, as `kill -9` would) or `wait <path>` (block until `path`
//! exists, at most two minutes: holds a pull at that step while a test
//! does something else). A missing file arms nothing, so a test arms and
//! disarms points while the process runs.
//!
//! May import: nothing of this crate.

/// The environment variable naming the hooks file (test builds only).
pub const HOOKS_ENV: &str = "DRAGONFLY_ENDPOINT_TEST_HOOKS";
/// `host=ip:port,...`: names the store clients resolve to loopback (test
/// builds only). OBS and COS URLs carry the bucket in the host name and no
/// port, which no loopback test server could otherwise answer.
pub const RESOLVE_ENV: &str = "DRAGONFLY_ENDPOINT_TEST_RESOLVE";

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn resolve_overrides() -> Vec<(String, std::net::SocketAddr)> {
    Vec::new()
}

#[cfg(feature = "test-hooks")]
pub fn resolve_overrides() -> Vec<(String, std::net::SocketAddr)> {
    let text = std::env::var(RESOLVE_ENV).unwrap_or_default();
    text.split(',')
        .filter_map(|pair| {
            let (host, addr) = pair.split_once('=')?;
            Some((host.trim().to_string(), addr.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn point(_name: &str) {}

#[cfg(feature = "test-hooks")]
pub fn point(name: &str) {
    let Some(path) = std::env::var_os(HOOKS_ENV) else {
        return;
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some(name) {
            continue;
        }
        match words.next() {
            Some("panic") => panic!("test hook {name}"),
            Some("kill") => {
                tracing::warn!("test hook {name}: killing the process");
                // SAFETY: kill(2) with our own pid has no memory effects.
                unsafe {
                    libc::kill(libc::getpid(), libc::SIGKILL);
                }
            }
            Some("wait") => {
                let Some(release) = words.next() else {
                    continue;
                };
                tracing::warn!("test hook {name}: waiting for {release}");
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
                while !std::path::Path::new(release).exists()
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
            _ => {}
        }
    }
}
