"""A simulated CryoSPARC instance: command_core, command_vis and command_rtp.

A small but real in-memory model: users, projects, workspaces, lanes and jobs whose
status goes building -> queued -> launched -> running -> completed (or failed) as
time passes. Time comes from an injectable clock and the lifecycle is computed when
a job is read, so tests can move the clock instead of sleeping; ``speed`` scales the
stage durations (the ``--fast`` mode of ``sciwire command serve`` and the demo).

A job whose params include ``sim_fail: true`` (or whose type is ``sim_fail``) ends
``failed`` instead of ``completed``.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from sciwire.command._server import CommandServer, RouteRequest, RouteResponse

__all__ = ["STAGES", "CommandCoreSim", "CommandVisSim", "simulated_servers"]

#: Seconds spent in each stage after enqueue_job, at speed 1.
STAGES: tuple[tuple[str, float], ...] = (("queued", 1.0), ("launched", 1.0), ("running", 3.0))
TERMINAL = frozenset({"completed", "failed", "killed"})
VERSION = "v4.7.1"


class SimError(Exception):
    """An error the simulated command_core reports (as CryoSPARC would, by name)."""


class CommandCoreSim:
    """The state and methods of a simulated ``command_core``.

    Args:
        clock: returns the current time in seconds (``time.time`` by default).
        speed: stage durations are divided by this (``speed=50`` finishes a job in 0.1 s).
        version: what ``get_running_version`` returns.
        email, password: the one user account the simulator knows.
        lanes: the scheduler lane names.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        speed: float = 1.0,
        version: str = VERSION,
        email: str = "user@example.com",
        password: str = "password",
        lanes: tuple[str, ...] = ("default", "gpu"),
    ) -> None:
        self._clock = clock
        self.speed = speed
        self.version = version
        self._lock = threading.RLock()
        self._users = {email: (password, "u1")}
        self._lanes = list(lanes)
        self._projects: dict[str, dict[str, Any]] = {}
        self._workspaces: dict[tuple[str, str], dict[str, Any]] = {}
        self._jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self._config = {"job_types_available": ["import_movies", "homo_abinit", "sim_fail"]}
        self.create_empty_project("u1", "/sim/projects", title="Simulated project")
        self.create_empty_workspace("P1", "u1", title="Workspace 1")

    # -- helpers ------------------------------------------------------------------

    def _project(self, project_uid: str) -> dict[str, Any]:
        try:
            return self._projects[project_uid]
        except KeyError:
            raise SimError(f"Project {project_uid} does not exist") from None

    def _job(self, project_uid: str, job_uid: str) -> dict[str, Any]:
        self._project(project_uid)
        try:
            job = self._jobs[(project_uid, job_uid)]
        except KeyError:
            raise SimError(f"Job {project_uid}-{job_uid} does not exist") from None
        self._advance(job)
        return job

    def _advance(self, job: dict[str, Any]) -> None:
        """Bring a job's status up to date with the clock."""
        start = job.get("_queued")
        if start is None or job["status"] in TERMINAL or job.get("_frozen"):
            return
        elapsed = (self._clock() - start) * self.speed
        entered = 0.0  # when (in scaled seconds after enqueue) the current stage began
        for status, seconds in STAGES:
            if entered:
                job.setdefault(f"{status}_at", start + entered / self.speed)
            if elapsed < entered + seconds:
                job["status"] = status
                return
            entered += seconds
        params = job["params_spec"]
        failed = job["job_type"] == "sim_fail" or params.get("sim_fail", {}).get("value")
        job["status"] = "failed" if failed else "completed"
        job[f"{job['status']}_at"] = start + entered / self.speed

    def _public(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in doc.items() if not k.startswith("_")}

    # -- procedures ---------------------------------------------------------------

    def hello_world(self) -> dict[str, str]:
        """Say hello (a connectivity check)."""
        return {"hello": "world"}

    def test_connection(self) -> bool:
        """True: the server is up."""
        return True

    def get_running_version(self) -> str:
        """The CryoSPARC version this server claims to be."""
        return self.version

    def get_id_by_email_password(self, email: str, password: str) -> str:
        """The user id for an email and password."""
        found = self._users.get(email)
        if found is None or found[0] != password:
            raise SimError("Invalid email or password")
        return found[1]

    def get_config_var(self, name: str) -> Any:
        """A configuration variable."""
        return self._config.get(name)

    def get_job_sections(self) -> list[dict[str, Any]]:
        """The job types, by section."""
        return [
            {"name": "sim", "title": "Simulated", "contains": self._config["job_types_available"]}
        ]

    def get_scheduler_lanes(self) -> list[dict[str, Any]]:
        """The scheduler lanes."""
        return [{"name": n, "title": f"Lane {n}", "desc": "", "type": "node"} for n in self._lanes]

    def get_scheduler_targets(self) -> list[dict[str, Any]]:
        """One worker target per lane."""
        return [
            {
                "lane": n,
                "name": f"{n}-worker",
                "hostname": f"{n}-worker",
                "type": "node",
                "gpus": [{"id": 0, "mem": 24 * 2**30, "name": "Simulated GPU"}],
            }
            for n in self._lanes
        ]

    def create_empty_project(
        self,
        owner_user_id: str,
        project_container_dir: str,
        title: str | None = None,
        desc: str | None = None,
    ) -> str:
        """Create a project; returns its uid (P1, P2...)."""
        with self._lock:
            uid = f"P{len(self._projects) + 1}"
            self._projects[uid] = {
                "uid": uid,
                "title": title or uid,
                "description": desc or "",
                "owner_user_id": owner_user_id,
                "project_dir": f"{project_container_dir.rstrip('/')}/CS-{uid.lower()}",
                "created_at": self._clock(),
                "workspaces": 0,
                "jobs": 0,
            }
            return uid

    def get_project(self, project_uid: str) -> dict[str, Any]:
        """The project document."""
        with self._lock:
            return self._public(self._project(project_uid))

    def get_project_dir_abs(self, project_uid: str) -> str:
        """The project directory."""
        with self._lock:
            return str(self._project(project_uid)["project_dir"])

    def create_empty_workspace(
        self,
        project_uid: str,
        created_by_user_id: str,
        created_by_job_uid: str | None = None,
        title: str | None = None,
        desc: str | None = None,
    ) -> str:
        """Create a workspace; returns its uid (W1, W2...)."""
        with self._lock:
            project = self._project(project_uid)
            project["workspaces"] += 1
            uid = f"W{project['workspaces']}"
            self._workspaces[(project_uid, uid)] = {
                "uid": uid,
                "project_uid": project_uid,
                "title": title or uid,
                "description": desc or "",
                "created_by_user_id": created_by_user_id,
                "created_at": self._clock(),
            }
            return uid

    def get_workspace(self, project_uid: str, workspace_uid: str) -> dict[str, Any]:
        """The workspace document."""
        with self._lock:
            try:
                return self._public(self._workspaces[(project_uid, workspace_uid)])
            except KeyError:
                raise SimError(f"Workspace {project_uid}-{workspace_uid} does not exist") from None

    def make_job(
        self,
        job_type: str,
        project_uid: str,
        workspace_uid: str,
        user_id: str,
        created_by_job_uid: str | None = None,
        params: dict[str, Any] | None = None,
        input_group_connects: dict[str, Any] | None = None,
        title: str | None = None,
        desc: str | None = None,
        **_: Any,
    ) -> str:
        """Create a job in ``building`` status; returns its uid (J1, J2...)."""
        with self._lock:
            project = self._project(project_uid)
            if (project_uid, workspace_uid) not in self._workspaces:
                raise SimError(f"Workspace {project_uid}-{workspace_uid} does not exist")
            project["jobs"] += 1
            uid = f"J{project['jobs']}"
            self._jobs[(project_uid, uid)] = {
                "uid": uid,
                "project_uid": project_uid,
                "workspace_uids": [workspace_uid],
                "job_type": job_type,
                "title": title or "",
                "description": desc or "",
                "status": "building",
                "created_by_user_id": user_id,
                "created_by_job_uid": created_by_job_uid,
                "created_at": self._clock(),
                "params_spec": {k: {"value": v} for k, v in (params or {}).items()},
                "input_slot_groups": [],
                "output_result_groups": [],
                "errors_run": [],
                "connections": dict(input_group_connects or {}),
                "queued_to_lane": None,
            }
            return uid

    def get_job(self, project_uid: str, job_uid: str, *fields: str) -> dict[str, Any]:
        """The job document (or just *fields* of it, plus uid and project_uid)."""
        with self._lock:
            doc = self._public(self._job(project_uid, job_uid))
        if fields:
            keep = {"uid", "project_uid", *fields}
            return {k: v for k, v in doc.items() if k in keep}
        return doc

    def get_job_status(self, project_uid: str, job_uid: str) -> str:
        """Just the job's status."""
        with self._lock:
            return str(self._job(project_uid, job_uid)["status"])

    def get_job_dir_abs(self, project_uid: str, job_uid: str) -> str:
        """The job directory."""
        with self._lock:
            self._job(project_uid, job_uid)
            return f"{self._projects[project_uid]['project_dir']}/{job_uid}"

    def enqueue_job(
        self,
        project_uid: str,
        job_uid: str,
        lane: str | None = None,
        user_id: str | None = None,
        hostname: str | None = None,
        gpus: Any = False,
        no_check_inputs_ready: bool = False,
    ) -> str:
        """Queue a building job on a lane; returns the new status ("queued")."""
        with self._lock:
            job = self._job(project_uid, job_uid)
            if job["status"] != "building":
                raise SimError(f"Job {project_uid}-{job_uid} is {job['status']}, not building")
            if lane is not None and lane not in self._lanes:
                raise SimError(f"Unknown lane {lane!r}; lanes are {self._lanes}")
            now = self._clock()
            job.update(
                status="queued",
                queued_at=now,
                _queued=now,
                queued_to_lane=lane or self._lanes[0],
                queued_by_user_id=user_id,
            )
            job.pop("_frozen", None)
            return "queued"

    def kill_job(
        self, project_uid: str, job_uid: str, killed_by_user_id: str | None = None
    ) -> None:
        """Kill a queued or running job."""
        with self._lock:
            job = self._job(project_uid, job_uid)
            if job["status"] in TERMINAL or job["status"] == "building":
                raise SimError(f"Job {project_uid}-{job_uid} is {job['status']}; cannot kill")
            job.update(
                status="killed", killed_at=self._clock(), killed_by_user_id=killed_by_user_id
            )

    def clear_job(self, project_uid: str, job_uid: str) -> None:
        """Return a job to ``building``."""
        with self._lock:
            job = self._job(project_uid, job_uid)
            for key in [k for k in job if k.endswith("_at") and k != "created_at"]:
                del job[key]
            job.pop("_queued", None)
            job.pop("_frozen", None)
            job.update(status="building", queued_to_lane=None)

    def set_job_status(self, project_uid: str, job_uid: str, status: str) -> None:
        """Force a job's status (the lifecycle stops advancing it)."""
        allowed = {"building", "queued", "launched", "started", "running", "waiting", *TERMINAL}
        if status not in allowed:
            raise SimError(f"Invalid status {status!r}")
        with self._lock:
            job = self._job(project_uid, job_uid)
            job.update(status=status, _frozen=True)

    def job_set_param(
        self, project_uid: str, job_uid: str, param_name: str, param_new_value: Any
    ) -> bool:
        """Set a parameter of a building job; returns True."""
        with self._lock:
            job = self._job(project_uid, job_uid)
            if job["status"] != "building":
                raise SimError(f"Job {project_uid}-{job_uid} is not building; cannot set params")
            job["params_spec"][param_name] = {"value": param_new_value}
            return True

    def job_connect_group(self, project_uid: str, source_group: str, dest_group: str) -> bool:
        """Connect ``J1.group`` to ``J2.input``; returns True."""
        with self._lock:
            src_job, _, _ = source_group.partition(".")
            dst_job, _, dst_name = dest_group.partition(".")
            self._job(project_uid, src_job)
            job = self._job(project_uid, dst_job)
            job["connections"].setdefault(dst_name, []).append(source_group)
            return True


