//! OSPFv2 authentication: null and simple password (RFC 2328 D.4.1/D.4.2), keyed-MD5
//! (RFC 2328 D.4.3) and HMAC-SHA-1/256/384/512 (RFC 5709), sealing outgoing packets and
//! verifying received ones. Per-neighbour sequence state is kept by the caller.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::{Sha256, Sha384, Sha512};

use crate::checksum;
use crate::consts::*;
use crate::error::Error;

/// Cryptographic algorithm of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algo {
    Md5,
    HmacSha1,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl Algo {
    pub fn digest_len(self) -> usize {
        match self {
            Algo::Md5 => 16,
            Algo::HmacSha1 => 20,
            Algo::HmacSha256 => 32,
            Algo::HmacSha384 => 48,
            Algo::HmacSha512 => 64,
        }
    }
}

/// One cryptographic key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub id: u8,
    pub algo: Algo,
    pub secret: Vec<u8>,
}

/// Authentication configured on an interface.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AuthConfig {
    #[default]
    Null,
    /// Simple password, up to 8 bytes, zero padded.
    Simple([u8; 8]),
    /// Cryptographic; the first key signs, any key verifies.
    Crypto(Vec<Key>),
}

impl AuthConfig {
    pub fn autype(&self) -> u16 {
        match self {
            AuthConfig::Null => AUTH_NULL,
            AuthConfig::Simple(_) => AUTH_SIMPLE,
            AuthConfig::Crypto(_) => AUTH_CRYPTO,
        }
    }

    /// Bytes a sealed packet grows by (the digest trailer).
    pub fn trailer_len(&self) -> usize {
        match self {
            AuthConfig::Crypto(k) => k.first().map_or(0, |k| k.algo.digest_len()),
            _ => 0,
        }
    }
}

fn digest(key: &Key, pkt: &[u8]) -> Vec<u8> {
    match key.algo {
        Algo::Md5 => {
            let mut k = [0u8; 16];
            let n = key.secret.len().min(16);
            k[..n].copy_from_slice(&key.secret[..n]);
            let mut h = Md5::new();
            h.update(pkt);
            h.update(k);
            h.finalize().to_vec()
        }
        Algo::HmacSha1 => hmac_apad::<Hmac<Sha1>, Sha1>(key, pkt),
        Algo::HmacSha256 => hmac_apad::<Hmac<Sha256>, Sha256>(key, pkt),
        Algo::HmacSha384 => hmac_apad::<Hmac<Sha384>, Sha384>(key, pkt),
        Algo::HmacSha512 => hmac_apad::<Hmac<Sha512>, Sha512>(key, pkt),
    }
}

/// RFC 5709 3.3: key longer than the hash length is hashed first; the text is the packet
/// followed by Apad (0x878FE1F3 repeated) in place of the digest.
fn hmac_apad<M: Mac + hmac::digest::KeyInit, H: Digest>(key: &Key, pkt: &[u8]) -> Vec<u8> {
    let l = key.algo.digest_len();
    let ks: Vec<u8> = if key.secret.len() > l {
        H::digest(&key.secret).to_vec()
    } else {
        key.secret.clone()
    };
    let mut m =
        <M as hmac::digest::KeyInit>::new_from_slice(&ks).expect("HMAC accepts any key length");
    m.update(pkt);
    let apad: Vec<u8> = APAD_WORD
        .to_be_bytes()
        .iter()
        .copied()
        .cycle()
        .take(l)
        .collect();
    m.update(&apad);
    m.finalize().into_bytes().to_vec()
}

/// Fill in the checksum, authentication field and trailer of an encoded packet whose header
/// length covers the whole of `pkt` (no trailer yet). `seq` is the cryptographic sequence number.
pub fn seal(pkt: &mut Vec<u8>, cfg: &AuthConfig, seq: u32) {
    if pkt.len() < HEADER_LEN {
        return;
    }
    pkt[14..16].copy_from_slice(&cfg.autype().to_be_bytes());
    match cfg {
        AuthConfig::Null | AuthConfig::Simple(_) => {
            pkt[16..24].fill(0);
            pkt[12..14].fill(0);
            let c = checksum::packet(pkt);
            pkt[12..14].copy_from_slice(&c.to_be_bytes());
            if let AuthConfig::Simple(p) = cfg {
                pkt[16..24].copy_from_slice(p);
            }
        }
        AuthConfig::Crypto(keys) => {
            let Some(key) = keys.first() else { return };
            pkt[12..14].fill(0);
            pkt[16..18].fill(0);
            pkt[18] = key.id;
            pkt[19] = key.algo.digest_len() as u8;
            pkt[20..24].copy_from_slice(&seq.to_be_bytes());
            let d = digest(key, pkt);
            pkt.extend_from_slice(&d);
        }
    }
}

