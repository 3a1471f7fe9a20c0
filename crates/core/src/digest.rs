//! What a store says an object's content hashes to, and computing the same
//! over the bytes received. A store's source file decides which of its
//! values is a real digest of the whole content (an S3 ETag is one only for
//! single-part objects without SSE-KMS or SSE-C); the writer only compares.
//!
//! May import: nothing of this crate.

use base64::Engine as _;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

/// Algorithms a store may give a whole-object digest in, fastest first:
/// when a store offers several, the pull checks the first (they all catch
/// corruption in transit; SHA-256 costs a core at ~400 MB/s, CRCs far less).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Algorithm {
    #[serde(rename = "CRC64NVME")]
    Crc64Nvme,
    #[serde(rename = "CRC32C")]
    Crc32c,
    #[serde(rename = "CRC32")]
    Crc32,
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
    #[serde(rename = "MD5")]
    Md5,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc32 => "CRC32",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Md5 => "MD5",
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Crc64Nvme => {
                Hasher::Crc(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme))
            }
            Algorithm::Crc32c => {
                Hasher::Crc(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi))
            }
            Algorithm::Crc32 => {
                Hasher::Crc(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc))
            }
            Algorithm::Sha1 => Hasher::Sha1(Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Md5 => Hasher::Md5(Md5::new()),
        }
    }

    /// Bytes of the digest (CRCs are big-endian, as S3 encodes them).
    fn width(self) -> usize {
        match self {
            Algorithm::Crc64Nvme => 8,
            Algorithm::Crc32c | Algorithm::Crc32 => 4,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Md5 => 16,
        }
    }
}

/// An expected digest of the whole content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub algorithm: Algorithm,
    pub value: Vec<u8>,
}

impl Digest {
    /// From the base64 an `x-amz-checksum-*` header (or GCS, Azure) gives;
    /// None when it is not a digest of that width (e.g. a composite
    /// multipart checksum `...-3`).
    pub fn from_base64(algorithm: Algorithm, text: &str) -> Option<Digest> {
        let value = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()?;
        (value.len() == algorithm.width()).then_some(Digest { algorithm, value })
    }

    /// From hex (an MD5 ETag).
    pub fn from_hex(algorithm: Algorithm, text: &str) -> Option<Digest> {
        let text = text.trim();
        if text.len() != algorithm.width() * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let value = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(Digest { algorithm, value })
    }

    pub fn hex(&self) -> String {
        hex(&self.value)
    }
}

pub enum Hasher {
    Crc(crc_fast::Digest),
    Sha1(Sha1),
    Sha256(Sha256),
    Md5(Md5),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc(crc) => crc.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Md5(h) => h.update(data),
        }
    }

    /// The digest's bytes, in the width of `algorithm`.
    pub fn finalize(self, algorithm: Algorithm) -> Vec<u8> {
        match self {
            Hasher::Crc(crc) => {
                let value = crc.finalize().to_be_bytes();
                value[value.len() - algorithm.width()..].to_vec()
            }
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Md5(h) => h.finalize().to_vec(),
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What S3 answers for `hello world` x 1000 uploaded with each
    /// checksum (read off SeaweedFS and boto3 on this machine), and the
    /// well-known CRC check values of "123456789".
    #[test]
    fn digests_match_what_stores_report() {
        let body = b"hello world".repeat(1000);
        let compute = |algorithm: Algorithm, data: &[u8]| {
            let mut hasher = algorithm.hasher();
            hasher.update(data);
            hasher.finalize(algorithm)
        };
        for (algorithm, base64) in [
            (
                Algorithm::Sha256,
                "NMeTyb60RAz8O63Wl3YHEhUvy+CJBaaiE3s4lf13Gd8=",
            ),
            (Algorithm::Crc32, "iH6F8A=="),
            (Algorithm::Sha1, "LU0jSCSI0F3SqamOuIKfR/U9M04="),
        ] {
            let expected = Digest::from_base64(algorithm, base64).unwrap();
            assert_eq!(compute(algorithm, &body), expected.value, "{algorithm:?}");
        }
        let md5 = Digest::from_hex(Algorithm::Md5, "4d5d1cba9eb18884a5410f4b83bc6951").unwrap();
        assert_eq!(compute(Algorithm::Md5, &body), md5.value);
        assert_eq!(hex(&compute(Algorithm::Crc32c, b"123456789")), "e3069283");
        assert_eq!(hex(&compute(Algorithm::Crc32, b"123456789")), "cbf43926");
        assert_eq!(
            hex(&compute(Algorithm::Crc64Nvme, b"123456789")),
            "ae8b14860a799888"
        );
    }

    #[test]
    fn only_whole_digests_of_the_right_width_are_taken() {
        assert!(Digest::from_base64(Algorithm::Crc32, "iH6F8A==-3").is_none());
        assert!(Digest::from_base64(Algorithm::Sha256, "iH6F8A==").is_none());
        assert!(Digest::from_hex(Algorithm::Md5, "4d5d1cba9eb18884a5410f4b83bc6951-2").is_none());
        assert!(Digest::from_hex(Algorithm::Md5, "xyz").is_none());
        assert!(Algorithm::Crc32c < Algorithm::Md5, "CRCs are preferred");
    }
}
