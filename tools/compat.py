"""Run the original libraries' own test suites against sciwire, import lines rewritten.

The suites are never copied into this repository: they are read from where they already are (the
installed wheels of astropy and drms, or a checkout of the original repository that the user names)
into a temporary folder, their import lines are rewritten to sciwire's same-named modules,
and pytest runs them there.

    python tools/compat.py samp drms                # the suites inside installed wheels
    python tools/compat.py rig --checkout ~/src/iblutil          # iblutil's tag v1.20.0
    python tools/compat.py ifcb --checkout ~/src/pyifcbclient
    python tools/compat.py command --checkout ~/src/cryosparc-tools   # tag v4.7.1
    python tools/compat.py rig --checkout ... --original   # the same copy, original library

Only the import lines change, and the module paths that `mock.patch` and `monkeypatch.setattr`
targets name as strings (an import by another name); for the two suites whose tests name a LAN
address, that address becomes a loopback one. cryosparc-tools' tests reach `cryosparc.command`
through `cryosparc.tools`, so for them the one import that changes is that module itself:
`cryosparc.command` is bound to `sciwire.command` before any test imports it. Every run carries a
guard that refuses any connection, datagram or name look-up that would leave the loopback
interface, so no test traffic leaves 127.0.0.1/::1 whatever a suite tries.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

GUARD = '''\
"""Written by sciwire's tools/compat.py: keep every socket of this test run on loopback."""
import ipaddress
import socket

