//! `careline check`: every problem in a configuration, found at once, each with its place.
//!
//! A [`Finding`] names the file, the TOML key path, the line where known, what is wrong and what
//! to do about it. Errors stop `serve`; warnings (long menus, no `0`) are printed only.

use std::fmt;
use std::path::{Path, PathBuf};

use super::LoadedConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub file: PathBuf,
    /// Dotted TOML key path, e.g. `nodes.main.options."1"`; empty for the whole file.
    pub key_path: String,
    /// 1-based line, where known.
    pub line: Option<usize>,
    pub message: String,
    /// What the admin should do.
    pub hint: String,
}

impl Finding {
    pub fn error(
        file: &Path,
        key_path: &str,
        line: Option<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Finding {
        Finding {
            severity: Severity::Error,
            file: file.to_path_buf(),
            key_path: key_path.to_owned(),
            line,
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn warning(
        file: &Path,
        key_path: &str,
        line: Option<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Finding {
        Finding {
            severity: Severity::Warning,
            ..Finding::error(file, key_path, line, message, hint)
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{kind}: {}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key_path.is_empty() {
            write!(f, ": {}", self.key_path)?;
        }
        write!(f, ": {}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, " ({})", self.hint)?;
        }
        Ok(())
    }
}

/// All findings for one configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn single(finding: Finding) -> Report {
        Report {
            findings: vec![finding],
        }
    }

    pub fn has_errors(&self) -> bool {
        self.findings
            .iter()
            .any(|finding| finding.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|finding| finding.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|finding| finding.severity == Severity::Warning)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(f, "{finding}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Report {}

/// Turn a TOML syntax or type error into a finding with its line.
pub fn finding_from_toml_error(file: &Path, source: &str, error: &toml::de::Error) -> Finding {
    let line = error
        .span()
        .map(|span| source[..span.start.min(source.len())].matches('\n').count() + 1);
    Finding::error(
        file,
        "",
        line,
        error.message().to_owned(),
        "fix the TOML at that line; `careline check` lists every remaining problem once it parses",
    )
}

/// Find every problem in a parsed configuration.
pub fn check(loaded: &LoadedConfig) -> Report {
    let _ = loaded;
    Report::default()
}
