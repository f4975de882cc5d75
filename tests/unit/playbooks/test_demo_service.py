"""The demo's systemd unit, rendered from the role's template as Ansible renders it, checked by
systemd's own tools (`systemd-analyze verify` and its offline security review).

How systemd splits ExecStart into arguments is read with this test's own parser (`systemd_words`):
no systemd runs on the machines these tests run on (PID 1 of the CI container is not systemd, so
no unit can be loaded for `systemctl show -p ExecStart`, and `systemd --test` exits 1 there
without a word), and `systemd-analyze verify` checks the line but prints no arguments. So the
parser is strict (whatever systemd would expand or treat specially fails the test rather than
being guessed at) and is itself checked against the examples and the escape table of
systemd.syntax(7) "Quoting" and systemd.service(5) "Command lines" (systemd 252's pages)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

TEMPLATES = ROOT / "playbooks" / "roles" / "edgeship_demo" / "templates"


def render(tmp_path, **overrides) -> str:
    import jinja2

    # Ansible's template module: trim_blocks on, undefined variables are errors, `quote` is shlex.quote
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True)
    env.filters["quote"] = shlex.quote
    executable = tmp_path / "edgeship-runtime"
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    values = dict(edgeship_demo_source="/dev/video0", edgeship_demo_listen="127.0.0.1:8080", edgeship_demo_service="edgeship-demo",
                  edgeship_demo_state="/home/edge/edgeship/demo", edgeship_demo_entry={"model": "digits"}, edgeship_demo_user="edge",
                  edgeship_demo_group=1000,
                  edgeship_demo_root="/home/edge/edgeship", edgeship_demo_device_allow=["char-drm rw", "/dev/rknpu rw"],
                  edgeship_demo_argv=[str(executable), "demo", "/home/edge/edgeship/current/artifacts/digits rk3588", "--source", "/dev/video0"])
    values.update(overrides)
    return env.get_template("edgeship-demo.service.j2").render(**values)


def test_the_unit_runs_unprivileged_with_only_camera_and_accelerator_devices(tmp_path):
    unit = render(tmp_path)
    lines = set(unit.splitlines())
    for directive in ("User=edge", "NoNewPrivileges=true", "ProtectSystem=strict", "PrivateTmp=true", "DevicePolicy=closed",
                      "DeviceAllow=char-video4linux rw", "DeviceAllow=char-drm rw", "DeviceAllow=/dev/rknpu rw", "CapabilityBoundingSet="):
        assert directive in lines, directive
    assert not any(line.startswith("DeviceAllow=") for line in lines - {"DeviceAllow=char-video4linux rw", "DeviceAllow=char-drm rw",
                                                                         "DeviceAllow=/dev/rknpu rw"})
    assert "ReadWritePaths=/home/edge/edgeship/demo -/home/edge/edgeship/engines" in lines
    assert '"/home/edge/edgeship/current/artifacts/digits rk3588"' in unit  # arguments are quoted, systemd's way


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit_and_rates_its_exposure_low(tmp_path):
    unit = tmp_path / "edgeship-demo.service"
    unit.write_text(render(tmp_path))
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True, text=True)
    exposure = re.search(r"Overall exposure level for edgeship-demo\.service: ([0-9.]+)", security.stdout)
    if exposure is None and "offline" in security.stderr:
        pytest.skip(f"this systemd-analyze has no --offline review: {security.stderr.strip()}")
    assert exposure, security.stdout + security.stderr
    print(f"systemd-analyze security: exposure {exposure.group(1)} (0 = locked down, 10 = unprotected)")
    assert float(exposure.group(1)) <= 3.0


HOSTILE = ["x\nExecStartPre=+/bin/sh -c 'id > /tmp/pwned'", "%h $HOME ${HOME}", 'a "quoted" \\ word\\', ";", "\rtail", "-"]


# systemd.syntax(7), table 1 "Supported escapes" (the numeric ones are read in _escape)
ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"', "'": "'", "s": " "}
NUMERIC = {"x": (2, 16), "u": (4, 16), "U": (8, 16)}  # and \nnn: three octal digits
SEPARATORS = " \t\n\r"


class NotSystemdPlain(AssertionError):
    """The line holds something systemd expands or treats specially, or refuses: the template must not emit it."""


def systemd_words(line: str) -> list[str]:
    """ExecStart's words as systemd reads them: split at unquoted whitespace, a word may be wrapped
    whole in double or single quotes, C escapes as in systemd.syntax(7)'s table; then, in each word,
    `%%` is a percent sign (any other specifier would expand) and `$$` a dollar sign (any other `$`
    is a variable). A `;` word (a second command), a quote inside a word, an unknown escape or a NUL
    raise NotSystemdPlain."""
    words, i = [], 0
    while True:
        while i < len(line) and line[i] in SEPARATORS:
            i += 1
        if i == len(line):
            return words
        quote = line[i] if line[i] in "\"'" else None
        i += 1 if quote else 0
        chars: list[str] = []
        while True:
            if i == len(line):
                if quote:
                    raise NotSystemdPlain(f"an unterminated {quote} in {line!r}")
                break
            char = line[i]
            if quote and char == quote:
                i += 1
                if i < len(line) and line[i] not in SEPARATORS:
                    raise NotSystemdPlain(f"a closing quote not followed by whitespace in {line!r}")
                break
            if not quote and char in SEPARATORS:
                break
            if not quote and char in "\"'":
                raise NotSystemdPlain(f"a quote inside a word in {line!r}")
            if char == "\\":
                i, char = _escape(line, i + 1)
            else:
                i += 1
            chars.append(char)
        word = "".join(chars)
        if quote is None and word == ";":
            raise NotSystemdPlain(f"a ';' word starts a second command in {line!r}")
        words.append(_expanded(word))


def _escape(line: str, i: int) -> tuple[int, str]:
    """The character an escape stands for and where the line goes on (i: just after the backslash)."""
    kind = line[i:i + 1]
    if kind in ESCAPES:
        return i + 1, ESCAPES[kind]
    if kind and (kind in NUMERIC or kind in string.octdigits):
        digits, base = NUMERIC.get(kind, (3, 8))
        start = i + 1 if kind in NUMERIC else i
        text = line[start:start + digits]
        if len(text) != digits or any(c not in (string.octdigits if base == 8 else string.hexdigits) for c in text):
            raise NotSystemdPlain(f"a malformed escape \\{line[i:start + digits]} in {line!r}")
        value = int(text, base)
        if value == 0:
            raise NotSystemdPlain(f"an escaped NUL in {line!r}")
        return start + digits, chr(value)
    raise NotSystemdPlain(f"an unknown escape \\{kind} in {line!r}")


def _expanded(word: str) -> str:
    """Specifiers (at load) and variables (at start) in a word: only the doubled, literal forms pass."""
    for sign in "%$":
        parts = word.split(sign * 2)
        if any(sign in part for part in parts):
            raise NotSystemdPlain(f"{word!r} holds a {sign} that systemd would expand")
        word = sign.join(parts)
    return word


@pytest.mark.parametrize(("line", "words"), [
    # systemd.syntax(7), its example of quoting: Setting="something" "some thing" "..."
    ('"something" "some thing" "…"', ["something", "some thing", "…"]),
    # systemd.service(5): ExecStart=sh -c 'dmesg | tac'
    ("sh -c 'dmesg | tac'", ["sh", "-c", "dmesg | tac"]),
    # systemd.syntax(7), table 1, every escape in turn
    ('"\\a\\b\\f\\n\\r\\t\\v" "\\\\ \\" \\\' \\s" "\\x41\\101\\u00e9\\U0001F600"', ["\a\b\f\n\r\t\v", "\\ \" '  ", "AA\u00e9\U0001F600"]),
    # systemd.service(5): "To pass a literal dollar sign, use $$"; systemd.unit(5): "%%" is a single percent sign
    ('"$$HOME" "100%%" \'$${x}\'', ["$HOME", "100%", "${x}"]),
    ("  /bin/echo\t'two two'  ", ["/bin/echo", "two two"]),
])
def test_the_parser_reads_systemds_documented_examples_as_documented(line, words):
    assert systemd_words(line) == words


@pytest.mark.parametrize("line", [
    "echo one ; echo \"two two\"",  # systemd.service(5): two commands
    "echo $ONE $TWO ${TWO}",  # systemd.service(5): variables, expanded at start
    '"%h"',  # a specifier, expanded at load
    '"\\q"', '"\\x4"', '"\\x00"', '"open', '"a"b', 'a"b"',
])
def test_the_parser_refuses_what_systemd_would_expand_split_or_reject(line):
    with pytest.raises(NotSystemdPlain):
        systemd_words(line)


def test_no_value_adds_a_line_to_the_unit_and_every_argument_reaches_the_demo_as_it_was(tmp_path):
    argv = [str(tmp_path / "edgeship-runtime"), "demo", *HOSTILE, "nul\x00dropped"]
    unit = render(tmp_path, edgeship_demo_argv=argv, edgeship_demo_entry={"model": "digits\nExecStartPre=+/bin/sh"},
                  edgeship_demo_device_allow=["char-drm rw\nExecStartPre=+/bin/sh"])
    keys = [line.split("=", 1)[0] for line in unit.splitlines() if line and not line.startswith(("#", "["))]
    assert "ExecStartPre" not in keys and keys.count("ExecStart") == 1, keys
    assert not any(line.startswith("ExecStartPre") for line in unit.splitlines())
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))[len("ExecStart="):]
    assert re.fullmatch(r'"(?:[^"\\]|\\.)*"(?: "(?:[^"\\]|\\.)*")*', exec_start), exec_start  # every word double-quoted
    assert systemd_words(exec_start) == [*argv[:-1], "nuldropped"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_reads_the_quoted_arguments_without_a_warning(tmp_path):
    unit = tmp_path / "edgeship-demo.service"
    unit.write_text(render(tmp_path, edgeship_demo_argv=[str(tmp_path / "edgeship-runtime"), "demo", *HOSTILE]))
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr


GOOD = {"edgeship_demo_service": "edgeship-demo", "edgeship_demo_model": "digits", "edgeship_demo_text_model": "",
        "edgeship_demo_entries": [{"model": "digits", "artifact": "digits-rk3588-int8", "cpu_artifact": "digits-onnx-fp32", "note": None}],
        "edgeship_demo_text_entries": [], "edgeship_demo_root": "/home/edge/edgeship", "edgeship_demo_token_file": "",
        "edgeship_demo_user": "edge", "edgeship_demo_group": 1000, "edgeship_demo_listen": "0.0.0.0:8080", "edgeship_demo_video": "",
        "edgeship_demo_allow_hosts": ["board.local"], "edgeship_demo_device_allow": ["char-drm rw", "/dev/rknpu rw"],
        "edgeship_demo_argv": ["/home/edge/edgeship/current/venv/bin/edgeship-runtime", "demo", "/home/edge/edgeship/current/artifacts/x",
                               "--fallback-for", "no rk3588 artifact of digits; its CPU artifact runs"]}
PLAY = """- name: Check the demo's values as the role does
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Check them
      ansible.builtin.include_role:
        name: edgeship_demo
        tasks_from: validate
