//! The domain: a candidate's name, and the page/cursor vocabulary used to list them.
//!
//! Names are parsed once at the edge (`CandidateName::parse`) so every store and handler
//! can rely on them being valid and in one spelling (the Unicode rule of `unicode`).
//! Candidates are listed in ascending order of the name's UTF-8 bytes: SQLite's BINARY
//! collation, DynamoDB's string sort keys and Rust's `str` ordering all agree on it,
//! which is what lets both stores page identically.

mod unicode;

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use md5::{Digest, Md5};
use serde::Serialize;

/// A validated candidate name in NFC: 1 to 256 characters, something visible, none of
/// the characters the rule refuses (see `unicode`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct CandidateName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("candidate name must not be empty")]
    Empty,
    #[error(
        "candidate name must be at most {max} characters (got {0})",
        max = CandidateName::MAX_CHARS
    )]
    TooLong(usize),
    #[error("candidate name must not contain U+{code:04X} ({1})", code = u32::from(*.0))]
    Forbidden(char, &'static str),
    #[error("candidate name must not be blank (only spaces or invisible characters)")]
    Blank,
}

impl CandidateName {
    /// The longest accepted name, in Unicode scalar values (not bytes), once in NFC.
    pub const MAX_CHARS: usize = 256;

    /// A name from a client: normalised to NFC, then held to the rule.
    pub fn parse(raw: impl Into<String>) -> Result<Self, NameError> {
        let name = unicode::nfc(raw.into());
        let chars = name.chars().count();
        if chars == 0 {
            return Err(NameError::Empty);
        }
        if chars > Self::MAX_CHARS {
            return Err(NameError::TooLong(chars));
        }
        if let Some((c, what)) = name
            .chars()
            .find_map(|c| unicode::forbidden(c).map(|what| (c, what)))
        {
            return Err(NameError::Forbidden(c, what));
        }
        if unicode::is_blank(&name) {
            return Err(NameError::Blank);
        }
        Ok(Self(name))
    }

    /// A name as a store holds it, taken as it is: names written before the Unicode rule
    /// (not in NFC, or with a character it now refuses) are still listed as they are
    /// stored, and a cursor after one resumes exactly there. Only what no version of
    /// the service ever accepted (empty, too long, control characters) is refused.
    pub fn stored(raw: String) -> Result<Self, NameError> {
        let chars = raw.chars().count();
        if chars == 0 {
            return Err(NameError::Empty);
        }
        if chars > Self::MAX_CHARS {
            return Err(NameError::TooLong(chars));
        }
        if let Some(c) = raw.chars().find(|c| c.is_control()) {
            return Err(NameError::Forbidden(c, "a control character"));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for CandidateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A candidate as the API returns it; the field name is the original service's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    #[serde(rename = "CandidateName")]
    pub name: CandidateName,
}

impl From<CandidateName> for Candidate {
    fn from(name: CandidateName) -> Self {
        Self { name }
    }
}

/// How many candidates one page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(u16);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "limit must be a whole number from {min} to {max}",
    min = PageLimit::MIN,
    max = PageLimit::MAX
)]
pub struct LimitError;

impl PageLimit {
    pub const MIN: u16 = 1;
    pub const MAX: u16 = 1000;
    pub const DEFAULT: PageLimit = PageLimit(100);
    /// The largest page: what a streamed listing fetches at a time.
    pub const MAX_PAGE: PageLimit = PageLimit(Self::MAX);

    /// Digits only: no sign, no spaces (`%205`), no `+`.
    pub fn parse(raw: &str) -> Result<Self, LimitError> {
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(LimitError);
        }
        let value: u16 = raw.parse().map_err(|_| LimitError)?;
        Self::new(value)
    }

    pub fn new(value: u16) -> Result<Self, LimitError> {
        if (Self::MIN..=Self::MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(LimitError)
        }
    }

    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

/// One page of candidates in ascending name order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub candidates: Vec<Candidate>,
    /// Present when more candidates follow this page.
    pub next: Option<Cursor>,
}

impl Page {
    /// Builds a page from up to `limit + 1` names in ascending order: the extra name,
    /// when a store found one, only proves that another page exists.
    pub fn from_sorted(mut names: Vec<CandidateName>, limit: PageLimit) -> Self {
        let more = names.len() > limit.get();
        names.truncate(limit.get());
        let next = if more {
            names.last().cloned().map(Cursor::after)
        } else {
            None
        };
        Self {
            candidates: names.into_iter().map(Candidate::from).collect(),
            next,
        }
    }
}

