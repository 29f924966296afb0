"""Helpers for the fleet tests: bridge configurations for simulators and rigs, their TOML
text, and bounded waits on a bridge. The fixtures built on them are in conftest.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sciwire.fleet import Bridge, BridgeConfig, IfcbSpec, NatsSpec, RigSpec
from sciwire.ifcb import IFCBSimulator
from sciwire.rig import RemoteRig
from tests.helpers import scale

ALL_RIG_OPS = ["init", "start", "stop", "status", "info", "cleanup"]


def bridge_config(
    servers: list[str], sims: list[IFCBSimulator], rigs: list[RemoteRig], **options: Any
) -> BridgeConfig:
    """A bridge for the simulators and rigs, every command allowed."""
    config = BridgeConfig(
        name=options.pop("name", "test"),
        nats=NatsSpec(servers=servers, **options.pop("nats", {})),
        ifcb=[IfcbSpec(s.serial, f"ws://127.0.0.1:{s.port}/ifcbHub", commands=True) for s in sims],
        rigs=[RigSpec(r.com.name, r.com.server_uri, commands=ALL_RIG_OPS) for r in rigs],
        health_interval=0.2,
    )
    for key, value in options.items():
        if key == "stream":
            for k, v in value.items():
                setattr(config.stream, k, v)
        else:
            setattr(config, key, value)
    return config


def config_toml(config: BridgeConfig) -> str:
    """The TOML text of *config* (for bridges run as `sciwire fleet bridge`)."""
    lines = [
        "[bridge]",
        f'name = "{config.name}"',
        f"health_interval = {config.health_interval}",
        "[nats]",
        "servers = [" + ", ".join(f'"{s}"' for s in config.nats.servers) + "]",
    ]
    if config.nats.domain:
        lines.append(f'domain = "{config.nats.domain}"')
    lines += ["[stream]", f'name = "{config.stream.name}"', f"replicas = {config.stream.replicas}"]
    for spec in config.ifcb:
        lines += ["[[ifcb]]", f'serial = "{spec.serial}"', f'url = "{spec.url}"', "commands = true"]
    for rig in config.rigs:
        ops = ", ".join(f'"{op}"' for op in rig.commands)
        lines += ["[[rig]]", f'name = "{rig.name}"', f'uri = "{rig.uri}"', f"commands = [{ops}]"]
    return "\n".join(lines) + "\n"


async def until(
    predicate: Callable[[], Any], what: Callable[[], Any], timeout: float = 20.0
) -> None:
    """Poll *predicate* until it holds; after *timeout* (scaled) fail with *what()*."""
    deadline = asyncio.get_running_loop().time() + scale(timeout)
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(what())
        await asyncio.sleep(0.02)


async def wait_connected(bridge: Bridge, timeout: float = 20.0) -> None:
    """Wait until the bridge reports every instrument connected."""
    await until(
        lambda: bridge.health()["connected"] >= len(bridge.instruments),
        lambda: f"instruments not connected: {bridge.health()['instruments']}",
        timeout,
    )
