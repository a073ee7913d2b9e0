//! Deterministic noise for the in-band tests, the benchmark and the talk-off example: the same sequence
//! from the same seed everywhere.

/// A small deterministic noise source (xorshift), Gaussian by the sum of uniforms.
pub struct Noise(pub u64);

impl Noise {
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }

    /// The next sample, of unit variance.
    pub fn gaussian(&mut self) -> f32 {
        // Sum of 12 uniforms in -0.5..0.5 has unit variance.
        (0..12).map(|_| self.uniform()).sum()
    }
}
