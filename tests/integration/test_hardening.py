"""The built binary carries the usual hardening: full RELRO (relocations
read-only, bound at start), PIE (ASLR for the code too), stack protector and
_FORTIFY_SOURCE checks. The settings live in CMakeLists.txt."""
import os
import shutil
import subprocess

import pytest

from harness import PW_BIN

pytestmark = pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf not installed")


def readelf(*args):
    if not os.access(PW_BIN, os.X_OK):
        pytest.fail(f"{PW_BIN} is not built")
    proc = subprocess.run(["readelf", "-W", *args, PW_BIN], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_binary_is_position_independent():
    (kind,) = [line for line in readelf("-h").splitlines() if line.strip().startswith("Type:")]
    assert "DYN" in kind, kind  # EXEC when linked without -pie


def test_relocations_are_read_only_and_bound_at_start():
    assert "GNU_RELRO" in readelf("-l")
    dynamic = readelf("-d")
    assert "BIND_NOW" in dynamic, dynamic  # FLAGS: BIND_NOW, FLAGS_1: NOW


def test_stack_protector_and_fortify_checks_are_compiled_in():
    symbols = readelf("--dyn-syms")
    assert "__stack_chk_fail" in symbols
    fortified = {word.split("@")[0] for word in symbols.split()
                 if word.startswith("__") and "_chk@" in word}
    assert fortified - {"__stack_chk_fail"}, "no __*_chk function: _FORTIFY_SOURCE is off"
