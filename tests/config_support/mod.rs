//! Helpers for the configuration tests: a configuration file in a temporary folder with a
//! prompts folder of short, valid recordings next to it, since `careline check` decodes them.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use careline::config::{Config, LoadedConfig, Node, Report, check, parse};
use tempfile::TempDir;

/// A 0.1 s square wave at 8 kHz: decodes cleanly and is not trimmed away as silence.
pub fn write_wav(path: &Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("create wav");
    for n in 0..800 {
        let sample: i16 = if n % 16 < 8 { 4000 } else { -4000 };
        writer.write_sample(sample).expect("sample");
    }
    writer.finalize().expect("finalize wav");
}

/// Every language `config` can switch to.
pub fn languages(config: &Config) -> Vec<String> {
    let mut languages = vec![config.prompts.default_language.clone()];
    for node in config.nodes.values() {
        if let Node::Language(node) = node
            && !languages.contains(&node.language)
        {
            languages.push(node.language.clone());
        }
    }
    languages
}

/// `<root>/<folder>/<language>/<id>.wav` for every prompt `config` plays.
pub fn prompts_for(root: &Path, folder: &str, config: &Config) -> PathBuf {
    let dir = root.join(folder);
    for language in languages(config) {
        let language_dir = dir.join(&language);
        fs::create_dir_all(&language_dir).expect("prompt folder");
        for id in config.prompt_ids() {
            write_wav(&language_dir.join(format!("{id}.wav")));
        }
    }
    dir
}

/// A configuration written to `<tempdir>/careline.toml`, with `PROMPTS` in the source replaced
/// by the path of a complete prompts folder.
pub fn write_config(source: &str) -> (TempDir, LoadedConfig) {
    let dir = TempDir::new().expect("tempdir");
    let path = dir.path().join("careline.toml");
    let draft = parse(&path, source.replace("PROMPTS", "prompts")).expect("parses");
    let prompts = prompts_for(dir.path(), "prompts", &draft.config);
    let source = source.replace("PROMPTS", &prompts.display().to_string());
    fs::write(&path, &source).expect("write config");
    let loaded = parse(&path, source).expect("parses");
    (dir, loaded)
}

/// [`write_config`], then `careline check`.
pub fn check_source(source: &str) -> (TempDir, Report) {
    let (dir, loaded) = write_config(source);
    let report = check(&loaded);
    (dir, report)
}

/// 1-based line of the first line containing `marker`.
pub fn line_of(source: &str, marker: &str) -> usize {
    source
        .lines()
        .position(|line| line.contains(marker))
        .unwrap_or_else(|| panic!("{marker:?} not in the config"))
        + 1
}
