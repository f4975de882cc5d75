"""Light boards: many plain x86_64 boards beside the inventory's named ones, for fleet-sized runs.

A light board is the simulator's cheapest board: the shared x86_64 board image, sshd alone as
PID 1 (no systemd), a CPU target (tflite fp16, as a Raspberry Pi runs). `invoke sim.up --light N`
writes them into an inventory of their own, <inventory dir>/.sim/light.ini, which the simulator
reads beside the user's inventory (so sim.status and sim.down see them) and which the playbooks
take on its own (`invoke fleet.deploy --inventory .sim/light.ini`): the user's inventory file is
never rewritten. The file carries its own connection settings with absolute paths, because
Ansible's inventory_dir for its hosts is .sim/ itself.
"""

from __future__ import annotations

from pathlib import Path

from edgeship.errors import EdgeshipError
from edgeship_runtime import names
from edgeship_runtime.files import atomic_write_text

GROUP = "light"
FILE = "light.ini"
MAX_BOARDS = 99  # two-digit names: sim-l01 .. sim-l99
DEFAULT_PREFIX = "sim-l"
DEFAULT_PORT_BASE = 22400  # sim-l01 on 22401; the named boards use 22201-22299


def hosts(count: int, prefix: str = DEFAULT_PREFIX) -> list[str]:
    return [f"{prefix}{number:02d}" for number in range(1, count + 1)]


def check(count: int, prefix: str, port_base: int) -> None:
    if not 0 <= count <= MAX_BOARDS:
        raise EdgeshipError(f"--light {count}: give a number of light boards from 0 to {MAX_BOARDS} (0 removes them)")
    try:
        names.check(prefix[:62], "--light-prefix", "e.g. --light-prefix sim-l")  # + two digits: a board name by the one rule
    except names.UnsafeName as error:
        raise EdgeshipError(str(error)) from None
    if len(prefix) > 62:
        raise EdgeshipError(f"--light-prefix {prefix!r} is {len(prefix)} characters; a board name is at most 64, so give a prefix of up to 62")
    if port_base < 1024 or port_base + count > 65535:
        raise EdgeshipError(f"--light-port {port_base}: the boards take ports {port_base + 1}-{port_base + count}; "
                            f"give a base from 1024 to {65535 - count}")


def inventory_text(state: Path, count: int, prefix: str, port_base: int) -> str:
    state = state.resolve()
    lines = [f"{host} ansible_port={port_base + i}" for i, host in enumerate(hosts(count, prefix), start=1)]
    return f"""# Written by `invoke sim.up --light {count}`: {count} light simulated boards (x86_64, sshd only, tflite fp16).
# The simulator reads this file beside its inventory; deploy with `--inventory {state / FILE}`.
[{GROUP}]
{chr(10).join(lines)}

[edgeship_boards:children]
{GROUP}

[sim:children]
{GROUP}

[{GROUP}:vars]
edgeship_target=tflite
edgeship_quant=fp16
edgeship_cpu_target=tflite
edgeship_cpu_quant=fp16
edgeship_arch=x86_64
edgeship_python="3.11"
edgeship_board_model="edgeship light simulated board"
ansible_host=127.0.0.1
ansible_user=edge
ansible_python_interpreter=/usr/bin/python3
ansible_ssh_private_key_file={state / "controller_ed25519"}
ansible_ssh_common_args=-o UserKnownHostsFile={state / "known_hosts"} -o StrictHostKeyChecking=yes
edgeship_signing_key={state / "release_ed25519"}
edgeship_allow_cpu_fallback=true
edgeship_bench_throttle=1
edgeship_bench_threads=1
"""


def write(state: Path, count: int, prefix: str = DEFAULT_PREFIX, port_base: int = DEFAULT_PORT_BASE) -> Path | None:
    """The light boards' inventory (None, and the file gone, for 0 boards)."""
    check(count, prefix, port_base)
    path = state / FILE
    if count == 0:
        path.unlink(missing_ok=True)
        return None
    state.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, inventory_text(state, count, prefix, port_base))
    return path
