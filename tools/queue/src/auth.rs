//! Proofs and one-time codes around the API token.
//!
//! A loopback port is not a guarantee of who answers: while a queue is stopped (idle
//! shutdown), any other user of the machine can listen on its port. So a client asks the
//! server to prove it holds the API token before sending it: `GET /v1/health?challenge=C`
//! answers `proof` = hex(HMAC-SHA256(token, "farm-queue-health:" + C)), which only the
//! token's holder can compute and which reveals nothing of the token. The context prefix
//! keeps the proof useless for anything but this check.
//!
//! The web page is logged in with a login code instead of the token itself, because a URL
//! ends up in the browser's history: `farm queue url` asks the running queue for a random,
//! single-use code that expires after [`LOGIN_CODE_TTL`], and the page exchanges it once
//! for the token. Failed exchanges are limited, so guessing codes gets nowhere.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::data_root::generate_token;

/// What a health proof signs before the challenge.
pub const HEALTH_PROOF_CONTEXT: &str = "farm-queue-health:";

/// How long a login code can be exchanged.
pub const LOGIN_CODE_TTL: Duration = Duration::from_secs(60);

/// Login codes alive at once; issuing another drops the oldest.
const MAX_LIVE_CODES: usize = 16;

/// Failed exchanges allowed per [`FAILURE_WINDOW`]; beyond that every exchange is refused
/// until the window has passed, without looking at the code.
const MAX_FAILURES: usize = 10;

/// The window failed exchanges are counted in.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Whether `challenge` is one a server answers: 32 to 128 hexadecimal digits.
pub fn valid_challenge(challenge: &str) -> bool {
    (32..=128).contains(&challenge.len()) && challenge.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A fresh random challenge: 64 hex digits, 244 of whose bits are random (two UUIDv4s).
pub fn new_challenge() -> String {
    generate_token()
}

fn mac(key: &[u8], message: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in message {
        mac.update(part);
    }
    mac
}

/// hex(HMAC-SHA256(key, message)).
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    hex(&mac(key, &[message]).finalize().into_bytes())
}

/// The proof a queue holding `token` gives for `challenge`.
pub fn health_proof(token: &SecretString, challenge: &str) -> String {
    hex(&mac(
        token.expose_secret().as_bytes(),
        &[HEALTH_PROOF_CONTEXT.as_bytes(), challenge.as_bytes()],
    )
    .finalize()
    .into_bytes())
}

/// Whether `proof` is the proof of `challenge` for `token`, compared in constant time.
pub fn health_proof_matches(token: &SecretString, challenge: &str, proof: &str) -> bool {
    let Some(bytes) = unhex(proof) else {
        return false;
    };
    mac(
        token.expose_secret().as_bytes(),
        &[HEALTH_PROOF_CONTEXT.as_bytes(), challenge.as_bytes()],
    )
    .verify_slice(&bytes)
    .is_ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Why a login code was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown, already used, or expired.
    Invalid,
    /// Too many failed exchanges lately; try again after this long.
    TooManyFailures(Duration),
}

/// The login codes a server has issued and not yet seen exchanged.
#[derive(Debug, Default)]
pub struct LoginCodes {
    state: Mutex<CodeState>,
}

#[derive(Debug, Default)]
struct CodeState {
    /// SHA-256 of each live code and when it expires: lookups never compare the code
    /// itself, so their timing tells nothing about it.
    live: HashMap<[u8; 32], Instant>,
    /// When recent exchanges failed.
    failures: Vec<Instant>,
}

fn key(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}

