"""The board simulator: one container per board in the inventory's `sim` group.

Each board is a debootstrapped Debian bookworm with sshd and an unprivileged `edge` user who
may sudo, reachable only on a 127.0.0.1 port (the inventory's `ansible_port`). Boards of
another architecture (the arm64 RK3588) run under qemu-user through binfmt_misc. The
controller's SSH key is generated here and each board's host key is read from the board
over the container runtime (out of band, as one would from a serial console) into a
known_hosts file that Ansible uses with strict host key checking.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from edgeship import host
from edgeship.errors import EdgeshipError
from edgeship.fleet import signing
from edgeship.fleet.sim import light
from edgeship.waiting import run_bounded, wait_until
from edgeship_runtime.files import atomic_write_text

BOARD_FILES = Path(__file__).resolve().parent / "board"
BOARD_PACKAGES = ("openssh-server", "sudo")
# A board with edgeship_sim_init=systemd boots systemd as PID 1 (sshd then runs as ssh.service),
# as every real board OS does, so services and their sandboxing are real there.
SYSTEMD_PACKAGES = ("systemd", "systemd-sysv", "dbus")
INITS = ("sshd", "systemd")
LABEL = "io.edgeship.sim"
SSH_READY_TIMEOUT_S = 180
SSH_PROBE_TIMEOUT_S = 60  # one ssh to a board (an emulated one logs in slowly)
LOCAL_TOOL_TIMEOUT_S = 120  # ansible-inventory, ssh-keygen: local, done in seconds
DOCKER_ARCH = {"arm64": "arm64", "aarch64": "arm64", "amd64": "amd64", "x86_64": "amd64"}


@dataclass(frozen=True)
class Board:
    host: str
    port: int
    arch: str  # Debian architecture: amd64, arm64
    model: str
    compatible: str
    disk_mb: int | None
    init: str = "sshd"  # what runs as PID 1: sshd alone, or systemd

    @property
    def container(self) -> str:
        return f"edgeship-sim-{self.host}"


def state_dir(inventory: Path) -> Path:
    return inventory.resolve().parent / ".sim"


def _inventory(inventory: Path) -> dict:
    """The inventory as Ansible reads it (`ansible-inventory --list`: groups, and every host's variables)."""
    if not inventory.is_file():
        raise EdgeshipError(f"inventory {inventory} does not exist; pass --inventory PATH (the repository ships inventory.ini)")
    sources = ["-i", str(inventory)]
    if (state_dir(inventory) / light.FILE).is_file():  # the light boards `sim.up --light N` started beside the named ones
        sources += ["-i", str(state_dir(inventory) / light.FILE)]
    result = run_bounded([_ansible_bin("ansible-inventory"), *sources, "--list"], LOCAL_TOOL_TIMEOUT_S,
                         f"ansible-inventory reading {inventory}", "an inventory plugin or script in it may hang: run "
                         f"`ansible-inventory -i {inventory} --list` by hand", capture_output=True, text=True,
                         env=dict(os.environ, ANSIBLE_INVENTORY_UNPARSED_WARNING="False"))
    if result.returncode != 0:
        last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
        raise EdgeshipError(f"ansible-inventory could not read {inventory}: {last}")
    return json.loads(result.stdout)


def board_modes(inventory: Path) -> set[tuple[str, str]]:
    """Every (target, quant) a board of the inventory runs: its own, its CPU fallback's and its
    edgeship_extra_targets (a malformed list is the release plan's to refuse, naming the fix)."""
    hostvars = _inventory(inventory).get("_meta", {}).get("hostvars", {})
    modes = set()
    for variables in hostvars.values():
        for target, quant in (("edgeship_target", "edgeship_quant"), ("edgeship_cpu_target", "edgeship_cpu_quant")):
            if variables.get(target) and variables.get(quant):
                modes.add((str(variables[target]), str(variables[quant])))
        extras = variables.get("edgeship_extra_targets")
        if isinstance(extras, list):
            modes |= {(str(pair[0]), str(pair[1])) for pair in extras if isinstance(pair, list) and len(pair) == 2}
    return modes


def _group_hosts(data: dict, group: str, seen: frozenset = frozenset()) -> list[str]:
    """A group's hosts with its child groups' (the light boards are a child of [sim]), in order, once each."""
    hosts = list(data.get(group, {}).get("hosts", []))
    for child in data.get(group, {}).get("children", []):
        if child not in seen:
            hosts += [h for h in _group_hosts(data, child, seen | {group}) if h not in hosts]
    return hosts


def read_inventory(inventory: Path) -> list[Board]:
    """The boards of the inventory's `sim` group, with their simulator settings."""
    data = _inventory(inventory)
    hostvars = data.get("_meta", {}).get("hostvars", {})
    boards = []
    for name in _group_hosts(data, "sim"):
        variables = hostvars.get(name, {})
        try:
            port = int(variables["ansible_port"])
        except (KeyError, ValueError):
            raise EdgeshipError(f"{inventory}: simulated board {name} needs ansible_port=<free 127.0.0.1 port>, e.g. ansible_port=22201") from None
        arch = DOCKER_ARCH.get(str(variables.get("edgeship_arch", "x86_64")))
        if arch is None:
            raise EdgeshipError(f"{inventory}: {name} has edgeship_arch={variables['edgeship_arch']!r}; a simulated board is x86_64 or aarch64")
        disk = variables.get("edgeship_sim_disk_mb")
        init = str(variables.get("edgeship_sim_init", "sshd"))
        if init not in INITS:
            raise EdgeshipError(f"{inventory}: {name} has edgeship_sim_init={init!r}; a simulated board boots {' or '.join(INITS)}")
        boards.append(Board(host=name, port=port, arch=arch, model=str(variables.get("edgeship_board_model", f"edgeship simulated board {name}")),
                            compatible=str(variables.get("edgeship_board_compatible", "")), disk_mb=int(disk) if disk else None, init=init))
    if not boards:
        raise EdgeshipError(f"{inventory} has no hosts in group [sim]; add the simulated boards there (see the shipped inventory.ini)")
    return boards


def _ansible_bin(name: str) -> str:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def ensure_emulation(arch: str) -> None:
    """Boards of a foreign architecture need qemu-user through binfmt_misc (set up by `./dev setup`)."""
    from edgeship.images.base import host_arch

    if arch == host_arch():
        return
    if arch not in host.QEMU:
        raise EdgeshipError(f"no emulator known for {arch} boards on a {host_arch()} controller")
    if not host.emulation_ready(arch):
        raise EdgeshipError(f"{arch} boards need qemu-user emulation ({host.binfmt_entry(arch)} is not enabled with the C flag); "
                            f"run `./dev setup` as root (installs qemu-user-static and binfmt-support and registers {host.QEMU[arch]})")


def board_image(client, arch: str, init: str = "sshd") -> str:
    """Build (or reuse) edgeship/board:bookworm-<arch>-<key> from the debootstrapped base
    (with systemd in it for boards that boot it)."""
    import docker

    from edgeship.images.base import PACKAGES, ensure_base_image

    base = ensure_base_image(client, arch=arch, packages=PACKAGES + BOARD_PACKAGES + (SYSTEMD_PACKAGES if init == "systemd" else ()))
    base_id = client.images.get(base).id
    digest = hashlib.sha256(base_id.encode())
    files = sorted(p for p in BOARD_FILES.iterdir() if p.is_file())
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    tag = f"edgeship/board:bookworm-{arch}-{digest.hexdigest()[:12]}"
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for path in files:
            tar.add(path, arcname=path.name)
    context.seek(0)
    print(f"edgeship: building {tag} (base {base})", flush=True)
    try:
        client.images.build(fileobj=context, custom_context=True, tag=tag, buildargs={"BASE_IMAGE": base}, rm=True,
                            labels={LABEL: "board", f"{LABEL}.arch": arch, "org.opencontainers.image.base.name": base})
    except docker.errors.BuildError as error:
        lines = [chunk.get("stream", "").strip() for chunk in error.build_log if chunk.get("stream")]
        raise EdgeshipError(f"building {tag} failed: {error.msg}; last output: {lines[-1] if lines else ''}") from None
    return tag


def board_images(inventory: Path, client=None, kinds: set[tuple[str, str]] | None = None) -> dict[tuple[str, str], str]:
    """The board image of each (architecture, init) (default: every one in the inventory's
    [sim] group), emulation enabled first where it is foreign; built when missing."""
    from edgeship.images.engine import ensure_engine

    client = client or ensure_engine()
    images = {}
    for arch, init in sorted(kinds or {(b.arch, b.init) for b in read_inventory(inventory)}):
        ensure_emulation(arch)
        images[arch, init] = board_image(client, arch, init)
    return images


def _controller_key(folder: Path) -> Path:
    key = folder / "controller_ed25519"
    if not key.exists():
        folder.mkdir(parents=True, exist_ok=True)
        made = run_bounded(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgeship-controller", "-f", str(key)], LOCAL_TOOL_TIMEOUT_S,
                           f"ssh-keygen making {key}", "is the machine out of entropy or the folder on a stuck mount?")
        if made.returncode != 0:
            raise EdgeshipError(f"ssh-keygen could not make {key} (exit {made.returncode}); see its message above")
    return key


ALLOWED_SIGNERS = "/etc/edgeship/allowed_signers"  # where edgeship_release looks (trust.yml installs it on real boards)


def _install_allowed_signers(container, content: str) -> None:
    """The release signing key's allowed-signers line, put on the board as root over the container
    runtime: out of band, as a board's image would be provisioned, and never by a bundle."""
    folder, name = ALLOWED_SIGNERS.rsplit("/", 1)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        data = content.encode()
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid = len(data), 0o644, 0, 0
        tar.addfile(info, io.BytesIO(data))
    made = container.exec_run(["install", "-d", "-o", "root", "-g", "root", "-m", "0755", folder], user="root")
    if made.exit_code != 0 or not container.put_archive(folder, archive.getvalue()):
        raise EdgeshipError(f"{container.name}: could not install {ALLOWED_SIGNERS} ({made.output.decode(errors='replace').strip()}); "
                            f"see `docker logs {container.name}`")


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _container(client, name: str):
    import docker

    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        return None


def _start_board(client, board: Board, image: str, public_key: str):
    container = _container(client, board.container)
    # The controller key is authorized when the container is created; a board another checkout
    # started (its own .sim/ key) would refuse this one's SSH, so it is replaced too.
    key_id = hashlib.sha256(public_key.encode()).hexdigest()[:16]
    if container is not None and (container.image.tags[:1] != [image] or container.labels.get(f"{LABEL}.port") != str(board.port)
                                  or container.labels.get(f"{LABEL}.controller-key") != key_id):
        print(f"edgeship: {board.host}: its image, port or controller key changed; replacing the container", flush=True)
        container.remove(force=True)
        container = None
    if container is None:
        if not _port_free(board.port):
            raise EdgeshipError(f"127.0.0.1:{board.port} (ansible_port of {board.host}) is in use by another program; "
                                "pick a free port in the inventory")
        tmpfs = {"/home/edge/edgeship": f"size={board.disk_mb}m,uid=1000,gid=1000,mode=0755,exec"} if board.disk_mb else {}
        systemd = {}
        if board.init == "systemd":
            # What systemd needs to be PID 1 in a container: its own /run, the cgroup tree,
            # and CAP_SYS_ADMIN for the mount namespaces that units' sandboxing (ProtectSystem,
            # PrivateTmp, ...) sets up. It stops on SIGRTMIN+3.
            tmpfs.update({"/run": "exec,mode=0755", "/run/lock": "mode=1777"})
            systemd = dict(cap_add=["SYS_ADMIN"], security_opt=["seccomp=unconfined", "apparmor=unconfined"], stop_signal="SIGRTMIN+3",
                           volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}})
        container = client.containers.create(
            image, name=board.container, hostname=board.host, detach=True,
            ports={"22/tcp": ("127.0.0.1", board.port)},
            environment={"EDGESHIP_AUTHORIZED_KEY": public_key, "EDGESHIP_BOARD_MODEL": board.model,
                         "EDGESHIP_BOARD_COMPATIBLE": board.compatible, "EDGESHIP_SIM_INIT": board.init, "container": "docker"},
            labels={LABEL: "board", f"{LABEL}.host": board.host, f"{LABEL}.port": str(board.port), f"{LABEL}.arch": board.arch,
                    f"{LABEL}.controller-key": key_id},
            tmpfs=tmpfs or None, **systemd,
        )
    container.reload()
    if container.status != "running":
        container.start()
    return container


