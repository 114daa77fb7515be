"""The Jinja environment: templates only lay out C; numbers come from Python."""
from __future__ import annotations

import functools
import re

import jinja2
import numpy as np

from ..resources import data_dir


def c_array(values, per_line: int = 20) -> str:
    """Body of a C array initialiser, wrapped for readability."""
    flat = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    if not flat:
        return "0"
    lines = [", ".join(flat[i:i + per_line]) for i in range(0, len(flat), per_line)]
    return ",\n    ".join(lines)


# Names come from the model file, i.e. from whoever wrote it. They reach C
# only through these two functions, whose output alphabet is fixed: no
# backslash (line splicing), no '*' or '/' (comment ends), no '?' (trigraphs),
# no quotes, nothing outside printable ASCII (bidi controls, newlines).
# docs/security.md says why that is enough.
_IDENT_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_COMMENT_UNSAFE = re.compile(r"[^A-Za-z0-9_ .,:;()\[\]+=#@<>-]")
MAX_NAME = 64


def c_ident(text: str) -> str:
    """A C identifier from any text: [A-Za-z0-9_] only, bounded, not starting with a digit."""
    ident = _IDENT_UNSAFE.sub("_", str(text))[:MAX_NAME]
    return ident if ident and not ident[0].isdigit() else f"_{ident}"


def c_float(value: float) -> str:
    return f"{float(np.float32(value))!r}f"


def c_float_exact(value: float) -> str:
    """A float32 as a C99 hexadecimal literal: exactly that value, no decimal
    rounding in between (kernels whose float arithmetic must equal TFLM's)."""
    return f"{float(np.float32(value)).hex()}f"


def c_comment(text: str) -> str:
    """Text that is safe inside a /* */ comment: printable ASCII without * / \\ ? or quotes."""
    safe = _COMMENT_UNSAFE.sub("_", str(text))
    return safe if len(safe) <= MAX_NAME else safe[:MAX_NAME - 3] + "..."


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("templates"))),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(c_array=c_array, c_ident=c_ident, c_float=c_float, c_float_exact=c_float_exact,
                       c_comment=c_comment)
    return env


def render(template_name: str, **context) -> str:
    return environment().get_template(template_name).render(**context)
