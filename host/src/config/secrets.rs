//! `${VAR}` references in config strings, resolved from the environment.
//! Secrets stay out of config files; a missing variable is an error that
//! names the variable and the entry that needs it.

use super::ConfigError;

/// Replaces every `${NAME}` in `value` with the variable's value, using
/// `lookup`. `$${` stands for a literal `${`. `at` names the entry in errors.
pub fn expand(
    value: &str,
    at: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(stripped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = stripped;
        } else if let Some(body) = after.strip_prefix("${") {
            let end = body
                .find('}')
                .ok_or_else(|| ConfigError::new(at, format!("unterminated '${{' in {value:?}")))?;
            let name = &body[..end];
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(ConfigError::new(
                    at,
                    format!("'{name}' is not a variable name"),
                ));
            }
            match lookup(name) {
                Some(v) if !v.is_empty() => out.push_str(&v),
                Some(_) => {
                    return Err(ConfigError::new(
                        at,
                        format!("environment variable {name} is empty"),
                    ));
                }
                None => {
                    return Err(ConfigError::new(
                        at,
                        format!("environment variable {name} is not set"),
                    ));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-123".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn replaces_references() {
        assert_eq!(
            expand("Bearer ${KEY}!", "x", &env).unwrap(),
            "Bearer sk-123!"
        );
        assert_eq!(expand("a$b $${KEY}", "x", &env).unwrap(), "a$b ${KEY}");
        assert_eq!(expand("plain", "x", &env).unwrap(), "plain");
    }

    #[test]
    fn missing_variables_name_the_entry() {
        let err = expand("${NOPE}", "providers[openai].keys[1]", &env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "providers[openai].keys[1]: environment variable NOPE is not set"
        );
        assert!(expand("${EMPTY}", "x", &env).is_err());
        assert!(expand("${KEY", "x", &env).is_err());
        assert!(expand("${A-B}", "x", &env).is_err());
    }
}
