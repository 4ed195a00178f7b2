"""The unit tests' second run (`make test`, MMS_EXPECT_COMPILED=1) is against the compiled build:
every module setup.py compiles is imported as the extension mypyc made of it."""

from __future__ import annotations

import importlib
import importlib.util
import os
from importlib.machinery import EXTENSION_SUFFIXES

import pytest

from tests.tools import compiled_modules


@pytest.mark.skipif(os.environ.get("MMS_EXPECT_COMPILED") != "1", reason="the pure-Python run")
@pytest.mark.parametrize("name", compiled_modules())
def test_the_module_is_the_compiled_extension(name: str) -> None:
    path = importlib.import_module(name).__file__ or ""
    assert path.endswith(tuple(EXTENSION_SUFFIXES)), path


def test_every_compiled_module_exists() -> None:
    for name in compiled_modules():
        assert importlib.util.find_spec(name) is not None, name
