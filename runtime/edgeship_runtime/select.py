"""Pick the backend for an artifact on this board, or a labelled CPU fallback."""

from __future__ import annotations

from edgeship_runtime.artifact import Artifact
from edgeship_runtime.backends import backend_class
from edgeship_runtime.errors import RuntimeUnavailable


def choose(artifact_path, allow_cpu_fallback: bool = False, cpu_artifact=None, available=None, fallback_for: str | None = None):
    """(artifact, backend class, fallback record or None).

    An artifact whose accelerator this board lacks (or that the accelerator cannot run, see
    Backend.unusable) fails clearly, unless a CPU fallback is allowed and a CPU artifact is
    given (or the backend names its own): then that runs and every result says so.
    `fallback_for`: the artifact is a CPU one the deploy plan sent in place of the board's own
    (see planned_fallback); it runs as is and is labelled a fallback too.
    """
    artifact = Artifact.open(artifact_path)
    cls = backend_class(artifact.backend)
    if available is None:
        from edgeship_runtime.detect import detect

        available = detect()["available"]
    why = cls.unusable(artifact) if cls.accelerator in available else None
    if cls.accelerator in available and not why:
        return artifact, cls, planned_fallback(artifact, cls, fallback_for)
    reason = why or f"{artifact.path} runs on {cls.accelerator} ({cls.name}), which this board lacks (it has: {', '.join(available)})"
    own = getattr(cls, "cpu_fallback", None)
    if not allow_cpu_fallback:
        where = "" if why else "run it on a board with that accelerator, or "
        raise RuntimeUnavailable(reason + f"; {where}pass --allow-cpu-fallback" + ("" if own else " --cpu-artifact DIR"))
    if own:
        # The artifact's own model file runs on a CPU backend (the jetson target's ONNX on
        # ONNX Runtime): the same network, labelled as a fallback.
        fallback = Artifact(artifact.path, {**artifact.manifest, "runtime_backend": own})
        fallback_cls = backend_class(own)
        record = {"cpu_fallback": True, "reason": reason + f"; its own {artifact.model_file.name} runs on {fallback_cls.name}'s CPU provider instead",
                  "requested": artifact.identity(), "used": fallback.identity()}
        return fallback, fallback_cls, record
    if cpu_artifact is None:
        raise RuntimeUnavailable(reason + "; --allow-cpu-fallback needs --cpu-artifact DIR (a CPU artifact of the same model, e.g. target tflite)")
    fallback = Artifact.open(cpu_artifact)
    fallback_cls = backend_class(fallback.backend)
    if fallback_cls.accelerator != "cpu":
        raise RuntimeUnavailable(f"--cpu-artifact {fallback.path} uses {fallback_cls.name} on {fallback_cls.accelerator}, not the CPU; "
                                 f"pass a CPU artifact")
    if fallback.manifest["source"]["sha256"] != artifact.manifest["source"]["sha256"]:
        raise RuntimeUnavailable(f"--cpu-artifact {fallback.path} was converted from another model (source sha256 differs); "
                                 f"pass a CPU artifact of the same source")
    record = {"cpu_fallback": True, "reason": reason, "requested": artifact.identity(), "used": fallback.identity()}
    return fallback, fallback_cls, record


def planned_fallback(artifact, backend_cls, reason: str | None):
    """The fallback record of a CPU artifact the deploy plan sent in place of the board's own
    (none was converted, or it failed its accuracy check): labelled like any CPU fallback.
    None without a reason, or when the artifact is the board's to run on an accelerator."""
    if not reason:
        return None
    if backend_cls.accelerator != "cpu":
        raise RuntimeUnavailable(f"--fallback-for: {artifact.path} runs on {backend_cls.accelerator}, not the CPU; "
                                 f"it stands in for nothing, drop --fallback-for")
    return {"cpu_fallback": True, "reason": reason, "requested": None, "used": artifact.identity()}
