"""The bridge's TOML configuration, read into checked dataclasses.

Example (docs/fleet.md has the full reference)::

    [nats]
    servers = ["nats://127.0.0.1:4222"]
    user = "bridge"
    password = "secret"

    [bridge]
    name = "shore-1"

    [stream]
    name = "SCIWIRE"
    max_age = 604800          # seconds
    max_bytes = 1073741824
    replicas = 1

    [[ifcb]]
    serial = "111-111-111"
    url = "ws://127.0.0.1:8092/ifcbHub"
    commands = ["routine:", "refresh"]    # allowed relay prefixes; true: any; false: none

    [[rig]]
    name = "cam"
    uri = "udp://127.0.0.1:11001"
    commands = ["init", "start", "stop", "status", "info", "cleanup"]

    [samp]
    name = "desk"
    lockfile = "/home/me/.samp"         # optional: SAMP_HUB or ~/.samp otherwise
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sciwire.fleet._schema import FleetError, valid_token

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "RIG_OPS",
    "BridgeConfig",
    "ConfigError",
    "IfcbSpec",
    "NatsSpec",
    "RigSpec",
    "SampSpec",
    "StreamSpec",
    "load_config",
    "parse_config",
]

#: the Services steps a rig command may run
RIG_OPS = ("init", "start", "stop", "status", "info", "cleanup")


class ConfigError(FleetError, ValueError):
    """The bridge configuration is invalid."""


@dataclass
class NatsSpec:
    """How to reach NATS: servers, credentials, TLS."""

    servers: list[str] = field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds: str | None = None
    nkey_seed: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    #: the JetStream domain to publish into (a leaf node's own, for instance)
    domain: str | None = None

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`sciwire.fleet.connect_options`."""
        creds: Any = None
        if self.user is not None:
            creds = (self.user, self.password or "")
        elif self.creds or self.nkey_seed or self.token:
            creds = {"creds": self.creds, "nkey_seed": self.nkey_seed, "token": self.token}
        tls = None
        if self.tls_ca or self.tls_cert:
            tls = {"ca": self.tls_ca, "cert": self.tls_cert, "key": self.tls_key}
        return {"servers": self.servers, "credentials": creds, "tls": tls}


@dataclass
class StreamSpec:
    """The JetStream stream the bridge creates (or updates) and publishes into."""

    name: str = "SCIWIRE"
    #: the subjects the stream captures (default: every fleet event subject); narrow
    #: them to partition instruments over several streams
    subjects: list[str] | None = None
    max_age: float = 7 * 86400.0
    max_bytes: int = 1 << 30
    max_msgs: int = -1
    max_msg_size: int = 1 << 20
    replicas: int = 1
    storage: str = "file"
    duplicate_window: float = 120.0


@dataclass
class IfcbSpec:
    """One IFCB hub and instrument."""

    serial: str
    url: str
    commands: bool | list[str] = False

    def allows(self, message: str) -> bool:
        """True if a relay of *message* is allowed."""
        if isinstance(self.commands, bool):
            return self.commands
        return any(message.startswith(prefix) for prefix in self.commands)


@dataclass
class RigSpec:
    """One remote rig, reached through the rig echo protocol."""

    name: str
    uri: str
    commands: list[str] = field(default_factory=list)
    timeout: float = 10.0


@dataclass
class SampSpec:
    """A SAMP hub the bridge joins as a snooping client."""

    name: str = "samp"
    lockfile: str | None = None


@dataclass
class BridgeConfig:
    """Everything ``sciwire fleet bridge`` needs."""

    name: str = "bridge"
    nats: NatsSpec = field(default_factory=NatsSpec)
    stream: StreamSpec = field(default_factory=StreamSpec)
    ifcb: list[IfcbSpec] = field(default_factory=list)
    rigs: list[RigSpec] = field(default_factory=list)
    samp: SampSpec | None = None
    #: seconds between health reports on sciwire.health.<name>
    health_interval: float = 1.0
    #: events held while NATS is slow or away; more are dropped (and counted)
    max_pending: int = 100_000
    #: seconds to wait for a JetStream publish acknowledgement before publishing again
    ack_timeout: float = 5.0
    #: acknowledgements outstanding at once
    window: int = 4096