def _host_keys(container, timeout_s: float) -> list[str]:
    def probe():
        container.reload()
        if container.status != "running":
            raise EdgeshipError(f"{container.name} stopped while booting: {container.logs(tail=5).decode(errors='replace').strip()}")
        result = container.exec_run(["sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"])
        keys = [line for line in result.output.decode().splitlines() if line.startswith(("ssh-", "ecdsa-"))]
        return keys if result.exit_code == 0 and len(keys) >= 2 else None

    return wait_until(probe, timeout_s, f"{container.name} made no SSH host keys within {SSH_READY_TIMEOUT_S} s; see `docker logs {container.name}`")


def ssh_command(folder: Path, board: Board, *command: str) -> list[str]:
    return ["ssh", "-i", str(folder / "controller_ed25519"), "-o", f"UserKnownHostsFile={folder / 'known_hosts'}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-p", str(board.port),
            "edge@127.0.0.1", *command]


def _wait_ssh(folder: Path, board: Board, timeout_s: float) -> None:
    last = {"stderr": ""}

    def probe():
        try:
            result = subprocess.run(ssh_command(folder, board, "true"), capture_output=True, text=True, timeout=SSH_PROBE_TIMEOUT_S)
        except subprocess.TimeoutExpired:  # sshd took the connection but did not log in: ask again while time is left
            last["stderr"] = f"an ssh probe got no answer within {SSH_PROBE_TIMEOUT_S} s"
            return False
        last["stderr"] = result.stderr.strip()
        return result.returncode == 0

    wait_until(probe, timeout_s,
               lambda: f"{board.host}: SSH on 127.0.0.1:{board.port} did not answer within {SSH_READY_TIMEOUT_S} s ({last['stderr']})")


