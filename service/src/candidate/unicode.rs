//! Which characters a name may hold, and when two spellings are the same name.
//!
//! The rule (README, "Names"; docs/openapi.yaml):
//! - a name is normalised to NFC (Unicode's canonical composition, W3C's recommended
//!   form for matching) on the way in, for reads and writes alike, so `Zoë` typed as
//!   one code point (U+00EB) and as `e` + U+0308 is one name, stored and listed in NFC;
//! - refused, with a 400 naming the code point: control characters (Cc), Unicode's
//!   bidirectional controls (Bidi_Control: they reorder what is displayed around them,
//!   so a listing could show a name other than the one stored, "Trojan Source"), the
//!   line and paragraph separators U+2028 and U+2029, U+FEFF (a byte order mark or
//!   zero-width no-break space) and the 66 noncharacters;
//! - refused as blank: a name with nothing visible, only White_Space and
//!   Default_Ignorable_Code_Point characters (a space, U+3000, a lone U+200D);
//! - everything else is kept as written: case, spaces between words or at either end,
//!   punctuation, any script, emoji with their joiners (U+200D), variation selectors
//!   and tag sequences.
//!
//! Every character refused here is unchanged by NFC, so it does not matter whether they
//! are looked for before or after normalising.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// Why a character may not be part of a name, if it may not.
pub fn forbidden(c: char) -> Option<&'static str> {
    if c.is_control() {
        Some("a control character")
    } else if is_bidi_control(c) {
        Some("a bidirectional control character")
    } else if matches!(c, '\u{2028}' | '\u{2029}') {
        Some("a line or paragraph separator")
    } else if c == '\u{FEFF}' {
        Some("a byte order mark")
    } else if is_noncharacter(c) {
        Some("a noncharacter")
    } else {
        None
    }
}

/// Whether nothing of `name` would be visible: it holds only White_Space and
/// Default_Ignorable_Code_Point characters.
pub fn is_blank(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_whitespace() || is_default_ignorable(c))
}

/// `raw` in Normalization Form C; borrowed when it already is (the common case, checked
/// without allocating).
pub fn nfc(raw: String) -> String {
    if is_nfc_quick(raw.chars()) == IsNormalized::Yes {
        raw
    } else {
        raw.nfc().collect()
    }
}

/// Unicode's Bidi_Control property (PropList.txt; stable since Unicode 6.3): the
/// implicit marks ALM, LRM, RLM, the embeddings and overrides LRE, RLE, PDF, LRO, RLO,
/// and the isolates LRI, RLI, FSI, PDI.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// The 66 noncharacters: U+FDD0..U+FDEF, and the last two code points of every plane.
fn is_noncharacter(c: char) -> bool {
    let code = u32::from(c);
    (0xFDD0..=0xFDEF).contains(&code) || code & 0xFFFE == 0xFFFE
}

/// Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt, Unicode
/// 15.1): characters a renderer shows as nothing when it has no glyph for them.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfc_composes_and_leaves_composed_text_alone() {
        assert_eq!(nfc("Zoe\u{0308}".to_owned()), "Zo\u{00EB}");
        assert_eq!(nfc("Zo\u{00EB}".to_owned()), "Zo\u{00EB}");
        // Hangul jamo compose into a syllable; compatibility forms are not folded (NFC,
        // not NFKC): a ligature stays a ligature.
        assert_eq!(nfc("\u{1100}\u{1161}".to_owned()), "\u{AC00}");
        assert_eq!(nfc("\u{FB01}".to_owned()), "\u{FB01}");
    }

    #[test]
    fn every_bidi_control_and_separator_and_noncharacter_is_forbidden() {
        for c in [
            '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}',
            '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
        ] {
            assert_eq!(
                forbidden(c),
                Some("a bidirectional control character"),
                "{c:?}"
            );
        }
        assert!(forbidden('\u{2028}').is_some() && forbidden('\u{2029}').is_some());
        assert_eq!(forbidden('\u{FEFF}'), Some("a byte order mark"));
        let noncharacters: Vec<char> = (0..=0x10_FFFFu32)
            .filter_map(char::from_u32)
            .filter(|c| forbidden(*c) == Some("a noncharacter"))
            .collect();
        assert_eq!(noncharacters.len(), 66);
        for c in ['\u{0}', '\n', '\u{7F}', '\u{85}'] {
            assert_eq!(forbidden(c), Some("a control character"), "{c:?}");
        }
    }

    #[test]
    fn joiners_selectors_tags_and_every_script_are_allowed() {
        for name in [
            "👩\u{200D}💻",
            "👨\u{200D}👩\u{200D}👧\u{200D}👦",
            "❤\u{FE0F}",
            "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
            "می\u{200C}خواهم",
            "李小龙",
            "Ω",
            "\u{E000}",
        ] {
            assert!(name.chars().all(|c| forbidden(c).is_none()), "{name:?}");
            assert!(!is_blank(name), "{name:?}");
        }
    }

    #[test]
    fn only_spaces_and_invisible_characters_are_blank() {
        for blank in [
            " ",
            "   ",
            "\u{3000}",
            "\u{A0}",
            "\u{200D}",
            " \u{200B} ",
            "\u{E0020}",
        ] {
            assert!(is_blank(blank), "{blank:?}");
        }
        for visible in ["a", " a ", "_", "\u{200D}a"] {
            assert!(!is_blank(visible), "{visible:?}");
        }
    }
}
