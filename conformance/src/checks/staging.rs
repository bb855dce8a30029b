//! Katana's side of a farm: temporary directories, copied render files and installation metadata.

use std::collections::BTreeMap;
use std::path::PathBuf;

use farm_core::{ErrorKind, JobState};
use uuid::Uuid;

use super::support::expect_unsupported;
use crate::harness::{Context, Harness, Verdict, read_probe};
use crate::{CheckResult, ensure, fail};

/// The temporary directory is the same for one render context.
///
/// `create_temp_directory` twice for one context returns one path, an existing
/// directory; another context gets another path.
pub async fn the_temp_directory_is_stable_per_render_context(h: &Harness) -> CheckResult {
    let ctx = Uuid::new_v4();
    if !h.caps().stage_files {
        return expect_unsupported(
            "create_temp_directory without stage_files",
            h.farm().create_temp_directory(ctx).await,
        );
    }
    let a = h
        .farm()
        .create_temp_directory(ctx)
        .await
        .context("create_temp_directory")?;
    let b = h
        .farm()
        .create_temp_directory(ctx)
        .await
        .context("create_temp_directory again")?;
    ensure!(a == b, "two calls gave {a:?} and {b:?}");
    ensure!(
        std::path::Path::new(&a).is_dir(),
        "{a} is not a directory on this host"
    );
    let other = h
        .farm()
        .create_temp_directory(Uuid::new_v4())
        .await
        .context("create_temp_directory (other context)")?;
    ensure!(other != a, "two render contexts share {a}");
    Ok(())
}

/// Copied render files are complete and readable by jobs.
///
/// Two files (one with every byte value) are copied; each copy has the source's bytes,
/// and a job can read the copy.
pub async fn copied_render_files_are_readable(h: &Harness) -> CheckResult {
    let ctx = Uuid::new_v4();
    let text_file = h.path("scene.optree");
    let binary_file = h.path("blob.bin");
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    std::fs::write(&text_file, b"optree for conformance\n")
        .map_err(|e| Verdict::Fail(e.to_string()))?;
    std::fs::write(&binary_file, &binary).map_err(|e| Verdict::Fail(e.to_string()))?;
    let files = vec![text_file.clone(), binary_file.clone()];
    if !h.caps().stage_files {
        return expect_unsupported(
            "copy_render_files without stage_files",
            h.farm().copy_render_files(&files, ctx).await,
        );
    }
    let map: BTreeMap<PathBuf, String> = h
        .farm()
        .copy_render_files(&files, ctx)
        .await
        .context("copy_render_files")?;
    ensure!(map.len() == 2, "got {} copies for 2 files", map.len());
    for source in &files {
        let Some(copy) = map.get(source) else {
            fail!("no copy listed for {}", source.display())
        };
        let want = std::fs::read(source).map_err(|e| Verdict::Fail(e.to_string()))?;
        let got = std::fs::read(copy).map_err(|e| Verdict::Fail(format!("copy {copy}: {e}")))?;
        ensure!(
            got == want,
            "copy {copy} differs from {} ({} vs {} bytes)",
            source.display(),
            got.len(),
            want.len()
        );
    }
    let echoed = h.path("echoed");
    let id = h
        .submit(&h.request(
            "read-copy",
            vec![Harness::sh(
                "cat \"$1\" > \"$2\"",
                &[&map[&text_file], &echoed.display().to_string()],
            )],
        ))
        .await?;
    h.expect_end(&id, JobState::Completed).await?;
    ensure!(
        read_probe(&echoed) == "optree for conformance\n",
        "the job read {:?} from the copy",
        read_probe(&echoed)
    );
    Ok(())
}

/// Copying a missing file is a clear error.
///
/// `copy_render_files` with one existing and one missing file fails with
/// `InvalidRequest` whose message names the missing file.
pub async fn copying_a_missing_file_is_a_clear_error(h: &Harness) -> CheckResult {
    let ctx = Uuid::new_v4();
    let present = h.path("present.txt");
    std::fs::write(&present, b"here").map_err(|e| Verdict::Fail(e.to_string()))?;
    let missing = h.path("missing-render-file.optree");
    let files = vec![present, missing];
    let result = h.farm().copy_render_files(&files, ctx).await;
    if !h.caps().stage_files {
        return expect_unsupported("copy_render_files without stage_files", result);
    }
    match result {
        Err(e) if e.kind() == ErrorKind::InvalidRequest => {
            ensure!(
                e.to_string().contains("missing-render-file.optree"),
                "the error does not name the missing file: {e}"
            );
            Ok(())
        }
        Err(e) => fail!(
            "expected InvalidRequest naming the file, got {} error: {e}",
            e.kind()
        ),
        Ok(map) => fail!("copying a missing file succeeded: {map:?}"),
    }
}

/// The installation metadata is configured or clearly missing.
///
/// `installation_metadata` returns metadata with a renderboot command, or a `Config`
/// error; `render_environment` returns a map.
pub async fn installation_metadata_is_resolved_or_clearly_missing(h: &Harness) -> CheckResult {
    match h.farm().installation_metadata().await {
        Ok(meta) => {
            ensure!(
                meta.renderboot_command
                    .as_deref()
                    .is_some_and(|c| !c.is_empty()),
                "renderboot_command is not resolved: {meta:?}"
            );
            ensure!(!meta.katana_root.is_empty(), "katana_root is empty");
        }
        Err(e) if e.kind() == ErrorKind::Config => {}
        Err(e) => fail!("installation_metadata gave a {} error: {e}", e.kind()),
    }
    h.farm()
        .render_environment(Uuid::new_v4())
        .await
        .context("render_environment")?;
    Ok(())
}