_ALLOWED_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def _loopback(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%")[0]
    if host.lower() in _ALLOWED_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _literal(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        ipaddress.ip_address(str(host).strip("[]").split("%")[0])
        return True
    except ValueError:
        return False


def _check(address):
    if isinstance(address, tuple) and address and not _loopback(address[0]):
        raise OSError(f"compat guard: {address[0]!r} is not a loopback address; refused")


_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
_sendto = socket.socket.sendto
_getaddrinfo, _gethostbyname = socket.getaddrinfo, socket.gethostbyname


def connect(self, address):
    _check(address)
    return _connect(self, address)


def connect_ex(self, address):
    _check(address)
    return _connect_ex(self, address)


def sendto(self, data, *args):
    _check(args[-1])
    return _sendto(self, data, *args)


def getaddrinfo(host, *args, **kwargs):
    if host is not None and not _loopback(host) and not _literal(host):
        raise socket.gaierror(socket.EAI_NONAME, f"compat guard: no look-up of {host!r}")
    return _getaddrinfo(host, *args, **kwargs)


def gethostbyname(host):
    if not _loopback(host) and not _literal(host):
        raise socket.gaierror(socket.EAI_NONAME, f"compat guard: no look-up of {host!r}")
    return _gethostbyname(host)


socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto = connect, connect_ex, sendto
socket.getaddrinfo, socket.gethostbyname = getaddrinfo, gethostbyname
'''

PYTEST_INI = """\
[pytest]
addopts = -p no:cacheprovider -p no:randomly -q -rfE
markers =
    jsoc: needs the JSOC site
    kis: needs the KIS site
    remote_data: needs the internet
    export: exports data
asyncio_default_fixture_loop_scope = function
"""

IMPORT_LINE = re.compile(r"^(\s*)(from|import)\s.*$", re.M)
# mock.patch("pkg.module.name") and monkeypatch.setattr("pkg.module.name", ...) import
# pkg.module by its path: the same rewrite applies to them.
PATCH_TARGET = re.compile(
    r"""\b(?:patch(?:\.dict)?|monkeypatch\.(?:setattr|delattr))\(\s*(['"])([\w.]+)\1"""
)


def rewrite_imports(text: str, rules: list[tuple[str, str]], module: str, to: str) -> str:
    """Apply ``rules`` (regex, replacement) to the import lines of ``text``, and point the
    ``mock.patch`` targets under ``module`` at ``to``; change nothing else."""

    def one(match: re.Match[str]) -> str:
        line = match.group(0)
        for pattern, repl in rules:
            line = re.sub(pattern, repl, line)
        return line

    def target(match: re.Match[str]) -> str:
        path = match.group(2)
        if path != module and not path.startswith(module + "."):
            return match.group(0)
        start, end = match.span(2)
        new = to + path[len(module) :]
        return match.group(0)[: start - match.start()] + new + match.group(0)[end - match.start() :]

    return PATCH_TARGET.sub(target, IMPORT_LINE.sub(one, text))


@dataclass
class Suite:
    """Where one original suite lives and how its import lines change."""

    name: str
    original: str  # the original library's distribution, for the report
    module: str  # the original's module that sciwire replaces
    rules: list[tuple[str, str]]
    wheel_tests: str | None = None  # a package whose installed folder holds the tests
    checkout_files: list[str] = field(default_factory=list)  # paths inside a checkout
    literal: list[tuple[str, str]] = field(default_factory=list)  # LAN address -> loopback
    deselect: str | None = None  # a -k expression for tests that need the internet
    markers: str | None = None  # a -m expression
    preamble: Callable[[bool], str] | None = None  # code put before a conftest's first line
    pythonpath: str | None = None  # inside the checkout, for the original library itself


def _command_preamble(original: bool) -> str:
    if original:
        return ""
    return (
        "# compat.py: cryosparc.tools' import of cryosparc.command, rewritten to sciwire.command\n"
        "import sys as _sys\n"
        "import sciwire.command as _sciwire_command\n"
        "_sys.modules['cryosparc.command'] = _sciwire_command\n"
    )


SUITES = {
    "samp": Suite(
        "samp",
        "astropy",
        "astropy.samp",
        [(r"\bastropy\.samp\b", "sciwire.samp")],
        wheel_tests="astropy.samp.tests",
    ),
    "drms": Suite(
        "drms",
        "drms",
        "drms",
        [
            (r"^(\s*)import drms\s*$", r"\1import sciwire.drms as drms"),
            (r"^(\s*)from drms(\.|\s)", r"\1from sciwire.drms\2"),
        ],
        wheel_tests="drms.tests",
        markers="not remote_data and not jsoc and not kis",
    ),
    "rig": Suite(
        "rig",
        "iblutil 1.20.0",
        "iblutil.io.net",
        [(r"\biblutil\.io\.net\b", "sciwire.rig")],
        checkout_files=["iblutil/tests/test_net.py", "iblutil/tests/__init__.py"],
        literal=[("'192.168.0.0'", "'127.0.0.2'")],
        deselect="not test_parse_uri and not test_external_ip",
    ),
    "ifcb": Suite(
        "ifcb",
        "pyifcbclient",
        "ifcbclient",
        [(r"(?<![\w.])ifcbclient\b", "sciwire.ifcb")],
        checkout_files=["test_ifcbclient.py"],
        literal=[("192.168.1.100", "127.0.0.1")],
        pythonpath=".",
    ),
    "command": Suite(
        "command",
        "cryosparc-tools 4.7.1",
        "cryosparc.command",
        [],
        checkout_files=[
            "tests/__init__.py",
            "tests/conftest.py",
            "tests/test_command.py",
            "tests/test_job.py",
            "tests/test_tools.py",
            "tests/data",
        ],
        preamble=_command_preamble,
    ),
}


def _installed_folder(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"compat: {package} is not installed (make compat installs it)")
    return Path(next(iter(spec.submodule_search_locations)))


def stage(suite: Suite, checkout: Path | None, original: bool, into: Path) -> Path:
    """Copy ``suite`` into ``into`` with its import lines rewritten; return the test folder."""
    (into / "conftest.py").write_text(GUARD)
    (into / "pytest.ini").write_text(PYTEST_INI)
    dest = into / f"{suite.name}_suite"
    if suite.wheel_tests is not None:
        shutil.copytree(
            _installed_folder(suite.wheel_tests), dest, ignore=shutil.ignore_patterns("__pycache__")
        )
    else:
        if checkout is None:
            need = f"needs --checkout PATH (a checkout of {suite.original})"
            raise SystemExit(f"compat: {suite.name} {need}")
        dest.mkdir()
        for rel in suite.checkout_files:
            src = checkout / rel
            target = dest / Path(rel).name
            if src.is_dir():
                shutil.copytree(src, target)
            elif src.exists():
                shutil.copyfile(src, target)
            elif not rel.endswith("__init__.py"):
                why = f"is {checkout} a checkout of {suite.original}?"
                raise SystemExit(f"compat: {src} not found; {why}")
        (dest / "__init__.py").touch()
    for path in dest.rglob("*.py"):
        text = path.read_text()
        for old, new in suite.literal:
            text = text.replace(old, new)
        if not original:
            text = rewrite_imports(text, suite.rules, suite.module, "sciwire." + suite.name)
        if suite.preamble is not None and path.name == "conftest.py":
            text = suite.preamble(original) + text
        path.write_text(text)
    return dest


def run(suite: Suite, checkout: Path | None, original: bool, extra: list[str]) -> int:
    """Stage and run one suite; return pytest's exit code."""
    with tempfile.TemporaryDirectory(prefix=f"compat-{suite.name}-") as tmp:
        dest = stage(suite, checkout, original, Path(tmp))
        cmd = [sys.executable, "-m", "pytest", str(dest), "-p", "no:cacheprovider"]
        if suite.markers:
            cmd += ["-m", suite.markers]
        if suite.deselect:
            cmd += ["-k", suite.deselect]
        env = dict(os.environ)
        if suite.pythonpath and checkout is not None and original:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(checkout / suite.pythonpath), env.get("PYTHONPATH")) if p
            )
        target = suite.original if original else "sciwire"
        print(f"== {suite.name}: {suite.original}'s suite against {target}", flush=True)
        return subprocess.call(cmd + extra, cwd=tmp, env=env)


def main(argv: list[str] | None = None) -> int:
    """The command line: ``compat.py SUITE... [--checkout PATH] [--original] [-- pytest args]``."""
    args = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in args:
        at = args.index("--")
        args, extra = args[:at], args[at + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suites", nargs="+", choices=sorted(SUITES))
    parser.add_argument("--checkout", type=Path, help="a checkout of the original's repository")
    parser.add_argument("--original", action="store_true", help="run against the original library")
    ns = parser.parse_args(args)
    worst = 0
    for name in ns.suites:
        worst = max(worst, run(SUITES[name], ns.checkout, ns.original, extra))
    return worst


if __name__ == "__main__":
    raise SystemExit(main())
