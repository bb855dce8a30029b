//! Render-file staging on a directory shared by workstations and render nodes.
//!
//! Implements `createTempDirectory` and `copyRenderFiles` once for every adapter whose farm
//! mounts a common file system: `<root>/<render context>/` per render, files copied under
//! `files/`. Copies are atomic (temporary name, then rename) and all-or-nothing: on any
//! failure the files this call created are removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::error::{FarmError, Result};

/// Staging area rooted at a shared directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedStaging {
    root: PathBuf,
}

impl SharedStaging {
    /// Staging under `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> SharedStaging {
        SharedStaging { root: root.into() }
    }

    /// The shared root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one render context. The context is a UUID, so it cannot escape the
    /// root.
    pub fn context_dir(&self, render_context: Uuid) -> PathBuf {
        self.root.join(render_context.to_string())
    }

    /// Creates (if needed) and returns the render context's directory. The root itself must
    /// already exist: a missing root is usually an unmounted share, and creating it would
    /// stage files where no render node can see them.
    pub async fn create_temp_directory(&self, render_context: Uuid) -> Result<PathBuf> {
        if !self.root.is_absolute() {
            return Err(FarmError::config(format!(
                "staging root {} is not an absolute path; render nodes must see the same path",
                self.root.display()
            )));
        }
        if !self.root.is_dir() {
            return Err(FarmError::config(format!(
                "staging root {} does not exist (is the shared file system mounted?)",
                self.root.display()
            )));
        }
        let dir = self.context_dir(render_context);
        match tokio::fs::create_dir(&dir).await {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(dir),
            Err(e) => Err(FarmError::io(
                format!("cannot create staging directory {}", dir.display()),
                e,
            )),
        }
    }

    /// Copies `files` under the context's `files/` folder and maps each given path to its
    /// copy. Every source is checked before anything is copied, so a missing file fails the
    /// call with nothing written.
    pub async fn copy_render_files(
        &self,
        files: &[PathBuf],
        render_context: Uuid,
    ) -> Result<BTreeMap<PathBuf, PathBuf>> {
        let files = files.to_vec();
        let dest_dir = self
            .create_temp_directory(render_context)
            .await?
            .join("files");
        tokio::task::spawn_blocking(move || copy_all(&files, &dest_dir))
            .await
            .map_err(|e| FarmError::scheduler(format!("staging task failed: {e}")))?
    }
}

fn copy_all(files: &[PathBuf], dest_dir: &Path) -> Result<BTreeMap<PathBuf, PathBuf>> {
    let mut plan: Vec<(PathBuf, PathBuf)> = Vec::with_capacity(files.len());
    let mut taken: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for (i, source) in files.iter().enumerate() {
        let meta = std::fs::metadata(source).map_err(|e| {
            FarmError::invalid(format!("files[{i}]"), format!("{}: {e}", source.display()))
        })?;
        if !meta.is_file() {
            return Err(FarmError::invalid(
                format!("files[{i}]"),
                format!("{} is not a regular file", source.display()),
            ));
        }
        let base = source.file_name().map(PathBuf::from).ok_or_else(|| {
            FarmError::invalid(
                format!("files[{i}]"),
                format!("{} has no file name", source.display()),
            )
        })?;
        // Two sources with one base name (a/scene.ass, b/scene.ass) must not overwrite each
        // other: later ones go into numbered sub-folders.
        let n = taken.entry(base.clone()).or_insert(0);
        let dest = if *n == 0 {
            dest_dir.join(&base)
        } else {
            dest_dir.join(n.to_string()).join(&base)
        };
        *n += 1;
        plan.push((source.clone(), dest));
    }

    let mut created: Vec<PathBuf> = Vec::new();
    let mut copied = BTreeMap::new();
    for (source, dest) in plan {
        match copy_atomically(&source, &dest) {
            Ok(()) => {
                created.push(dest.clone());
                copied.insert(source, dest);
            }
            Err(err) => {
                for path in &created {
                    let _ = std::fs::remove_file(path);
                }
                return Err(err);
            }
        }
    }
    Ok(copied)
}

