"""The voice-activity example: Silero VAD (silero_vad.onnx, pretrained, MIT) from the pinned silero-vad
6.2.3 wheel (read out of the wheel, never imported), a stateful model judged by its frame decisions.

The model takes one 32 ms chunk at 16 kHz with the 64 samples before it (`input` [1, 576]: silero's
own wrapper, utils_vad.OnnxWrapper, keeps that context and prepends it), its recurrent state
(`state` [2, 1, 128], zeros at the start of a stream) and the sample rate (`sr`, an int64 scalar
choosing the 16 kHz or 8 kHz branch of an If); it returns the speech probability (`output` [1, 1])
and the next state (`stateN`). The conversion freezes sr to 16000 (`input_values` in the metadata,
--input-value), so the 8 kHz branch is folded away, and carries the state step to step.

The audio is made here: espeak-ng speaks sentences to WAV, sox resamples them to 16 kHz mono and
mixes in white noise (sox -R: the same noise on every build) between and under them. Each eval
sequence is one clip; its frames are labelled speech where the clean speech has energy, so the
manifest also says how fp32 and the converted model do against the known segments.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import wave
from pathlib import Path

import numpy as np

from edgeship.errors import EdgeshipError
from edgeship.examples.common import GeneratorVersion, save_npz
from edgeship.examples.pinned import SILERO_VAD
from edgeship.waiting import run_bounded
from edgeship_runtime.artifact import sha256_file

MEMBER = "silero_vad/data/silero_vad.onnx"
RATE = 16000
CHUNK = 512  # samples per step at 16 kHz (utils_vad: num_samples = 512 if sr == 16000)
CONTEXT = 64  # samples of the step before, prepended (utils_vad: context_size = 64 if sr == 16000)
STATE_SHAPE = [2, 1, 128]
THRESHOLD = 0.5  # silero's get_speech_timestamps default
TASK = {"name": "frame-decisions", "output": "output", "threshold": THRESHOLD}
NOISE_LEVEL = 0.02  # white noise amplitude (of full scale) under everything: a quiet room's hiss
# (sentence or None for noise only, seconds of noise before, seconds after)
EVAL_CLIPS = [("Turn the lights on in the kitchen.", 0.6, 0.5), ("Seven, eight, nine, ten.", 0.4, 0.7), (None, 1.2, 0.0)]
CALIBRATION_CLIP = ("What is the weather like tomorrow morning?", 0.3, 0.3)
CALIBRATION_STEPS = 16  # spread over the calibration clip, each with the state fp32 carried to it
SPEECH_RMS = 0.01  # a chunk of the clean speech whose RMS is above this is labelled speech
TIMEOUT_S = 60


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise EdgeshipError(f"the vad example needs {name} to make its audio; install it (apt-get install {name})")
    return found


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as handle:
        if handle.getframerate() != RATE or handle.getnchannels() != 1 or handle.getsampwidth() != 2:
            raise EdgeshipError(f"{path}: sox wrote {handle.getframerate()} Hz, {handle.getnchannels()} channels; expected 16 kHz mono 16-bit")
        return np.frombuffer(handle.readframes(handle.getnframes()), np.int16).astype(np.float32) / 32768.0


def _sox(*args: str) -> None:
    run_bounded([_tool("sox"), "-R", *args], TIMEOUT_S, "sox", "check the sox installation", check=True, capture_output=True)


def clip(scratch: Path, name: str, sentence: str | None, before: float, after: float) -> tuple[np.ndarray, np.ndarray]:
    """(noisy audio, clean speech) at 16 kHz: noise for `before` s, the sentence, noise for `after` s."""
    parts = []
    if sentence is not None:
        spoken = scratch / f"{name}-espeak.wav"
        run_bounded([_tool("espeak-ng"), "-v", "en-us", "-s", "150", "-w", str(spoken), sentence], TIMEOUT_S, "espeak-ng",
                    "check the espeak-ng installation", check=True, capture_output=True)
        speech16 = scratch / f"{name}-16k.wav"
        _sox(str(spoken), "-r", str(RATE), "-c", "1", "-b", "16", str(speech16))
        parts.append(_read_wav(speech16))
    speech = parts[0] if parts else np.zeros(0, np.float32)
    clean = np.concatenate([np.zeros(int(before * RATE), np.float32), speech, np.zeros(int(after * RATE), np.float32)])
    clean = clean[: len(clean) // CHUNK * CHUNK]
    noise = scratch / f"{name}-noise.wav"
    _sox("-n", "-r", str(RATE), "-c", "1", "-b", "16", str(noise), "synth", f"{len(clean)}s", "whitenoise", "vol", str(NOISE_LEVEL))
    noisy = scratch / f"{name}-noisy.wav"
    clean_file = scratch / f"{name}-clean.wav"
    with wave.open(str(clean_file), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes((np.clip(clean, -1, 1 - 2 ** -15) * 32768).astype(np.int16).tobytes())
    _sox("-m", str(clean_file), str(noise), str(noisy))  # sox -m halves each input: the mix keeps full scale
    return _read_wav(noisy)[: len(clean)], clean


def steps(audio: np.ndarray) -> np.ndarray:
    """[T, 576] model inputs of one stream: each 512-sample chunk after the 64 samples before it (zeros first)."""
    padded = np.concatenate([np.zeros(CONTEXT, np.float32), audio])
    return np.stack([padded[start:start + CONTEXT + CHUNK] for start in range(0, len(audio), CHUNK)]).astype(np.float32)


def speech_frames(clean: np.ndarray) -> np.ndarray:
    """1 where a chunk of the clean speech has energy (the known segments), else 0."""
    chunks = clean.reshape(-1, CHUNK)
    return (np.sqrt(np.mean(chunks ** 2, axis=1)) > SPEECH_RMS).astype(np.int64)


def fp32_run(model: Path, chunks: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """fp32 speech probabilities of one stream, and the state fed to each step (ONNX Runtime, sr=16000)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    state, fed, scores = np.zeros(STATE_SHAPE, np.float32), [], []
    for chunk in chunks:
        fed.append(state)
        score, state = session.run(["output", "stateN"], {"input": chunk[None], "state": state, "sr": np.array(RATE, np.int64)})
        scores.append(float(score.ravel()[0]))
    return np.array(scores), fed


