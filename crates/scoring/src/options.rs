//! The detector's named choices, with their text forms (`FromStr` / `Display` / serde).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ScoringError;

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every text form accepted by `FromStr`.
            pub const TEXT_FORMS: &'static [&'static str] = &[$($text),+];

            /// The text form (as `Display` writes it).
            pub fn as_str(&self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ScoringError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text.trim() {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(ScoringError::Parse {
                        what: stringify!($name),
                        text: text.to_string(),
                        expected: Self::TEXT_FORMS.join("\", \""),
                    }),
                }
            }
        }
    };
}

text_enum! {
    /// How the pixel model models the positions of a level (text forms `"per-position"`,
    /// `"shared"`).
    #[derive(Default)]
    SpatialModel {
        /// One Gaussian per position `(i, j)` (PaDiM), all sharing the level's pixel PCA.
        #[default]
        PerPosition => "per-position",
        /// One Gaussian per level over all positions.
        Shared => "shared",
    }
}

text_enum! {
    /// What the image-level anomaly score is (text forms `"pooled"`, `"map-max"`).
    #[derive(Default)]
    ImageScore {
        /// The paper's: the sum over levels of the Mahalanobis distances of the
        /// global-average-pooled, reduced feature vectors.
        #[default]
        Pooled => "pooled",
        /// The maximum of the final pixel map (PaDiM, better for small defects).
        MapMax => "map-max",
    }
}

text_enum! {
    /// Which PCA the pixel model uses (text forms `"per-level"`, `"from-pooled"`).
    #[derive(Default)]
    PixelPca {
        /// Fitted on all training position vectors of the level (`n * h * w` samples).
        #[default]
        PerLevel => "per-level",
        /// Reuse the image model's PCA (fitted on the pooled vectors).
        FromPooled => "from-pooled",
    }
}
