//! A durable journal of the jobs an adapter submitted, shared by every process on the host.
//!
//! Schedulers forget: Slurm drops a finished job after `MinJobAge`, HTCondor moves it to a
//! history that rotates. Every `farm` command is a new process, so what an adapter learnt at
//! submit time must be on disk for the next process to tell a job it submitted and the
//! scheduler lost (`Failed`, `lost`) from an id nobody knows (`JobNotFound`), to keep the
//! terminal state it last saw, and to find an earlier submission of a render context.
//!
//! The design follows from that use:
//!
//! - **One small JSON file per entry** (`<id>.json`, the adapter's own serde type), so
//!   processes never rewrite each other's entries and a corrupt file costs one job, not the
//!   journal. Files are written to a temporary name, synced and renamed: a reader sees the
//!   old entry or the new one, never half of one. When two processes update the same entry,
//!   the last writer wins; adapters only record facts that stay true (a job's identity, a
//!   terminal state), so that is harmless.
//! - **Entries other processes wrote are picked up on demand** ([`Journal::get`] reads the
//!   one file; [`Journal::all`] and [`Journal::find`] rescan), not watched.
//! - **Old entries are pruned when the journal is opened**, counted from
//!   [`JournalEntry::recorded_ms`], so the directory does not grow without bound.
//! - **A journal that cannot be kept on disk still works in memory**, with a warning: an
//!   adapter must not refuse to run (or to render offline) because a state directory is
//!   read-only; it then only forgets more after a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::job::{EpochMillis, Job, now_millis};

/// How long adapters keep an entry: long past any scheduler's memory of a finished job
/// (Slurm's `MinJobAge`, HTCondor's history), short enough that the directory stays small.
pub const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// One remembered job, in the adapter's own shape.
pub trait JournalEntry: Clone + Serialize + DeserializeOwned {
    /// What the entry is filed under; its `Display` form names the file (`<id>.json`) and
    /// must be a plain file name (ASCII letters, digits, `.`, `_`, `-`, not starting with `.`).
    type Id: Clone + Ord + fmt::Display;

    /// The entry's id (a scheduler job id, typically).
    fn id(&self) -> Self::Id;

    /// When the entry was first made (ms since the epoch); retention counts from here, so
    /// updating an entry does not keep it forever.
    fn recorded_ms(&self) -> EpochMillis;

    /// Where the entry keeps the terminal state last seen, for when the scheduler has
    /// forgotten the job; `None` for entries that keep none. [`Journal::set_finished`]
    /// writes through it.
    fn finished_mut(&mut self) -> Option<&mut Option<Job>> {
        None
    }
}

/// The default place for an adapter's journal: `<user state dir>/farm/<adapter>/<farm>`
/// (`$XDG_STATE_HOME`, else `~/.local/state`; the cache directory where there is no state
/// directory). One directory per farm, so two farms on one scheduler keep apart.
pub fn default_directory(adapter: &str, farm: &str) -> Option<PathBuf> {
    dirs::state_dir()
        .or_else(dirs::cache_dir)
        .map(|d| d.join("farm").join(adapter).join(file_name_for(farm)))
}

/// A farm name as one safe path component.
fn file_name_for(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("farm{s}")
    } else {
        s
    }
}

fn is_plain_file_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

struct State<E: JournalEntry> {
    entries: BTreeMap<E::Id, E>,
    /// Files already warned about, so a corrupt file is reported once, not on every rescan.
    unreadable: BTreeSet<PathBuf>,
}

/// The journal: entries in memory, mirrored in a directory when one is usable.
pub struct Journal<E: JournalEntry> {
    dir: Option<PathBuf>,
    state: Mutex<State<E>>,
}

impl<E: JournalEntry> fmt::Debug for Journal<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Entries may hold whole requests: show how many, not what.
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("entries", &self.lock().entries.len())
            .finish()
    }
}

/// Creates `dir` (and parents) and makes it readable by its owner only.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

impl<E: JournalEntry> Journal<E> {
    /// Opens the journal in `dir` (created if needed), dropping entries recorded more than
    /// `retention` ago. In memory only when `dir` is `None` or cannot be created.
    pub fn open(dir: Option<PathBuf>, retention: Duration) -> Journal<E> {
        // Entries hold whole requests, environment values included: the directory is the
        // user's alone.
        let dir = dir.and_then(|d| match create_private_dir(&d) {
            Ok(()) => Some(d),
            Err(e) => {
                tracing::warn!(dir = %d.display(), error = %e, "cannot create the job journal directory; keeping the journal in memory, so other processes will not see these jobs");
                None
            }
        });
        let journal = Journal {
            dir,
            state: Mutex::new(State {
                entries: BTreeMap::new(),
                unreadable: BTreeSet::new(),
            }),
        };
        journal.rescan(Some(retention));
        journal
    }

