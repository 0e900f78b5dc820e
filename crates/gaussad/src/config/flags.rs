//! Method options from the command line and `--config FILE.toml`: one flag per option of
//! [`MethodConfig::OPTIONS`] (generated, not written out), with where each value came from so
//! errors blame the flag or file key the user actually wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};

use super::{CheckedConfig, MethodConfig, OptionError, OptionInfo, OptionKind};

/// The method flags given on a command line (each optional) and the optional config file.
#[derive(Clone, Debug, Default)]
pub struct MethodFlags {
    /// `--config FILE.toml`.
    pub config: Option<PathBuf>,
    /// The option flags given, as (key, text), in declaration order.
    pub given: Vec<(&'static str, String)>,
}

const CONFIG_ID: &str = "config";

/// Adds one `--KEY VALUE` argument per option that `keep` selects.
fn add_option_args(mut cmd: Command, keep: fn(&OptionInfo) -> bool) -> Command {
    for o in MethodConfig::OPTIONS.iter().filter(|o| keep(o)) {
        let check = o.check_text;
        cmd = cmd.arg(
            Arg::new(o.key)
                .long(o.key)
                .value_name(o.value_name)
                .help(o.help_line())
                .allow_hyphen_values(true)
                .value_parser(move |s: &str| check(s).map(|()| s.to_string())),
        );
    }
    cmd
}

/// The option arguments given, in declaration order.
fn given_options(m: &ArgMatches, keep: fn(&OptionInfo) -> bool) -> Vec<(&'static str, String)> {
    MethodConfig::OPTIONS
        .iter()
        .filter(|o| keep(o))
        .filter_map(|o| m.get_one::<String>(o.key).map(|v| (o.key, v.clone())))
        .collect()
}

fn every_option(_: &OptionInfo) -> bool {
    true
}

fn run_option(o: &OptionInfo) -> bool {
    o.kind == OptionKind::Run
}

impl Args for MethodFlags {
    fn augment_args(cmd: Command) -> Command {
        let cmd = cmd.arg(
            Arg::new(CONFIG_ID)
                .long("config")
                .value_name("FILE.toml")
                .value_parser(clap::value_parser!(PathBuf))
                .help("TOML file with any of the method keys below (same names as the flags); flags win over it"),
        );
        add_option_args(cmd, every_option)
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for MethodFlags {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self { config: m.get_one::<PathBuf>(CONFIG_ID).cloned(), given: given_options(m, every_option) })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

/// The run options (batch size, device) as flags, for commands whose method comes from
/// elsewhere (a model file, a grid).
#[derive(Clone, Debug, Default)]
pub struct RunFlags {
    /// The flags given, as (key, text).
    pub given: Vec<(&'static str, String)>,
}

impl Args for RunFlags {
    fn augment_args(cmd: Command) -> Command {
        add_option_args(cmd, run_option)
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for RunFlags {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self { given: given_options(m, run_option) })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl RunFlags {
    /// Sets the given run options on `config`.
    pub fn apply(&self, config: &mut MethodConfig) -> Result<()> {
        for (key, text) in &self.given {
            config.set_text(key, text).map_err(|e| anyhow::anyhow!("--{key} {}", e.message))?;
        }
        Ok(())
    }
}

/// Where an option's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Its default.
    Default,
    /// A key of a config file.
    File(PathBuf),
    /// A command-line flag.
    Flag,
    /// Set by the program (e.g. a model file's header, a grid cell).
    Other(String),
}

/// A configuration with the origin of each value.
#[derive(Clone, Debug)]
pub struct Sourced {
    /// The configuration.
    pub config: MethodConfig,
    origins: BTreeMap<&'static str, Origin>,
}

impl Sourced {
    /// A configuration whose every value has one origin.
    pub fn new(config: MethodConfig, origin: Origin) -> Self {
        let origins = MethodConfig::OPTIONS.iter().map(|o| (o.key, origin.clone())).collect();
        Self { config, origins }
    }

    /// Where option `key` came from.
    pub fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }

    /// How to name option `key` in a message: `--levels`, `key `levels` in FILE`, or
    /// `levels (default)`.
    pub fn describe(&self, key: &str) -> String {
        match self.origin(key) {
            Origin::Flag => format!("--{key}"),
            Origin::File(p) => format!("key `{key}` in {}", p.display()),
            Origin::Default => format!("option `{key}` (default)"),
            Origin::Other(what) => format!("option `{key}` ({what})"),
        }
    }

    /// Checks the configuration against its backbone; an invalid value is reported under the
    /// name the user gave it.
    pub fn check(&self) -> Result<CheckedConfig> {
        self.config.check().map_err(|e| match e.downcast::<OptionError>() {
            Ok(o) => anyhow::anyhow!("{}: {}", self.describe(&o.key), o.message),
            Err(e) => e,
        })
    }
}

impl MethodFlags {
    /// Defaults, overlaid with the config file (if any), overlaid with the flags given.
    pub fn resolve(&self) -> Result<Sourced> {
        let mut sourced = Sourced::new(MethodConfig::default(), Origin::Default);
        if let Some(path) = &self.config {
            let (config, keys) = read_config_file(path)?;
            sourced.config = config;
            for k in keys {
                if let Some(o) = MethodConfig::option(&k) {
                    sourced.origins.insert(o.key, Origin::File(path.clone()));
                }
            }
        }
        for (key, text) in &self.given {
            sourced.config.set_text(key, text).map_err(|e| anyhow::anyhow!("--{key} {}", e.message))?;
            sourced.origins.insert(key, Origin::Flag);
        }
        Ok(sourced)
    }

    /// Resolves and checks (see [`Sourced::check`]).
    pub fn check(&self) -> Result<CheckedConfig> {
        self.resolve()?.check()
    }
}

/// The largest config file read (a config is a few hundred bytes).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

fn read_config_file(path: &Path) -> Result<(MethodConfig, Vec<String>)> {
    let text = crate::files::read_text_capped(path, MAX_CONFIG_BYTES)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?;
    let keys = table.keys().cloned().collect();
    let config = toml::Value::Table(table).try_into().with_context(|| format!("invalid config file {}", path.display()))?;
    Ok((config, keys))
}

/// Reads a TOML method config, naming the file in every error.
pub fn load_config_file(path: &Path) -> Result<MethodConfig> {
    read_config_file(path).map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(config: Option<PathBuf>, given: &[(&'static str, &str)]) -> MethodFlags {
        MethodFlags { config, given: given.iter().map(|(k, v)| (*k, (*v).to_string())).collect() }
    }

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "reduction = \"none\"\nspatial = \"shared\"\nlevels = [4, 5]\n").unwrap();
        let s = flags(Some(path.clone()), &[("spatial", "per-position")]).resolve().unwrap();
        let cfg = &s.config;
        assert_eq!(cfg.text("reduction").as_deref(), Some("none"));
        assert_eq!(cfg.text("spatial").as_deref(), Some("per-position"));
        assert_eq!(cfg.levels.as_slice(), &[4, 5]);
        assert_eq!(cfg.text("image-score").as_deref(), Some("map-max"));
        assert_eq!(s.origin("spatial"), Origin::Flag);
        assert_eq!(s.origin("levels"), Origin::File(path));
        assert_eq!(s.origin("covariance"), Origin::Default);
    }

    #[test]
    fn unknown_key_in_config_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "reductoin = \"none\"\n").unwrap();
        let msg = format!("{:#}", load_config_file(&path).unwrap_err());
        assert!(msg.contains("bad.toml") && msg.contains("reductoin"), "{msg}");
    }

    #[test]
    fn check_errors_blame_the_origin_of_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "levels = [3, 12]\n").unwrap();
        let msg = format!("{:#}", flags(Some(path), &[]).check().unwrap_err());
        assert!(msg.contains("key `levels` in") && msg.contains("m.toml") && !msg.contains("--levels"), "{msg}");
        let msg = format!("{:#}", flags(None, &[("levels", "3,12")]).check().unwrap_err());
        assert!(msg.contains("--levels"), "{msg}");
    }
}