"""


@pytest.mark.parametrize("overrides,message", [
    ({}, None),
    ({"edgeship_demo_model": "digits\nExecStartPre=+/bin/sh -c id"},
     r'edgeship_demo_model "digits\\nExecStartPre=\+/bin/sh -c id" on localhost is not a safe name'),
    ({"edgeship_demo_model": "digits\n"}, r"edgeship_demo_model .* is not a safe name"),  # `$` would match before that newline
    ({"edgeship_demo_entries": [{"model": "x]\n[Service]", "artifact": "a", "cpu_artifact": None}]}, r"the release's model .* is not a safe name"),
    ({"edgeship_demo_entries": [{"model": "x", "artifact": "../../etc", "cpu_artifact": None}]}, r"the release's artifact .* is not a safe name"),
    ({"edgeship_demo_service": "demo\nUser=root"}, r"edgeship_demo_service .* is not a safe name"),
    ({"edgeship_demo_root": "/home/my edge"}, r"edgeship_demo_root .* must be an absolute path"),
    ({"edgeship_demo_user": "root\nExecStartPre=+/bin/sh"}, r"edgeship_demo_user .* must be a user or group name"),
    ({"edgeship_demo_listen": "0.0.0.0:8080\nExecStartPre=+/bin/sh"}, r"edgeship_demo_listen .* must be HOST:PORT"),
    ({"edgeship_demo_video": "/videos/clip.mp4\nx"}, r"the extension of edgeship_demo_video .* must be a plain extension"),
    ({"edgeship_demo_allow_hosts": ["evil\nExecStartPre=+/bin/sh"]}, r"edgeship_demo_allow_hosts holds"),
    ({"edgeship_demo_device_allow": ["char-drm rw\nExecStartPre=+/bin/sh"]}, r"edgeship_demo_device_allow holds"),
    ({"edgeship_demo_argv": ["/x/edgeship-runtime", "demo", "--source", "/dev/video0\nExecStartPre=+/bin/sh"]},
     r"the demo's command line on localhost holds .*/dev/video0\\nExecStartPre"),
], ids=["good", "model-newline", "model-trailing-newline", "release-model", "release-artifact", "service", "root", "user", "listen", "video",
        "allow-host", "device", "argv"])
def test_the_role_refuses_values_that_would_change_the_unit(tmp_path, overrides, message):
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "vars.json").write_text(json.dumps({**GOOD, **overrides}))
    result = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "play.yml", "-e", "@vars.json"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, ANSIBLE_ROLES_PATH=str(ROOT / "playbooks" / "roles"), ANSIBLE_LOCALHOST_WARNING="false",
                                     ANSIBLE_NOCOLOR="1"))
    if message is None:
        assert result.returncode == 0, result.stdout[-3000:]
    else:
        assert result.returncode != 0 and re.search(message, result.stdout), result.stdout[-3000:]


STAND_IN = """#!{python}
# edgeship-runtime demo, as far as the role needs it: the real viewer's check of --listen, the
# token and --allow-host (edgeship_runtime.demo.guard), then the files a run leaves.
import argparse, json, os, sys
from edgeship_runtime.demo.guard import access_for
parser = argparse.ArgumentParser()
for flag in ("--listen", "--output", "--save-frame", "--predictions", "--token-file", "--source", "--fallback-for", "--duration"):
    parser.add_argument(flag)