def _take(table: Mapping[str, Any], cls: Any, where: str) -> Any:
    known = set(cls.__dataclass_fields__)
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"[{where}]: unknown keys {sorted(unknown)}")
    try:
        return cls(**table)
    except TypeError as exc:
        raise ConfigError(f"[{where}]: {exc}") from exc


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not valid_token(value):
        raise ConfigError(f"{where}: {value!r} must be a word without dots, spaces or * >")
    return value


def parse_config(data: Mapping[str, Any]) -> BridgeConfig:
    """Check a parsed TOML document and build the :class:`BridgeConfig`.

    Raises:
        ConfigError: unknown keys, wrong types, duplicate or unusable names.
    """
    data = dict(data)
    unknown = set(data) - {"bridge", "nats", "stream", "ifcb", "rig", "samp"}
    if unknown:
        raise ConfigError(f"unknown sections {sorted(unknown)}")
    bridge = dict(data.get("bridge", {}))
    config = BridgeConfig()
    for key, value in bridge.items():
        if key not in BridgeConfig.__dataclass_fields__ or key in ("nats", "stream", "ifcb"):
            raise ConfigError(f"[bridge]: unknown key {key!r}")
        setattr(config, key, value)
    config.name = _name(config.name, "[bridge] name")
    if config.name == "ping":
        raise ConfigError("[bridge] name 'ping' is reserved")
    config.nats = _take(data.get("nats", {}), NatsSpec, "nats")
    if isinstance(config.nats.servers, str):
        config.nats.servers = [config.nats.servers]
    config.stream = _take(data.get("stream", {}), StreamSpec, "stream")
    _name(config.stream.name, "[stream] name")
    subjects = config.stream.subjects
    if subjects is not None and (
        not isinstance(subjects, list)
        or not subjects
        or not all(isinstance(x, str) and x.startswith("sciwire.") for x in subjects)
        or any(x.startswith("sciwire.cmd.") or x.startswith("sciwire.health.") for x in subjects)
    ):
        raise ConfigError(
            "[stream] subjects must be a list of fleet event subjects "
            "(sciwire.ifcb/rig/samp..., never sciwire.cmd or sciwire.health)"
        )
    if config.stream.storage not in ("file", "memory"):
        raise ConfigError("[stream] storage must be 'file' or 'memory'")
    config.ifcb = [_take(t, IfcbSpec, "ifcb") for t in data.get("ifcb", [])]
    config.rigs = [_take(t, RigSpec, "rig") for t in data.get("rig", [])]
    if "samp" in data:
        config.samp = _take(data["samp"], SampSpec, "samp")
    seen: set[tuple[str, str]] = set()
    for spec in config.ifcb:
        _name(spec.serial, "[[ifcb]] serial")
        if not isinstance(spec.commands, bool | list):
            raise ConfigError("[[ifcb]] commands must be true, false or a list of prefixes")
        if ("ifcb", spec.serial) in seen:
            raise ConfigError(f"IFCB {spec.serial} listed twice")
        seen.add(("ifcb", spec.serial))
    for rig in config.rigs:
        _name(rig.name, "[[rig]] name")
        bad = [op for op in rig.commands if op not in RIG_OPS]
        if bad:
            raise ConfigError(f"rig {rig.name}: unknown commands {bad}; choose from {RIG_OPS}")
        if ("rig", rig.name) in seen:
            raise ConfigError(f"rig {rig.name} listed twice")
        seen.add(("rig", rig.name))
    if config.samp is not None:
        _name(config.samp.name, "[samp] name")
    for key in ("max_pending", "window"):
        if not isinstance(getattr(config, key), int) or getattr(config, key) < 1:
            raise ConfigError(f"[bridge] {key} must be a positive integer")
    return config


def load_config(path: str | Path) -> BridgeConfig:
    """Read and check a bridge TOML file.

    Raises:
        ConfigError: unreadable, not TOML, or invalid.
    """
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return parse_config(data)
