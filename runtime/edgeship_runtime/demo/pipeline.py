"""The demo's stages as a pipeline of threads joined by bounded queues.

OpenCV and the vendor runtimes release the GIL while they work, so the frame rate approaches
1 / the slowest stage instead of 1 / the sum of all stages. A live source never waits for a
slow stage: a full queue drops its oldest frame, and the drops are counted. Files and folders
are read as fast as the pipeline takes them, with no drops.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

STAGES = ("capture", "preprocess", "infer", "postprocess", "render")
# Reading text: a second model recognizes each box the detector found, in a stage of its own.
TEXT_STAGES = ("capture", "preprocess", "infer", "postprocess", "recognize", "render")


class StageQueue:
    """A bounded queue. With drop_oldest a full queue discards its oldest frame (counted);
    without it put() waits. The end marker is never dropped."""

    END = object()

    def __init__(self, name: str, maxsize: int, drop_oldest: bool):
        self.name, self.maxsize, self.drop_oldest = name, maxsize, drop_oldest
        self.items: collections.deque = collections.deque()
        self.dropped = 0
        self.condition = threading.Condition()

    def put(self, item) -> None:
        with self.condition:
            if self.drop_oldest:
                while len(self.items) >= self.maxsize:
                    victim = next((i for i, x in enumerate(self.items) if x is not self.END), None)
                    if victim is None:
                        break
                    del self.items[victim]
                    self.dropped += 1
            else:
                while len(self.items) >= self.maxsize:
                    self.condition.wait()
            self.items.append(item)
            self.condition.notify_all()

    def get(self):
        with self.condition:
            while not self.items:
                self.condition.wait()
            item = self.items.popleft()
            self.condition.notify_all()
            return item


class Timings:
    """Per-stage durations (the last `keep` of them) and counts, safe across threads."""

    def __init__(self, stages: tuple[str, ...] = STAGES, keep: int = 20000):
        self.lock = threading.Lock()
        self.values: dict[str, collections.deque[float]] = {name: collections.deque(maxlen=keep) for name in (*stages, "end_to_end")}
        self.counts = dict.fromkeys(self.values, 0)

    def add(self, name: str, seconds: float) -> None:
        with self.lock:
            self.values[name].append(seconds * 1000)
            self.counts[name] += 1

    def summary(self) -> dict:
        with self.lock:
            snapshot = {name: (list(values), self.counts[name]) for name, values in self.values.items()}
        result: dict[str, dict[str, float]] = {}
        for name, (values, count) in snapshot.items():
            if not values:
                result[name] = {"count": count}
                continue
            array = np.asarray(values)
            result[name] = {"count": count, "mean_ms": float(array.mean()), "p50_ms": float(np.percentile(array, 50)),
                            "p90_ms": float(np.percentile(array, 90)), "p99_ms": float(np.percentile(array, 99)), "max_ms": float(array.max())}
        return result


@dataclass
class Frame:
    index: int
    name: str
    image: np.ndarray
    captured_at: float  # when the source delivered the frame (perf_counter): end-to-end latency runs from here to its JPEG
    feeds: dict | None = None
    outputs: dict | None = None
    result: dict = field(default_factory=dict)


class Pipeline:
    """Runs capture() and the later stages (the keys of `works`, in order), in threads or one after another.

    `capture` returns the next Frame or None at the end; `works` maps each later stage to a
    function that fills the frame in; `finish` is called with every frame that was rendered.
    The first error stops the run and is kept in `error`.
    """

    def __init__(self, capture: Callable[[], Frame | None], works: dict[str, Callable[[Frame], None]],
                 finish: Callable[[Frame], None], timings: Timings, queue_size: int, drop_oldest: bool,
                 on_error: Callable[[], None]):
        self.capture, self.works, self.finish, self.timings, self.on_error = capture, works, finish, timings, on_error
        self.stages = ("capture", *works)
        self.queues = [StageQueue(f"{a}->{b}", queue_size, drop_oldest=drop_oldest) for a, b in itertools.pairwise(self.stages)]
        self.error: BaseException | None = None

    def dropped(self) -> dict[str, int]:
        return {queue.name: queue.dropped for queue in self.queues}

    def _timed(self, stage: str, frame: Frame) -> None:
        began = time.perf_counter()
        self.works[stage](frame)
        self.timings.add(stage, time.perf_counter() - began)

    def run_sequential(self) -> None:
        while True:
            frame = self.capture()
            if frame is None:
                return
            for stage in self.stages[1:]:
                self._timed(stage, frame)
            self.finish(frame)

    def _worker(self, stage: str, inbox: StageQueue, outbox: StageQueue | None) -> None:
        try:
            while True:
                frame = inbox.get()
                if frame is StageQueue.END:
                    break
                if self.error is None:
                    self._timed(stage, frame)
                    if outbox is None:
                        self.finish(frame)
                    else:
                        outbox.put(frame)
        except BaseException as error:
            self.error = self.error or error
            self.on_error()
            # keep draining so that the stages before this one never wait on a full queue
            while inbox.get() is not StageQueue.END:
                pass
        finally:
            if outbox is not None:
                outbox.put(StageQueue.END)

    def run_pipelined(self) -> None:
        workers = []
        for number, stage in enumerate(self.stages[1:]):
            outbox = self.queues[number + 1] if number + 1 < len(self.queues) else None
            workers.append(threading.Thread(target=self._worker, args=(stage, self.queues[number], outbox),
                                            name=f"demo-{stage}", daemon=True))
        for worker in workers:
            worker.start()
        try:
            while self.error is None:
                frame = self.capture()
                if frame is None:
                    break
                self.queues[0].put(frame)
        except BaseException as error:
            self.error = error
        finally:
            self.queues[0].put(StageQueue.END)
            for worker in workers:
                worker.join()