def build_vad(folder: Path) -> Path:
    folder.mkdir(parents=True)
    model = SILERO_VAD.extract(MEMBER, folder / "model.onnx")
    with tempfile.TemporaryDirectory(prefix="vad-audio-") as scratch:
        clips = [clip(Path(scratch), f"eval{index}", *spec) for index, spec in enumerate(EVAL_CLIPS)]
        calibration_audio, _ = clip(Path(scratch), "calib", *CALIBRATION_CLIP)
    inputs = [steps(noisy) for noisy, _ in clips]
    labels = np.concatenate([speech_frames(clean) for _, clean in clips])
    save_npz(folder / "eval.npz", {"input": np.concatenate(inputs), "state": np.zeros([len(clips), *STATE_SHAPE], np.float32),
                                   "sequence_lengths": np.array([len(chunks) for chunks in inputs], np.int64), "labels": labels})
    fp32 = [fp32_run(model, chunks)[0] for chunks in inputs]
    decided = np.concatenate(fp32) > THRESHOLD
    calibration_chunks = steps(calibration_audio)
    _, fed = fp32_run(model, calibration_chunks)
    (folder / "calib").mkdir()
    picks = np.linspace(0, len(calibration_chunks) - 1, CALIBRATION_STEPS).round().astype(int)
    for index, step in enumerate(picks):
        save_npz(folder / "calib" / f"{index:03d}.npz", {"input": calibration_chunks[step][None], "state": fed[step]})
    (folder / "task.json").write_text(json.dumps(TASK, indent=2) + "\n")
    metadata = {
        "name": "vad",
        "description": "Silero VAD (silero_vad.onnx, pretrained, MIT) from the silero-vad 6.2.3 wheel "
                       f"(sha256 {SILERO_VAD.sha256}): a stateful voice-activity detector. Inputs: input [1, 576] (a 512-sample chunk at "
                       "16 kHz after the 64 samples before it), state [2, 1, 128] (fed back from stateN), sr (frozen to 16000); output "
                       "[1, 1] the speech probability; task frame-decisions at 0.5.",
        "source": {**SILERO_VAD.source("MIT (silero-vad and its models)", "snakers4/silero-vad"), "member": MEMBER},
        "weights": "pretrained (Silero VAD v6, via the silero-vad 6.2.3 wheel)",
        "input_shape": {"input": [1, CONTEXT + CHUNK], "state": STATE_SHAPE},
        "input_values": {"sr": RATE},
        "state": {"stateN": "state"},
        "task": TASK,
        "eval": {"sequences": len(clips), "steps": int(len(labels)), "speech_frames": int(labels.sum()),
                 "fp32_speech_frames": int(decided.sum()), "fp32_frame_accuracy": float(np.mean(decided == labels.astype(bool))),
                 "from": f"espeak-ng (en-us, 150 wpm) speaking {[c[0] for c in EVAL_CLIPS]}, resampled to 16 kHz by sox and mixed with "
                         f"white noise at {NOISE_LEVEL} (sox -R); noise before and after each ({[c[1:] for c in EVAL_CLIPS]} s); labels: a "
                         f"chunk is speech where the clean speech's RMS is above {SPEECH_RMS}"},
        "calibration": {"samples": CALIBRATION_STEPS, "from": f"{CALIBRATION_STEPS} steps of espeak-ng saying {CALIBRATION_CLIP[0]!r} "
                                                              "(noise mixed in as above), each with the state fp32 carried to it"},
        "model_sha256": sha256_file(model),
        "generator": GENERATOR,
    }
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return folder


GENERATOR = GeneratorVersion(__file__)
BUILDERS = {"vad": build_vad}
