"""libmemcached's conformance tool, ascii protocol only: every test passes."""

import re
import shutil
import subprocess

import pytest

MEMCCAPABLE = shutil.which("memccapable") or "/usr/bin/memccapable"
RESULT_RE = re.compile(rb"^(ascii \S.*?)\s+\[(\w+)\]\s*$")

# The ascii tests memccapable 1.0.18 runs (libmemcached-tools, Debian 12).
EXPECTED_TESTS = {
    "ascii version", "ascii quit", "ascii verbosity", "ascii set",
    "ascii set noreply", "ascii get", "ascii gets", "ascii mget",
    "ascii flush", "ascii flush noreply", "ascii add", "ascii add noreply",
    "ascii replace", "ascii replace noreply", "ascii cas", "ascii cas noreply",
    "ascii delete", "ascii delete noreply", "ascii incr", "ascii incr noreply",
    "ascii decr", "ascii decr noreply", "ascii append", "ascii append noreply",
    "ascii prepend", "ascii prepend noreply", "ascii stat",
}


@pytest.fixture(scope="module")
def memccapable():
    import os
    if not os.access(MEMCCAPABLE, os.X_OK):
        pytest.skip("memccapable (libmemcached-tools) not installed")
    return MEMCCAPABLE


def test_memccapable_ascii_all_pass(memccapable, server):
    proc = subprocess.run(
        [memccapable, "-a", "-v", "-t", "5", "-h", server.host,
         "-p", str(server.port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, timeout=120)
    out = proc.stdout
    results = {}
    for line in out.splitlines():
        m = RESULT_RE.match(line)
        if m:
            results[m.group(1).decode()] = m.group(2).decode()
    report = out.decode(errors="replace")
    failed = {t: r for t, r in results.items() if r != "pass"}
    assert not failed, f"memccapable failures: {failed}\n{report}"
    assert b"fail" not in out.lower(), report
    missing = EXPECTED_TESTS - set(results)
    assert not missing, f"tests that did not run: {sorted(missing)}\n{report}"
    assert proc.returncode == 0, f"exit {proc.returncode}\n{report}"
    assert b"All tests passed" in out, report
    assert server.alive(), "server died during memccapable"
