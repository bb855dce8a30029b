//! Secrets: which variables carry credentials, and how settings read tokens.
//!
//! A scheduler command inherits our environment and may copy it into jobs (sbatch's default
//! is `--export=ALL`), and a local executor's children inherit it too, so every command and
//! task this project starts drops the credential variables below. Token settings are read
//! as raw text and never echoed in an error.

use secrecy::SecretString;
use serde::Deserialize;

/// Whether `name` is a variable that carries a credential of the user running `farm`: a
/// Slurm JWT, or any `FARM_*` variable ending in `TOKEN` (`FARM_HTTP_TOKEN`,
/// `FARM_AGENT_TOKEN`, ...).
pub fn is_credential_variable(name: &str) -> bool {
    name == "SLURM_JWT" || (name.starts_with("FARM_") && name.ends_with("TOKEN"))
}

/// The credential variables present in this process's environment.
pub fn credential_variables_present() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| is_credential_variable(k))
        .collect()
}

/// Whether a settings key holds a secret (its value is never parsed or shown).
pub fn is_secret_setting(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "token" || key.ends_with("_token") || key.contains("password") || key.contains("secret")
}

/// Reads an optional token from settings: any scalar (`424242` is the text `424242`), never
/// quoted back in an error. For `#[serde(default, deserialize_with = "farm_core::secret::optional_token")]`.
pub fn optional_token<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<SecretString>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Integer(i64),
        Unsigned(u64),
        Float(f64),
        Bool(bool),
    }
    let raw = Option::<Raw>::deserialize(d)
        .map_err(|_| serde::de::Error::custom("a token must be text (its value is not shown)"))?;
    Ok(raw
        .map(|r| match r {
            Raw::Text(t) => t,
            Raw::Integer(n) => n.to_string(),
            Raw::Unsigned(n) => n.to_string(),
            Raw::Float(x) => x.to_string(),
            Raw::Bool(b) => b.to_string(),
        })
        .map(|t| SecretString::from(t.trim().to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn credential_variables_are_recognised() {
        for name in [
            "SLURM_JWT",
            "FARM_HTTP_TOKEN",
            "FARM_AGENT_TOKEN",
            "FARM_LOCAL_TOKEN",
        ] {
            assert!(is_credential_variable(name), "{name}");
        }
        for name in [
            "PATH",
            "FARM_CONFIG",
            "SLURM_CONF",
            "TOKEN",
            "FARM_TOKENS_DIR",
        ] {
            assert!(!is_credential_variable(name), "{name}");
        }
    }

    #[test]
    fn tokens_of_any_scalar_type_are_text_and_never_echoed() {
        #[derive(Deserialize)]
        struct S {
            #[serde(default, deserialize_with = "optional_token")]
            token: Option<SecretString>,
        }
        let s: S = serde_yaml::from_str("token: 424242").unwrap();
        assert_eq!(s.token.unwrap().expose_secret(), "424242");
        let s: S = serde_yaml::from_str("token: ' abc '").unwrap();
        assert_eq!(s.token.unwrap().expose_secret(), "abc");
        let s: S = serde_yaml::from_str("{}").unwrap();
        assert!(s.token.is_none());
        let err = serde_yaml::from_str::<S>("token: [hunter2]")
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(
            is_secret_setting("token")
                && is_secret_setting("api_token")
                && !is_secret_setting("url")
        );
    }
}
