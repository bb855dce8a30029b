//! The `settings:` block of a Slurm farm, read with `FarmSpec::settings_as`.
//!
//! One flat map for both transports: settings that only one transport reads are ignored by
//! the other, so switching `transport` (or `FARM_SLURM_TRANSPORT`) never breaks a farms file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use farm_core::{FarmError, Result};
use secrecy::SecretString;
use serde::Deserialize;

/// How the adapter talks to Slurm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// `sbatch`, `squeue`, `sacct`, `scontrol`, `scancel`, locally or over ssh.
    #[default]
    Cli,
    /// slurmrestd's JSON API.
    Rest,
}

/// Where the CLI transport looks for finished jobs that `squeue` has forgotten (after
/// `MinJobAge`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accounting {
    /// Ask `sacct`, and stop asking once it says accounting storage is disabled.
    #[default]
    Auto,
    /// Always ask `sacct`; its failures are errors.
    Sacct,
    /// Never ask `sacct`.
    None,
}

/// Running the CLI on a login node over ssh.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshSettings {
    /// `user@host` as ssh understands it.
    pub destination: String,
    /// Extra ssh options (`-oBatchMode=yes`, `-i key`).
    #[serde(default)]
    pub options: Vec<String>,
}

/// Settings of the `slurm` adapter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSettings {
    /// `cli` (default) or `rest`.
    #[serde(default)]
    pub transport: Transport,
    /// Partition for every job (`--partition`); a request's `native.slurm.partition` wins.
    #[serde(default)]
    pub partition: Option<String>,
    /// Account to charge (`--account`).
    #[serde(default)]
    pub account: Option<String>,
    /// Quality of service (`--qos`).
    #[serde(default)]
    pub qos: Option<String>,
    /// Most array tasks of one job running at once (the `%N` of `--array`).
    #[serde(default)]
    pub array_limit: Option<u32>,
    /// Directory for render logs when a request names none. Must be readable from this host
    /// and the render nodes; default: the request's working directory, else `/tmp`.
    #[serde(default)]
    pub log_directory: Option<String>,
    /// Longest a scheduler command or HTTP call may take (default 30s): `45s`, `1m 30s`, or
    /// a number of seconds.
    #[serde(
        default = "default_timeout",
        deserialize_with = "farm_core::config::duration"
    )]
    pub command_timeout: Duration,
    /// Slurm's nice value is `nice_offset - priority` (default 0). Unprivileged users cannot
    /// set negative nice values; sites that want positive priorities for them set an offset
    /// of 1000 so every nice value stays positive.
    #[serde(default)]
    pub nice_offset: i32,
    /// Where the adapter records the jobs it submitted (for restarts after Slurm forgot a
    /// job, and to tell a lost job from an unknown id). Default:
    /// `<state dir>/farm/slurm/<farm name>`.
    #[serde(default)]
    pub state_directory: Option<PathBuf>,
    /// CLI: directory holding `sbatch` and friends, when they are not on `PATH`.
    #[serde(default)]
    pub bin_dir: Option<String>,
    /// CLI: run the commands on another host.
    #[serde(default)]
    pub ssh: Option<SshSettings>,
    /// CLI: `SLURM_CONF` for the commands (local transport only).
    #[serde(default)]
    pub slurm_conf: Option<String>,
    /// CLI: whether to ask `sacct` about jobs `squeue` forgot.
    #[serde(default)]
    pub accounting: Accounting,
    /// CLI: the `jobcomp/filetxt` log (`JobCompLoc`), the last place to find a finished job.
    #[serde(default)]
    pub jobcomp_file: Option<String>,
    /// REST: slurmrestd's address, `http(s)://host[:port]`. User info in it is refused:
    /// slurmrestd authenticates with `user_name` and `token`.
    #[serde(default = "default_url")]
    pub url: String,
    /// REST: answer `check` with `sbatch --test-only` through the CLI settings (`bin_dir`,
    /// `ssh`, `slurm_conf`), since slurmrestd 0.0.38 has no test-only call. Off (default):
    /// a REST farm's `check` is `Unsupported`.
    #[serde(default)]
    pub check_with_cli: bool,
    /// REST: the OpenAPI plugin version in paths (`v0.0.38`).
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// REST: the user jobs run as (`X-SLURM-USER-NAME`); default `$USER`.
    #[serde(default)]
    pub user_name: Option<String>,
    /// REST: the JWT (`X-SLURM-USER-TOKEN`); default the `SLURM_JWT` environment variable.
    /// Any scalar is taken as text, and its value never appears in an error.
    #[serde(default, deserialize_with = "farm_core::secret::optional_token")]
    pub token: Option<SecretString>,
    /// REST: the environment jobs start with (slurmrestd requires one); the request's
    /// variables are exported by the script itself. Default: a standard `PATH`.
    #[serde(default = "default_environment")]
    pub environment: BTreeMap<String, String>,
}

