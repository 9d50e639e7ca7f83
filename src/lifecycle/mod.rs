//! The pure core: decisions from observed state and `now`, with no I/O and no clock.

/// A fieldless enum whose values are CamelCase names written in statuses and Events, with the
/// list of its values and a parser for reading a written name back.
macro_rules! names {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$doc:meta])* $variant:ident,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name { $($(#[$doc])* $variant,)* }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &[$name] = &[$($name::$variant,)*];

            /// The CamelCase name written in decision records and Events.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant),)* }
            }

            /// The value a decision record names, if it is one.
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod analysis;
pub mod backends;
pub mod blue_green;
pub mod canary;
pub mod conditions;
pub mod evaluate;
pub mod history;
pub mod inputs;
pub mod kserve;
pub mod ledger;
pub mod model;
pub mod monitor;
pub mod plan;
pub mod policy;
pub mod reading;
pub mod registry;
pub mod report;
pub mod rolling;
pub mod rollout;
pub mod serving;
pub mod shadow;
pub mod source;
pub mod training;
pub mod transitions;
pub mod triggers;
pub mod validate;

#[cfg(test)]
pub mod testing;