/// A position in the listing: "everything after this name".
///
/// On the wire it is opaque: base64url of a version byte, the name and a 4-byte
/// checksum, so a truncated, edited or invented cursor is refused with 400 rather than
/// silently starting somewhere unexpected. It carries no secret: any name is a harmless
/// starting point, and every instance behind the load balancer accepts every other's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    after: CandidateName,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cursor is not one this service issued")]
pub struct CursorError;

impl Cursor {
    const VERSION: u8 = 1;
    const CHECKSUM_LEN: usize = 4;

    pub fn after(name: CandidateName) -> Self {
        Self { after: name }
    }

    /// The last name of the previous page: the listing resumes strictly after it.
    pub fn last_seen(&self) -> &CandidateName {
        &self.after
    }

    pub fn encode(&self) -> String {
        let name = self.after.as_str().as_bytes();
        let mut raw = Vec::with_capacity(1 + name.len() + Self::CHECKSUM_LEN);
        raw.push(Self::VERSION);
        raw.extend_from_slice(name);
        raw.extend_from_slice(&Self::checksum(name));
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(token: &str) -> Result<Self, CursorError> {
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| CursorError)?;
        let (&version, rest) = raw.split_first().ok_or(CursorError)?;
        if version != Self::VERSION || rest.len() < Self::CHECKSUM_LEN {
            return Err(CursorError);
        }
        let (name, checksum) = rest.split_at(rest.len() - Self::CHECKSUM_LEN);
        if checksum != Self::checksum(name) {
            return Err(CursorError);
        }
        let name = std::str::from_utf8(name).map_err(|_| CursorError)?;
        // A position in the stored order, not a name a client typed: as stored.
        let name = CandidateName::stored(name.to_owned()).map_err(|_| CursorError)?;
        Ok(Self::after(name))
    }

