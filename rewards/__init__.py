"""Rewards for textenv: the protocol, the registry, the built-in reward models and learned ones.

A reward is any callable ``fn(prompts, completions, **meta)`` that returns one float per pair (see
``RewardFn``). Build a registered one by name, or wrap your own function::

    import rewards

    reward = rewards.make("length", target=20)        # a built-in, by name
    reward = rewards.resolve(my_reward_fn)             # any reward function
    scores = reward(["Tell a story."], ["Once upon a time ..."])  # float64 array, one score per pair

Both return a ``ValidatedReward``, which raises ``InvalidRewardOutputError`` naming the reward when a
score is NaN, infinite, non-numeric or missing. ``rewards.names()`` lists the registered rewards,
including third-party ones from the ``textenv.rewards`` entry-point group.

Built-ins: ``sentiment`` (VADER), ``offensive`` (alt-profanity-check), rules (``length``, ``keyword``,
``regex``, ``repetition``, ``format``), ``similarity`` (MiniLM embeddings), ``rouge``, ``judge`` (a local
LM's yes/no log-odds), ``learned`` (a trained reward model), ``human`` (a person in the terminal) and the
combinators ``weighted_sum``, ``clip`` and ``normalize``. Learned reward models are trained with
``train_reward_model`` on data read by ``load_preferences``, evaluated with ``evaluate_pairwise``, and
preference data can be simulated with
``simulate_preferences``, or collected from people with ``rewards.human`` (labeling page, terminal
labeler, SQLite label store and its export).

This package does not import textenv or agents, nor torch or transformers at import time.
"""

from rewards.annotator import AnnotatedPair, LMPairSampler, SimulationResult, simulate_preferences
from rewards.combinators import Clip, RunningNormalize, WeightedSum
from rewards.errors import (
    InvalidRewardOutputError,
    LabelingError,
    MissingDependencyError,
    PreferenceDataError,
    RewardConfigError,
    RewardError,
    RewardInputError,
    RewardModelError,
    RewardPluginWarning,
    UnknownRewardError,
)
from rewards.evaluation import PairwiseEvaluation, evaluate_pairwise
from rewards.human.reward import HumanReward
from rewards.judge import LMJudge
from rewards.learned import LearnedReward
from rewards.model_folder import METADATA_FILE, RewardModelInfo
from rewards.offensive import OffensiveLanguage
from rewards.overlap import RougeReward
from rewards.patterns import FormatReward, RegexReward, RepetitionReward
from rewards.preferences import (
    PreferenceData,
    PreferencePair,
    RatedCompletion,
    from_conversations,
    from_question_answers,
    load_preferences,
    write_jsonl,
)
from rewards.protocol import RewardFn
from rewards.registry import ENTRY_POINT_GROUP, accepts, make, names, register, resolve
from rewards.rules import KeywordReward, LengthReward
from rewards.sentiment import VaderSentiment
from rewards.similarity import SemanticSimilarity
from rewards.training import RewardModelTrainingConfig, TrainingResult, train_reward_model
from rewards.validation import ValidatedReward

__all__ = [
    "ENTRY_POINT_GROUP",
    "METADATA_FILE",
    "AnnotatedPair",
    "Clip",
    "FormatReward",
    "HumanReward",
    "InvalidRewardOutputError",
    "KeywordReward",
    "LMJudge",
    "LMPairSampler",
    "LabelingError",
    "LearnedReward",
    "LengthReward",
    "MissingDependencyError",
    "OffensiveLanguage",
    "PairwiseEvaluation",
    "PreferenceData",
    "PreferenceDataError",
    "PreferencePair",
    "RatedCompletion",
    "RegexReward",
    "RepetitionReward",
    "RewardConfigError",
    "RewardError",
    "RewardFn",
    "RewardInputError",
    "RewardModelError",
    "RewardModelInfo",
    "RewardModelTrainingConfig",
    "RewardPluginWarning",
    "RougeReward",
    "RunningNormalize",
    "SemanticSimilarity",
    "SimulationResult",
    "TrainingResult",
    "UnknownRewardError",
    "VaderSentiment",
    "ValidatedReward",
    "WeightedSum",
    "accepts",
    "evaluate_pairwise",
    "from_conversations",
    "from_question_answers",
    "load_preferences",
    "make",
    "names",
    "register",
    "resolve",
    "simulate_preferences",
    "train_reward_model",
    "write_jsonl",
]
