//! Frame sets (`1-100`, `1-100x5`, `1,3,7-9`) and their chunking.
//!
//! A frame set is a *set*: parsing sorts and de-duplicates, and printing gives one canonical
//! spelling, so `parse(print(x)) == x` for every set and two requests for the same frames
//! render the same job file.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest number of frames one request may name. Beyond this a typo (`1-1000000000`)
/// is far likelier than a real render, and expanding it would exhaust memory.
pub const MAX_FRAMES: usize = 1_000_000;

/// An arithmetic run of frames: `start, start+step, ..., end` with `end` reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameRun {
    /// First frame of the run.
    pub start: u32,
    /// Last frame of the run (`start + k * step` for some `k`).
    pub end: u32,
    /// Distance between consecutive frames, at least 1.
    pub step: u32,
}

impl FrameRun {
    /// Number of frames in the run.
    pub fn len(&self) -> usize {
        ((self.end - self.start) / self.step) as usize + 1
    }

    /// A run always holds at least one frame.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The frames of the run in ascending order.
    pub fn frames(&self) -> impl Iterator<Item = u32> + '_ {
        (self.start..=self.end).step_by(self.step as usize)
    }
}

impl fmt::Display for FrameRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.start == self.end, self.step) {
            (true, _) => write!(f, "{}", self.start),
            (false, 1) => write!(f, "{}-{}", self.start, self.end),
            (false, step) => write!(f, "{}-{}x{}", self.start, self.end, step),
        }
    }
}

/// A non-empty, sorted set of frame numbers, stored as canonical arithmetic runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FrameSet {
    runs: Vec<FrameRun>,
    len: usize,
}

/// Why a frame-set string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameSetError {
    /// Nothing but separators or whitespace.
    #[error("the frame set is empty")]
    Empty,
    /// A piece that is not `N`, `A-B` or `A-BxS`.
    #[error("{piece:?} is not a frame, a range `A-B` or a stepped range `A-BxS`")]
    Syntax {
        /// The offending comma-separated piece.
        piece: String,
    },
    /// `10-1`.
    #[error("range {piece:?} is reversed: its start is after its end")]
    Reversed {
        /// The offending piece.
        piece: String,
    },
    /// `1-10x0`.
    #[error("range {piece:?} has a step of 0")]
    ZeroStep {
        /// The offending piece.
        piece: String,
    },
    /// More frames than [`MAX_FRAMES`].
    #[error("the frame set names more than {MAX_FRAMES} frames")]
    TooLarge,
}

impl FrameSet {
    /// Builds a set from any frames (unsorted, with duplicates).
    pub fn from_frames(frames: impl IntoIterator<Item = u32>) -> Result<FrameSet, FrameSetError> {
        let mut all: Vec<u32> = frames.into_iter().collect();
        if all.is_empty() {
            return Err(FrameSetError::Empty);
        }
        all.sort_unstable();
        all.dedup();
        if all.len() > MAX_FRAMES {
            return Err(FrameSetError::TooLarge);
        }
        Ok(FrameSet::from_sorted_unique(&all))
    }

    /// A contiguous range `start..=end`.
    pub fn range(start: u32, end: u32) -> Result<FrameSet, FrameSetError> {
        FrameSet::stepped(start, end, 1)
    }

    /// `start, start+step, ...` up to and including `end` when reachable.
    pub fn stepped(start: u32, end: u32, step: u32) -> Result<FrameSet, FrameSetError> {
        let piece = || format!("{start}-{end}x{step}");
        if step == 0 {
            return Err(FrameSetError::ZeroStep { piece: piece() });
        }
        if start > end {
            return Err(FrameSetError::Reversed { piece: piece() });
        }
        let count = ((end - start) / step) as usize + 1;
        if count > MAX_FRAMES {
            return Err(FrameSetError::TooLarge);
        }
        if count <= 2 {
            // Short runs have a canonical spelling that may not be one run (`1,3`).
            let frames: Vec<u32> = (0..count as u32).map(|k| start + k * step).collect();
            return Ok(FrameSet::from_sorted_unique(&frames));
        }
        let end = start + (count as u32 - 1) * step;
        Ok(FrameSet::from_runs_unchecked(vec![FrameRun {
            start,
            end,
            step,
        }]))
    }

    fn from_runs_unchecked(runs: Vec<FrameRun>) -> FrameSet {
        let len = runs.iter().map(FrameRun::len).sum();
        FrameSet { runs, len }
    }

    /// Greedy canonical compression: from the left, take the longest arithmetic run; keep
    /// it if it is contiguous (2+ frames) or stepped with 3+ frames, else emit one frame.
    fn from_sorted_unique(frames: &[u32]) -> FrameSet {
        let mut runs = Vec::new();
        let mut i = 0;
        while i < frames.len() {
            let start = frames[i];
            if i + 1 == frames.len() {
                runs.push(FrameRun {
                    start,
                    end: start,
                    step: 1,
                });
                break;
            }
            let step = frames[i + 1] - start;
            let mut j = i + 1;
            while j + 1 < frames.len() && frames[j + 1] - frames[j] == step {
                j += 1;
            }
            let count = j - i + 1;
            if step == 1 || count >= 3 {
                runs.push(FrameRun {
                    start,
                    end: frames[j],
                    step,
                });
                i = j + 1;
            } else {
                runs.push(FrameRun {
                    start,
                    end: start,
                    step: 1,
                });
                i += 1;
            }
        }
        FrameSet::from_runs_unchecked(runs)
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.len
    }

