//! OneDrive's QuickXorHash (`file.hashes.quickXorHash`): every byte is XORed into a 160-bit
//! circular register at bit offset `11 × position mod 160`, and the total length (64-bit
//! little-endian) is XORed into the register's last 8 bytes. The digest is those 20 bytes,
//! base64-encoded. This is Microsoft's published reference algorithm, restated: the bytes at
//! the same offset (every 160th byte) are folded with XOR first, so each input byte costs
//! one XOR and the hash stays cheap even unoptimised.

/// Register width in bits.
const WIDTH: usize = 160;
/// Bit shift per byte.
const SHIFT: usize = 11;

/// An incremental QuickXorHash. `Clone` so an upload can keep the state of the bytes it has
/// accepted while a fragment that may still fail is being hashed.
#[derive(Clone, Debug, Default)]
pub(crate) struct QuickXor {
    /// 160 bits: 64 + 64 + 32 (the high half of the last cell is ignored).
    cells: [u64; 3],
    /// Bit offset of the next byte.
    shift: usize,
    length: u64,
}

impl QuickXor {
    pub(crate) fn new() -> QuickXor {
        QuickXor::default()
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        let iterations = data.len().min(WIDTH);
        let mut offset = self.shift;
        for i in 0..iterations {
            // Every byte landing at this bit offset, folded.
            let mut folded = 0u8;
            let mut j = i;
            while j < data.len() {
                folded ^= data[j];
                j += WIDTH;
            }
            self.xor_at(offset, folded);
            offset = (offset + SHIFT) % WIDTH;
        }
        self.shift = (self.shift + SHIFT * (data.len() % WIDTH)) % WIDTH;
        self.length = self.length.wrapping_add(data.len() as u64);
    }

    /// XORs `byte` into the register at bit `offset`, wrapping past bit 159 to bit 0.
    fn xor_at(&mut self, offset: usize, byte: u8) {
        if byte == 0 {
            return;
        }
        let cell = offset / 64;
        let bit = offset % 64;
        let cell_bits = if cell == 2 { 32 } else { 64 };
        let value = u64::from(byte);
        self.cells[cell] ^= value << bit;
        if bit + 8 > cell_bits {
            let next = if cell == 2 { 0 } else { cell + 1 };
            self.cells[next] ^= value >> (cell_bits - bit);
        }
    }

    /// The 20-byte digest.
    pub(crate) fn digest(&self) -> [u8; 20] {
        let mut out = [0u8; 20];
        out[..8].copy_from_slice(&self.cells[0].to_le_bytes());
        out[8..16].copy_from_slice(&self.cells[1].to_le_bytes());
        out[16..].copy_from_slice(&self.cells[2].to_le_bytes()[..4]);
        for (i, b) in self.length.to_le_bytes().iter().enumerate() {
            out[12 + i] ^= b;
        }
        out
    }

    /// The digest as Graph shows it: standard base64.
    pub(crate) fn base64(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.digest())
    }
}

#[cfg(test)]
mod tests {
    use super::QuickXor;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    /// (input, digest), base64: vectors published with rclone's independent implementation
    /// of the algorithm (backend/onedrive/quickxorhash/quickxorhash_test.go).
    const VECTORS: &[(&str, &str)] = &[
        ("", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ("Sg==", "SgAAAAAAAAAAAAAAAQAAAAAAAAA="),
        ("tbQ=", "taAFAAAAAAAAAAAAAgAAAAAAAAA="),
        ("qaApEj66lw==", "qQBFCiTgA11cAgAABwAAAAAAAAA="),
        ("h490d57Pqz5q2rtT", "h3gEHe7giWeswgdq3MYupgAAAAA="),
        ("2fuxhBJXtpWFe8dOfdGeHw==", "O9tHLAghgSvYohKFyMMxnNCHaHg="),
        (
            "T6LYJIfDh81JrAK309H2JMJTXis=",
            "zBTHrspn3mEcohlJdIUAbjGNaNg=",
        ),
        (
            "Mb7EGva2rEE5fENDL85P+BsapHEEjv2/siVhKjvAQe02feExVOQSkfmuYzU/kTF1MaKjPmKF/w+cbvwfdWL8aQ==",
            "n1anP5NfvD4XDYWIeRPW3ZkPv1Y=",
        ),
        (
            "jyibxJSzO6ZiZ0O1qe3tG/bvIAYssvukh9suIT5wEy1JBINVgPiqdsTW0cOpP0aUfP7mgqLfADkzI/m/GgCuVhr8oFLrOCoTx1/psBOWwhltCbhUx51Icm9aH8tY4Z3ccU+6BKpYQkLCy0B/A9Zc",
            "hZfLIilSITC6N3e3tQ/iSgEzkto=",
        ),
        (
            "qwGf2ESubE5jOUHHyc94ORczFYYbc2OmEzo+hBIyzJiNwAzC8PvJqtTzwkWkSslgHFGWQZR2BV5+uYTrYT7HVwRM40vqfj0dBgeDENyTenIOL1LHkjtDKoXEnQ0mXAHoJ8PjbNC93zi5TovVRXTNzfGEs5dpWVqxUzb5lc7dwkyvOluBw482mQ4xrzYyIY1t+//OrNi1ObGXuUw2jBQOFfJVj2Y6BOyYmfB1y36eBxi3zxeG5d5NYjm2GSh6e08QMAwu3zrINcqIzLOuNIiGXBtl7DjKt7b5wqi4oFiRpZsCyx2smhSrdrtK/CkdU6nDN+34vSR/M8rZpWQdBE7a8g==",
            "WYT9JY3JIo/pEBp+tIM6Gt2nyTM=",
        ),
    ];

    #[test]
    fn published_vectors_hash_alike_whole_and_in_pieces() {
        for (input, expected) in VECTORS {
            let bytes = STANDARD.decode(input).expect("base64");
            let mut whole = QuickXor::new();
            whole.update(&bytes);
            assert_eq!(whole.base64(), *expected, "{} bytes", bytes.len());
            for block in [1, 3, 7, 64, 159, 160, 161] {
                let mut pieces = QuickXor::new();
                for chunk in bytes.chunks(block) {
                    pieces.update(chunk);
                }
                assert_eq!(
                    pieces.base64(),
                    *expected,
                    "{} bytes by {block}",
                    bytes.len()
                );
            }
        }
    }
}
