//! Reading user files with a size cap, so a huge or endless file (`/dev/zero`) fails with a
//! clear message instead of exhausting memory.

use std::io::Read;
use std::path::Path;

use anyhow::{Result, bail};

/// Reads at most `cap` bytes of `path`; a longer file is an error naming it and the cap.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        bail!("{} is larger than {} bytes, too large for this kind of file", path.display(), cap);
    }
    Ok(bytes)
}

/// [`read_capped`] for UTF-8 text.
pub fn read_text_capped(path: &Path, cap: u64) -> Result<String> {
    let bytes = read_capped(path, cap)?;
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_file_is_refused_at_the_cap() {
        let e = read_capped(Path::new("/dev/zero"), 1024).unwrap_err().to_string();
        assert!(e.contains("/dev/zero") && e.contains("1024"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        std::fs::write(&p, "x = 1").unwrap();
        assert_eq!(read_text_capped(&p, 5).unwrap(), "x = 1");
        assert!(read_text_capped(&p, 4).is_err());
    }
}
