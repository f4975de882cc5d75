"""Release signatures: the controller signs each board's bundle, the board verifies it before unpacking.

Why SSH signatures (`ssh-keygen -Y sign` / `-Y verify`) and not minisign or signify: every board
already has OpenSSH's ssh-keygen (openssh-server depends on openssh-client; Raspberry Pi OS,
JetPack and Debian ship it) and `-Y verify` is in every OpenSSH since 8.1 (2019), so the board
needs nothing new, not even the release's own runtime (which is inside the bundle it is about to
verify). The keys are ordinary ed25519 keys a team already knows how to make, keep in an agent or
a hardware token, and rotate; the allowed-signers file names which keys may sign and, through its
`namespaces=` option, for what. minisign/signify would be a new package on every board image.

The signature covers the whole tar (release.json, SHA256SUMS and every file), in the namespace
`edgeship-release`, so a signature made for anything else (a git commit, a file) never verifies
as a release. ed25519 signatures are deterministic: the same bundle gives the same signature,
which keeps a second identical deploy a no-op. The allowed-signers file reaches the board out of
band (`trust.yml`, or the simulator over the container runtime), never inside a bundle.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from edgeship.errors import EdgeshipError
from edgeship.waiting import run_bounded
from edgeship_runtime.files import atomic_write_bytes

NAMESPACE = "edgeship-release"  # fixed: the board verifies in this namespace only
PRINCIPAL = "edgeship-release"  # the identity the allowed-signers line gives the release key
SIGN_TIMEOUT_S = 120  # local; an agent or token waiting for a touch is what can make it slow
KEY_TYPES = ("ssh-ed25519", "sk-ssh-ed25519@openssh.com", "ecdsa-sha2-nistp256", "ssh-rsa")


def _fix(key: Path) -> str:
    return (f"make one with `ssh-keygen -t ed25519 -N '' -C {PRINCIPAL} -f {key}` (or name yours with edgeship_signing_key) "
            f"and install its public half on the boards with `ansible-playbook trust.yml`")


def check_key(key: Path) -> Path:
    """The signing key: an existing regular file (a private key, or a .pub whose private half an
    ssh-agent holds); EdgeshipError in one line naming it and the fix otherwise."""
    try:
        info = os.stat(key)
    except OSError as error:
        raise EdgeshipError(f"signing key {key} cannot be read ({error.strerror}); {_fix(key)}") from None
    if not stat.S_ISREG(info.st_mode):
        raise EdgeshipError(f"signing key {key} is not a file; {_fix(key)}")
    # what ssh-keygen -Y sign takes: a private key (OpenSSH or PEM), or a public key line whose
    # private half an agent holds; checked here, before any bundle is packed
    with open(key, "rb") as handle:
        start = handle.read(4096).lstrip()
    first = start.split(b"\n", 1)[0].strip()
    private = first.startswith(b"-----BEGIN ") and b"PRIVATE KEY-----" in first
    public = any(first.startswith(kind.encode() + b" ") for kind in KEY_TYPES)
    if not (private or public):
        raise EdgeshipError(f"signing key {key} is neither an SSH private key nor a public key line (it starts {first[:24]!r}); {_fix(key)}")
    return key


def sign(bundle: Path, key: Path) -> Path:
    """Sign `bundle` with `key` in the release namespace; the signature is written beside it as
    <bundle>.sig (replaced atomically: ssh-keygen writing it itself would ask before overwriting)."""
    check_key(key)
    signature = bundle.with_name(bundle.name + ".sig")
    with open(bundle, "rb") as message:  # signed from stdin, so the signature comes back on stdout
        result = run_bounded(["ssh-keygen", "-q", "-Y", "sign", "-f", str(key), "-n", NAMESPACE], SIGN_TIMEOUT_S,
                             f"ssh-keygen signing {bundle.name} with {key}",
                             "a key with a passphrase needs an ssh-agent holding it (give the .pub as edgeship_signing_key)",
                             stdin=message, capture_output=True)
    text = result.stdout or b""
    if result.returncode != 0 or not text.startswith(b"-----BEGIN SSH SIGNATURE-----"):
        said = (result.stderr or b"").decode(errors="replace").strip().splitlines()
        raise EdgeshipError(f"ssh-keygen could not sign {bundle} with {key} (exit {result.returncode}: "
                            f"{said[-1] if said else 'no message'}); is it an SSH private key without a passphrase, or a .pub "
                            f"whose private key an ssh-agent holds? {_fix(key)}")
    atomic_write_bytes(signature, text)
    return signature


def allowed_signers_line(public_key: str, principal: str = PRINCIPAL) -> str:
    """The allowed-signers line that lets `public_key` (an OpenSSH .pub line) sign releases, and
    nothing else (namespaces=)."""
    fields = public_key.split()
    if len(fields) < 2 or fields[0] not in KEY_TYPES:
        raise EdgeshipError(f"{public_key[:40]!r} is not an OpenSSH public key line ({', '.join(KEY_TYPES)}); give the .pub of the signing key")
    return f'{principal} namespaces="{NAMESPACE}" {fields[0]} {fields[1]}\n'


def allowed_signers(key: Path) -> str:
    """The allowed-signers content for the signing key `key` (its .pub beside it, or key itself when it is a .pub)."""
    public = key if key.suffix == ".pub" else key.with_name(key.name + ".pub")
    try:
        return allowed_signers_line(public.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise EdgeshipError(f"the signing key's public half {public} cannot be read ({error}); {_fix(key)}") from None


def make_key(key: Path) -> Path:
    """A release signing key at `key` (kept when it exists): the simulated fleet's, in .sim/."""
    if key.exists():
        return key
    key.parent.mkdir(parents=True, exist_ok=True)
    made = run_bounded(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", PRINCIPAL, "-f", str(key)], SIGN_TIMEOUT_S,
                       f"ssh-keygen making {key}", "is the machine out of entropy or the folder on a stuck mount?")
    if made.returncode != 0:
        raise EdgeshipError(f"ssh-keygen could not make {key} (exit {made.returncode}); see its message above")
    return key