def _write_known_hosts(folder: Path, boards: list[Board], keys: dict[str, list[str]]) -> None:
    lines = []
    for board in boards:
        for key in keys.get(board.host, []):
            kind, blob = key.split()[:2]
            lines.append(f"[127.0.0.1]:{board.port} {kind} {blob}\n")
    atomic_write_text(folder / "known_hosts", "".join(lines))


def up(inventory: Path, only: list[str] | None = None, light_boards: int | None = None, light_prefix: str = light.DEFAULT_PREFIX,
       light_port: int = light.DEFAULT_PORT_BASE) -> list[Board]:
    """Start the inventory's [sim] boards (or `only` these). light_boards=N first (re)writes the
    light boards' inventory with N boards (0: none), removing light boards it no longer lists."""
    from edgeship.images.engine import ensure_engine

    if light_boards is not None:
        light.check(light_boards, light_prefix, light_port)
        kept = set(light.hosts(light_boards, light_prefix))
        if (state_dir(inventory) / light.FILE).is_file():
            old = [h for h in _inventory(inventory).get(light.GROUP, {}).get("hosts", []) if h not in kept]
            if old:
                down(inventory, old)
        light.write(state_dir(inventory), light_boards, light_prefix, light_port)
    boards = read_inventory(inventory)
    unknown = sorted(set(only or ()) - {b.host for b in boards})
    if unknown:
        raise EdgeshipError(f"--boards {','.join(unknown)}: not in the [sim] group of {inventory}; it has {', '.join(b.host for b in boards)}")
    chosen = [b for b in boards if not only or b.host in only]
    client = ensure_engine()
    folder = state_dir(inventory)
    key = _controller_key(folder)
    public_key = key.with_suffix(".pub").read_text().strip()
    signers = signing.allowed_signers(signing.make_key(folder / "release_ed25519"))  # what deploy.yml signs with
    images = board_images(inventory, client, {(b.arch, b.init) for b in chosen})
    started = time.monotonic()
    containers = {b.host: _start_board(client, b, images[b.arch, b.init], public_key) for b in chosen}
    for container in containers.values():
        _install_allowed_signers(container, signers)

    def remaining() -> float:
        return max(1.0, started + SSH_READY_TIMEOUT_S - time.monotonic())

    keys = {}
    for board in boards:  # every running board of the inventory stays in known_hosts
        container = containers.get(board.host) or _container(client, board.container)
        if container is not None:
            container.reload()
            if container.status == "running":
                keys[board.host] = _host_keys(container, remaining())
    _write_known_hosts(folder, boards, keys)
    for board in chosen:
        _wait_ssh(folder, board, remaining())
    return chosen


