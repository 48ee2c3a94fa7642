//! Independent cross-checks in tests (pydicom, scikit-learn, dcmtk, a browser, the shared
//! conformance files) skip with a printed reason when their tool is absent on a developer's
//! machine, and fail instead when `DISCUS_REQUIRE_CROSSCHECKS=1` is set, as CI sets it: a green CI
//! run means every cross-check ran.
//!
//! ```
//! // In a test, where a tool is missing:
//! if std::process::Command::new("no-such-tool-here").output().is_err() {
//!     # if discus_core::crosscheck::required() { return; }
//!     discus_core::crosscheck::skip("no-such-tool-here is not installed");
//!     return;
//! }
//! ```

/// The environment variable that turns skips into failures.
pub const REQUIRE_ENV: &str = "DISCUS_REQUIRE_CROSSCHECKS";

/// Whether cross-checks must run (`DISCUS_REQUIRE_CROSSCHECKS` set to anything but `0` or empty).
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Skips a cross-check that cannot run here, printing why; panics (fails the test) when
/// [`required`].
pub fn skip(reason: impl std::fmt::Display) {
    if required() {
        panic!("{REQUIRE_ENV} is set, but a cross-check cannot run: {reason}");
    }
    eprintln!("skipping: {reason}");
}