fn copy_atomically(source: &Path, dest: &Path) -> Result<()> {
    let parent = dest.parent().expect("staging destinations have a parent");
    std::fs::create_dir_all(parent)
        .map_err(|e| FarmError::io(format!("cannot create {}", parent.display()), e))?;
    let tmp = parent.join(format!(
        ".{}.{:016x}.partial",
        dest.file_name().unwrap_or_default().to_string_lossy(),
        fastrand::u64(..)
    ));
    let result = std::fs::copy(source, &tmp)
        .map_err(|e| {
            FarmError::io(
                format!("cannot copy {} to {}", source.display(), tmp.display()),
                e,
            )
        })
        .and_then(|_| {
            std::fs::rename(&tmp, dest).map_err(|e| {
                FarmError::io(
                    format!(
                        "cannot move {} into place at {}",
                        tmp.display(),
                        dest.display()
                    ),
                    e,
                )
            })
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        if dir.exists() {
            for entry in walk(dir) {
                out.push(entry.strip_prefix(dir).unwrap().display().to_string());
            }
        }
        out.sort();
        out
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }

    #[tokio::test]
    async fn copies_are_complete_and_same_named_files_do_not_collide() {
        let src = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("a")).unwrap();
        std::fs::create_dir_all(src.path().join("b")).unwrap();
        let a = src.path().join("a/scene.optree");
        let b = src.path().join("b/scene.optree");
        std::fs::write(&a, b"first").unwrap();
        std::fs::write(&b, b"second").unwrap();
        let staging = SharedStaging::new(root.path());
        let ctx = Uuid::new_v4();
        let map = staging
            .copy_render_files(&[a.clone(), b.clone()], ctx)
            .await
            .unwrap();
        assert_eq!(std::fs::read(&map[&a]).unwrap(), b"first");
        assert_eq!(std::fs::read(&map[&b]).unwrap(), b"second");
        assert!(map[&a].starts_with(staging.context_dir(ctx)));
        assert_eq!(
            listing(&staging.context_dir(ctx)),
            ["files/1/scene.optree", "files/scene.optree"]
        );
    }

    #[tokio::test]
    async fn a_missing_or_relative_root_is_a_configuration_error_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("mnt/render/staging");
        let err = SharedStaging::new(&missing)
            .create_temp_directory(Uuid::new_v4())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        assert!(
            err.to_string()
                .contains("is the shared file system mounted"),
            "{err}"
        );
        assert!(!missing.exists(), "a missing root must not be created");
        let err = SharedStaging::new("relative/staging")
            .create_temp_directory(Uuid::new_v4())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not an absolute path"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_source_fails_before_anything_is_copied() {
        let src = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let good = src.path().join("good.txt");
        std::fs::write(&good, b"x").unwrap();
        let missing = src.path().join("missing.txt");
        let staging = SharedStaging::new(root.path());
        let ctx = Uuid::new_v4();
        let err = staging
            .copy_render_files(&[good, missing.clone()], ctx)
            .await
            .unwrap_err();
        match &err {
            FarmError::InvalidRequest { field, problem } => {
                assert_eq!(field, "files[1]");
                assert!(problem.contains("missing.txt"), "{problem}");
            }
            other => panic!("{other:?}"),
        }
        assert!(listing(&staging.context_dir(ctx)).is_empty());
    }

    #[tokio::test]
    async fn a_failed_copy_leaves_no_partial_or_earlier_files() {
        let src = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let first = src.path().join("first.txt");
        std::fs::write(&first, b"x").unwrap();
        let second = src.path().join("second.txt");
        std::fs::write(&second, b"y").unwrap();
        let staging = SharedStaging::new(root.path());
        let ctx = Uuid::new_v4();
        // Make the second destination impossible: a directory already stands at its path.
        std::fs::create_dir_all(staging.context_dir(ctx).join("files/second.txt/blocker")).unwrap();
        let err = staging
            .copy_render_files(&[first, second], ctx)
            .await
            .unwrap_err();
        assert!(matches!(err, FarmError::Io { .. }), "{err:?}");
        // Only the blocking directory remains: no first.txt, no `.partial` file.
        assert!(listing(&staging.context_dir(ctx)).is_empty());
        assert!(
            staging
                .context_dir(ctx)
                .join("files/second.txt/blocker")
                .is_dir()
        );
    }
}
