"""One error hierarchy. The CLI prints any TinycompError as one line and exits non-zero.

Raise these for anything a user can cause (bad file, unsupported op, board too
small, silent port, hung emulator); let genuine bugs surface as tracebacks.
"""


class TinycompError(Exception):
    """Base of every error a user can cause; str(e) is the one line shown."""


class ModelError(TinycompError):
    """The model file is unreadable, corrupt, or not what tinycomp accepts."""


class UnsupportedOpError(ModelError):
    """An operator (or an option of one) that tinycomp cannot compile."""


class InputDataError(TinycompError):
    """Input, calibration or label data of the wrong shape, dtype or content."""


class AccuracyBudgetError(TinycompError):
    """Compression could not keep accuracy within the budget the user set."""


class BoardError(TinycompError):
    """Unknown board, bad board file, or a model that does not fit the board."""


class BuildError(TinycompError):
    """The C compiler or linker failed, or a toolchain is missing."""


class OutputError(TinycompError):
    """An output folder or file cannot be written."""


class TargetError(TinycompError):
    """Running on a target failed: the device, emulator or port misbehaved."""


class TargetTimeout(TargetError):
    """The device, emulator or port did not answer in time."""


class ProtocolError(TargetError):
    """The device answered with garbled, truncated or unexpected frames."""
