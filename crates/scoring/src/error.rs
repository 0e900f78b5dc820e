//! The crate's error type.

/// Everything that can go wrong while scoring or fitting a detector.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ScoringError {
    /// A vector or map has the wrong number of features / channels.
    #[error("dimension mismatch in {what}: expected {expected}, got {got}")]
    DimensionMismatch {
        /// What was being checked.
        what: String,
        /// The expected size.
        expected: usize,
        /// The size that was passed.
        got: usize,
    },
    /// A map has the wrong spatial `(h, w)` size.
    #[error("shape mismatch in {what}: expected {expected:?}, got {got:?}")]
    ShapeMismatch {
        /// What was being checked.
        what: String,
        /// The expected `(h, w)`.
        expected: (usize, usize),
        /// The `(h, w)` that was passed.
        got: (usize, usize),
    },
    /// A level's feature map has the wrong `(c, h, w)` shape.
    #[error("level {level}: expected a feature map of shape {expected:?} (c, h, w), got {got:?}")]
    LevelShape {
        /// Index of the level.
        level: usize,
        /// The expected `(c, h, w)`.
        expected: (usize, usize, usize),
        /// The `(c, h, w)` that was passed.
        got: (usize, usize, usize),
    },
    /// The wrong number of levels (one map per tapped level is required).
    #[error("expected {expected} level maps, got {got}")]
    LevelCount {
        /// Number of levels of the detector.
        expected: usize,
        /// Number of maps passed.
        got: usize,
    },
    /// NaN or infinite input values.
    #[error("non-finite value (NaN or infinity) in {what}")]
    NonFinite {
        /// Where the value was found.
        what: String,
    },
    /// A score came out NaN or infinite (overflow); never returned as a number.
    #[error("non-finite {what} (overflow in the input features?)")]
    NonFiniteScore {
        /// Which score.
        what: String,
    },
    /// An output size of zero was requested.
    #[error("output size must be positive, got {out_h}x{out_w}")]
    ZeroOutputSize {
        /// Requested rows.
        out_h: usize,
        /// Requested columns.
        out_w: usize,
    },
    /// Empty input (no levels, an empty map, ...).
    #[error("empty input: {what}")]
    EmptyInput {
        /// What was empty.
        what: String,
    },
    /// The blur sigma is not usable.
    #[error("invalid blur sigma {sigma}: {reason}")]
    InvalidSigma {
        /// The sigma passed.
        sigma: f64,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A text form could not be parsed.
    #[error("cannot parse {what} from {text:?}: expected one of \"{expected}\"")]
    Parse {
        /// The type being parsed.
        what: &'static str,
        /// The text given.
        text: String,
        /// The accepted forms.
        expected: String,
    },
    /// Invalid detector parameters.
    #[error("invalid detector parameters: {0}")]
    InvalidParams(String),
    /// Too few training images to fit the models.
    #[error("need at least {min} training images, got {got}")]
    NotEnoughImages {
        /// Minimum number of images.
        min: usize,
        /// Number of images pushed.
        got: usize,
    },
    /// A [`crate::DetectorFitter`] method was called in the wrong phase.
    #[error("{call} called in the wrong phase: the fitter is in {phase}")]
    WrongPhase {
        /// The method called.
        call: &'static str,
        /// The phase the fitter is in.
        phase: &'static str,
    },
    /// Phase 2 saw a different number of images than phase 1.
    #[error(
        "phase 2 received {phase2} images but phase 1 received {phase1}; push the same images in both phases"
    )]
    PhaseCountMismatch {
        /// Images pushed in phase 1.
        phase1: usize,
        /// Images pushed in phase 2.
        phase2: usize,
    },
    /// A fitted model (e.g. read from an untrusted file) is internally inconsistent.
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// Error from the dimensionality reduction.
    #[error("reduction: {0}")]
    Reduction(#[from] opca_reduction::ReductionError),
    /// Error from the Gaussian fit.
    #[error("gaussian fit: {0}")]
    Gaussian(#[from] gaussian_fit::GaussianError),
    /// Too few normal scores for a target false-alarm rate.
    #[error(
        "{got} normal scores cannot set a threshold for a false-alarm rate of {target}: the rule needs at least {needed} \
         (use more training images, add --val images, or raise the target)"
    )]
    TooFewNormalScores {
        /// Scores available.
        got: usize,
        /// The target rate.
        target: f64,
        /// Scores needed.
        needed: usize,
    },
}
