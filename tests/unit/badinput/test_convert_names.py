"""Bad-input corpus, family `convert names`: names that would become folders, systemd units, shell
words or template values, given to `invoke convert` (--name, a model file's stem or folder) and
to `invoke build` (the conversions file's keys, names, suffixes and entries), and family
`fleet values`: what a user gives the fleet tasks, which becomes Ansible extra vars. Each ends
in one line, a non-zero exit, no traceback, before any container or playbook starts; nothing is
written anywhere (the whole test folder is compared before and after, and no canary appears)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edgeship.paths import REPO_ROOT
from tests.support import tiny_cnn
from tests.support.badinput import assert_one_clean_line, invoke_cli

PREFIX = "edgeship: error: "
SAFE = r"is not a safe name \(1-64 letters, digits, '\.', '_' or '-', starting with a letter or digit\)"
CANARY = "canary-ran"

# (kind, --name value, what the one line must say)
NAMES = [
    ("--name with ../", "../../x", r"--name '\.\./\.\./x' " + SAFE + r"; e\.g\. --name x$"),
    ("--name with /", "a/b", r"--name 'a/b' " + SAFE + r"; e\.g\. --name a-b$"),
    ("--name with a newline", "digits\nExecStartPre=+/bin/sh", r"--name 'digits\\nExecStartPre=\+/bin/sh' " + SAFE),
    ("--name with a leading dash", "-rf", r"--name '-rf' " + SAFE + r"; e\.g\. --name rf$"),
    ("--name empty", "", r"--name '' " + SAFE + r"; e\.g\. --name model$"),
    ("--name too long", "n" * 65, r"--name 'n{65}' " + SAFE + r"; e\.g\. --name n{64}$"),
    ("--name with Jinja braces", f"{{{{ lookup('pipe', 'touch {CANARY}') }}}}", r"--name \"\{\{ lookup\('pipe', 'touch canary-ran'\) \}\}\" " + SAFE),
    ("--name with unicode", "modèle", r"--name 'modèle' " + SAFE + r"; e\.g\. --name mod-le$"),
    ("--name hidden", ".hidden", r"--name '\.hidden' " + SAFE + r"; e\.g\. --name hidden$"),
    ("--name ..", "..", r"--name '\.\.' " + SAFE + r"; e\.g\. --name model$"),
    ("--name with a space", "my model", r"--name 'my model' " + SAFE + r"; e\.g\. --name my-model$"),
    ("--name with shell syntax", "$(id)", r"--name '\$\(id\)' " + SAFE + r"; e\.g\. --name id$"),
    ("--name with a systemd specifier", "a%h", r"--name 'a%h' " + SAFE + r"; e\.g\. --name a-h$"),
    ("--name with a NUL-like control", "a\tb", r"--name 'a\\tb' " + SAFE),
    # safe alone, but its artifact folder n{40}-tflite-fp32-<key> would be 65 characters
    ("--name too long for its artifact folder", "n" * 40, r"--name 'n{40}' is 40 characters, over the 39 that target tflite --quant fp32 "
     r"leaves it: its artifact folder NAME-tflite-fp32-KEY \(KEY: 12 characters\) names a folder on the boards and must keep to 64; "
     r"e\.g\. --name n{39}$"),
]
# (kind, model path under the test folder, what the one line must say)
STEMS = [
    ("model stem with a space", "my model.onnx", r"the model's name \(taken from .*my model\.onnx\) 'my model' " + SAFE + r"; pass --name my-model$"),
    ("model folder of model.onnx", "bad;name/model.onnx",
     r"the model's name \(taken from .*model\.onnx\) 'bad;name' " + SAFE + r"; pass --name bad-name$"),
    ("model stem with a leading dash", "-x.onnx", r"the model's name \(taken from .*-x\.onnx\) '-x' " + SAFE + r"; pass --name x$"),
    ("model stem too long for its artifact folder", "s" * 50 + ".onnx",
     r"the model's name \(taken from .*s{50}\.onnx\) 's{50}' is 50 characters, over the 39 that target tflite --quant fp32 leaves it: "
     r".*; pass --name s{39}$"),
]
MODEL = '[models.{key}]\npath = "tiny.onnx"\nsha256 = "{sha}"\n{extra}'
MATRIX = '[[matrix]]\nmodels = ["{key}"]\ntargets = ["onnx"]\nquants = ["fp32"]\n{extra}'
# (kind, conversions file text, build arguments, what the one line must say)
CONFIGS = [
    ("toml model key with ../", MODEL.format(key='"../x"', sha="{sha}", extra="") + MATRIX.format(key="../x", extra=""), [],
     r"edgeship\.toml: \[models\.\.\./x\]: the model's key '\.\./x' " + SAFE),
    ("toml model name with a newline", MODEL.format(key="tiny", sha="{sha}", extra='name = "a\\nb"\n') + MATRIX.format(key="tiny", extra=""), [],
     r"edgeship\.toml: \[models\.tiny\]: name 'a\\nb' " + SAFE),
    ("toml suffix with /", MODEL.format(key="tiny", sha="{sha}", extra="") + MATRIX.format(key="tiny", extra='suffix = "a/b"\n'), [],
     r"edgeship\.toml: \[\[matrix\]\] row 1: suffix 'a/b' " + SAFE),
    ("toml entry name too long", MODEL.format(key="m" * 60, sha="{sha}", extra="") + MATRIX.format(key="m" * 60, extra=""), [],
     r"edgeship\.toml: \[\[matrix\]\] row 1: the entry name 'm{60}-onnx-fp32' " + SAFE),
    ("toml model key with Jinja", MODEL.format(key='"{{x}}"', sha="{sha}", extra="") + MATRIX.format(key="{{x}}", extra=""), [],
     r"edgeship\.toml: \[models\.\{\{x\}\}\]: the model's key '\{\{x\}\}' " + SAFE),
    ("toml not UTF-8", "[models.tiny]\npath = \"\udcff\"\n", [], r"edgeship\.toml is not UTF-8 text \(byte \d+\); save it as UTF-8$"),
    ("toml nested too deeply", "a = " + "[" * 5000 + "]" * 5000 + "\n", [], r"edgeship\.toml nests its arrays or tables too deeply to read"),
    ("build --entries with a path", MODEL.format(key="tiny", sha="{sha}", extra="") + MATRIX.format(key="tiny", extra=""), ["--entries", "../x"],
     r"edgeship\.toml has no entry '\.\./x'; its entries: tiny-onnx-fp32$"),
]
# (kind, invoke arguments, what the one line must say): the fleet tasks, refused before ansible-playbook starts
FLEET = [
    ("deploy --models with Jinja", ["fleet.deploy", "--models", f"{{{{ lookup('pipe', 'touch {CANARY}') }}}}", "--artifacts", "{d}"],
     r"--models \"\{\{ lookup\('pipe'\" " + SAFE),
    ("deploy --models with ../", ["fleet.deploy", "--models", "digits,../x", "--artifacts", "{d}"], r"--models '\.\./x' " + SAFE),
    ("deploy --artifacts missing", ["fleet.deploy", "--artifacts", "{d}/absent"], r"--artifacts .*absent is not an existing folder; check the path$"),
    ("deploy --limit an option", ["fleet.deploy", "--artifacts", "{d}", "--limit=--become"], r"--limit '--become' is not an Ansible host pattern"),
    ("deploy --inventory missing", ["fleet.deploy", "--artifacts", "{d}", "--inventory", "{d}/absent.ini"],
     r"--inventory .*absent\.ini is not an existing file or folder"),
    ("demo --model with a newline", ["fleet.demo", "--model", "a\nb"], r"--model 'a\\nb' " + SAFE),
    ("demo --duration nan", ["fleet.demo", "--duration", "nan"], r"--duration 'nan' is out of range; give a whole number from 1 to 86400$"),
    ("demo --duration not a number", ["fleet.demo", "--duration", "soon"], r"--duration 'soon' is not a number"),
    ("demo --mode unknown", ["fleet.demo", "--mode", "daemon"], r"--mode 'daemon' is not one of auto, service, foreground"),
    ("demo --source relative", ["fleet.demo", "--source", "video.avi"], r"--source 'video\.avi' is not pattern, a camera number"),
    ("demo --video missing", ["fleet.demo", "--video", "{d}/absent.avi"], r"--video .*absent\.avi is not an existing file"),
    ("bench --results a file", ["fleet.bench", "--results", "{d}/file.txt"], r"--results .*file\.txt is not a folder \(it is a file now\)"),
    ("rollback --to ../", ["fleet.rollback", "--to", "../../etc"], r"--to '\.\./\.\./etc' " + SAFE),
]
KINDS = ([("convert names", kind) for kind, _, _ in NAMES + STEMS] + [("convert names", kind) for kind, _, _, _ in CONFIGS]
         + [("fleet values", kind) for kind, _, _ in FLEET])


def _tree(root: Path) -> dict[str, str]:
    """Every path under root with a hash of its content (or its link target)."""
    found = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        found[key] = "link:" + str(path.readlink()) if path.is_symlink() else \
            hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return found


@pytest.fixture
def folder(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    tiny_cnn(work / "tiny.onnx")
    (work / "file.txt").write_text("a file\n")
    return work


def _nothing_written(folder: Path, before: dict) -> None:
    assert _tree(folder) == before, "something was written"
    assert not list(folder.parent.glob("x")) and not (folder.parent.parent / "x").exists()
    assert not list(folder.rglob(CANARY)) and not (REPO_ROOT / CANARY).exists()


@pytest.mark.parametrize(("kind", "name", "pattern"), NAMES, ids=[case[0] for case in NAMES])
def test_a_bad_name_is_one_line_and_nothing_is_written(folder, kind, name, pattern):
    before = _tree(folder)
    result = invoke_cli("convert", "--target", "tflite", "--model", str(folder / "tiny.onnx"), f"--name={name}", "--out", str(folder / "out"))
    assert_one_clean_line(result, PREFIX, pattern)
    _nothing_written(folder, before)


@pytest.mark.parametrize(("kind", "model", "pattern"), STEMS, ids=[case[0] for case in STEMS])
def test_a_model_named_against_the_rule_suggests_a_name(folder, kind, model, pattern):
    (folder / model).parent.mkdir(parents=True, exist_ok=True)
    tiny_cnn(folder / model)
    before = _tree(folder)
    result = invoke_cli("convert", "--target", "tflite", f"--model={folder / model}", "--out", str(folder / "out"))
    assert_one_clean_line(result, PREFIX, pattern)
    _nothing_written(folder, before)


@pytest.mark.parametrize(("kind", "text", "args", "pattern"), CONFIGS, ids=[case[0] for case in CONFIGS])
def test_a_conversions_file_with_a_bad_name_is_one_line(folder, kind, text, args, pattern):
    sha = hashlib.sha256((folder / "tiny.onnx").read_bytes()).hexdigest()
    config = folder / "edgeship.toml"
    config.write_bytes(text.replace("{sha}", sha).encode("utf-8", "surrogateescape"))
    before = _tree(folder)
    result = invoke_cli("build", "--config", str(config), "--out", str(folder / "artifacts"), *args)
    assert_one_clean_line(result, PREFIX, pattern)
    _nothing_written(folder, before)


@pytest.mark.parametrize(("kind", "args", "pattern"), FLEET, ids=[case[0] for case in FLEET])
def test_a_bad_fleet_value_is_one_line_before_ansible_starts(folder, kind, args, pattern):
    before = _tree(folder)
    result = invoke_cli(*[arg.format(d=folder) if "{d}" in arg else arg for arg in args])
    assert_one_clean_line(result, PREFIX, pattern)
    assert "ansible-playbook" not in result.stdout
    _nothing_written(folder, before)
