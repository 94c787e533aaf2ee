//! The two checksums of OSPFv2: the Internet checksum over packets (RFC 2328 D.4.1/D.4.2,
//! computed with the 64-bit authentication field left out) and the Fletcher checksum over LSAs
//! (RFC 2328 12.1.7, ISO 8473 annex C), which leaves out the LS age field.

/// One's-complement Internet checksum of `data` (RFC 1071).
pub fn internet(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Checksum of an OSPF packet (`pkt` is exactly the packet, header length bytes):
/// computed with the checksum field and the 8-byte authentication field as zero.
pub fn packet(pkt: &[u8]) -> u16 {
    let mut v = pkt.to_vec();
    if v.len() >= 24 {
        v[12..14].fill(0);
        v[16..24].fill(0);
    }
    internet(&v)
}

/// Fletcher checksum of a whole LSA (header included), as it belongs in the LS checksum field.
/// The LS age (first two bytes) is not covered; the checksum field counts as zero.
pub fn lsa_fletcher(lsa: &[u8]) -> u16 {
    if lsa.len() < 20 {
        return 0;
    }
    let data = &lsa[2..];
    let off = 14usize; // checksum field offset within `data`
    let (mut c0, mut c1) = (0i64, 0i64);
    for (i, b) in data.iter().enumerate() {
        let b = if i == off || i == off + 1 {
            0
        } else {
            i64::from(*b)
        };
        c0 = (c0 + b) % 255;
        c1 = (c1 + c0) % 255;
    }
    let len = data.len() as i64;
    let mut x = ((len - off as i64 - 1) * c0 - c1) % 255;
    if x <= 0 {
        x += 255;
    }
    let mut y = 510 - c0 - x;
    if y > 255 {
        y -= 255;
    }
    ((x as u16) << 8) | (y as u16 & 0xff)
}

/// True when the LS checksum stored in `lsa` is valid (both Fletcher sums are zero mod 255).
pub fn lsa_valid(lsa: &[u8]) -> bool {
    if lsa.len() < 20 || (lsa[16] == 0 && lsa[17] == 0) {
        return false;
    }
    let (mut c0, mut c1) = (0u32, 0u32);
    for b in &lsa[2..] {
        c0 = (c0 + u32::from(*b)) % 255;
        c1 = (c1 + c0) % 255;
    }
    c0 == 0 && c1 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fletcher_roundtrip_valid() {
        let mut lsa = vec![
            0, 1, 0x22, 1, 10, 0, 0, 1, 10, 0, 0, 1, 0x80, 0, 0, 1, 0, 0, 0, 36, 0, 0, 0, 1, 10, 0,
            0, 0, 255, 255, 255, 0, 3, 0, 0, 10,
        ];
        let c = lsa_fletcher(&lsa);
        lsa[16..18].copy_from_slice(&c.to_be_bytes());
        assert!(lsa_valid(&lsa));
        lsa[0] = 7; // age is not covered
        assert!(lsa_valid(&lsa));
        lsa[30] ^= 1;
        assert!(!lsa_valid(&lsa));
    }

    #[test]
    fn internet_checksum_known() {
        // RFC 1071 example words.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet(&d), !0xddf2);
    }
}
