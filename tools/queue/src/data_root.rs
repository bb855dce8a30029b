//! The queue's data root: database, render logs, agent logs, tokens, staging.
//!
//! ```text
//! <data root>/
//!   queue.db (+ -wal, -shm)   jobs, tasks, attempts, agents, transitions
//!   api.token                 bearer token for the farm protocol (mode 0600)
//!   agent.token               bearer token agents present (mode 0600)
//!   server.json               url and pid of the running server
//!   server.lock               held by the running server
//!   port                      the port the queue last listened on; the next start tries it
//!                             first, so its address stays the same
//!   logs/jobs/<id>.log        render logs
//!   logs/agents/<name>.log    local agents' own logs
//!   logs/server.log           the server's log when started in the background
//!   agents/<name>/            local agents' spool directories
//!   staging/<render context>/ files copied by `copy_render_files`
//! ```

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use secrecy::SecretString;

/// Environment variable naming the data root.
pub const DATA_ROOT_ENV: &str = "FARM_DATA_ROOT";

/// What a running server writes to `server.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ServerInfo {
    /// Its base URL.
    pub url: String,
    /// Its process id.
    pub pid: u32,
}

/// Which token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Clients of the farm protocol.
    Api,
    /// Agents.
    Agent,
}

/// A data root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRoot {
    root: PathBuf,
}

impl DataRoot {
    /// `explicit`, else `$FARM_DATA_ROOT`, else `<user data dir>/farm/queue`.
    pub fn resolve(explicit: Option<&Path>) -> DataRoot {
        let root = explicit
            .map(Path::to_path_buf)
            .or_else(|| {
                std::env::var_os(DATA_ROOT_ENV)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .or_else(|| dirs::data_dir().map(|d| d.join("farm").join("queue")))
            .unwrap_or_else(|| std::env::temp_dir().join("farm-queue"));
        DataRoot { root }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The SQLite database.
    pub fn database(&self) -> PathBuf {
        self.root.join("queue.db")
    }

    /// Render logs of jobs without a `log_directory`.
    pub fn job_logs(&self) -> PathBuf {
        self.root.join("logs").join("jobs")
    }

    /// Local agents' own logs.
    pub fn agent_logs(&self) -> PathBuf {
        self.root.join("logs").join("agents")
    }

    /// The server's log when it runs in the background.
    pub fn server_log(&self) -> PathBuf {
        self.root.join("logs").join("server.log")
    }

    /// A local agent's spool directory.
    pub fn agent_work(&self, name: &str) -> PathBuf {
        self.root.join("agents").join(name)
    }

    /// Staging for render files.
    pub fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }

    /// Where the running server says where it listens.
    pub fn server_info(&self) -> PathBuf {
        self.root.join("server.json")
    }

    /// The lock the running server holds.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("server.lock")
    }

    /// The queue serving this data root now, as its `server.json` says: `None` when no
    /// server holds the lock (a server killed with -9 leaves a stale file behind).
    pub fn running_server(&self) -> Option<ServerInfo> {
        let text = std::fs::read_to_string(self.server_info()).ok()?;
        let info: ServerInfo = serde_json::from_str(&text).ok()?;
        let lock = std::fs::File::open(self.lock_file()).ok()?;
        match lock.try_lock() {
            // We got it, so no server holds it.
            Ok(()) => None,
            Err(_) => Some(info),
        }
    }

    /// The port the queue of this data root last listened on.
    pub fn recorded_port(&self) -> Option<u16> {
        std::fs::read_to_string(self.root.join("port"))
            .ok()?
            .trim()
            .parse()
            .ok()
            .filter(|p| *p != 0)
    }

    /// Records the port the queue listens on, for the next start.
    pub fn record_port(&self, port: u16) -> std::io::Result<()> {
        std::fs::write(self.root.join("port"), format!("{port}\n"))
    }

    /// Where the queue of this data root listens: the running server's URL, else the
    /// loopback address at the port it last used, else at `default_port`.
    pub fn queue_url(&self, default_port: u16) -> String {
        match self.running_server() {
            Some(info) => info.url,
            None => format!(
                "http://127.0.0.1:{}",
                self.recorded_port().unwrap_or(default_port)
            ),
        }
    }

    fn token_file(&self, kind: TokenKind) -> PathBuf {
        self.root.join(match kind {
            TokenKind::Api => "api.token",
            TokenKind::Agent => "agent.token",
        })
    }

    /// Creates the directory (private to the user) and its log folders.
    pub fn create(&self) -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)?;
        std::fs::create_dir_all(self.job_logs())?;
        std::fs::create_dir_all(self.agent_logs())?;
        Ok(())
    }

    /// Reads a token file, if there is one.
    pub fn read_token(&self, kind: TokenKind) -> std::io::Result<Option<SecretString>> {
        match std::fs::read_to_string(self.token_file(kind)) {
            Ok(text) if !text.trim().is_empty() => {
                Ok(Some(SecretString::from(text.trim().to_owned())))
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads a token, creating a random one (readable only by the user) if there is none.
    /// Creation is atomic: concurrent callers all end up with the same token.
    pub fn load_or_create_token(&self, kind: TokenKind) -> std::io::Result<SecretString> {
        if let Some(token) = self.read_token(kind)? {
            return Ok(token);
        }
        self.create()?;
        let path = self.token_file(kind);
        let tmp = self.root.join(format!(
            ".{}.{}",
            uuid::Uuid::new_v4().simple(),
            std::process::id()
        ));
        {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(generate_token().as_bytes())?;
            file.sync_all()?;
        }
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let token = self
            .read_token(kind)?
            .ok_or_else(|| std::io::Error::other(format!("{} is empty", path.display())))?;
        let mode = std::fs::metadata(&path)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(token)
    }
}

/// 256 random bits as hex.
pub fn generate_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Compares a presented token with the expected one in time independent of where they
/// differ.
pub fn token_matches(presented: &str, expected: &str) -> bool {
    let (a, b) = (presented.as_bytes(), expected.as_bytes());
    let mut diff = (a.len() != b.len()) as u8;
    for (i, expected) in b.iter().enumerate() {
        diff |= a.get(i).copied().unwrap_or(0) ^ expected;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn tokens_are_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::resolve(Some(&dir.path().join("q")));
        let a = root.load_or_create_token(TokenKind::Api).unwrap();
        let b = root.load_or_create_token(TokenKind::Api).unwrap();
        assert_eq!(a.expose_secret(), b.expose_secret());
        assert_eq!(a.expose_secret().len(), 64);
        let agent = root.load_or_create_token(TokenKind::Agent).unwrap();
        assert_ne!(a.expose_secret(), agent.expose_secret());
        let mode = std::fs::metadata(dir.path().join("q/api.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            !format!("{a:?}").contains(a.expose_secret()),
            "Debug never shows the token"
        );
    }

    #[test]
    fn token_comparison_is_exact() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abd", "abc"));
        assert!(!token_matches("ab", "abc"));
        assert!(!token_matches("abcd", "abc"));
        assert!(!token_matches("", "abc"));
    }
}