/// The PATH REST jobs get when `environment` is not configured.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_url() -> String {
    "http://127.0.0.1:6820".into()
}

fn default_api_version() -> String {
    "v0.0.38".into()
}

fn default_environment() -> BTreeMap<String, String> {
    BTreeMap::from([("PATH".to_owned(), DEFAULT_PATH.to_owned())])
}

/// `url` as messages may show it: user info and anything after `?` or `#` replaced by
/// `***`. Works on the text, so a URL that does not even parse is shown safely too.
pub(crate) fn redacted_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let (rest, tail) = match rest.find(['?', '#']) {
        Some(i) => (&rest[..i], &rest[i..i + 1]),
        None => (rest, ""),
    };
    let rest = match rest.rfind('@') {
        Some(at) => format!("***@{}", &rest[at + 1..]),
        None => rest.to_owned(),
    };
    let tail = if tail.is_empty() {
        String::new()
    } else {
        format!("{tail}***")
    };
    format!("{scheme}{rest}{tail}")
}

/// What is wrong with a slurmrestd address, never quoting its credentials.
pub(crate) fn check_url(url: &str) -> std::result::Result<(), String> {
    let shown = redacted_url(url);
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{shown:?} is not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!("{shown:?} is not an http(s) URL"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "{shown:?} has a user name or password in it: slurmrestd takes settings.user_name \
             and settings.token (or SLURM_JWT) instead, and a URL is shown in messages"
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "{shown:?} has a query or fragment: give slurmrestd's address only"
        ));
    }
    Ok(())
}

impl Default for SlurmSettings {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("every setting has a default")
    }
}