impl LoginCodes {
    /// A new code, valid for [`LOGIN_CODE_TTL`] from `now` and for one exchange.
    pub fn issue(&self, now: Instant) -> String {
        let code = generate_token();
        let mut state = self.state.lock().expect("login codes poisoned");
        state.live.retain(|_, expires| *expires > now);
        while state.live.len() >= MAX_LIVE_CODES {
            let oldest = state
                .live
                .iter()
                .min_by_key(|(_, expires)| **expires)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => state.live.remove(&k),
                None => break,
            };
        }
        state.live.insert(key(&code), now + LOGIN_CODE_TTL);
        code
    }

    /// Uses up `code` if it is live at `now`.
    pub fn redeem(&self, code: &str, now: Instant) -> Result<(), Refusal> {
        let mut state = self.state.lock().expect("login codes poisoned");
        state
            .failures
            .retain(|at| now.saturating_duration_since(*at) < FAILURE_WINDOW);
        if state.failures.len() >= MAX_FAILURES {
            let oldest = state.failures.iter().min().copied().unwrap_or(now);
            let wait = FAILURE_WINDOW.saturating_sub(now.saturating_duration_since(oldest));
            return Err(Refusal::TooManyFailures(wait.max(Duration::from_secs(1))));
        }
        match state.live.remove(&key(code)) {
            Some(expires) if expires > now => Ok(()),
            _ => {
                state.failures.push(now);
                Err(Refusal::Invalid)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[test]
    fn the_mac_is_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_health_proof_signs_the_context_and_the_challenge_with_the_token() {
        let challenge = "00112233445566778899aabbccddeeff";
        let proof = health_proof(&token("t0ken"), challenge);
        assert_eq!(
            proof,
            hmac_sha256_hex(
                b"t0ken",
                format!("farm-queue-health:{challenge}").as_bytes()
            )
        );
        assert!(health_proof_matches(&token("t0ken"), challenge, &proof));
        assert!(
            !health_proof_matches(&token("other"), challenge, &proof),
            "another token"
        );
        assert!(
            !health_proof_matches(&token("t0ken"), &challenge.replace('0', "1"), &proof),
            "another challenge"
        );
        for bad in ["", "zz", &proof[..62], &format!("{proof}00"), "ok"] {
            assert!(
                !health_proof_matches(&token("t0ken"), challenge, bad),
                "{bad}"
            );
        }
        assert!(
            !proof.contains("t0ken") && !format!("{:?}", token("t0ken")).contains("t0ken"),
            "neither the proof nor Debug shows the token"
        );
    }

    #[test]
    fn challenges_are_long_hex_strings() {
        assert!(valid_challenge(&new_challenge()));
        assert!(valid_challenge(&"aB".repeat(16)));
        assert!(!valid_challenge(&"a".repeat(31)));
        assert!(!valid_challenge(&"a".repeat(129)));
        assert!(!valid_challenge(&format!("{}g", "a".repeat(40))));
        assert_ne!(new_challenge(), new_challenge());
    }

    #[test]
    fn a_login_code_works_once_and_only_before_it_expires() {
        let codes = LoginCodes::default();
        let now = Instant::now();
        let code = codes.issue(now);
        assert_eq!(code.len(), 64);
        assert_eq!(codes.redeem(&code, now + Duration::from_secs(1)), Ok(()));
        assert_eq!(
            codes.redeem(&code, now + Duration::from_secs(2)),
            Err(Refusal::Invalid),
            "used"
        );
        let late = codes.issue(now);
        assert_eq!(
            codes.redeem(&late, now + LOGIN_CODE_TTL),
            Err(Refusal::Invalid),
            "expired"
        );
        let other = codes.issue(now);
        assert_ne!(other, code);
        assert_eq!(codes.redeem(&other, now), Ok(()));
    }

    #[test]
    fn guessing_is_cut_off_even_for_a_right_code() {
        let codes = LoginCodes::default();
        let now = Instant::now();
        let code = codes.issue(now);
        for i in 0..MAX_FAILURES {
            assert_eq!(
                codes.redeem(&format!("{i:064x}"), now),
                Err(Refusal::Invalid)
            );
        }
        assert!(matches!(
            codes.redeem(&code, now),
            Err(Refusal::TooManyFailures(_))
        ));
        // Once the window has passed, a live code works again.
        let later = now + FAILURE_WINDOW;
        let fresh = codes.issue(later);
        assert_eq!(codes.redeem(&fresh, later), Ok(()));
    }

    #[test]
    fn only_a_bounded_number_of_codes_is_kept() {
        let codes = LoginCodes::default();
        let now = Instant::now();
        let first = codes.issue(now);
        for i in 1..=MAX_LIVE_CODES {
            codes.issue(now + Duration::from_millis(i as u64));
        }
        assert_eq!(
            codes.state.lock().unwrap().live.len(),
            MAX_LIVE_CODES,
            "the oldest was dropped"
        );
        assert_eq!(codes.redeem(&first, now), Err(Refusal::Invalid));
    }
}
