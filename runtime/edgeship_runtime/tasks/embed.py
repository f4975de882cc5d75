"""embed: embedding models (one vector per sample, [N, D] with D >= 2, normalised or not) for
re-identification, face recognition and retrieval. They are used by comparing vectors, so they are
judged by what a comparison sees: the cosine of each sample's vector with fp32's, and whether each
sample's nearest neighbour among the other eval samples (by cosine) is still the one fp32 picks.
Against labels (an identity or class id per sample): retrieval top-1, whether each sample's nearest
other sample has its label. Cosine throughout, so a model that L2-normalises its output and one that
does not are judged alike (a scale the converter adds changes no neighbour)."""

from __future__ import annotations

import numpy as np

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks.base import Gate, Headline, Task, not_measurable, shape_text


def rows(samples: list[dict], output: str) -> np.ndarray:
    """Every sample's vectors of `output` as one float64 [M, D] matrix (a sample's batch rows in order)."""
    return np.concatenate([np.reshape(np.asarray(sample[output], np.float64), (-1, np.shape(sample[output])[-1]))
                           for sample in samples])


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1; a zero row stays zero (its cosine with anything is 0)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def row_cosines(reference: np.ndarray, converted: np.ndarray) -> np.ndarray:
    """Cosine of each converted row with its fp32 row; two zero rows agree (1), one zero row does not (0)."""
    cosines = np.sum(unit(reference) * unit(converted), axis=1)
    both_zero = ~reference.any(axis=1) & ~converted.any(axis=1)
    return np.where(both_zero, 1.0, cosines)


def nearest_others(vectors: np.ndarray) -> np.ndarray:
    """For each row, the index of its nearest OTHER row by cosine (the lowest index among ties)."""
    normed = unit(vectors)
    similarity = normed @ normed.T
    np.fill_diagonal(similarity, -np.inf)  # a sample is not its own neighbour
    return similarity.argmax(axis=1)


class Embed(Task):
    name = kind = "embed"
    headline = Headline("nn_agreement", "nearest-neighbour agreement", "retrieval_top1", "retrieval top-1")
    gates = {"min_nn_agreement": Gate("nn_agreement", "nearest-neighbour agreement with fp32"),
             "min_embedding_cosine": Gate("cosine_min", "embedding cosine with fp32 (worst sample)")}
    # A neighbour is a ranking: two eval samples of one class often lie nearly as close to a third, and
    # the smallest error swaps them. So the agreement floor leaves room for near-ties, and the cosine
    # floor (the generic gate's values, per sample) catches a model that keeps its rankings by luck.
    tolerances = {"fp32": {"min_nn_agreement": 0.99, "min_embedding_cosine": 0.9999},
                  "fp16": {"min_nn_agreement": 0.97, "min_embedding_cosine": 0.999},
                  "dynamic": {"min_nn_agreement": 0.90, "min_embedding_cosine": 0.99},
                  "int8": {"min_nn_agreement": 0.85, "min_embedding_cosine": 0.98}}
    tolerance_reasons = {
        "fp32": "the same graph: only a neighbour tied with the runner-up to the last bit may change",
        "fp16": "fp16 moves each vector by ~1e-3 (cosine 0.999): neighbours closer than that to the runner-up swap, three in a hundred",
        "dynamic": "int8 weights move vectors by ~1 % (cosine 0.99): one neighbour in ten swaps, mostly for another of its class",
        "int8": "weights and activations in int8 (cosine 0.98): 85 % of fp32's nearest neighbours is what a usable int8 embedder keeps",
    }
    label_format = "integer identity or class ids [N] (one per sample; retrieval top-1 asks that each sample's nearest other has its id)"

    def check_shapes(self, record, shapes, labels, where, inputs) -> None:
        shape = shapes[record["output"]]
        if len(shape) < 2 or any(d not in (1, None) for d in shape[1:-1]) or shape[-1] in (0, 1):
            raise ArtifactError(f"{where}: task {self.name!r} reads output {record['output']!r} of shape {shape_text(shape)}, which is not "
                                "one vector per sample; embed needs [N, D] (D >= 2), or another task for other outputs")

    def metrics(self, record, reference, converted, artifact_dir) -> dict:
        output = record["output"]
        ref, out = rows(reference, output), rows(converted, output)
        cosines = row_cosines(ref, out)
        figures = {"samples": len(ref), "dimensions": int(ref.shape[1]),
                   "cosine_min": float(cosines.min()), "cosine_mean": float(cosines.mean())}
        if len(ref) < 2:
            return not_measurable(f"{len(ref)} eval sample has no other sample to be nearest to", "nn_agreement", **figures)
        agree = nearest_others(ref) == nearest_others(out)
        return {**figures, "nn_agreement": float(agree.mean()), "nn_changed": int((~agree).sum())}

    def output_figures(self, record, outputs, metrics) -> None:
        outputs[record["output"]]["nn_agreement"] = metrics["nn_agreement"]

    def check_labels(self, record, labels, samples, where) -> None:
        found = f"{where}: labels are {labels.dtype} {list(labels.shape)}"
        if labels.ndim == 0 or labels.shape[0] != samples:
            raise ArtifactError(f"{found} for {samples} samples; task {self.name!r} takes {self.label_format}")
        if labels.dtype.kind not in "iu" or labels.ndim != 1:
            raise ArtifactError(f"{found}; task {self.name!r} takes {self.label_format}")

    def against_labels(self, record, outputs, labels, char_list, artifact_dir) -> dict:
        vectors = rows(outputs, record["output"])
        labels = np.asarray(labels)[:len(vectors)]
        # a sample whose label no other sample has cannot be retrieved by anything: it asks no question
        values, counts = np.unique(labels, return_counts=True)
        queries = np.isin(labels, values[counts > 1])
        if len(vectors) < 2 or not queries.any():
            return not_measurable("no two eval samples share a label", "retrieval_top1", samples=len(vectors), queries=0)
        hits = labels[nearest_others(vectors)] == labels
        return {"retrieval_top1": float(hits[queries].mean()), "samples": len(vectors), "queries": int(queries.sum())}

    def postprocess(self, record, outputs, labels, artifact_dir) -> dict:
        vector = np.asarray(outputs[record["output"]], np.float64).reshape(-1, np.shape(outputs[record["output"]])[-1])[0]
        norm = float(np.linalg.norm(vector))
        # an embedding has no confidence of its own: it means something only beside another one
        return {"kind": self.kind, "dimensions": len(vector), "norm": norm, "embedding": vector.astype(np.float32),
                "label": f"{len(vector)}-d embedding, norm {norm:.3g}", "confidence": 0.0}


TASKS = (Embed(),)
