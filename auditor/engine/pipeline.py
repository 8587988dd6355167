"""The streaming pipeline: decode, perturb and preprocess in a thread pool; infer in batches.

Each sample is decoded once in a worker, which perturbs it at every planned level and
repeat and preprocesses each image into one tensor of rows (clean first). The calling
thread cuts those rows into model batches, in order, and keeps up to `streams` of them
in the model at once, each on its own thread, while the workers prepare the next
samples. Finished samples come out in input order. At most `in_flight` samples are
held at any time, and their tensors are reused, so memory does not grow with the data
set.

Threads, not processes: OpenCV, numpy and onnxruntime release the GIL for the heavy
work, and a process pool would have to copy every float tensor back to the model.
`bench/engine.py` shows the audit's CPU seconds close to the sum of its parts
(perturbation, preprocessing, inference), so the GIL is not what limits it.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from auditor import data, perturbations
from auditor.data import video
from auditor.engine import clips, memory
from auditor.engine.clips import squared_error
from auditor.engine.facecrop import NO_FACE, ClipFaces, FaceFront, Faces, FaceTrack
from auditor.engine.plan import AuditPlan, Draw
from auditor.errors import SampleError
from auditor.model.adapter import Model
from auditor.seeds import derive_rng

POOL_KIND = "threads"
PREPARING = "decoding, perturbing and preprocessing the samples"
RUNNING = "running the model"


@dataclass(frozen=True)
class PixelChange:
    """How each draw changed a sample's pixels, measured before preprocessing.

    `sse[d]` is the exact sum of squared differences (uint8 units) between the clean and
    the perturbed pixels of draw d, over `values` pixel values (H x W x 3, times the
    frames of a video); `side` is the short side in pixels, which pixel-sized parameters
    were scaled by. 0 means the draw left every pixel as it was.
    """

    side: int
    values: int
    sse: tuple[int, ...]


@dataclass
class Scored:
    """A sample that went through the model: clean probs (K) and per-draw probs (D x K)."""

    index: int
    sample: data.Sample
    sha256: str
    converted: str | None
    clean: NDArray[np.float64]
    perturbed: NDArray[np.float64]
    # Videos: `clean` and `perturbed` are per video; these are per frame, (1 + D) x F x K.
    frames: NDArray[np.float64] | None = None
    frame_indices: tuple[int, ...] = ()
    change: PixelChange | None = None  # how much each draw changed the pixels
    faces: Faces | None = None  # --face-crop: the crop boxes, clean and per draw (and frame)


@dataclass
class Failed:
    """A sample that could not be decoded, and why."""

    index: int
    sample: data.Sample
    reason: str


@dataclass
class _Prepared:
    index: int
    sample: data.Sample
    tensor: NDArray[Any]  # no rows when the sample failed
    sha256: str = ""
    converted: str | None = None
    reason: str | None = None  # why it failed
    probs: NDArray[np.float64] | None = None
    cursor: int = 0  # next row to put into a batch
    scored: int = 0  # rows with probabilities
    frames: int = 0  # videos: frames per draw (the tensor holds 1 + D runs of them)
    frame_indices: tuple[int, ...] = ()
    change: PixelChange | None = None
    faces: Faces | None = None


@dataclass
class _Batch:
    """Rows of one or more samples running through the model together."""

    pieces: list[tuple[_Prepared, int, int]]  # (sample, first row, end row)
    probs: Future[NDArray[np.float64]]

    def collect(self) -> None:
        """Wait for the model; store each row's probabilities with its sample."""
        probs = self.probs.result()
        offset = 0
        for prepared, a, b in self.pieces:
            if prepared.probs is None:
                prepared.probs = np.empty((len(prepared.tensor), probs.shape[1]))
            prepared.probs[a:b] = probs[offset : offset + b - a]
            prepared.scored += b - a
            offset += b - a


def auto_workers() -> int:
    """Perturbation workers when `--workers 0`: one per core the process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


MAX_STREAMS = 4
"""At most this many model calls at once when `--streams 0` (automatic)."""


@dataclass(frozen=True)
class Tuning:
    """How an audit shares the cores; recorded as the results' `config.workers`."""

    workers: int  # perturbation threads
    streams: int  # model calls at once, each on its own thread
    threads: int  # onnxruntime threads per model call
    opencv: int  # OpenCV's own threads inside each worker

    def describe(self) -> dict[str, Any]:
        """The JSON-ready record."""
        return {
            "pool": POOL_KIND,
            "perturbation_workers": self.workers,
            "inference_streams": self.streams,
            "onnxruntime_threads": self.threads,
            "opencv_threads": self.opencv,
        }


