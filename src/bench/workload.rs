//! What each request does: which operation, which key, which value. Pure and seeded, so a run
//! can be repeated request for request with `--seed`.

use std::io::Write;

use rand::Rng;
use serde::Serialize;

/// One kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Get,
    Put,
}

/// How requests are split between gets and puts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpMix {
    /// Probability that a request is a get, in `0.0..=1.0`.
    get_ratio: f64,
}

impl OpMix {
    /// Every request a put.
    pub const PUT: OpMix = OpMix { get_ratio: 0.0 };
    /// Every request a get.
    pub const GET: OpMix = OpMix { get_ratio: 1.0 };

    /// Gets with probability `get_ratio`, clamped to `0.0..=1.0`; puts otherwise.
    pub fn mixed(get_ratio: f64) -> OpMix {
        OpMix {
            get_ratio: get_ratio.clamp(0.0, 1.0),
        }
    }

    /// The operation of the next request. A uniform draw from `0.0..1.0` below the ratio is a
    /// get, so a ratio of 0 never gets and a ratio of 1 always does.
    pub fn pick(&self, rng: &mut impl Rng) -> Op {
        if rng.random::<f64>() < self.get_ratio {
            Op::Get
        } else {
            Op::Put
        }
    }
}

/// The keys a run touches: `{prefix}{index}` for index in `0..size`. A size of 1 is one hot
/// key, which puts all load on one shard (the Java original's benchmark did that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    prefix: String,
    size: u64,
}

impl KeySpace {
    /// `size` keys named `{prefix}0` .. `{prefix}{size - 1}`; a `size` of 0 is taken as 1.
    pub fn new(prefix: impl Into<String>, size: u64) -> KeySpace {
        KeySpace {
            prefix: prefix.into(),
            size: size.max(1),
        }
    }

    /// How many distinct keys there are.
    #[cfg(test)]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// A uniformly drawn key index.
    pub fn pick(&self, rng: &mut impl Rng) -> u64 {
        if self.size == 1 {
            0
        } else {
            rng.random_range(0..self.size)
        }
    }

    /// Writes the key with `index` into `buf`, replacing its contents; reusing one buffer keeps
    /// key building out of the measured allocation path.
    pub fn write_key(&self, index: u64, buf: &mut Vec<u8>) {
        buf.clear();
        buf.extend_from_slice(self.prefix.as_bytes());
        // Writing to a Vec cannot fail.
        let _ = write!(buf, "{}", index % self.size);
    }
}

/// A value of `size` pseudo-random bytes, so that nothing along the way can compress it.
pub fn value(size: usize, rng: &mut impl Rng) -> Vec<u8> {
    let mut value = vec![0u8; size];
    rng.fill(&mut value[..]);
    value
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn key(space: &KeySpace, index: u64) -> String {
        let mut buf = Vec::new();
        space.write_key(index, &mut buf);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn keys_are_the_prefix_and_index() {
        let space = KeySpace::new("bench-", 100);
        assert_eq!(key(&space, 0), "bench-0");
        assert_eq!(key(&space, 99), "bench-99");
        // Indices wrap into the space, so a sequential preload past the end stays inside it.
        assert_eq!(key(&space, 100), "bench-0");
    }

    #[test]
    fn a_buffer_is_reused_without_leftovers() {
        let space = KeySpace::new("k", 1000);
        let mut buf = Vec::new();
        space.write_key(999, &mut buf);
        space.write_key(7, &mut buf);
        assert_eq!(buf, b"k7");
    }

    #[test]
    fn picks_stay_in_the_key_space_and_cover_it() {
        let space = KeySpace::new("k", 10);
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen = [false; 10];
        for _ in 0..1_000 {
            let index = space.pick(&mut rng);
            assert!(index < 10);
            seen[index as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "every key is drawn: {seen:?}");
    }

    #[test]
    fn a_key_space_of_one_is_one_hot_key() {
        let space = KeySpace::new("hot-", 1);
        let mut rng = StdRng::seed_from_u64(2);
        assert!((0..100).all(|_| space.pick(&mut rng) == 0));
        assert_eq!(key(&space, space.pick(&mut rng)), "hot-0");
        assert_eq!(KeySpace::new("k", 0).size(), 1, "an empty space is one key");
    }

    #[test]
    fn mixed_ops_follow_the_ratio() {
        let mut rng = StdRng::seed_from_u64(3);
        let mix = OpMix::mixed(0.9);
        let draws = 100_000;
        let gets = (0..draws).filter(|_| mix.pick(&mut rng) == Op::Get).count();
        let ratio = gets as f64 / draws as f64;
        assert!((ratio - 0.9).abs() < 0.01, "get ratio {ratio}");
    }

    #[test]
    fn pure_mixes_never_pick_the_other_op() {
        let mut rng = StdRng::seed_from_u64(4);
        assert!((0..10_000).all(|_| OpMix::PUT.pick(&mut rng) == Op::Put));
        assert!((0..10_000).all(|_| OpMix::GET.pick(&mut rng) == Op::Get));
        assert_eq!(OpMix::mixed(7.0), OpMix::GET, "ratios are clamped");
    }

    #[test]
    fn the_same_seed_gives_the_same_requests() {
        let space = KeySpace::new("k", 1_000_000);
        let draws = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..100).map(|_| space.pick(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draws(5), draws(5));
        assert_ne!(draws(5), draws(6));
    }

    #[test]
    fn values_have_the_requested_size() {
        let mut rng = StdRng::seed_from_u64(5);
        assert_eq!(value(100, &mut rng).len(), 100);
        assert!(value(0, &mut rng).is_empty());
    }
}