impl SlurmSettings {
    /// Checks what serde cannot: values that would spill into directives, a sane version.
    pub fn validate(&self, farm: &str) -> Result<()> {
        let bad = |what: &str, problem: String| {
            FarmError::config(format!("farm {farm}: settings.{what}: {problem}"))
        };
        for (key, value) in [
            ("partition", &self.partition),
            ("account", &self.account),
            ("qos", &self.qos),
            ("log_directory", &self.log_directory),
            ("jobcomp_file", &self.jobcomp_file),
        ] {
            if let Some(v) = value
                && (v.is_empty() || v.contains(['\n', '\r', '\0']))
            {
                return Err(bad(key, format!("{v:?} is empty or has a line break")));
            }
        }
        if let Some(dir) = &self.log_directory
            && (!dir.starts_with('/') || dir.contains('\\'))
        {
            return Err(bad(
                "log_directory",
                format!(
                    "{dir:?} must be absolute and without backslashes (slurmd strips them from output paths)"
                ),
            ));
        }
        if self.array_limit == Some(0) {
            return Err(bad("array_limit", "must be at least 1".into()));
        }
        if self.command_timeout.is_zero() {
            return Err(bad("command_timeout", "must be more than zero".into()));
        }
        let v = self.api_version.strip_prefix('v').unwrap_or("");
        if v.split('.').count() != 3
            || !v
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad(
                "api_version",
                format!("{:?} is not a version such as v0.0.38", self.api_version),
            ));
        }
        check_url(&self.url).map_err(|problem| bad("url", problem))?;
        for name in self.environment.keys() {
            farm_core::request::check_env_name(name)
                .map_err(|e| bad(&format!("environment.{name}"), e))?;
        }
        Ok(())
    }

    /// The journal directory: the configured one, else one per farm under the user's state
    /// directory.
    pub fn journal_directory(&self, farm: &str) -> Option<PathBuf> {
        self.state_directory
            .clone()
            .or_else(|| farm_core::journal::default_directory("slurm", farm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn defaults_are_the_cli_and_a_local_slurmrestd() {
        let s = SlurmSettings::default();
        assert_eq!(s.transport, Transport::Cli);
        assert_eq!(s.url, "http://127.0.0.1:6820");
        assert_eq!(s.api_version, "v0.0.38");
        assert_eq!(s.command_timeout, Duration::from_secs(30));
        assert_eq!(s.environment["PATH"], DEFAULT_PATH);
        s.validate("hpc").unwrap();
    }

    #[test]
    fn settings_parse_and_unknown_keys_are_refused() {
        let s: SlurmSettings = serde_yaml::from_str(
            "transport: rest\npartition: render\narray_limit: 8\ncommand_timeout: 1m\ntoken: abc.def\nssh: {destination: me@head}\n",
        )
        .unwrap();
        assert_eq!(s.transport, Transport::Rest);
        assert_eq!(s.command_timeout, Duration::from_secs(60));
        assert_eq!(s.token.as_ref().unwrap().expose_secret(), "abc.def");
        assert_eq!(s.ssh.unwrap().destination, "me@head");
        let err = serde_yaml::from_str::<SlurmSettings>("partiton: x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("partiton"), "{err}");
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let s: SlurmSettings =
            serde_yaml::from_str("token: eyJhbGciOiJIUzI1NiJ9.secret-part\n").unwrap();
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("secret-part") && !debug.contains("eyJ"),
            "{debug}"
        );
    }

    fn spec(settings: &str) -> farm_core::FarmSpec {
        farm_core::FarmSpec {
            settings: serde_yaml::from_str(settings).unwrap(),
            ..farm_core::FarmSpec::new("slurm")
        }
    }

    fn load(settings: &str) -> Result<SlurmSettings> {
        let s: SlurmSettings = spec(settings).settings_as("hpc")?;
        s.validate("hpc")?;
        Ok(s)
    }

    #[test]
    fn tokens_are_text_whatever_yaml_makes_of_them_and_never_shown() {
        let s = load("token: 424242").unwrap();
        assert_eq!(s.token.unwrap().expose_secret(), "424242");
        let s = load("token: 'abc.def '").unwrap();
        assert_eq!(s.token.unwrap().expose_secret(), "abc.def");
        let err = load("token: [hunter2]").unwrap_err().to_string();
        assert!(
            err.contains("settings.token") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn durations_take_units_or_seconds_and_bad_ones_name_the_setting() {
        for (yaml, secs) in [
            ("command_timeout: 45", 45.0),
            ("command_timeout: 1.5", 1.5),
            ("command_timeout: 1m 30s", 90.0),
            ("command_timeout: 500ms", 0.5),
        ] {
            assert_eq!(
                load(yaml).unwrap().command_timeout,
                Duration::from_secs_f64(secs),
                "{yaml}"
            );
        }
        for (yaml, value) in [
            ("command_timeout: soon", "soon"),
            ("command_timeout: 0", "0"),
            ("command_timeout: 0s", "0s"),
            ("command_timeout: -3", "-3"),
        ] {
            let err = load(yaml).unwrap_err().to_string();
            assert!(
                err.contains("farm hpc: settings.command_timeout") && err.contains(value),
                "{yaml}: {err}"
            );
        }
    }

    #[test]
    fn a_url_with_credentials_is_refused_without_showing_them() {
        for url in [
            "http://admin:hunter2@slurm.example.org:6820",
            "http://hunter2@slurm.example.org",
            "https://admin:hunter2@slurm.example.org/",
            "ftp://admin:hunter2@slurm.example.org",
            "http://admin:hunter2@slurm.example.org:port",
            "admin:hunter2@slurm.example.org:6820",
            "http://slurm.example.org/?token=hunter2",
            "http://slurm.example.org/#hunter2",
        ] {
            let err = load(&format!("url: '{url}'")).unwrap_err().to_string();
            assert!(
                err.contains("settings.url") && !err.contains("hunter2"),
                "{url}: {err}"
            );
        }
        let err = load("url: 'http://admin:hunter2@slurm.example.org:6820'")
            .unwrap_err()
            .to_string();
        assert!(err.contains("http://***@slurm.example.org:6820"), "{err}");
        assert!(err.contains("user_name") && err.contains("token"), "{err}");
        for url in ["http://127.0.0.1:6820", "https://slurm.example.org/proxy/"] {
            load(&format!("url: '{url}'")).unwrap();
        }
        // Clients built without settings refuse them too.
        let token = SecretString::from("t".to_owned());
        let err = crate::client::RestClient::new(
            "http://admin:hunter2@127.0.0.1:6820",
            "v0.0.38",
            "root",
            &token,
            Duration::from_secs(1),
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn urls_are_shown_without_user_info_or_query() {
        for (url, shown) in [
            ("http://u:p@h:1/x", "http://***@h:1/x"),
            ("http://h:1/x", "http://h:1/x"),
            ("u:p@h", "***@h"),
            ("http://h/?token=x", "http://h/?***"),
            ("http://h/#x@y", "http://h/#***"),
            ("http://a@b@h", "http://***@h"),
        ] {
            assert_eq!(redacted_url(url), shown, "{url}");
        }
    }

    #[test]
    fn bad_values_name_their_setting() {
        for (yaml, needle) in [
            ("partition: \"a\\nb\"", "settings.partition"),
            ("log_directory: relative", "settings.log_directory"),
            ("log_directory: '/a\\b'", "backslashes"),
            ("array_limit: 0", "settings.array_limit"),
            ("api_version: '0.0.38'", "settings.api_version"),
            ("url: 127.0.0.1:6820", "settings.url"),
            ("environment: {FARM_X: y}", "settings.environment.FARM_X"),
        ] {
            let s: SlurmSettings = serde_yaml::from_str(yaml).unwrap();
            let err = s.validate("hpc").unwrap_err().to_string();
            assert!(err.contains(needle), "{yaml}: {err}");
        }
    }
}