def status(inventory: Path) -> list[dict]:
    from edgeship.images.engine import ensure_engine

    client = ensure_engine()
    folder = state_dir(inventory)
    rows = []
    for board in read_inventory(inventory):
        container = _container(client, board.container)
        state = container.status if container is not None else "absent"
        ssh = "-"
        if state == "running" and (folder / "known_hosts").exists():
            try:
                probe = subprocess.run(ssh_command(folder, board, "uname", "-m"), capture_output=True, text=True, timeout=SSH_PROBE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                ssh = f"no answer within {SSH_PROBE_TIMEOUT_S} s"
            else:
                ssh = probe.stdout.strip() if probe.returncode == 0 else "refused: " + (probe.stderr.strip().splitlines() or ["?"])[-1]
        rows.append({"host": board.host, "container": board.container, "state": state, "port": board.port, "arch": board.arch,
                     "model": board.model, "ssh": ssh})
    return rows


def down(inventory: Path, only: list[str] | None = None, purge: bool = False) -> list[str]:
    from edgeship.images.engine import ensure_engine

    client = ensure_engine()
    removed = []
    for board in read_inventory(inventory):
        if only and board.host not in only:
            continue
        container = _container(client, board.container)
        if container is not None:
            container.remove(force=True)
            removed.append(board.host)
    if not only:  # the light boards went with the rest: their inventory goes too
        (state_dir(inventory) / light.FILE).unlink(missing_ok=True)
    if purge:
        shutil.rmtree(state_dir(inventory), ignore_errors=True)
    return removed
