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


def c_ident(text: str) -> str:
    ident = re.sub(r"\W", "_", str(text))
    return ident if ident and not ident[0].isdigit() else f"_{ident}"


def c_float(value: float) -> str:
    return f"{float(np.float32(value))!r}f"


def c_float_exact(value: float) -> str:
    """A float32 as a C99 hexadecimal literal: exactly that value, no decimal
    rounding in between (kernels whose float arithmetic must equal TFLM's)."""
    return f"{float(np.float32(value)).hex()}f"


def c_comment(text: str) -> str:
    return str(text).replace("*/", "* /")


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
