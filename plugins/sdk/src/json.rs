//! Byte-level edits of a JSON object's top-level members.
//!
//! Pass-through calls must leave the client's body as it was, byte for byte,
//! except for the field the gateway has to change (the model name). Parsing
//! into a `Value` and printing it again would reorder keys, reformat numbers
//! and cost time proportional to the whole prompt; these helpers find the one
//! member with a single scan and splice it.

use std::ops::Range;

/// One top-level member of a JSON object: where its key and value are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The key as written between the quotes (escapes not decoded).
    pub raw_key: Range<usize>,
    /// The value's bytes, without surrounding whitespace.
    pub value: Range<usize>,
}

/// Why a body is not an object these helpers can edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAnObject(pub &'static str);

impl std::fmt::Display for NotAnObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Lists the top-level members of the object in `body`.
///
/// Values are skipped structurally (strings with escapes, nesting), not
/// validated; a body that is valid JSON gives exact ranges.
pub fn members(body: &[u8]) -> Result<Vec<Member>, NotAnObject> {
    let mut pos = skip_ws(body, 0);
    if body.get(pos) != Some(&b'{') {
        return Err(NotAnObject("the body is not a JSON object"));
    }
    pos = skip_ws(body, pos + 1);
    let mut out = Vec::new();
    if body.get(pos) == Some(&b'}') {
        return Ok(out);
    }
    loop {
        if body.get(pos) != Some(&b'"') {
            return Err(NotAnObject("expected a key string"));
        }
        let key_end = skip_string(body, pos)?;
        let raw_key = pos + 1..key_end - 1;
        pos = skip_ws(body, key_end);
        if body.get(pos) != Some(&b':') {
            return Err(NotAnObject("expected ':' after a key"));
        }
        let start = skip_ws(body, pos + 1);
        let end = skip_value(body, start)?;
        out.push(Member {
            raw_key,
            value: start..end,
        });
        pos = skip_ws(body, end);
        match body.get(pos) {
            Some(b',') => pos = skip_ws(body, pos + 1),
            Some(b'}') => return Ok(out),
            _ => return Err(NotAnObject("expected ',' or '}' after a value")),
        }
    }
}

/// Finds the top-level member whose key is `key` (compared as written).
pub fn find<'a>(body: &[u8], members: &'a [Member], key: &str) -> Option<&'a Member> {
    members
        .iter()
        .find(|m| &body[m.raw_key.clone()] == key.as_bytes())
}

/// Returns `body` with the value of top-level `key` replaced by the JSON
/// `new_value`, or with `"key":new_value` added first when absent.
pub fn set_member(body: &[u8], key: &str, new_value: &[u8]) -> Result<Vec<u8>, NotAnObject> {
    let found = members(body)?;
    let mut out = Vec::with_capacity(body.len() + new_value.len() + key.len() + 4);
    match find(body, &found, key) {
        Some(m) => {
            out.extend_from_slice(&body[..m.value.start]);
            out.extend_from_slice(new_value);
            out.extend_from_slice(&body[m.value.end..]);
        }
        None => {
            let open = skip_ws(body, 0) + 1;
            out.extend_from_slice(&body[..open]);
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(new_value);
            if !found.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(&body[open..]);
        }
    }
    Ok(out)
}

/// Returns `body` without its top-level member `key` (unchanged if absent).
pub fn remove_member(body: &[u8], key: &str) -> Result<Vec<u8>, NotAnObject> {
    let found = members(body)?;
    let Some(i) = found
        .iter()
        .position(|m| &body[m.raw_key.clone()] == key.as_bytes())
    else {
        return Ok(body.to_vec());
    };
    // The key's opening quote.
    let start = found[i].raw_key.start - 1;
    let cut = match (found.get(i + 1), i.checked_sub(1)) {
        // Up to the next key's quote: takes the comma after this member.
        (Some(next), _) => start..next.raw_key.start - 1,
        // Last member: from the end of the previous value, taking its comma.
        (None, Some(prev)) => found[prev].value.end..found[i].value.end,
        (None, None) => start..found[i].value.end,
    };
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(&body[..cut.start]);
    out.extend_from_slice(&body[cut.end..]);
    Ok(out)
}

/// Returns `body` with its top-level member `from` renamed to `to`, for
/// vendors that call a field by another name. When the body already has
/// `to`, that one is kept and `from` is dropped.
pub fn rename_member(body: &[u8], from: &str, to: &str) -> Result<Vec<u8>, NotAnObject> {
    let found = members(body)?;
    let Some(m) = find(body, &found, from) else {
        return Ok(body.to_vec());
    };
    if find(body, &found, to).is_some() {
        return remove_member(body, from);
    }
    let mut out = Vec::with_capacity(body.len() + to.len());
    out.extend_from_slice(&body[..m.raw_key.start]);
    out.extend_from_slice(to.as_bytes());
    out.extend_from_slice(&body[m.raw_key.end..]);
    Ok(out)
}

/// JSON-encodes a string value.
pub fn string_value(s: &str) -> Vec<u8> {
    serde_json::to_vec(s).expect("strings always serialize")
}