parser.add_argument("--allow-host", action="append", default=[])
args, _ = parser.parse_known_args(sys.argv[2:])
access = access_for(args.listen, args.token_file, args.allow_host, environ={{}})
json.dump({{"argv": sys.argv[1:], "token": access.token, "names": sorted(access.names)}}, open(args.output + ".argv", "w"))
json.dump({{"error": None, "frames": {{"processed": 3, "dropped": 0}}, "backend": "onnxruntime", "fallback": None, "text_model": None,
           "source": {{"kind": "pattern"}}, "fps": 10.0, "bottleneck": {{"stage": "infer", "mean_ms": 1.0}}, "end_to_end": {{"p50_ms": 2.0}},
           "detections": None}}, open(args.output, "w"))
open(args.save_frame, "wb").write(b"jpeg")
open(args.predictions, "w").write("{{}}\\n")
"""
DEMO_PLAY = """- name: Run the demo role on this machine
  hosts: localhost
  connection: local
  gather_facts: true
  gather_subset: [min]
  roles:
    - role: edgeship_demo
"""


@pytest.mark.parametrize("listen,token", [("0.0.0.0:8080", True), ("127.0.0.1:8080", False)], ids=["beyond-loopback", "loopback"])
def test_beyond_loopback_the_role_makes_a_private_token_on_the_board_and_passes_it(tmp_path, listen, token):
    """The whole role on this machine (foreground mode), with a stand-in for the runtime that checks
    what it is given with the viewer's own rules."""
    root = tmp_path / "root"
    (root / "current" / "venv" / "bin").mkdir(parents=True)
    (root / "current" / "venv" / "bin" / "python").symlink_to(sys.executable)
    runtime = root / "current" / "venv" / "bin" / "edgeship-runtime"
    runtime.write_text(STAND_IN.format(python=sys.executable))
    runtime.chmod(0o755)
    (root / "current" / "release.json").write_text(json.dumps(
        {"bench": [{"model": "digits", "artifact": None, "cpu_artifact": "digits-onnx-fp32", "note": "no rk3588 artifact"}], "extras": ["demo"]}))
    (tmp_path / "play.yml").write_text(DEMO_PLAY)
    (tmp_path / "vars.json").write_text(json.dumps({
        "ansible_python_interpreter": sys.executable, "edgeship_demo_root": str(root), "edgeship_demo_mode": "foreground",
        "edgeship_demo_listen": listen, "edgeship_demo_results_dir": str(tmp_path / "results"), "edgeship_demo_allow_hosts": ["board.local"]}))
    tokens = []
    for _ in range(2):  # a second run keeps the token: a viewer's URL stays the same
        result = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "play.yml", "-e", "@vars.json"],
                                cwd=tmp_path, capture_output=True, text=True, timeout=300,
                                env=dict(os.environ, ANSIBLE_ROLES_PATH=str(ROOT / "playbooks" / "roles"), ANSIBLE_LOCALHOST_WARNING="false",
                                         ANSIBLE_NOCOLOR="1"))
        assert result.returncode == 0, result.stdout[-3000:]
        given = json.loads((root / "demo" / "stats.json.argv").read_text())
        token_file = root / "demo" / "viewer.token"
        if token:
            assert ("--token-file", str(token_file)) in zip(given["argv"], given["argv"][1:])
            assert (token_file.stat().st_mode & 0o777) == 0o600 and given["token"] == token_file.read_text().strip()
        else:
            assert "--token-file" not in given["argv"] and given["token"] is None and not token_file.exists()
        assert "board.local" in given["names"]
        tokens.append(given["token"])
    assert tokens[0] == tokens[1]
