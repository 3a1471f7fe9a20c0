//! Values that carry credentials, as types that cannot be printed: their
//! `Debug` is `***`, they have no `Display` and no `Serialize`, so a stray
//! `{:?}`, a log line or a JSON answer never shows them. Code that needs the
//! value calls [`Secret::expose`], which is easy to find in a review.
//!
//! May import: nothing of this crate.

use std::time::SystemTime;

use serde::{Deserialize, Deserializer};

/// A credential: a secret key, a token, a password, a presigned URL.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret)
    }
}

/// A presigned GET: it carries a credential and a signature, so it is never
/// logged or returned; `expires_at` lets a refusal say whether it expired.
#[derive(Debug, Clone)]
pub struct PresignedUrl {
    pub url: Secret<String>,
    pub expires_at: Option<SystemTime>,
}

/// A URL that may carry `user:password@` (a proxy, a store endpoint): its
/// `Debug` and [`MaskedUrl::shown`] mask them.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct MaskedUrl(String);

impl MaskedUrl {
    pub fn new(url: impl Into<String>) -> Self {
        MaskedUrl(url.into())
    }

    /// The URL to connect to, credentials included.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL for messages and `GET /dragonfly`.
    pub fn shown(&self) -> String {
        mask_userinfo(&self.0)
    }
}

impl std::fmt::Debug for MaskedUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

/// A URL as it may be shown: `user:password@` replaced by `***@`. Text that
/// is not a URL is returned as it is.
pub fn mask_userinfo(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_password(None);
            let _ = url.set_username("***");
            url.to_string()
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret: Secret<String> = serde_json::from_str("\"SKSECRET\"").unwrap();
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(secret.expose(), "SKSECRET");
        let nested = Some(Secret::new(("user".to_string(), "PW".to_string())));
        assert!(!format!("{nested:?}").contains("PW"));
        let url = PresignedUrl {
            url: Secret::new("http://s/b/k?X-Amz-Signature=SECRET".into()),
            expires_at: None,
        };
        assert!(!format!("{url:?}").contains("SECRET"));
    }

    #[test]
    fn userinfo_is_masked() {
        assert_eq!(
            mask_userinfo("http://user:pw@127.0.0.1:4001"),
            "http://***@127.0.0.1:4001/"
        );
        assert_eq!(
            mask_userinfo("http://127.0.0.1:4001"),
            "http://127.0.0.1:4001"
        );
        assert_eq!(mask_userinfo("not a url"), "not a url");
    }
}