fn skip_ws(body: &[u8], mut pos: usize) -> usize {
    while matches!(body.get(pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        pos += 1;
    }
    pos
}

/// `pos` is at the opening quote; returns the index just past the closing one.
fn skip_string(body: &[u8], pos: usize) -> Result<usize, NotAnObject> {
    let mut i = pos + 1;
    loop {
        // Prompts are mostly string content: jump to the next quote or
        // backslash eight bytes at a time instead of matching every byte.
        i = find_quote_or_backslash(body, i).ok_or(NotAnObject("unterminated string"))?;
        match body[i] {
            b'"' => return Ok(i + 1),
            _ => i += 2,
        }
    }
}

/// The index of the first `"` or `\` at or after `from`.
fn find_quote_or_backslash(body: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_ne_bytes([b'\\'; 8]);
    // A byte of `x` is zero where the word matched; `(x - 1) & !x & 0x80`
    // flags zero bytes. Borrows can flag bytes above a real zero, never
    // below one, so the lowest flag is always a true match.
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut i = from;
    while let Some(chunk) = body.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let found = zero_bytes(word ^ QUOTES) | zero_bytes(word ^ BACKSLASHES);
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    (i..body.len()).find(|&j| matches!(body[j], b'"' | b'\\'))
}

/// `pos` is at a value's first byte; returns the index just past it.
fn skip_value(body: &[u8], pos: usize) -> Result<usize, NotAnObject> {
    match body.get(pos) {
        Some(b'"') => skip_string(body, pos),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = pos;
            while i < body.len() {
                match body[i] {
                    b'"' => {
                        i = skip_string(body, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            Err(NotAnObject("unterminated object or array"))
        }
        Some(_) => {
            let mut i = pos;
            while i < body.len()
                && !matches!(body[i], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                i += 1;
            }
            if i == pos {
                Err(NotAnObject("expected a value"))
            } else {
                Ok(i)
            }
        }
        None => Err(NotAnObject("expected a value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_named_top_level_member() {
        let body = br#"{ "messages":[{"role":"user","content":"say \"model\": x"}], "model" : "smart", "n":1 }"#;
        let out = set_member(body, "model", &string_value("gpt-4o")).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{ "messages":[{"role":"user","content":"say \"model\": x"}], "model" : "gpt-4o", "n":1 }"#
        );
    }

    #[test]
    fn nested_keys_of_the_same_name_are_not_touched() {
        let body = br#"{"metadata":{"model":"a"},"model":"b"}"#;
        let out = set_member(body, "model", b"\"c\"").unwrap();
        assert_eq!(out, br#"{"metadata":{"model":"a"},"model":"c"}"#);
    }

    #[test]
    fn removes_members_anywhere_leaving_valid_json() {
        let body = br#"{ "a":1, "b":[2,{"c":3}], "d":"x" }"#;
        for (key, want) in [
            ("a", r#"{ "b":[2,{"c":3}], "d":"x" }"#),
            ("b", r#"{ "a":1, "d":"x" }"#),
            ("d", r#"{ "a":1, "b":[2,{"c":3}] }"#),
            ("c", r#"{ "a":1, "b":[2,{"c":3}], "d":"x" }"#),
        ] {
            let out = remove_member(body, key).unwrap();
            assert_eq!(std::str::from_utf8(&out).unwrap(), want, "removing {key}");
            serde_json::from_slice::<serde_json::Value>(&out).unwrap();
        }
        assert_eq!(remove_member(br#"{"a":1}"#, "a").unwrap(), b"{}");
    }

    #[test]
    fn renames_a_member_in_place() {
        let body = br#"{"model":"m","max_tokens":5}"#;
        assert_eq!(
            rename_member(body, "max_tokens", "max_new_tokens").unwrap(),
            br#"{"model":"m","max_new_tokens":5}"#
        );
        assert_eq!(rename_member(body, "absent", "x").unwrap(), body);
        // The client's own `to` wins.
        assert_eq!(
            rename_member(br#"{"a":1,"b":2}"#, "a", "b").unwrap(),
            br#"{"b":2}"#
        );
    }

    #[test]
    fn inserts_a_missing_member_first() {
        assert_eq!(
            set_member(br#"{"a":1}"#, "b", b"true").unwrap(),
            br#"{"b":true,"a":1}"#
        );
        assert_eq!(set_member(b" {} ", "b", b"2").unwrap(), br#" {"b":2} "#);
    }

    #[test]
    fn lists_members_with_exact_ranges() {
        let body = br#"{"a": [1, {"x": "]"}], "b":null,"c":-1.5e3}"#;
        let m = members(body).unwrap();
        let values: Vec<&str> = m
            .iter()
            .map(|m| std::str::from_utf8(&body[m.value.clone()]).unwrap())
            .collect();
        assert_eq!(values, [r#"[1, {"x": "]"}]"#, "null", "-1.5e3"]);
    }

    #[test]
    fn strings_are_skipped_whatever_the_alignment_of_quotes_and_escapes() {
        // Every position of a quote or escape relative to the 8-byte words.
        for pad in 0..20 {
            let filler = "x".repeat(pad);
            for inner in [r#"\""#, r#"\\"#, r#"a\"b\\"#, r#"\u00e9é"#, ""] {
                let body = format!(r#"{{"a":"{filler}{inner}{filler}","b":"{inner}","m":1}}"#);
                let m = members(body.as_bytes()).unwrap();
                let keys: Vec<&str> = m.iter().map(|m| &body[m.raw_key.clone()]).collect();
                assert_eq!(keys, ["a", "b", "m"], "{body}");
                assert_eq!(&body[m[2].value.clone()], "1", "{body}");
            }
        }
        assert!(members(br#"{"a":"0123456789abcdef\"}"#).is_err());
    }

    #[test]
    fn rejects_what_is_not_an_object() {
        assert!(members(b"[1]").is_err());
        assert!(members(br#"{"a":"#).is_err());
        assert!(members(br#"{"a":"x}"#).is_err());
        assert!(members(br#"{"a" 1}"#).is_err());
    }
}
