//! The machinery behind the one declaration of the settings (`settings!` in `config/mod.rs`): from a
//! list of `/// doc`, `name: Type = default;` entries it builds the typed [`ServeConfig`](super::ServeConfig),
//! the YAML file's [`ConfigFile`](super::ConfigFile), the command-line flags with their environment
//! variables and rendered defaults, and the example config. Names follow one rule: the YAML key is the
//! field's name, the flag is that name with dashes, the variable is `SPANLAKE_` and the name in capitals.

use clap::builder::ValueParser;
use clap::{Arg, ArgAction};
use serde_yaml_ng::Value;

use super::values::SettingValue;

/// Where a setting's flag, variable and YAML key come from, for help text and the example config.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// The YAML key and field name, e.g. `max_block_bytes`.
    pub key: &'static str,
    /// A heading the example config puts above this key, where a new group of keys starts.
    pub section: Option<&'static str>,
    /// The doc comment's lines.
    pub doc: &'static [&'static str],
}

impl Setting {
    /// The flag without its dashes: `max-block-bytes`.
    pub fn flag(&self) -> String {
        self.key.replace('_', "-")
    }

    /// The environment variable: `SPANLAKE_MAX_BLOCK_BYTES`.
    pub fn env(&self) -> String {
        format!("SPANLAKE_{}", self.key.to_ascii_uppercase())
    }

    /// The doc as one paragraph, for `--help`.
    pub fn help(&self) -> String {
        self.doc.iter().map(|line| line.trim()).collect::<Vec<_>>().join(" ")
    }
}

/// Which settings a command offers as flags: `serve` all of them, other commands the few they share.
pub trait FlagSet {
    /// `None` for every setting, else the keys.
    const KEYS: Option<&'static [&'static str]>;

    /// Whether `key` is one of them.
    fn offers(key: &str) -> bool {
        Self::KEYS.is_none_or(|keys| keys.contains(&key))
    }
}

/// The flag (and its environment variable) of one setting, with its default in the help text.
pub fn flag_of<T: SettingValue>(setting: &Setting, default: Option<String>) -> Arg {
    let mut help = setting.help();
    if let Some(default) = default {
        help.push_str(&format!(" [default: {default}]"));
    }
    let arg = Arg::new(setting.key)
        .long(setting.flag())
        .value_name(setting.key.to_ascii_uppercase())
        .env(setting.env())
        // A secret's value set in the environment stays out of `--help`.
        .hide_env_values(setting.key.ends_with("_token"))
        .help(help)
        .action(ArgAction::Set)
        .value_parser(ValueParser::new(|text: &str| T::parse(text)));
    if T::SWITCH { arg.num_args(0..=1).default_missing_value("true") } else { arg }
}

/// A rendered value as the example config writes it: quoted only where YAML would read it as
/// something else (an IPv6 address would read as a list).
pub fn yaml_scalar(text: &str) -> String {
    match serde_yaml_ng::from_str::<Value>(text) {
        Ok(Value::Sequence(_) | Value::Tagged(_)) | Err(_) => serde_yaml_ng::to_string(&Value::String(text.to_owned()))
            .map_or_else(|_| text.to_owned(), |quoted| quoted.trim_end().to_owned()),
        Ok(_) => text.to_owned(),
    }
}

/// Declares every setting once: the typed config, the file's keys, the flags and the example follow.
macro_rules! settings {
    (
        $(
            $( #[section = $section:literal] )?
            $( #[doc = $doc:literal] )+
            $name:ident : $ty:ty = $default:expr;
        )+
    ) => {
        /// Settings of `spanlake serve`, each with its default. Built by layering defaults, the
        /// `--config` file, then environment variables and flags ([`ServeConfig::layered`]).
        #[derive(Clone, Debug, PartialEq)]
        pub struct ServeConfig {
            $( $( #[doc = $doc] )+ pub $name: $ty, )+
        }

        impl Default for ServeConfig {
            fn default() -> Self {
                Self { $( $name: $default, )+ }
            }
        }

        /// The settings one source gives (the YAML file, or the flags and environment): every key
        /// optional. The file's keys it does not know are refused with their name (CONTRACTS §1).
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct ConfigFile {
            $(
                #[doc = concat!("`", stringify!($name), "`, when this source sets it.")]
                pub $name: Option<$ty>,
            )+
        }

        /// Every setting, in declaration order: the example config's order.
        pub const SETTINGS: &[$crate::config::declare::Setting] = &[
            $( $crate::config::declare::Setting {
                key: stringify!($name),
                section: settings!(@section $( $section )?),
                doc: &[ $( $doc ),+ ],
            }, )+
        ];

        impl ConfigFile {
            /// The settings of a YAML map, each value read by its type as the flag would read it; an
            /// unknown key or a bad value is an error naming the key.
            fn from_mapping(
                mapping: serde_yaml_ng::Mapping,
            ) -> Result<Self, $crate::config::FileError> {
                use $crate::config::FileError;
                let mut file = Self::default();
                for (key, value) in mapping {
                    let serde_yaml_ng::Value::String(key) = key else {
                        return Err(FileError::UnknownKey { key: format!("{key:?}") });
                    };
                    match key.as_str() {
                        $(
                            stringify!($name) => {
                                let read = <$ty as $crate::config::values::SettingValue>::from_yaml(value);
                                file.$name = Some(read.map_err(|source| FileError::Value { key, source: Box::new(source) })?);
                            }
                        )+
                        _ => return Err(FileError::UnknownKey { key }),
                    }
                }
                Ok(file)
            }

            /// This source's settings over `config`'s.
            pub fn apply(self, config: &mut ServeConfig) {
                $(
                    if let Some(value) = self.$name {
                        config.$name = $crate::config::values::SettingValue::overlay(value, config.$name.clone());
                    }
                )+
            }

            /// This source's keys, and `earlier`'s where this one is silent.
            fn or(self, earlier: Self) -> Self {
                Self { $( $name: self.$name.or(earlier.$name), )+ }
            }

            /// The flags (with their variables) of the settings `S` offers.
            fn flags<S: $crate::config::declare::FlagSet>() -> Vec<clap::Arg> {
                let mut flags = Vec::new();
                let mut declared = SETTINGS.iter().zip(Self::flag_defaults());
                $(
                    let (setting, default) = declared.next().expect("SETTINGS lists every declared key");
                    if S::offers(stringify!($name)) {
                        flags.push($crate::config::declare::flag_of::<$ty>(setting, default));
                    }
                )+
                flags
            }

            /// Each setting's default as its flag takes it, for `--help` (`None`: not set by default).
            fn flag_defaults() -> Vec<Option<String>> {
                let defaults = ServeConfig::default();
                vec![ $( $crate::config::values::SettingValue::render(&defaults.$name), )+ ]
            }

            /// What the flags and variables gave, read from clap's matches.
            fn from_matches(matches: &clap::ArgMatches) -> Self {
                Self { $( $name: matches.try_get_one::<$ty>(stringify!($name)).ok().flatten().cloned(), )+ }
            }

            /// Each setting's default as the example config writes it (`None`: not set by default).
            fn rendered_defaults() -> Vec<Option<String>> {
                let defaults = ServeConfig::default();
                vec![ $( $crate::config::values::SettingValue::render_yaml(&defaults.$name), )+ ]
            }
        }
    };
    (@section $section:literal) => { Some($section) };
    (@section) => { None };
}

pub(crate) use settings;
