//! Per-category result tables (JSON, CSV, Markdown) and atomic file writing.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// Writes `bytes` to `path` atomically: into a temporary file in the same folder, flushed and
/// synced, then renamed over `path` (a reader sees the old file or the new one, never a part).
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let werr = |e: std::io::Error| EvalError::Write { path: path.to_path_buf(), source: e };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| EvalError::InvalidInput(format!("{} has no file name", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        TMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(werr(e));
    }
    Ok(())
}

static TMP_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One row of a [`Report`]: a category and its values, in the report's column order
/// (`None` = not measured).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRow {
    /// The category.
    pub category: String,
    /// One value per column of the report.
    pub values: Vec<Option<f64>>,
}

/// A table of per-category results with generic, ordered columns (metrics, timings, ...), and
/// a mean row over the categories that have each value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Column names, in insertion order.
    pub columns: Vec<String>,
    /// Rows, in insertion order.
    pub rows: Vec<ReportRow>,
}

/// Name of the mean row in the outputs.
pub const MEAN_ROW: &str = "mean";

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `category`'s `column` to `value`, adding the row and column when new.
    pub fn set(&mut self, category: &str, column: &str, value: f64) {
        let c = match self.columns.iter().position(|x| x == column) {
            Some(c) => c,
            None => {
                self.columns.push(column.to_string());
                for r in &mut self.rows {
                    r.values.push(None);
                }
                self.columns.len() - 1
            }
        };
        let ncols = self.columns.len();
        let row = match self.rows.iter().position(|r| r.category == category) {
            Some(r) => r,
            None => {
                self.rows.push(ReportRow { category: category.to_string(), values: vec![None; ncols] });
                self.rows.len() - 1
            }
        };
        if let Some(slot) = self.rows.get_mut(row).and_then(|r| r.values.get_mut(c)) {
            *slot = Some(value);
        }
    }

    /// Sets several columns of one category.
    pub fn set_many(&mut self, category: &str, values: &[(&str, f64)]) {
        for (c, v) in values {
            self.set(category, c, *v);
        }
    }

    /// The value of `category`/`column`, if set.
    pub fn get(&self, category: &str, column: &str) -> Option<f64> {
        let c = self.columns.iter().position(|x| x == column)?;
        self.rows.iter().find(|r| r.category == category)?.values.get(c).copied().flatten()
    }

    /// Mean of each column over the rows that have a finite value (`None` when none has).
    pub fn means(&self) -> Vec<Option<f64>> {
        (0..self.columns.len())
            .map(|c| {
                let vals: Vec<f64> = self
                    .rows
                    .iter()
                    .filter_map(|r| r.values.get(c).copied().flatten())
                    .filter(|v| v.is_finite())
                    .collect();
                if vals.is_empty() { None } else { Some(vals.iter().sum::<f64>() / vals.len() as f64) }
            })
            .collect()
    }

    /// JSON: `{"columns": [...], "rows": [{"category": .., "values": {col: value|null}}], "mean":
    /// {col: value|null}}` (non-finite values are `null`).
    pub fn to_json(&self) -> Result<String> {
        let obj = |vals: &[Option<f64>]| {
            let mut m = serde_json::Map::new();
            for (c, v) in self.columns.iter().zip(vals) {
                let j = v
                    .filter(|x| x.is_finite())
                    .and_then(serde_json::Number::from_f64)
                    .map(serde_json::Value::Number)
                    .unwrap_or(serde_json::Value::Null);
                m.insert(c.clone(), j);
            }
            serde_json::Value::Object(m)
        };
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| serde_json::json!({"category": r.category, "values": obj(&r.values)}))
            .collect();
        let v = serde_json::json!({"columns": self.columns, "rows": rows, "mean": obj(&self.means())});
        serde_json::to_string_pretty(&v).map_err(|e| EvalError::Json(e.to_string()))
    }

    /// CSV with a header `category,<columns...>`, one line per row and a final `mean` line;
    /// full precision, empty cells for missing values; fields quoted when needed.
    pub fn to_csv(&self) -> String {
        let mut s = String::new();
        let quote = |f: &str| {
            if f.contains([',', '"', '\n', '\r']) { format!("\"{}\"", f.replace('"', "\"\"")) } else { f.to_string() }
        };
        let cell = |v: &Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
        s.push_str("category");
        for c in &self.columns {
            s.push(',');
            s.push_str(&quote(c));
        }
        s.push('\n');
        for r in &self.rows {
            s.push_str(&quote(&r.category));
            for v in &r.values {
                s.push(',');
                s.push_str(&cell(v));
            }
            s.push('\n');
        }
        s.push_str(MEAN_ROW);
        for v in &self.means() {
            s.push(',');
            s.push_str(&cell(v));
        }
        s.push('\n');
        s
    }

    /// Markdown table; values with 4 decimals (missing: `-`), a bold mean row last.
    pub fn to_markdown(&self) -> String {
        let esc = |f: &str| f.replace('|', "\\|");
        let cell = |v: &Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into());
        let mut s = String::from("| category |");
        for c in &self.columns {
            s.push_str(&format!(" {} |", esc(c)));
        }
        s.push_str("\n|---|");
        for _ in &self.columns {
            s.push_str("---:|");
        }
        s.push('\n');
        for r in &self.rows {
            s.push_str(&format!("| {} |", esc(&r.category)));
            for v in &r.values {
                s.push_str(&format!(" {} |", cell(v)));
            }
            s.push('\n');
        }
        s.push_str(&format!("| **{MEAN_ROW}** |"));
        for v in &self.means() {
            s.push_str(&format!(" **{}** |", cell(v)));
        }
        s.push('\n');
        s
    }

    /// Writes `<stem>.json`, `<stem>.csv` and `<stem>.md` into `dir` (atomically each), and
    /// returns the three paths.
    pub fn write_all(&self, dir: impl AsRef<Path>, stem: &str) -> Result<[PathBuf; 3]> {
        let dir = dir.as_ref();
        let paths = [dir.join(format!("{stem}.json")), dir.join(format!("{stem}.csv")), dir.join(format!("{stem}.md"))];
        let [pj, pc, pm] = &paths;
        write_atomic(pj, self.to_json()?.as_bytes())?;
        write_atomic(pc, self.to_csv().as_bytes())?;
        write_atomic(pm, self.to_markdown().as_bytes())?;
        Ok(paths)
    }
}