def plan_tuning(workers: int, streams: int, threads: int, cores: int | None = None) -> Tuning:
    """Fill in the automatic (0) counts for `cores` cores (default: those this process may use).

    On CPU several model calls at once, each on one onnxruntime thread, beat one call on
    every core: the threads of one call meet at every operator, and a perturbation worker
    that preempts one of them stalls the others. OpenCV's own thread pool is left to the
    cores the workers do not use: nested in every worker it only adds hand-offs.
    `bench/engine.py` measures both.
    """
    cores = cores or auto_workers()
    workers = workers or cores
    if not streams:
        streams = max(1, cores // threads) if threads else min(MAX_STREAMS, cores)
    return Tuning(
        workers=workers,
        streams=streams,
        threads=threads or max(1, cores // streams),
        opencv=max(1, cores // workers),
    )


@contextmanager
def opencv_threads(count: int) -> Iterator[None]:
    """Run with OpenCV's thread pool at `count` threads (a process-wide setting, restored)."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def perturb(image: NDArray[np.uint8], draw: Draw, key: str, seed: int, scale: bool) -> Any:
    """Return `image` under `draw`, from the generator of (seed, sample, draw)."""
    rng = derive_rng(seed, key, draw.perturbation, draw.level, draw.repeat)
    return perturbations.apply(draw.perturbation, image, draw.params, rng, scale)


class Pipeline:
    """Scores samples clean and under every draw; yields results in input order."""

    def __init__(
        self,
        model: Model,
        plan: AuditPlan,
        *,
        seed: int,
        scale_to_input: bool,
        batch_size: int,
        tuning: Tuning,
        max_pixels: int,
        sampling: video.FrameSampling | None = None,
        aggregate: str = "mean",
        face: FaceFront | None = None,
    ) -> None:
        self.model = model
        self.face = face  # --face-crop: the model sees the face crop of each image or frame
        self.draws = list(plan.draws)  # a sample's rows: clean, then these
        self.seed = seed
        self.scale_to_input = scale_to_input
        # Rows a model stream takes at a time: whole model calls (see `Model.call_rows`),
        # since a call shorter than its fixed shape is padded. A fixed batch decides.
        calls = -(-batch_size // (model.call_rows or 1))
        self.batch_size = model.batch or calls * (model.call_rows or 1)
        self.tuning = tuning
        self._spare: SimpleQueue[NDArray[Any]] = SimpleQueue()  # see `_recycle`
        self.max_pixels = max_pixels
        self.in_flight = 2 * tuning.workers + 1
        self.sampling = sampling  # None: images; else every sample is a video
        if sampling is not None:  # a video's rows are (1 + draws) x frames: hold fewer
            self.in_flight = tuning.workers + 1
        self.aggregate = aggregate

    def run(self, items: Iterable[tuple[int, data.Sample]]) -> Iterator[list[Scored | Failed]]:
        """Yield groups of finished samples (one group per model batch), in input order."""
        pool = ThreadPoolExecutor(self.tuning.workers, thread_name_prefix="auditor-perturb")
        inference = ThreadPoolExecutor(self.tuning.streams, thread_name_prefix="auditor-infer")
        try:
            with opencv_threads(self.tuning.opencv):
                yield from self._stream(pool, inference, iter(items))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            inference.shutdown(wait=False, cancel_futures=True)

    def score(self, tensor: NDArray[Any]) -> NDArray[np.float64]:
        """Probabilities of `tensor`'s rows, in model batches on the calling thread."""
        step = self.batch_size
        return np.concatenate(
            [self.infer(tensor[i : i + step]) for i in range(0, len(tensor), step)]
        )

    def infer(self, tensor: NDArray[Any]) -> NDArray[np.float64]:
        """The model's probabilities of `tensor`; an allocation failure says where it was."""
        with memory.stage(RUNNING):
            return self.model.infer(tensor)

    def _stream(
        self,
        pool: ThreadPoolExecutor,
        inference: ThreadPoolExecutor,
        items: Iterator[tuple[int, data.Sample]],
    ) -> Iterator[list[Scored | Failed]]:
        pending: deque[Future[_Prepared]] = deque()
        queue: deque[_Prepared] = deque()  # prepared, not fully scored, in order
        running: deque[_Batch] = deque()  # batches in the model, oldest first
        buffered = 0  # rows in `queue` not yet put into a batch
        exhausted = False
        while True:
            while not exhausted and len(pending) < self.in_flight:
                item = next(items, None)
                if item is None:
                    exhausted = True
                else:
                    pending.append(pool.submit(self._prepare, *item))
            if buffered < self.batch_size and pending:
                prepared = pending.popleft().result()
                queue.append(prepared)
                buffered += len(prepared.tensor)
                if buffered < self.batch_size:
                    continue
            if buffered:
                rows = min(buffered, self.batch_size)
                buffered -= rows
                running.append(self._submit(inference, queue, rows))
                # Keep `tuning.streams` batches in the model at once; but while no batch has
                # fixed the model's output kind, the first one in order decides it alone.
                decided = self.model.output_kind is not None
                if decided and len(running) < self.tuning.streams and (pending or buffered):
                    continue
            if running:
                running.popleft().collect()
            done: list[Scored | Failed] = []
            while queue and queue[0].scored == len(queue[0].tensor):
                finished = queue.popleft()
                done.append(_finished(finished, self.aggregate, self.model.positive_index()))
                self._recycle(finished.tensor)
            if done:
                yield done
            if not (running or pending or buffered):
                return

    def _submit(self, inference: ThreadPoolExecutor, queue: deque[_Prepared], rows: int) -> _Batch:
        """Start the model on the next `rows` unbatched rows from the front of `queue`."""
        pieces: list[tuple[_Prepared, int, int]] = []
        left = rows
        for prepared in queue:
            if left == 0:
                break
            take = min(left, len(prepared.tensor) - prepared.cursor)
            if take:
                pieces.append((prepared, prepared.cursor, prepared.cursor + take))
                prepared.cursor += take
                left -= take
        if len(pieces) == 1:  # rows of one sample: a view, no copy
            prepared, a, b = pieces[0]
            tensor = prepared.tensor[a:b]
        else:
            tensor = np.concatenate([p.tensor[a:b] for p, a, b in pieces])
        return _Batch(pieces, inference.submit(self.infer, tensor))

    def _prepare(self, index: int, sample: data.Sample) -> _Prepared:
        """Decode once, perturb under every draw, preprocess each image into one tensor.

        This is where one sample's failure stays that sample's: whatever goes wrong with
        it (an unreadable file, a perturbation's or the preprocessing's bug) skips it
        with the reason. Only running out of memory stops the audit: it is no fault of
        the sample, and the next one would meet it too.
        """
        try:
            with memory.stage(PREPARING):
                if self.sampling is not None:
                    return self._prepare_clip(index, sample)
                decoded = data.decode(sample, self.max_pixels)
                image = decoded.image
                tensor = self._rows()
                sse, faces = self.fill_rows(image, sample.key, self.draws, tensor)
        except MemoryError:
            raise
        except Exception as exc:  # no face in the clean image, a perturbation's bug, ...
            return _Prepared(index, sample, np.empty((0,), np.float32), reason=skip_reason(exc))
        change = PixelChange(min(image.shape[:2]), image.size, tuple(sse))
        # Only the tensor goes on: the decoded and perturbed pixels are dropped here.
        return _Prepared(
            index, sample, tensor, decoded.sha256, decoded.converted, change=change, faces=faces
        )

    def fill_rows(
        self, image: NDArray[np.uint8], key: str, draws: Sequence[Draw], tensor: NDArray[Any]
    ) -> tuple[list[int], FaceTrack | None]:
        """Write `image` clean, then under each of `draws`, into `tensor`'s 1 + D rows.

        Returns each draw's `squared_error` against `image` (the pixels exist only here)
        and, with `--face-crop`, where each crop was cut. Raises `SampleError` ("no face")
        when the clean image has no face.
        """
        if self.face is not None:
            return self._fill_faces(self.face, image, key, draws, tensor)
        self.model.to_tensor([image], out=tensor[:1])
        sse = []
        for row, draw in enumerate(draws, start=1):
            out = self._perturbed(image, draw, key)
            sse.append(squared_error(image, out))
            self.model.to_tensor([out], out=tensor[row : row + 1])
        return sse, None

    def _perturbed(self, image: NDArray[np.uint8], draw: Draw, key: str) -> NDArray[np.uint8]:
        """`image` under `draw`; a perturbation's bug becomes a `SampleError` naming it."""
        try:
            out: NDArray[np.uint8] = perturb(image, draw, key, self.seed, self.scale_to_input)
        except (MemoryError, SampleError):
            raise
        except Exception as exc:  # a bug of this perturbation: name it in the reason
            where = f"{draw.perturbation} level {draw.level}"
            raise SampleError(f"{where}: {skip_reason(exc)}") from exc
        return out

    def _fill_faces(
        self,
        face: FaceFront,
        image: NDArray[np.uint8],
        key: str,
        draws: Sequence[Draw],
        tensor: NDArray[Any],
    ) -> tuple[list[int], FaceTrack]:
        """`fill_rows` with the face found on the perturbed image and its crop fed to the model.

        A draw with no face gets the clean crop's row: its probabilities are replaced
        when counted (`facecrop.lost_probs`), so what the row holds does not matter.
        """
        found = face.cut(image)
        if found is None:
            raise SampleError(NO_FACE)
        pixels, clean_box = found
        self.model.to_tensor([pixels], out=tensor[:1])
        sse, boxes = [], []
        for row, draw in enumerate(draws, start=1):
            out = self._perturbed(image, draw, key)
            sse.append(squared_error(image, out))  # the whole image, as the perturbation saw it
            cut = face.cut(out)
            boxes.append(None if cut is None else cut[1])
            self.model.to_tensor([pixels if cut is None else cut[0]], out=tensor[row : row + 1])
        return sse, FaceTrack(clean_box, tuple(boxes))

    def _rows(self) -> NDArray[Any]:
        """An image's tensor of 1 + D rows: a finished sample's, else a new one."""
        try:
            return self._spare.get_nowait()
        except Empty:
            shape = (1 + len(self.draws), *self.model.input_shape())
            return np.empty(shape, self.model.input_dtype)

    def _recycle(self, tensor: NDArray[Any]) -> None:
        """Keep a finished image's tensor for the next sample (every row is rewritten).

        Allocating 1 + D fresh rows per sample (about 22 MB at 224 px and 36 rows) cost
        several percent of the audit's CPU in page faults (`perf` on bench/engine.py).
        """
        if self.sampling is None and len(tensor) == 1 + len(self.draws):
            self._spare.put(tensor)

    def _prepare_clip(self, index: int, sample: data.Sample) -> _Prepared:
        """A video: the rows of all its sampled frames, clean then under every draw."""
        rows = self.clip_rows(sample, self.draws)
        clip = rows.clip
        change = PixelChange(rows.side, rows.values, tuple(rows.sse))
        return _Prepared(
            index,
            sample,
            rows.tensor,
            clip.sha256,
            frames=rows.frames,
            frame_indices=clip.indices,
            change=change,
            faces=rows.faces,
        )

    def clip_rows(self, sample: data.Sample, draws: Sequence[Draw]) -> clips.ClipRows:
        """A video's sampled frames decoded once, clean then under each of `draws`, as rows."""
        assert self.sampling is not None
        return clips.clip_rows(
            sample.path,
            sample.key,
            draws,
            self.model.to_tensor,
            seed=self.seed,
            scale_to_input=self.scale_to_input,
            sampling=self.sampling,
            face=self.face,
        )


def skip_reason(exc: BaseException) -> str:
    """Why a sample was skipped: a `SampleError`'s message, else `Type: its first line`."""
    if isinstance(exc, SampleError):
        return str(exc)
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__


def _finished(prepared: _Prepared, aggregate: str, positive: int | None) -> Scored | Failed:
    if prepared.reason is not None:
        return Failed(prepared.index, prepared.sample, prepared.reason)
    assert prepared.probs is not None
    if prepared.frames:
        found = prepared.faces.found() if isinstance(prepared.faces, ClipFaces) else None
        clean, perturbed, frames = clips.split_rows(
            prepared.probs, prepared.frames, aggregate, positive, found
        )
        return Scored(
            prepared.index,
            prepared.sample,
            prepared.sha256,
            None,
            clean,
            perturbed,
            frames,
            prepared.frame_indices,
            prepared.change,
            prepared.faces,
        )
    return Scored(
        prepared.index,
        prepared.sample,
        prepared.sha256,
        prepared.converted,
        prepared.probs[0],
        prepared.probs[1:],
        change=prepared.change,
        faces=prepared.faces,
    )
