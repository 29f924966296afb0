"""The command row of ``sciwire demo``: a simulated command_core, a client that
discovers it, creates and enqueues a job and watches it to completion."""

from __future__ import annotations

import time

from sciwire.command._client import CommandClient
from sciwire.command._simulator import simulated_servers
from sciwire.demo import DemoRow

__all__ = ["run"]

LICENSE = "00000000-0000-4000-8000-000000000000"


def run() -> DemoRow:
    """Run the demo row (about 0.1 s of simulated job time at speed 50)."""
    _, servers = simulated_servers(base_port=0, license_id=LICENSE, speed=50.0)
    core = servers[0].start_background()
    try:
        with CommandClient(
            "command_core",
            "127.0.0.1",
            core.port,
            headers={"License-ID": LICENSE},
            timeout=10,
            retries=1,
        ) as cli:
            methods = len(cli._endpoints)
            ok = cli.hello_world() == {"hello": "world"}
            user = cli.get_id_by_email_password("user@example.com", "password")
            job = cli.make_job(
                job_type="homo_abinit", project_uid="P1", workspace_uid="W1", user_id=user
            )
            cli.enqueue_job(project_uid="P1", job_uid=job, lane="default", user_id=user)
            seen = ["building"]
            deadline = time.monotonic() + 5.0
            status = "queued"
            while time.monotonic() < deadline:
                status = cli.get_job("P1", job, "status")["status"]
                if status != seen[-1]:
                    seen.append(status)
                if status in ("completed", "failed", "killed"):
                    break
                time.sleep(0.005)
            ok = ok and status == "completed" and "queued" in seen and "running" in seen
    finally:
        core.stop_background()
    return DemoRow(
        "command",
        f"simulated command_core on 127.0.0.1:{core.port}, keep-alive CommandClient",
        f"discovered {methods} methods; job P1-{job}: {' -> '.join(seen)}",
        ok,
    )
