"""--ray at an address nothing answers on fails in one line within seconds
(ray.init alone retries for minutes), without TensorFlow."""
import time

import pytest

from tests.support.cli import assert_one_line_error, tinycomp
from tinycomp.compress.tasks import check_ray_address, run_tasks
from tinycomp.errors import InputDataError


def test_unreachable_ray_address_refused_fast():
    start = time.monotonic()
    for address in ("127.0.0.1:1", "ray://127.0.0.1:1"):
        with pytest.raises(InputDataError, match=f"cannot join the Ray cluster at {address}: connection refused "
                                                 "on 127.0.0.1:1"):
            run_tasks(divmod, [(7, 2)], ray_address=address)
    assert time.monotonic() - start < 20
    check_ray_address("local")  # Ray's own words: not probed


def test_cli_ray_timeout_is_one_line(tmp_path):
    """Checked before the model or TensorFlow loads: the cluster is the first thing a search needs."""
    start = time.monotonic()
    r = tinycomp("compress", tmp_path / "m.keras", "--data", tmp_path / "d.npz", "--ray", "127.0.0.1:1",
                 "--out", tmp_path / "o.keras")
    assert_one_line_error(r, "cannot join the Ray cluster at 127.0.0.1:1: connection refused on 127.0.0.1:1")
    assert time.monotonic() - start < 20
    assert not (tmp_path / "o.keras").exists()