    fn checksum(name: &[u8]) -> [u8; Self::CHECKSUM_LEN] {
        let digest = Md5::new()
            .chain_update(b"candidates-cursor")
            .chain_update([Self::VERSION])
            .chain_update(name)
            .finalize();
        let mut out = [0; Self::CHECKSUM_LEN];
        out.copy_from_slice(&digest[..Self::CHECKSUM_LEN]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> CandidateName {
        CandidateName::parse(raw).expect("valid name")
    }

    #[test]
    fn names_of_one_to_256_characters_are_accepted() {
        assert_eq!(name("J").as_str(), "J");
        assert_eq!(name("John Smith").as_str(), "John Smith");
        let longest = "é".repeat(CandidateName::MAX_CHARS);
        assert_eq!(name(&longest).as_str().chars().count(), 256);
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // 256 two-byte characters are 512 bytes but still a valid name.
        assert!(CandidateName::parse("ü".repeat(256)).is_ok());
        assert_eq!(
            CandidateName::parse("ü".repeat(257)),
            Err(NameError::TooLong(257))
        );
    }

    #[test]
    fn empty_and_control_characters_are_refused() {
        assert_eq!(CandidateName::parse(""), Err(NameError::Empty));
        for (bad, code) in [
            ("a\nb", '\n'),
            ("tab\t", '\t'),
            ("\u{0}", '\u{0}'),
            ("del\u{7f}", '\u{7f}'),
            ("c1\u{85}", '\u{85}'),
        ] {
            assert_eq!(
                CandidateName::parse(bad),
                Err(NameError::Forbidden(code, "a control character")),
                "{bad:?}"
            );
        }
        assert_eq!(
            NameError::Forbidden('\u{202E}', "a bidirectional control character").to_string(),
            "candidate name must not contain U+202E (a bidirectional control character)"
        );
    }

    #[test]
    fn names_are_one_spelling_whatever_the_composition() {
        let composed = name("Zo\u{00EB}");
        let decomposed = name("Zoe\u{0308}");
        assert_eq!(composed, decomposed);
        assert_eq!(decomposed.as_str(), "Zo\u{00EB}");
        // The length is counted once composed: 256 decomposed é are 512 code points.
        assert!(CandidateName::parse("e\u{0301}".repeat(256)).is_ok());
    }

    #[test]
    fn blank_names_and_forbidden_characters_are_refused() {
        for blank in [" ", "\u{3000}", "\u{200D}", " \u{200B} "] {
            assert_eq!(
                CandidateName::parse(blank),
                Err(NameError::Blank),
                "{blank:?}"
            );
        }
        for (bad, code) in [
            ("evil\u{202E}gnp.exe", '\u{202E}'),
            ("a\u{2028}b", '\u{2028}'),
            ("\u{FEFF}bom", '\u{FEFF}'),
            ("x\u{FFFF}", '\u{FFFF}'),
            ("\u{200F}", '\u{200F}'),
        ] {
            assert!(
                matches!(CandidateName::parse(bad), Err(NameError::Forbidden(c, _)) if c == code),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn stored_names_are_taken_as_they_are() {
        let legacy = CandidateName::stored("Zoe\u{0308}".to_owned()).expect("as stored");
        assert_eq!(legacy.as_str(), "Zoe\u{0308}");
        assert!(CandidateName::stored("\u{202E}x".to_owned()).is_ok());
        assert!(CandidateName::stored(String::new()).is_err());
        assert!(CandidateName::stored("a\nb".to_owned()).is_err());
        // A cursor after a legacy name resumes after that very name.
        let cursor = Cursor::after(legacy.clone());
        assert_eq!(
            Cursor::decode(&cursor.encode()).map(|c| c.after),
            Ok(legacy)
        );
    }

    #[test]
    fn punctuation_slashes_and_non_ascii_are_names_too() {
        for ok in [
            "O'Brien",
            "a/b",
            "Zoë Ångström",
            "李小龙",
            "🙂",
            " padded ",
            "👩\u{200D}💻",
        ] {
            assert_eq!(name(ok).as_str(), ok);
        }
    }

    #[test]
    fn page_limit_accepts_1_to_1000_only() {
        assert_eq!(PageLimit::parse("1").map(PageLimit::get), Ok(1));
        assert_eq!(PageLimit::parse("1000").map(PageLimit::get), Ok(1000));
        for bad in [
            "0", "1001", "-1", "abc", "", "1.5", "65536", " 5", "5 ", "+5", "\t5",
        ] {
            assert_eq!(PageLimit::parse(bad), Err(LimitError), "{bad:?}");
        }
        assert_eq!(PageLimit::DEFAULT.get(), 100);
    }

    #[test]
    fn cursor_round_trips_any_valid_name() {
        for raw in [
            "a",
            "John Smith",
            "Zoë",
            "李小龙",
            "a/b?c=d&e",
            &"x".repeat(256),
        ] {
            let cursor = Cursor::after(name(raw));
            let token = cursor.encode();
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "cursor must be URL-safe: {token}"
            );
            assert_eq!(Cursor::decode(&token), Ok(cursor));
        }
    }

    #[test]
    fn cursors_the_service_did_not_issue_are_refused() {
        let token = Cursor::after(name("John Smith")).encode();
        let mut flipped = token.clone().into_bytes();
        flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
        let forged_version = URL_SAFE_NO_PAD.encode([&[2u8][..], b"John", &[0, 0, 0, 0]].concat());
        for bad in [
            "",
            "not base64!",
            &token[..token.len() - 2],
            std::str::from_utf8(&flipped).expect("ascii"),
            &forged_version,
            &URL_SAFE_NO_PAD.encode(b"John Smith"),
        ] {
            assert_eq!(Cursor::decode(bad), Err(CursorError), "{bad:?}");
        }
    }

    #[test]
    fn a_page_has_a_cursor_only_when_more_follow() {
        let limit = PageLimit::new(2).expect("limit");
        let full = Page::from_sorted(vec![name("a"), name("b"), name("c")], limit);
        assert_eq!(full.candidates.len(), 2);
        assert_eq!(full.next, Some(Cursor::after(name("b"))));

        let last = Page::from_sorted(vec![name("c"), name("d")], limit);
        assert_eq!(last.candidates.len(), 2);
        assert_eq!(last.next, None);
    }

    #[test]
    fn candidates_serialise_with_the_original_field_name() {
        let json = serde_json::to_string(&Candidate::from(name("Zoë"))).expect("json");
        assert_eq!(json, r#"{"CandidateName":"Zoë"}"#);
    }
}
