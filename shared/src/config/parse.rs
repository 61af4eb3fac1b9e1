//! Reading a configuration from the environment and arguments.

use std::time::Duration;

use clap::{CommandFactory, Parser};

use super::{CommonConfig, GatewayConfig, WorkerConfig};

/// Why the configuration was refused, or help to print.
#[derive(Debug)]
pub enum ConfigError {
    /// `--help` or `--version`: print this and exit 0.
    Info(String),
    /// A bad value: one line naming the variable; exit [`EXIT_CONFIG`].
    Invalid(String),
}

/// Parses a configuration from the environment and the given arguments.
pub fn parse<C, I, T>(args: I) -> Result<C, ConfigError>
where
    C: Parser + Checked,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut cmd = C::command();
    let matches = match cmd.try_get_matches_from_mut(args) {
        Ok(m) => m,
        Err(e) => return Err(clap_error(&cmd, e)),
    };
    let config = C::from_arg_matches(&matches).map_err(|e| clap_error(&cmd, e))?;
    config.check().map_err(ConfigError::Invalid)?;
    Ok(config)
}

/// Final checks across fields, beyond what each field's parser does.
pub trait Checked {
    fn check(&self) -> Result<(), String>;
    /// The settings every process has.
    fn common(&self) -> &CommonConfig;
}

impl Checked for GatewayConfig {
    fn check(&self) -> Result<(), String> {
        self.common.check()?;
        self.auth.check()
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

impl Checked for WorkerConfig {
    fn check(&self) -> Result<(), String> {
        self.common.check()?;
        if self.job_lease < Duration::from_secs(1) {
            return Err("RELAY_JOB_LEASE: must be at least 1s".into());
        }
        Ok(())
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

fn clap_error(cmd: &clap::Command, e: clap::Error) -> ConfigError {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return ConfigError::Info(e.render().to_string());
    }
    let rendered = e.render().to_string();
    let mut line = rendered
        .lines()
        .next()
        .unwrap_or("invalid configuration")
        .trim_start_matches("error: ")
        .to_string();
    // Name the environment variable rather than the flag.
    if let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) {
        let long = arg
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_start_matches("--");
        if let Some(env) = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long))
            .and_then(|a| a.get_env())
        {
            line = line.replace(&format!("'{arg}'"), &env.to_string_lossy());
        }
    }
    ConfigError::Invalid(line)
}

/// Every variable either process reads, for spotting misspelt ones.
pub fn known_variables() -> Vec<String> {
    let mut names: Vec<String> = GatewayConfig::command()
        .get_arguments()
        .chain(WorkerConfig::command().get_arguments())
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `RELAY_*` variables in the environment that neither process reads.
pub fn unknown_variables() -> Vec<String> {
    let known = known_variables();
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("RELAY_") && !known.contains(k))
        .collect()
}
