//! The admin's configuration: TOML types ([`model`]), loading, and validation ([`check`]).
//!
//! Loading parses and type-checks the file; [`check::check`] then finds every semantic problem
//! at once (dangling references, missing prompts, dead ends). `careline serve` refuses to start
//! on any problem; `careline check` prints them all.

mod call_flow;
pub mod check;
pub mod limits;
pub mod locate;
pub mod model;
mod parse_errors;
pub mod store_forms;
pub mod system_prompts;

use std::path::{Path, PathBuf};

pub use check::{Finding, Report, Severity, check};
pub use model::*;

impl Config {
    /// Every language a call can switch to: the default plus each `language` node's.
    pub fn languages(&self) -> Vec<String> {
        let mut languages = vec![self.prompts.default_language.clone()];
        for node in self.nodes.values() {
            if let Node::Language(node) = node
                && !languages.contains(&node.language)
            {
                languages.push(node.language.clone());
            }
        }
        languages
    }

    /// Every prompt id a call can play: those nodes and queues name, and the engine's own.
    pub fn prompt_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = system_prompts::system_prompts()
            .map(str::to_owned)
            .collect();
        let mut seen: std::collections::HashSet<String> = ids.iter().cloned().collect();
        let named = self
            .nodes
            .values()
            .flat_map(|node| node.prompts().cloned())
            .chain(
                self.queues
                    .values()
                    .filter_map(|queue| queue.hold_prompt.clone()),
            );
        for id in named {
            if seen.insert(id.clone()) {
                ids.push(id);
            }
        }
        ids
    }
}

/// A configuration file as read from disk, with what is needed to point at its lines.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub path: PathBuf,
    pub source: String,
    pub config: Config,
}

impl LoadedConfig {
    /// Resolve a path from the configuration (`[prompts] dir`, the identity directory file,
    /// `audit_log`, `[recordings] dir`, and their defaults): a relative path is relative to the
    /// folder the configuration file is in, wherever careline was started from. The example
    /// in `config/` therefore names `../prompts`.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            return path.to_path_buf();
        }
        match self.path.parent() {
            Some(folder) => folder.join(path),
            None => path.to_path_buf(),
        }
    }

    pub fn prompts_dir(&self) -> PathBuf {
        self.resolve(&self.config.prompts.dir)
    }
}

/// Read and parse a configuration file. Semantic checks are [`check::check`]'s job.
pub fn load(path: &Path) -> Result<LoadedConfig, Report> {
    let source = std::fs::read_to_string(path).map_err(|error| {
        Report::single(Finding::error(
            path,
            "",
            None,
            format!("cannot read the configuration file: {error}"),
            "check the path given with --config (default config/careline.toml)",
        ))
    })?;
    parse(path, source)
}

/// Parse configuration text that came from `path`. On failure, every syntax and type error
/// that can be found is reported, not only serde's first.
pub fn parse(path: &Path, source: String) -> Result<LoadedConfig, Report> {
    match toml::from_str::<Config>(&source) {
        Ok(config) => Ok(LoadedConfig {
            path: path.to_path_buf(),
            source,
            config,
        }),
        Err(error) => Err(parse_errors::report(path, &source, &error)),
    }
}

/// Load and check: what `serve` and reload use. Warnings are returned alongside.
pub fn load_checked(path: &Path) -> Result<(LoadedConfig, Report), Report> {
    let loaded = load(path)?;
    let report = check::check(&loaded);
    if report.has_errors() {
        return Err(report);
    }
    Ok((loaded, report))
}
