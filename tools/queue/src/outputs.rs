//! A job's output images, for the web page's thumbnails.
//!
//! Only what the job declared is ever read: `native.local.outputs` in its request, a list of
//! absolute paths, each a directory (its image files) or a file pattern with `*` in its last
//! component only (`/shots/010/render/beauty.*.png`). `$NAME` and `${NAME:-default}` are
//! taken from the job's `environment`, else the queue's (as the demo's `$FARM_DEMO_OUT`).
//! Directories are not descended into; symbolic links, other files, names with `..` and files
//! over [`MAX_BYTES`] are skipped; an image is decoded with the `image` crate under
//! `limits`, and the page asks for one by the name the listing gave, never by a path.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// Larger files are not listed (nor decoded).
pub const MAX_BYTES: u64 = 64 << 20;
/// At most this many images are listed per job (the last ones by name).
pub const MAX_LISTED: usize = 200;
/// Thumbnails fit in this square.
pub const THUMBNAIL_PX: u32 = 160;

const EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "ppm", "pgm", "pnm"];

/// One listed image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Output {
    /// The file's name: what the page asks a thumbnail by.
    pub name: String,
    /// Its full path on the queue's machine.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Last modified, ms since the epoch.
    pub modified: i64,
}

/// The declared output patterns of a stored request, expanded.
pub fn declared(request: &serde_json::Value) -> Vec<String> {
    let env = request.get("environment").and_then(|e| e.as_object());
    let lookup = |name: &str| -> Option<String> {
        env.and_then(|e| e.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .or_else(|| std::env::var(name).ok())
            .filter(|v| !v.is_empty())
    };
    request
        .pointer("/native/local/outputs")
        .and_then(|o| o.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|p| p.as_str())
                .map(|p| expand(p, &lookup))
                .filter(|p| p.starts_with('/') && !p.split('/').any(|c| c == ".."))
                .collect()
        })
        .unwrap_or_default()
}

/// Expands `$NAME`, `${NAME}` and `${NAME:-default}`.
fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(body) = rest.strip_prefix('{')
            && let Some(end) = body.find('}')
        {
            let inner = &body[..end];
            let (name, default) = inner.split_once(":-").unwrap_or((inner, ""));
            out.push_str(&lookup(name).unwrap_or_else(|| default.to_owned()));
            rest = &body[end + 1..];
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.push_str(&lookup(&rest[..end]).unwrap_or_default());
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

fn matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut middle = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match middle.find(part) {
            Some(i) => middle = &middle[i + part.len()..],
            None => return false,
        }
    }
    true
}

fn is_image(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// The images the patterns name, sorted by name (the last [`MAX_LISTED`]).
pub fn list(patterns: &[String]) -> Vec<Output> {
    let mut found = Vec::new();
    for pattern in patterns {
        let path = Path::new(pattern);
        let (dir, file_pattern): (PathBuf, String) = if pattern.contains('*') {
            let Some(parent) = path.parent() else {
                continue;
            };
            if parent.to_string_lossy().contains('*') {
                continue;
            }
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (parent.to_path_buf(), name)
        } else if path.is_dir() {
            (path.to_path_buf(), "*".to_owned())
        } else {
            let Some(parent) = path.parent() else {
                continue;
            };
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (parent.to_path_buf(), name)
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_image(&name) || !matches(&file_pattern, &name) {
                continue;
            }
            // symlink_metadata: a link is never followed out of the declared directory.
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if !meta.is_file() || meta.len() == 0 || meta.len() > MAX_BYTES {
                continue;
            }
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as i64);
            found.push(Output {
                name,
                path: entry.path().to_string_lossy().into_owned(),
                size: meta.len(),
                modified,
            });
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name).then(a.path.cmp(&b.path)));
    found.dedup_by(|a, b| a.name == b.name);
    let skip = found.len().saturating_sub(MAX_LISTED);
    found.drain(..skip);
    found
}

/// Decoding limits: no image may make the queue allocate without bound.
fn limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(16_384);
    limits.max_image_height = Some(16_384);
    limits.max_alloc = Some(512 << 20);
    limits
}

/// A PNG thumbnail of one listed image.
pub fn thumbnail(output: &Output) -> Result<Vec<u8>, String> {
    let mut reader = image::ImageReader::open(&output.path)
        .map_err(|e| format!("cannot open {}: {e}", output.name))?
        .with_guessed_format()
        .map_err(|e| format!("cannot read {}: {e}", output.name))?;
    reader.limits(limits());
    let image = reader
        .decode()
        .map_err(|e| format!("cannot decode {}: {e}", output.name))?;
    let small = if image.width() <= THUMBNAIL_PX && image.height() <= THUMBNAIL_PX {
        image.into_rgb8()
    } else {
        image.thumbnail(THUMBNAIL_PX, THUMBNAIL_PX).into_rgb8()
    };
    let mut png = std::io::Cursor::new(Vec::new());
    small
        .write_to(&mut png, image::ImageFormat::Png)
        .map_err(|e| format!("cannot encode a thumbnail of {}: {e}", output.name))?;
    Ok(png.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_expand_and_match_only_in_the_declared_directory() {
        let request = serde_json::json!({
            "environment": {"OUT": "/r"},
            "native": {"local": {"outputs": ["${OUT}/a.*.ppm", "${NOPE_X:-/d}/x", "relative/*", "/r/../etc/*"]}}
        });
        assert_eq!(declared(&request), ["/r/a.*.ppm", "/d/x"]);
        assert!(matches("a.*.ppm", "a.0001.ppm"));
        assert!(!matches("a.*.ppm", "b.0001.ppm"));
        assert!(matches("*", "anything.png"));
        assert!(matches("x*y*z", "x1y2z"));
        assert!(!matches("x*y*z", "xz"));
    }

    #[test]
    fn a_ppm_png_and_jpeg_give_png_thumbnails_and_links_and_big_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("f.0001.ppm"), "P3\n2 1\n255\n255 0 0 0 0 255\n").unwrap();
        image::RgbImage::from_pixel(400, 200, image::Rgb([0, 200, 0]))
            .save(d.join("f.0002.png"))
            .unwrap();
        image::RgbImage::from_pixel(40, 20, image::Rgb([0, 0, 200]))
            .save(d.join("f.0003.jpg"))
            .unwrap();
        std::fs::write(d.join("notes.txt"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.join("f.0004.png")).unwrap();
        std::fs::File::create(d.join("f.0005.png"))
            .unwrap()
            .set_len(MAX_BYTES + 1)
            .unwrap();
        let listed = list(&[format!("{}/f.*", d.display())]);
        let names: Vec<&str> = listed.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["f.0001.ppm", "f.0002.png", "f.0003.jpg"]);
        assert_eq!(list(&[d.display().to_string()]).len(), 3);
        for output in &listed {
            let png = thumbnail(output).unwrap();
            let small = image::load_from_memory(&png).unwrap();
            assert!(small.width() <= THUMBNAIL_PX && small.height() <= THUMBNAIL_PX);
        }
        std::fs::write(d.join("f.0006.png"), "not a png").unwrap();
        let bad = list(&[format!("{}/f.0006.png", d.display())]);
        assert!(thumbnail(&bad[0]).unwrap_err().contains("decode"));
    }
}