    /// A frame set is never empty; provided for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Lowest frame.
    pub fn first(&self) -> u32 {
        self.runs[0].start
    }

    /// Highest frame.
    pub fn last(&self) -> u32 {
        self.runs[self.runs.len() - 1].end
    }

    /// The canonical runs, ascending and disjoint.
    pub fn runs(&self) -> &[FrameRun] {
        &self.runs
    }

    /// All frames in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.runs.iter().flat_map(FrameRun::frames)
    }

    /// Whether `frame` belongs to the set.
    pub fn contains(&self, frame: u32) -> bool {
        self.runs
            .iter()
            .any(|r| frame >= r.start && frame <= r.end && (frame - r.start).is_multiple_of(r.step))
    }

    /// Splits the set, in frame order, into chunks of at most `size` consecutive members
    /// (the last one may be shorter). Every frame lands in exactly one chunk. A chunk is
    /// the unit a scheduler runs as one task: one Slurm array element, one HTCondor proc.
    ///
    /// # Panics
    /// If `size` is 0; requests are validated before they are chunked.
    pub fn chunks(&self, size: u32) -> Vec<Chunk> {
        assert!(size > 0, "chunk size must be at least 1");
        let size = size as usize;
        let mut chunks = Vec::with_capacity(self.len.div_ceil(size));
        let mut buf = Vec::with_capacity(size.min(self.len));
        for frame in self.iter() {
            buf.push(frame);
            if buf.len() == size {
                chunks.push(Chunk {
                    index: chunks.len() as u32,
                    frames: FrameSet::from_sorted_unique(&buf),
                });
                buf.clear();
            }
        }
        if !buf.is_empty() {
            chunks.push(Chunk {
                index: chunks.len() as u32,
                frames: FrameSet::from_sorted_unique(&buf),
            });
        }
        chunks
    }

    /// Number of chunks [`chunks`](Self::chunks) would return, without building them.
    pub fn chunk_count(&self, size: u32) -> usize {
        self.len.div_ceil(size.max(1) as usize)
    }
}

/// One schedulable piece of a frame set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position among the chunks, from 0. Schedulers key array tasks on this, never on frame
    /// numbers: VFX frames start at 1001 and would exceed Slurm's default `MaxArraySize`.
    pub index: u32,
    /// The chunk's frames (consecutive members of the parent set).
    pub frames: FrameSet,
}

impl fmt::Display for FrameSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, run) in self.runs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{run}")?;
        }
        Ok(())
    }
}

fn parse_frame(text: &str, piece: &str) -> Result<u32, FrameSetError> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FrameSetError::Syntax {
            piece: piece.to_owned(),
        });
    }
    text.parse().map_err(|_| FrameSetError::Syntax {
        piece: piece.to_owned(),
    })
}

impl FromStr for FrameSet {
    type Err = FrameSetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut frames: Vec<u32> = Vec::new();
        for raw in s.split(',') {
            let piece = raw.trim();
            if piece.is_empty() {
                if s.trim().is_empty() {
                    return Err(FrameSetError::Empty);
                }
                return Err(FrameSetError::Syntax {
                    piece: raw.to_owned(),
                });
            }
            let (range, step) = match piece.split_once(['x', ':']) {
                Some((range, step)) => (range, Some(parse_frame(step, piece)?)),
                None => (piece, None),
            };
            let set = match range.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (parse_frame(a, piece)?, parse_frame(b, piece)?);
                    match FrameSet::stepped(a, b, step.unwrap_or(1)) {
                        Err(FrameSetError::Reversed { .. }) => {
                            return Err(FrameSetError::Reversed {
                                piece: piece.to_owned(),
                            });
                        }
                        Err(FrameSetError::ZeroStep { .. }) => {
                            return Err(FrameSetError::ZeroStep {
                                piece: piece.to_owned(),
                            });
                        }
                        other => other?,
                    }
                }
                None if step.is_some() => {
                    return Err(FrameSetError::Syntax {
                        piece: piece.to_owned(),
                    });
                }
                None => FrameSet::range(parse_frame(range, piece)?, parse_frame(range, piece)?)?,
            };
            if frames.len() + set.len() > MAX_FRAMES * 2 {
                return Err(FrameSetError::TooLarge);
            }
            frames.extend(set.iter());
        }
        FrameSet::from_frames(frames)
    }
}

