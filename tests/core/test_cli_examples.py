"""Every ```python block of the README and the manual runs, as written, on loopback.

A block that talks to ``ws://127.0.0.1:8092`` (the README's IFCB example) gets
``sciwire ifcb sim`` started for it, on a free port written into a copy of the block.
Each block runs in a fresh interpreter in a temporary folder with its own HOME (SAMP
lockfiles, downloads), so examples cannot rot without a test failing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clirun import running
from tests.helpers import scale

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SIM_URL = "ws://127.0.0.1:8092"

#: What a block's output must contain (its comments say so), by a phrase in its code.
EXPECT = {
    "print(cli.add(2, 3), cli.add.__doc__)": ["5 Add two numbers."],
    "print(cli.add(2, 3))": ["5\n", "TypeError"],
    "JsocEmulator() as emu, HttpJsonClient": ["hmi.v_45s"],
    "drms.Client(emu.url": ["T_REC", "QUALITY", "hmi.m_720s"],
    "SAMPHubServer(web_profile=False)": ["'samp.status': 'samp.ok'"],
    'client.on(("valuechanged", "pausestate"), on_pause)': ["running"],
    "ROIs, PeakA": ["ROIs, PeakA 0."],
    "print(await services.stop())  # {'cam'": ["{'cam': [None], 'ephys': [None]}"],
    'print("rig got", data)': ["rig got [20]"],
    "isinstance(err, OSError)": ["True True"],
}


def blocks() -> list[tuple[str, str]]:
    found = []
    for source in SOURCES:
        for i, match in enumerate(BLOCK.finditer(source.read_text())):
            found.append((f"{source.name}#{i + 1}", match.group(1)))
    return found


@pytest.mark.slow
@pytest.mark.parametrize(("where", "code"), blocks(), ids=[w for w, _ in blocks()])
def test_example_runs(where: str, code: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SAMP_HUB"}
    env["HOME"] = str(tmp_path)
    if SIM_URL in code:
        with running("ifcb", "sim", "--port", "0", "--rate", "20", "--triggers", "3") as sim:
            url = sim.wait_line("IFCB simulator listening on").split()[4]
            out = _run(
                code.replace(SIM_URL, url.removesuffix("/ifcbHub").replace("http", "ws")),
                tmp_path,
                env,
            )
    elif NATS_URL in code:
        out = _run_with_fleet(code, tmp_path, env)
    else:
        out = _run(code, tmp_path, env)
    for phrase, wanted in EXPECT.items():
        if phrase in code:
            for text in wanted:
                assert text in out, (where, out)
    if "print(top, left, len(image.data)" in code:  # one "top left bytes PeakA" line per ROI
        assert re.search(r"^\d+ \d+ \d+ 0\.\d+$", out, re.M), out


NATS_URL = "nats://127.0.0.1:4222"


def _run_with_fleet(code: str, tmp_path: Path, env: dict[str, str]) -> str:
    """Run a fleet example against what it expects: a NATS server, an IFCB simulator
    (serial 111-111-111), a rig named cam and a bridge between them, each a real process on
    loopback (the server has no users: the example's credentials are not checked)."""
    from sciwire.fleet import NatsServer

    with (
        NatsServer() as nats,
        running("ifcb", "sim", "--port", "0", "--rate", "20") as sim,
        running("rig", "serve", "udp://127.0.0.1:0", "--reply", "--name", "cam") as rig,
    ):
        url = sim.wait_line("IFCB simulator listening on").split()[4].replace("http", "ws")
        rig_uri = rig.wait_line("listening on").split()[-1]
        config = tmp_path / "bridge.toml"
        config.write_text(
            f'[nats]\nservers = ["{nats.url}"]\n'
            f'[[ifcb]]\nserial = "111-111-111"\nurl = "{url}"\ncommands = true\n'
            f'[[rig]]\nname = "cam"\nuri = "{rig_uri}"\ncommands = ["status"]\n'
        )
        with running("fleet", "bridge", str(config)) as bridge:
            bridge.wait_line("instruments -> stream", err=True)
            return _run(code.replace(NATS_URL, nats.url), tmp_path, env)


def _run(code: str, cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=scale(120),
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def test_every_readme_package_has_a_running_example() -> None:
    names = " ".join(code for where, code in blocks() if where.startswith("README"))
    for package in ("command", "drms", "samp", "ifcb", "rig"):
        assert f"from sciwire.{package} import" in names
