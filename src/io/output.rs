//! Output paths: one check at the start of every command, and the registry
//! of the temporary files and folders a run has made, which a failure, a
//! signal or a panic removes (docs/reliability.md).
//!
//! [`check`] refuses, before any work, an output that is the same file as
//! an input (same path, a symbolic or hard link: compared by device and
//! inode), a folder, a path whose parent cannot be created or written, and
//! a name whose temporary name ([`temp_name`]) would be too long for the
//! file system. Writers ([`crate::io::H5Writer`]) [`track`] what they
//! create; [`remove_tracked`] removes it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// The longest file name (bytes) of the file systems TGLML writes to
/// (NAME_MAX of Linux file systems).
const NAME_MAX: usize = 255;

/// The temporary name a file is written under before it is renamed to
/// `dest`: `.NAME.tmp-PID` beside it.
pub fn temp_name(dest: &Path) -> Result<PathBuf> {
    let name = dest.file_name().ok_or_else(|| {
        Error::invalid(
            dest.display().to_string(),
            "an output path must name a file",
        )
    })?;
    let tmp = format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id());
    if tmp.len() > NAME_MAX {
        return Err(Error::invalid(
            dest.display().to_string(),
            format!(
                "the file name is too long: its temporary name {tmp:?} has {} bytes, over the {NAME_MAX} a file name may have; choose a shorter name",
                tmp.len()
            ),
        ));
    }
    Ok(parent_of(dest).join(tmp))
}

/// Writes `text` to `path` through a temporary file beside it (removed on
/// failure), creating missing folders.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    create_folders(&parent_of(path))?;
    let tmp = temp_name(path)?;
    track(&tmp);
    let done = std::fs::write(&tmp, text)
        .map_err(|e| Error::io(&tmp, "writing", e))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, "renaming", e)));
    if done.is_err() {
        remove_one(&tmp);
    }
    untrack(&tmp);
    done
}

/// The folder `path` lies in (`.` for a bare name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Refuses `out` as an output file of a run that reads `inputs` (files or
/// folders; ones that do not exist are skipped), before any work is done.
pub fn check(out: &Path, inputs: &[&Path]) -> Result<()> {
    let what = out.display().to_string();
    temp_name(out)?;
    if let Ok(meta) = std::fs::metadata(out) {
        if meta.is_dir() {
            return Err(Error::invalid(
                what,
                "is a folder; an output must name a file (e.g. DIR/out.h5)",
            ));
        }
        for input in inputs {
            if let Ok(im) = std::fs::metadata(input) {
                if im.dev() == meta.dev() && im.ino() == meta.ino() {
                    return Err(Error::invalid(
                        what,
                        format!(
                            "is the input {} (the same file{}); writing the output would replace the input, so choose another --out",
                            input.display(),
                            if Path::new(input) == out {
                                ""
                            } else {
                                ", through a link"
                            }
                        ),
                    ));
                }
            }
        }
    }
    check_folder(&parent_of(out))
}

/// Refuses a folder that cannot be made or written: its nearest existing
/// ancestor must be a folder in which a file can be created (tried with a
/// probe file that is removed at once; permission bits alone do not tell,
/// e.g. for root or a read-only mount).
pub fn check_folder(dir: &Path) -> Result<()> {
    let mut existing = dir.to_path_buf();
    loop {
        match std::fs::metadata(&existing) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(Error::invalid(
                    dir.display().to_string(),
                    format!("cannot be made a folder: {} is a file", existing.display()),
                ))
            }
            Err(_) => match existing.parent() {
                Some(p) if !p.as_os_str().is_empty() => existing = p.to_path_buf(),
                _ => {
                    existing = PathBuf::from(".");
                    break;
                }
            },
        }
    }
    let probe = existing.join(format!(".tglml-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(
            existing,
            "checking that the output folder can be written",
            e,
        )),
    }
}

/// What a run has created and not yet finished: temporary files, and the
/// folders made for them (removed again if they are left empty).
static TRACKED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Records `path` (a temporary file or a folder just created) for removal
/// by [`remove_tracked`] unless [`untrack`]ed first.
pub fn track(path: &Path) {
    lock().push(path.to_path_buf());
}

/// Forgets `path` (it was renamed into place, or removed).
pub fn untrack(path: &Path) {
    let mut t = lock();
    if let Some(i) = t.iter().rposition(|p| p == path) {
        t.remove(i);
    }
}

/// Removes every tracked path, newest first: files, then folders if they
/// are empty. Called on a signal that ends the process and by the panic
/// hook; never blocks (a panic may come while the registry is locked).
pub fn remove_tracked() {
    let mut t = match TRACKED.try_lock() {
        Ok(t) => t,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    for p in t.drain(..).rev() {
        remove_one(&p);
    }
}

/// Removes a file, or a folder if it is empty.
pub fn remove_one(p: &Path) {
    if p.is_dir() {
        let _ = std::fs::remove_dir(p);
    } else {
        let _ = std::fs::remove_file(p);
    }
}

fn lock() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    TRACKED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates `dir` and its missing parents, and returns the folders it made
/// (outermost first), which are also [`track`]ed.
pub fn create_folders(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut cur = dir.to_path_buf();
    while !cur.as_os_str().is_empty() && !cur.exists() {
        missing.push(cur.clone());
        match cur.parent() {
            Some(p) => cur = p.to_path_buf(),
            None => break,
        }
    }
    missing.reverse();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "creating the output folder", e))?;
    for m in &missing {
        track(m);
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_is_never_an_output() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.h5");
        std::fs::write(&input, b"data").unwrap();
        let msg = |r: Result<()>| r.unwrap_err().to_string();
        assert!(msg(check(&input, &[&input])).contains("is the input"));
        let link = dir.path().join("link.h5");
        std::os::unix::fs::symlink(&input, &link).unwrap();
        assert!(msg(check(&link, &[&input])).contains("through a link"));
        let hard = dir.path().join("hard.h5");
        std::fs::hard_link(&input, &hard).unwrap();
        assert!(msg(check(&hard, &[&input])).contains("through a link"));
        // Another name in the same folder is fine; so is a missing input.
        check(&dir.path().join("out.h5"), &[&input, Path::new("/nope")]).unwrap();
        assert!(msg(check(dir.path(), &[])).contains("is a folder"));
        let long = dir.path().join("x".repeat(250));
        assert!(msg(check(&long, &[])).contains("too long"));
        assert!(msg(check(&input.join("sub/out.h5"), &[])).contains("is a file"));
        assert_eq!(std::fs::read(&input).unwrap(), b"data");
    }

    #[test]
    fn created_folders_are_tracked_and_removed_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        let made = create_folders(&deep).unwrap();
        assert_eq!(made.len(), 3);
        for m in made.iter().rev() {
            untrack(m);
            remove_one(m);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