impl Serialize for FrameSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FrameSet {
    /// Accepts the string forms and, for convenience in YAML, a bare frame number.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = FrameSet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a frame set such as \"1-100\", \"1-100x5\" or \"1,3,7-9\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FrameSet, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<FrameSet, E> {
                let frame = u32::try_from(v).map_err(|_| E::custom("frame number too large"))?;
                FrameSet::range(frame, frame).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<FrameSet, E> {
                let v =
                    u64::try_from(v).map_err(|_| E::custom("frame numbers cannot be negative"))?;
                self.visit_u64(v)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fs(s: &str) -> FrameSet {
        s.parse().unwrap()
    }

    #[test]
    fn parses_the_three_documented_forms() {
        assert_eq!(fs("1-100").len(), 100);
        assert_eq!(fs("1-100").to_string(), "1-100");
        assert_eq!(fs("1-100x5").iter().take(3).collect::<Vec<_>>(), [1, 6, 11]);
        assert_eq!(fs("1-100x5").last(), 96);
        assert_eq!(fs("1-100x5").to_string(), "1-96x5");
        assert_eq!(fs("1,3,7-9").iter().collect::<Vec<_>>(), [1, 3, 7, 8, 9]);
        assert_eq!(fs("1,3,7-9").to_string(), "1,3,7-9");
        assert_eq!(fs("1001-1100:10"), fs("1001-1091x10"));
        assert_eq!(fs(" 5 , 1 ").to_string(), "1,5");
        assert_eq!(fs("7").to_string(), "7");
    }

    #[test]
    fn overlapping_pieces_are_merged_into_one_canonical_spelling() {
        assert_eq!(fs("1-5,3,4-8").to_string(), "1-8");
        assert_eq!(fs("1,3,5,7").to_string(), "1-7x2");
        assert_eq!(fs("1,3").to_string(), "1,3");
    }

    #[test]
    fn bad_sets_are_rejected_with_the_piece_named() {
        assert_eq!("".parse::<FrameSet>(), Err(FrameSetError::Empty));
        assert_eq!("   ".parse::<FrameSet>(), Err(FrameSetError::Empty));
        assert!(matches!(
            " , ".parse::<FrameSet>(),
            Err(FrameSetError::Syntax { .. })
        ));
        let cases = [
            ("10-1", "reversed"),
            ("1-10x0", "step of 0"),
            ("a-b", "is not a frame"),
            ("1-", "is not a frame"),
            ("-3", "is not a frame"),
            ("1,,2", "is not a frame"),
            ("5x2", "is not a frame"),
            ("1-99999999999", "is not a frame"),
            ("0-4000000", "more than"),
        ];
        for (input, needle) in cases {
            let err = input.parse::<FrameSet>().unwrap_err().to_string();
            assert!(err.contains(needle), "{input}: {err}");
        }
        assert!(
            "10-1"
                .parse::<FrameSet>()
                .unwrap_err()
                .to_string()
                .contains("\"10-1\"")
        );
    }

    #[test]
    fn chunks_are_contiguous_runs_of_members() {
        let chunks = fs("1,3,7-9").chunks(2);
        let rendered: Vec<_> = chunks
            .iter()
            .map(|c| (c.index, c.frames.to_string()))
            .collect();
        assert_eq!(
            rendered,
            [(0, "1,3".into()), (1, "7-8".into()), (2, "9".to_string())]
        );
        assert_eq!(fs("1001-1100").chunk_count(10), 10);
    }

    #[test]
    fn yaml_accepts_a_bare_number_and_strings() {
        let n: FrameSet = serde_yaml::from_str("12").unwrap();
        assert_eq!(n.to_string(), "12");
        let r: FrameSet = serde_yaml::from_str("1-10x2").unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"1-9x2\"");
        assert!(serde_yaml::from_str::<FrameSet>("-4").is_err());
    }

    fn arb_set() -> impl Strategy<Value = FrameSet> {
        prop::collection::vec((0u32..5000, 0u32..60, 1u32..7), 1..6).prop_map(|specs| {
            let frames = specs
                .into_iter()
                .flat_map(|(start, len, step)| (0..len.max(1)).map(move |k| start + k * step));
            FrameSet::from_frames(frames).unwrap()
        })
    }

    proptest! {
        #[test]
        fn parse_of_print_is_identity(set in arb_set()) {
            let printed = set.to_string();
            let reparsed: FrameSet = printed.parse().unwrap();
            prop_assert_eq!(&reparsed, &set);
            prop_assert_eq!(reparsed.to_string(), printed);
        }

        #[test]
        fn chunks_cover_the_set_exactly_once_in_order(set in arb_set(), size in 1u32..40) {
            let chunks = set.chunks(size);
            prop_assert_eq!(chunks.len(), set.chunk_count(size));
            let mut seen = Vec::new();
            for (i, chunk) in chunks.iter().enumerate() {
                prop_assert_eq!(chunk.index as usize, i);
                prop_assert!(chunk.frames.len() <= size as usize);
                if i + 1 < chunks.len() {
                    prop_assert_eq!(chunk.frames.len(), size as usize);
                }
                seen.extend(chunk.frames.iter());
            }
            prop_assert_eq!(seen, set.iter().collect::<Vec<_>>());
        }

        #[test]
        fn contains_agrees_with_iteration(set in arb_set(), probe in 0u32..6000) {
            prop_assert_eq!(set.contains(probe), set.iter().any(|f| f == probe));
        }
    }
}
