"""How generated modules are imported: one name per file, so that Numba's cache works by every route."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from layergen.runtime.modules import import_generated, load_builtin


def test_a_builtin_module_has_its_package_name_by_every_route() -> None:
    by_spec = load_builtin("adam")
    assert by_spec.__name__ == "layergen.generated.optimizers.adam"
    assert by_spec is importlib.import_module("layergen.generated.optimizers.adam")
    assert import_generated(Path(by_spec.__file__)) is by_spec


def test_a_kernel_cached_through_load_builtin_loads_through_a_plain_import(tmp_path: Path) -> None:
    """Numba keys its cache by file and a cached function's environment names its module: a module imported
    under a second name loaded the first name's entries and failed (No module named 'layergen_generated')."""
    call = """
        import numpy as np
        theta, g, m, v = (np.full(8, value, np.float32) for value in (1.0, 0.5, 0.0, 0.0))
        adam.step_inplace(theta, g, m, v, 0.1, 0.9, 0.999, 1e-8, 1.0)
        print(repr(theta[0]), len(adam.step_inplace.stats.cache_hits))
    """
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}

    def run(header: str) -> list[str]:
        script = textwrap.dedent(header) + textwrap.dedent(call)
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    first = run("from layergen.runtime.modules import load_builtin\nadam = load_builtin('adam')\n")
    second = run("from layergen.generated.optimizers import adam\n")
    assert first[0] == second[0]
    assert (first[1], second[1]) == ("0", "1")  # compiled, then loaded from the cache