/// Verify the checksum/authentication of a received IP payload against the interface's
/// configuration. `last_seq` is the highest cryptographic sequence number accepted so far from
/// this neighbour; returns the packet's sequence number on success (0 for non-crypto).
pub fn verify(payload: &[u8], cfg: &AuthConfig, last_seq: Option<u32>) -> Result<u32, Error> {
    if payload.len() < HEADER_LEN {
        return Err(Error::Truncated {
            need: HEADER_LEN,
            have: payload.len(),
        });
    }
    let len = usize::from(u16::from_be_bytes([payload[2], payload[3]]));
    if len < HEADER_LEN || len > payload.len() {
        return Err(Error::BadLength(len));
    }
    let autype = u16::from_be_bytes([payload[14], payload[15]]);
    if autype != cfg.autype() {
        return Err(Error::AuthTypeMismatch {
            got: autype,
            want: cfg.autype(),
        });
    }
    let pkt = &payload[..len];
    match cfg {
        AuthConfig::Null | AuthConfig::Simple(_) => {
            let stored = u16::from_be_bytes([pkt[12], pkt[13]]);
            if checksum::packet(pkt) != stored {
                return Err(Error::BadChecksum);
            }
            if let AuthConfig::Simple(p) = cfg
                && pkt[16..24] != p[..]
            {
                return Err(Error::BadPassword);
            }
            Ok(0)
        }
        AuthConfig::Crypto(keys) => {
            let key_id = pkt[18];
            let dlen = usize::from(pkt[19]);
            let seq = u32::from_be_bytes([pkt[20], pkt[21], pkt[22], pkt[23]]);
            let key = keys
                .iter()
                .find(|k| k.id == key_id)
                .ok_or(Error::UnknownKeyId(key_id))?;
            if dlen != key.algo.digest_len() || payload.len() < len + dlen {
                return Err(Error::BadAuthLength {
                    got: dlen,
                    want: key.algo.digest_len(),
                });
            }
            if let Some(last) = last_seq
                && seq < last
            {
                return Err(Error::SeqReplay { got: seq, last });
            }
            let want = digest(key, pkt);
            if want[..] != payload[len..len + dlen] {
                return Err(Error::BadDigest);
            }
            Ok(seq)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello_bytes() -> Vec<u8> {
        // A minimal hello: header + 20-byte body, length 44.
        let mut v = vec![2, 1, 0, 44, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&[255, 255, 255, 0, 0, 10, 2, 1, 0, 0, 0, 40]);
        v.extend_from_slice(&[0; 8]);
        v
    }

    #[test]
    fn every_scheme_roundtrips_and_rejects_tampering() {
        let keys = |algo| {
            AuthConfig::Crypto(vec![Key {
                id: 7,
                algo,
                secret: b"s3cr3t".to_vec(),
            }])
        };
        for cfg in [
            AuthConfig::Null,
            AuthConfig::Simple(*b"pass\0\0\0\0"),
            keys(Algo::Md5),
            keys(Algo::HmacSha1),
            keys(Algo::HmacSha256),
            keys(Algo::HmacSha384),
            keys(Algo::HmacSha512),
        ] {
            let mut p = hello_bytes();
            seal(&mut p, &cfg, 100);
            assert_eq!(p.len(), 44 + cfg.trailer_len());
            assert!(verify(&p, &cfg, Some(100)).is_ok(), "{cfg:?}");
            let mut bad = p.clone();
            bad[30] ^= 0x40;
            assert!(verify(&bad, &cfg, None).is_err(), "{cfg:?}");
            if matches!(cfg, AuthConfig::Crypto(_)) {
                assert_eq!(
                    verify(&p, &cfg, Some(101)),
                    Err(Error::SeqReplay {
                        got: 100,
                        last: 101
                    })
                );
            }
        }
    }

    #[test]
    fn wrong_type_and_key() {
        let mut p = hello_bytes();
        seal(&mut p, &AuthConfig::Null, 0);
        let md5 = AuthConfig::Crypto(vec![Key {
            id: 1,
            algo: Algo::Md5,
            secret: b"x".to_vec(),
        }]);
        assert_eq!(
            verify(&p, &md5, None),
            Err(Error::AuthTypeMismatch { got: 0, want: 2 })
        );
        let mut q = hello_bytes();
        seal(&mut q, &md5, 1);
        let other = AuthConfig::Crypto(vec![Key {
            id: 2,
            algo: Algo::Md5,
            secret: b"x".to_vec(),
        }]);
        assert_eq!(verify(&q, &other, None), Err(Error::UnknownKeyId(1)));
        let wrong = AuthConfig::Crypto(vec![Key {
            id: 1,
            algo: Algo::Md5,
            secret: b"y".to_vec(),
        }]);
        assert_eq!(verify(&q, &wrong, None), Err(Error::BadDigest));
    }
}