    /// An adapter's journal: the `jobs` folder of the farm's state directory (see
    /// [`default_directory`]), keeping entries for [`RETENTION`]. Every adapter files its
    /// entries the same way, so a state directory reads the same whatever the scheduler.
    pub fn in_state_directory(state_directory: Option<PathBuf>) -> Journal<E> {
        Journal::open(state_directory.map(|d| d.join("jobs")), RETENTION)
    }

    /// The directory entries are kept in; `None` when the journal lives in memory only.
    pub fn directory(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Remembers `entry`, replacing any entry with its id.
    pub fn record(&self, entry: E) {
        self.write(&entry);
        self.lock().entries.insert(entry.id(), entry);
    }

    /// The entry filed under `id`: from memory, else from its file (another process may
    /// have written it).
    pub fn get(&self, id: &E::Id) -> Option<E> {
        if let Some(entry) = self.lock().entries.get(id) {
            return Some(entry.clone());
        }
        let entry = self.read(&self.file(id)?).filter(|e: &E| e.id() == *id)?;
        self.lock().entries.insert(id.clone(), entry.clone());
        Some(entry)
    }

    /// Applies `change` to the entry filed under `id` and saves it when `change` returns
    /// true. Returns the entry as it is afterwards; `None` (and no call) without an entry.
    pub fn update(&self, id: &E::Id, change: impl FnOnce(&mut E) -> bool) -> Option<E> {
        let current = self.get(id)?;
        let mut entry = current;
        if change(&mut entry) {
            self.record(entry.clone());
        }
        Some(entry)
    }

    /// Keeps `job` as the terminal state last seen of the entry filed under `id`, or
    /// forgets it (`None`) when the job runs again; writes only when that changes the
    /// entry. Does nothing for an unknown id or an entry that keeps no state.
    pub fn set_finished(&self, id: &E::Id, job: Option<&Job>) {
        self.update(id, |e| match e.finished_mut() {
            Some(slot) if slot.as_ref() != job => {
                *slot = job.cloned();
                true
            }
            _ => false,
        });
    }

    /// The entries `matches` accepts, in id order. Looks in memory first and rescans the
    /// directory only when nothing there matches: callers ask on every submit, and an
    /// entry this process knows is the common case.
    pub fn find(&self, matches: impl Fn(&E) -> bool) -> Vec<E> {
        let found = self.matching(&matches);
        if !found.is_empty() || self.dir.is_none() {
            return found;
        }
        self.rescan(None);
        self.matching(&matches)
    }

    /// Every entry, in id order, after picking up what other processes wrote.
    pub fn all(&self) -> Vec<E> {
        self.rescan(None);
        self.lock().entries.values().cloned().collect()
    }

    /// Files in the directory that hold no readable entry (torn by a crash, or edited by
    /// hand). They are skipped, reported once, and removed once older than the retention.
    pub fn unreadable(&self) -> Vec<PathBuf> {
        self.lock().unreadable.iter().cloned().collect()
    }

    fn matching(&self, matches: &impl Fn(&E) -> bool) -> Vec<E> {
        self.lock()
            .entries
            .values()
            .filter(|e| matches(e))
            .cloned()
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<E>> {
        // An entry map is valid after any panic: each insert is one call.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn file(&self, id: &E::Id) -> Option<PathBuf> {
        let name = id.to_string();
        if !is_plain_file_name(&name) {
            tracing::warn!(id = %name, "a journal id that is not a plain file name is kept in memory only");
            return None;
        }
        self.dir.as_ref().map(|d| d.join(format!("{name}.json")))
    }

    /// Reads every entry file into memory; with `prune`, deletes what is older than it.
    fn rescan(&self, prune: Option<Duration>) {
        let Some(dir) = &self.dir else { return };
        let listing = match std::fs::read_dir(dir) {
            Ok(listing) => listing,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read the job journal");
                return;
            }
        };
        let oldest = prune.map(|p| {
            (
                now_millis().saturating_sub(p.as_millis() as i64),
                SystemTime::now().checked_sub(p),
            )
        });
        let mut loaded = Vec::new();
        for item in listing.flatten() {
            let path = item.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match (self.read(&path), oldest) {
                (Some(entry), Some((ms, _))) if entry.recorded_ms() < ms => remove(&path),
                (Some(entry), _) => loaded.push(entry),
                (None, Some((_, Some(cutoff))))
                    if item
                        .metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t < cutoff) =>
                {
                    remove(&path);
                }
                (None, _) => {}
            }
        }
        let mut state = self.lock();
        for entry in loaded {
            state.entries.insert(entry.id(), entry);
        }
    }