class CommandVisSim:
    """A simulated ``command_vis``: external jobs and project files (in memory)."""

    def __init__(self, core: CommandCoreSim) -> None:
        self._core = core
        self._files: dict[tuple[str, str], bytes] = {}

    def hello_world(self) -> dict[str, str]:
        """Say hello."""
        return {"hello": "world"}

    def create_external_job(
        self,
        project_uid: str,
        workspace_uid: str,
        user: str,
        title: str | None = None,
        desc: str | None = None,
    ) -> str:
        """Create an External job; returns its uid."""
        return self._core.make_job(
            "snowflake", project_uid, workspace_uid, user, title=title, desc=desc
        )

    def project_mkdir(
        self, project_uid: str, path_rel: str, parents: bool = False, exist_ok: bool = False
    ) -> str:
        """Pretend to make a directory; returns its path."""
        return f"{self._core.get_project_dir_abs(project_uid)}/{path_rel}"

    def list_project_files(
        self, project_uid: str, prefix: str = "", recursive: bool = False
    ) -> list[str]:
        """Files stored for a project under *prefix*."""
        return sorted(p for (uid, p) in self._files if uid == project_uid and p.startswith(prefix))

    def put_file(self, project_uid: str, path: str, data: bytes) -> None:
        """Store a file (for tests and the demo; not a CryoSPARC method)."""
        self._files[(project_uid, path)] = bytes(data)

    async def get_project_file(self, request: RouteRequest) -> RouteResponse:
        """``/get_project_file``: JSON body ``{"project_uid", "path"}``, replies with the bytes."""
        body = await request.json()
        key = (str(body.get("project_uid")), str(body.get("path")))
        if key not in self._files:
            message = json.dumps({"error": f"no file {key[1]}"}).encode()
            return RouteResponse(message, status=404, content_type="application/json")
        return RouteResponse(self._files[key])


def simulated_servers(
    *,
    host: str = "127.0.0.1",
    base_port: int = 39000,
    license_id: str | None = None,
    speed: float = 1.0,
    clock: Callable[[], float] = time.time,
) -> tuple[CommandCoreSim, list[CommandServer]]:
    """The simulator and its three (unstarted) servers: core, vis, rtp on base+2, +3, +5."""
    core = CommandCoreSim(clock=clock, speed=speed)
    vis = CommandVisSim(core)
    port = (lambda off: base_port + off) if base_port else (lambda off: 0)
    servers = [
        CommandServer(core, host=host, port=port(2), license_id=license_id, name="command_core"),
        CommandServer(
            host=host, port=port(3), license_id=license_id, name="command_vis", target=vis
        ),
        CommandServer(host=host, port=port(5), license_id=license_id, name="command_rtp"),
    ]
    servers[1].unexpose("put_file")
    servers[1].unexpose("get_project_file")
    servers[1].route("POST", "/get_project_file", vis.get_project_file)
    servers[2].expose(vis.hello_world, name="hello_world")
    return core, servers
