"""SciPy's ``scipy.linalg.cython_blas``, the BLAS every generated matrix product calls
(``runtime/gemm.py``) and whose threads the sharded step controls (``runtime/blas.py``).

Why not a plain ``import scipy.linalg.cython_blas``: that runs ``scipy/linalg/__init__.py`` first,
which imports all of ``scipy.linalg`` and, through SciPy's array-API layer, ``numpy.f2py``: 0.22 s of
every layergen process's start (measured with ``python -X importtime``: 0.6 s in all, its warm start
from Numba's cache about 0.8 s against a 1 s target), for a module whose only use here is its table
of function pointers. The extension module itself loads in 3 ms.

So, unless ``scipy.linalg`` is imported already, the extension is loaded from its file under its own
full name and registered in ``sys.modules`` (a Cython module cannot be initialised twice, so a later
``import scipy.linalg`` must find this one there, and does). What differs from a plain import: until
something imports ``scipy.linalg`` itself, the package is absent, and afterwards the package has no
``cython_blas`` attribute unless imported from it (``from scipy.linalg import cython_blas`` and
``import scipy.linalg.cython_blas as blas`` both work; ``tests/test_gemm.py`` checks them). If the
file cannot be found, the plain import runs instead.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType

NAME = "scipy.linalg.cython_blas"


def _load_from_file() -> ModuleType | None:
    import scipy

    folder = os.path.join(os.path.dirname(scipy.__file__), "linalg")
    spec = importlib.machinery.PathFinder.find_spec(NAME, [folder])
    if spec is None or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[NAME]
        raise
    return module


def cython_blas() -> ModuleType:
    """The ``scipy.linalg.cython_blas`` module (see the module docstring for how it is loaded)."""
    if NAME in sys.modules:
        return sys.modules[NAME]
    if "scipy.linalg" not in sys.modules:
        module = _load_from_file()
        if module is not None:
            return module
    return importlib.import_module(NAME)