    fn read(&self, path: &Path) -> Option<E> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            // Another process's entry we were told about may be pruned meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                self.report_unreadable(path, &e);
                return None;
            }
        };
        match serde_json::from_str(&text) {
            Ok(entry) => {
                self.lock().unreadable.remove(path);
                Some(entry)
            }
            Err(e) => {
                self.report_unreadable(path, &e);
                None
            }
        }
    }

    fn report_unreadable(&self, path: &Path, error: &dyn std::error::Error) {
        if self.lock().unreadable.insert(path.to_owned()) {
            tracing::warn!(path = %path.display(), error = %error, "skipping an unreadable job journal entry");
        }
    }

    fn write(&self, entry: &E) {
        let Some(path) = self.file(&entry.id()) else {
            return;
        };
        // A name no other writer (process or thread) uses, in the same directory so the
        // rename is atomic.
        let tmp = path.with_extension(format!(
            "json.{}.{:016x}.tmp",
            std::process::id(),
            fastrand::u64(..)
        ));
        let result = serde_json::to_vec_pretty(entry)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                let mut file = {
                    use std::os::unix::fs::OpenOptionsExt;
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&tmp)?
                };
                file.write_all(&bytes)?;
                // Without the sync a crash can leave a renamed but empty file.
                file.sync_all()?;
                std::fs::rename(&tmp, &path)
            });
        match result {
            Ok(()) => {
                self.lock().unreadable.remove(&path);
            }
            Err(e) => {
                remove(&tmp);
                tracing::warn!(path = %path.display(), error = %e, "cannot write the job journal; the entry is kept in memory only");
            }
        }
    }
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::debug!(path = %path.display(), error = %e, "cannot remove a journal file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::sync::Arc;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Seen {
        id: u32,
        note: String,
        at: i64,
    }

    impl JournalEntry for Seen {
        type Id = u32;
        fn id(&self) -> u32 {
            self.id
        }
        fn recorded_ms(&self) -> EpochMillis {
            self.at
        }
    }

    fn seen(id: u32, note: &str) -> Seen {
        Seen {
            id,
            note: note.into(),
            at: now_millis(),
        }
    }

    const KEEP: Duration = Duration::from_secs(3600);

    fn open(dir: &Path) -> Journal<Seen> {
        Journal::open(Some(dir.to_path_buf()), KEEP)
    }

    /// Collects the messages of WARN events, so tests can see a warning was given.
    #[derive(Default)]
    struct Warnings(Mutex<Vec<String>>);

    impl tracing::Subscriber for Warnings {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            struct Text(String);
            impl tracing::field::Visit for Text {
                fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
                    self.0.push_str(&format!("{}={value:?} ", field.name()));
                }
            }
            if *event.metadata().level() == tracing::Level::WARN {
                let mut text = Text(String::new());
                event.record(&mut text);
                self.0.lock().unwrap().push(text.0);
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    fn warnings_during<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
        let warnings = Arc::new(Warnings::default());
        let out = tracing::subscriber::with_default(warnings.clone(), f);
        let seen = warnings.0.lock().unwrap().clone();
        (out, seen)
    }

    #[test]
    fn entries_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("journal");
        let journal: Journal<Seen> = Journal::open(Some(root.clone()), KEEP);
        journal.record(seen(7, "private"));
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        let file = std::fs::read_dir(&root)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }

    #[test]
    fn entries_survive_reopening_and_are_one_file_each() {
        let dir = tempfile::tempdir().unwrap();
        {
            let j = open(dir.path());
            j.record(seen(7, "a"));
            j.record(seen(12, "b"));
            j.record(seen(7, "a again"));
        }
        let mut files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, ["12.json", "7.json"], "no temporary files are left");
        let j = open(dir.path());
        assert_eq!(j.get(&7).unwrap().note, "a again");
        let ids: Vec<u32> = j.all().iter().map(|e| e.id).collect();
        assert_eq!(ids, [7, 12], "in id order");
        assert_eq!(j.get(&99), None);
    }

    #[test]
    fn two_journals_on_one_directory_see_each_others_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (open(dir.path()), open(dir.path()));
        one.record(seen(1, "from one"));
        assert_eq!(two.get(&1).unwrap().note, "from one", "one file read");
        two.record(seen(2, "from two"));
        assert_eq!(one.find(|e| e.note == "from two").len(), 1, "a rescan");
        two.update(&1, |e| {
            e.note = "finished".into();
            true
        });
        let all = one.all();
        assert_eq!(
            all.iter().map(|e| e.note.as_str()).collect::<Vec<_>>(),
            ["finished", "from two"],
            "all() picks up updates made elsewhere"
        );
    }

    #[test]
    fn updates_are_saved_only_when_something_changed() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(dir.path());
        j.record(seen(3, "x"));
        let file = dir.path().join("3.json");
        std::fs::write(&file, "kept: not rewritten").unwrap();
        assert_eq!(j.update(&3, |_| false).unwrap().note, "x");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "kept: not rewritten"
        );
        let after = j.update(&3, |e| {
            e.note = "y".into();
            true
        });
        assert_eq!(after.unwrap().note, "y");
        assert_eq!(open(dir.path()).get(&3).unwrap().note, "y");
        assert!(j.update(&4, |_| panic!("no entry, no call")).is_none());
    }

    #[test]
    fn a_torn_file_is_skipped_with_one_warning() {
        let dir = tempfile::tempdir().unwrap();
        open(dir.path()).record(seen(5, "whole"));
        let torn = dir.path().join("6.json");
        std::fs::write(
            &torn,
            &serde_json::to_string(&seen(6, "torn")).unwrap()[..10],
        )
        .unwrap();
        std::fs::write(dir.path().join("8.json.123.abc.tmp"), "{").unwrap();
        let ((j, ids), warnings) = warnings_during(|| {
            let j = open(dir.path());
            let ids: Vec<u32> = j.all().iter().map(|e| e.id).collect();
            assert_eq!(j.get(&6), None);
            (j, ids)
        });
        assert_eq!(ids, [5], "the torn entry is skipped, the others kept");
        assert_eq!(j.unreadable(), std::slice::from_ref(&torn));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("unreadable") && warnings[0].contains("6.json"),
            "{warnings:?}"
        );
        // Rewriting the entry heals it.
        j.record(seen(6, "rewritten"));
        assert!(j.unreadable().is_empty());
        assert_eq!(open(dir.path()).get(&6).unwrap().note, "rewritten");
    }

    #[test]
    fn opening_prunes_entries_older_than_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(dir.path());
        let mut old = seen(1, "old");
        old.at -= KEEP.as_millis() as i64 + 1000;
        j.record(old);
        j.record(seen(2, "new"));
        assert_eq!(j.all().len(), 2, "pruning happens on open only");
        let reopened = open(dir.path());
        assert_eq!(reopened.get(&1), None);
        assert!(!dir.path().join("1.json").exists());
        assert_eq!(reopened.get(&2).unwrap().note, "new");
        // A longer retention keeps it.
        let dir = tempfile::tempdir().unwrap();
        let mut old = seen(1, "old");
        old.at -= KEEP.as_millis() as i64 + 1000;
        open(dir.path()).record(old);
        let long: Journal<Seen> = Journal::open(Some(dir.path().to_path_buf()), KEEP * 2);
        assert!(long.get(&1).is_some());
    }

    #[test]
    fn without_a_usable_directory_the_journal_lives_in_memory_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let (j, warnings) = warnings_during(|| open(&file.join("journal")));
        assert_eq!(j.directory(), None);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("in memory"), "{warnings:?}");
        j.record(seen(1, "kept"));
        assert_eq!(j.get(&1).unwrap().note, "kept");
        assert_eq!(j.find(|e| e.id == 1).len(), 1);
        assert_eq!(j.all().len(), 1);

        let none: Journal<Seen> = Journal::open(None, KEEP);
        none.record(seen(2, "kept"));
        assert_eq!(none.all().len(), 1);
    }

    #[test]
    fn ids_that_are_not_file_names_stay_in_memory() {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        struct Named(String);
        impl JournalEntry for Named {
            type Id = String;
            fn id(&self) -> String {
                self.0.clone()
            }
            fn recorded_ms(&self) -> EpochMillis {
                now_millis()
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let j: Journal<Named> = Journal::open(Some(dir.path().to_path_buf()), KEEP);
        for id in ["../escape", ".hidden", "a/b", ""] {
            j.record(Named(id.into()));
            assert!(j.get(&id.to_owned()).is_some(), "{id:?}");
        }
        j.record(Named("job-1.2_x".into()));
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1);
        assert!(!dir.path().parent().unwrap().join("escape.json").exists());
    }

    #[test]
    fn default_directories_are_one_per_adapter_and_farm() {
        let Some(dir) = default_directory("htcondor", "pool one/../x") else {
            return; // no home directory in this environment
        };
        assert!(dir.ends_with("farm/htcondor/pool_one_.._x"), "{dir:?}");
        assert!(
            default_directory("slurm", ".hidden")
                .unwrap()
                .ends_with("farm/slurm/farm.hidden")
        );
        assert!(
            default_directory("slurm", "")
                .unwrap()
                .ends_with("farm/slurm/farm")
        );
    }
}
