"""Video: ShapesWorld shapes that move, rotate, grow and shrink, as labelled clips.

A clip shows one coloured shape doing one of eight actions (``ACTIONS``), optionally among static
distractor shapes, with pixel noise, and (``partial=True``) standing still before and after the
action, so that the action has temporal boundaries to find. The actions come in pairs that are
each other's time reversal: a clip of "moving left" played backwards *is* a clip of "moving right"
(the generator renders the pair's forward member and reverses it), and both members are drawn
from the same distribution of paths. Averaging a clip's frames therefore throws away exactly the
information that tells the pair apart; only a model that sees the order of the frames can.

Clips are generated on demand from ``(seed, split, index)``. A clip belongs to the split that a
hash of its parameters points to, so no clip of one split occurs in another.

The file also holds the video plumbing the book uses: writing MP4 with PyAV, reading it back with
decord (or PyAV where decord has no wheel), frame-sampling strategies and the tensor layout.

Built in §39.2; used in §41.4 (video representations) and §41.5 (video-language tasks).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mmcourse.data.shapes import COLORS, SHAPES, TINTS, _article, _check_choice, _draw_shape

#: the eight actions; (0, 1), (2, 3), (4, 5), (6, 7) are each other's time reversal.
ACTIONS: tuple[str, ...] = (
    "moving left", "moving right", "moving up", "moving down",
    "rotating clockwise", "rotating anticlockwise", "growing", "shrinking",
)
#: how each action reads in a caption
ACTION_TEXT: dict[str, str] = {
    "moving left": "moves to the left", "moving right": "moves to the right",
    "moving up": "moves up", "moving down": "moves down",
    "rotating clockwise": "rotates clockwise", "rotating anticlockwise": "rotates anticlockwise",
    "growing": "grows", "shrinking": "shrinks",
}
#: the member of each pair that is rendered; the other one is its frames reversed
_FORWARD: tuple[str, ...] = ("moving right", "moving down", "rotating clockwise", "growing")
SPLITS: dict[str, int] = {"train": 50_000, "val": 2_000, "test": 2_000}
_SPLIT_IDS = {name: k for k, name in enumerate(SPLITS)}
BACKGROUND: tuple[int, int, int] = TINTS[0]
SAMPLING_STRATEGIES: tuple[str, ...] = ("uniform", "random", "segment")
BACKENDS: tuple[str | None, ...] = ("decord", "pyav", None)


@dataclass
class VideoClip:
    """One generated clip.

    ``frames`` is (T, H, W, 3) uint8; ``boxes`` (T, 4) holds the moving object's pixel box
    ``(x0, y0, x1, y1)`` (end-exclusive) in every frame. The action occupies frames
    ``start .. end-1``: frame ``start`` shows its first pose, frame ``end-1`` its last, and the
    frames before and after repeat those poses (``start=0, end=T`` unless the clip is ``partial``).
    """

    index: int
    split: str
    frames: np.ndarray
    action: str
    shape: str
    color: str
    caption: str
    start: int
    end: int
    boxes: np.ndarray

    @property
    def label(self) -> int:
        """The action's index into ``ACTIONS``."""
        return ACTIONS.index(self.action)


class MovingShapes:
    """A deterministic generator of action clips.

    Args:
        seed: the world's seed; ``(seed, split, index)`` fixes a clip.
        image_size: side of the square frames in pixels (an int >= 24).
        num_frames: frames per clip (>= 4; >= 6 with ``partial``).
        distractors: number of static shapes (0 to 4) drawn behind the moving one, in other colours.
        noise: standard deviation of Gaussian pixel noise, as a fraction of 255 (fresh in every frame).
        partial: the object stands still for a while before and after its action.

    Example:
        >>> clip = MovingShapes(seed=0).clip(0)
        >>> clip.frames.shape, clip.action, clip.caption
    """

    def __init__(self, seed: int = 0, image_size: int = 32, num_frames: int = 16, distractors: int = 0,
                 noise: float = 0.0, partial: bool = False) -> None:
        if not isinstance(image_size, int) or image_size < 24:
            raise ValueError(f"image_size must be an int >= 24 so that the motion fits; got {image_size!r}")
        min_frames = 6 if partial else 4
        if not isinstance(num_frames, int) or num_frames < min_frames:
            raise ValueError(f"num_frames must be an int >= {min_frames} (partial={partial}); got {num_frames!r}")
        if not isinstance(distractors, int) or not 0 <= distractors <= 4:
            raise ValueError(f"distractors must be an int between 0 and 4; got {distractors!r}")
        if not 0.0 <= noise <= 1.0:
            raise ValueError(f"noise must be in [0, 1]; got {noise!r}")
        self.seed = seed
        self.image_size = image_size
        self.num_frames = num_frames
        self.distractors = distractors
        self.noise = noise
        self.partial = partial
        self._tag = zlib.crc32(repr((image_size, num_frames, distractors, partial)).encode())

    # ------------------------------------------------------------------ public API
    def split_size(self, split: str) -> int:
        _check_choice("split", split, tuple(SPLITS))
        return SPLITS[split]

    def clip(self, index: int, split: str = "train", action: str | None = None) -> VideoClip:
        """Generate clip ``index`` of ``split`` ("train", "val" or "test").

        ``action`` forces the action while keeping everything else; forcing the two members of a
        pair gives clips that are exactly each other's frames reversed (without noise).
        """
        _check_choice("split", split, tuple(SPLITS))
        if action is not None:
            _check_choice("action", action, ACTIONS)
        if not isinstance(index, (int, np.integer)) or not 0 <= index < SPLITS[split]:
            raise ValueError(f"index must be in [0, {SPLITS[split]}) for split {split!r}; got {index!r}")
        rng = np.random.default_rng([self.seed, _SPLIT_IDS[split], int(index), self._tag])
        sampled = ACTIONS[rng.integers(len(ACTIONS))]  # drawn always, so forcing keeps the stream
        action = action or sampled
        pair = ACTIONS.index(action) // 2
        while True:  # a clip belongs to the split its parameters hash to: splits never share a clip
            params = self._sample(rng, pair)
            if zlib.crc32(repr(params).encode()) % len(SPLITS) == _SPLIT_IDS[split]:
                break
        frames, boxes = self._render(params)  # the pair's forward action
        start, end = params["start"], params["end"]
        if action not in _FORWARD:  # its time reversal
            frames, boxes = frames[::-1].copy(), boxes[::-1].copy()
            start, end = self.num_frames - end, self.num_frames - start
        if self.noise > 0:
            noisy = frames + rng.standard_normal(frames.shape, dtype=np.float32) * (self.noise * 255)
            frames = np.clip(noisy, 0, 255).round().astype(np.uint8)
        shape, color = params["shape"], params["color"]
        caption = f"{_article(color)} {color} {shape} {ACTION_TEXT[action]}"
        return VideoClip(int(index), split, frames, action, shape, color, caption, start, end, boxes)

    def clips(self, n: int, split: str = "train", start: int = 0) -> list[VideoClip]:
        """Clips ``start .. start+n-1`` of ``split``."""
        return [self.clip(i, split) for i in range(start, start + n)]

    # ------------------------------------------------------------------ sampling and pixels
    def _sample(self, rng: np.random.Generator, pair: int) -> dict:
        """The parameters of a clip of action pair ``pair`` (plain Python values, so they hash)."""
        S, T = self.image_size, self.num_frames
        shapes = SHAPES if pair != 2 else tuple(s for s in SHAPES if s != "circle")  # a circle's turn is invisible
        shape = shapes[rng.integers(len(shapes))]
        color = tuple(COLORS)[rng.integers(len(COLORS))]
        if self.partial:
            length = int(rng.integers(max(2, T // 3), T - 1))  # frames the action takes, 2 .. T-2
            start = int(rng.integers(1, T - length))  # at least one still frame before and after
        else:
            length, start = T, 0
        steps = length - 1
        p: dict = {"pair": pair, "shape": shape, "color": color, "start": start, "end": start + length}
        if pair in (0, 1):  # translation along x (pair 0) or y (pair 1)
            side = round(0.28 * S)
            max_d = S - 2 - side
            dist = int(rng.integers(min(max(steps, S // 3), max_d), max_d + 1))  # >= 1 px per frame if it fits
            a = int(rng.integers(1, S - 1 - side - dist + 1))
            b = int(rng.integers(1, S - side))
            p.update(side=side, dist=dist, x=a if pair == 0 else b, y=b if pair == 0 else a)
        elif pair == 2:  # rotation about the box centre, 7-12 degrees a frame, 30 at most
            side = round(0.42 * S)
            m = _rotation_margin(side)
            x, y = (int(v) for v in rng.integers(m, S - side - m + 1, size=2))
            total = min(max(float(rng.uniform(7, 12)) * steps, 60.0), 30.0 * steps)
            p.update(side=side, x=x, y=y, angle0=round(float(rng.uniform(0, 360)), 1), turn=round(total, 1))
        else:  # growing about a fixed centre
            small = int(rng.integers(round(0.15 * S), round(0.22 * S) + 1))
            large = int(rng.integers(round(0.45 * S), round(0.55 * S) + 1))
            cx, cy = (float(v) for v in rng.integers(1 + large // 2 + 1, S - 1 - large // 2, size=2))
            p.update(small=small, large=large, cx=cx, cy=cy)
        others = [c for c in COLORS if c != color]
        p["distractors"] = tuple(
            (SHAPES[rng.integers(len(SHAPES))], others[rng.integers(len(others))],
             *(int(v) for v in rng.integers(1, S - round(0.18 * S), size=2)))
            for _ in range(self.distractors)
        )
        return p

    def _render(self, p: dict) -> tuple[np.ndarray, np.ndarray]:
        """Frames (T, H, W, 3) uint8 and boxes (T, 4) of the pair's forward action."""
        S, T = self.image_size, self.num_frames
        base = Image.new("RGB", (S, S), BACKGROUND)
        draw = ImageDraw.Draw(base)
        d_side = round(0.18 * S)
        for shape, color, x, y in p["distractors"]:
            _draw_shape(draw, shape, (x, y, x + d_side, y + d_side), COLORS[color])
        rgb = COLORS[p["color"]]
        steps = p["end"] - p["start"] - 1
        progress = np.clip((np.arange(T) - p["start"]) / steps, 0.0, 1.0)  # (T,) in [0, 1]
        frames = np.empty((T, S, S, 3), dtype=np.uint8)
        boxes = np.empty((T, 4), dtype=np.int64)
        for t, q in enumerate(progress):
            img = base.copy()
            if p["pair"] == 2:
                arr = np.array(img)
                box = _paint_rotated(arr, p["shape"], p["x"], p["y"], p["side"], p["angle0"] + q * p["turn"], rgb)
                frames[t] = arr
            else:
                if p["pair"] in (0, 1):
                    shift = _round(q * p["dist"])
                    x, y = p["x"] + shift * (p["pair"] == 0), p["y"] + shift * (p["pair"] == 1)
                    box = (x, y, x + p["side"], y + p["side"])
                else:
                    side = p["small"] + q * (p["large"] - p["small"])
                    x0, y0 = _round(p["cx"] - side / 2), _round(p["cy"] - side / 2)
                    box = (x0, y0, x0 + _round(side), y0 + _round(side))
                _draw_shape(ImageDraw.Draw(img), p["shape"], box, rgb)
                frames[t] = np.asarray(img)
            boxes[t] = box
        return frames, boxes


def _round(v: float) -> int:
    """Round half up (NumPy's round-half-to-even could leave two consecutive positions equal)."""
    return int(math.floor(v + 0.5))


def _rotation_margin(side: int) -> int:
    """Pixels a shape drawn in a ``side`` box can reach outside it when rotated."""
    return math.ceil(side * (math.sqrt(2) - 1) / 2) + 1


def _paint_rotated(arr: np.ndarray, shape: str, x: int, y: int, side: int, angle: float, rgb) -> tuple:
    """Paint ``shape`` (box corner ``(x, y)``, turned ``angle`` degrees clockwise about the box
    centre) into ``arr`` (H, W, 3) in place; return the box of its pixels."""
    m, up = _rotation_margin(side), 4  # draw 4x larger, rotate, average back down: smooth edges
    canvas = side + 2 * m
    big = Image.new("L", (canvas * up, canvas * up), 0)
    _draw_shape(ImageDraw.Draw(big), shape, (m * up, m * up, (m + side) * up, (m + side) * up), 255)
    big = big.rotate(-angle, resample=Image.BILINEAR)  # PIL turns anticlockwise for positive angles
    mask = np.asarray(big.resize((canvas, canvas), Image.BOX)) >= 128  # (canvas, canvas) bool
    arr[y - m:y - m + canvas, x - m:x - m + canvas][mask] = rgb
    ys, xs = np.nonzero(mask)
    return (x - m + xs.min(), y - m + ys.min(), x - m + xs.max() + 1, y - m + ys.max() + 1)


# ---------------------------------------------------------------------- files
def _as_frames(frames) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected frames of shape (T, H, W, 3) uint8, got {arr.shape} {arr.dtype}")
    return arr


def write_mp4(frames, path: str | Path, fps: int = 8) -> Path:
    """Write frames (T, H, W, 3) uint8 to an H.264 MP4 (MPEG-4 Part 2 where PyAV lacks libx264).

    The yuv420p pixel format that every player reads halves the colour resolution and needs even
    sides: an odd height or width is padded by repeating the last row or column, so such a video
    reads back one pixel larger. Returns the path.
    """
    import av

    frames = _as_frames(frames)
    if not (isinstance(fps, int) and fps > 0):
        raise ValueError(f"fps must be a positive int; got {fps!r}")
    T, H, W, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, H % 2), (0, W % 2), (0, 0)), mode="edge")
    path = Path(path)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = W + W % 2, H + H % 2, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "10", "preset": "medium"}  # near-lossless; tiny frames stay small
        else:
            stream.bit_rate = 4_000_000
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())  # flush the encoder's delayed frames
    return path


def read_video(path: str | Path, indices=None, backend: str | None = None) -> np.ndarray:
    """Read frames ``indices`` (all by default) of a video as (T, H, W, 3) uint8.

    ``backend``: "decord" (decodes only what it needs, seeks by index), "pyav" (decodes the whole
    stream), or None for decord when it is installed and PyAV otherwise.
    """
    _check_choice("backend", backend, BACKENDS)
    path = Path(path)
    if not path.exists():
        raise ValueError(f"path {str(path)!r} does not exist")
    if backend is None:
        try:
            import decord  # noqa: F401
            backend = "decord"
        except ImportError:
            backend = "pyav"
    if backend == "decord":
        from decord import VideoReader, cpu

        reader = VideoReader(str(path), ctx=cpu(0))
        idx = _check_indices(indices, len(reader))
        return reader.get_batch(list(idx)).asnumpy()  # (T, H, W, 3) uint8
    import av

    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    return frames[_check_indices(indices, len(frames))]


def _check_indices(indices, n: int) -> np.ndarray:
    idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"indices must be in [0, {n}) for a video of {n} frames; got {idx.tolist()}")
    return idx


# ---------------------------------------------------------------------- sampling and tensors
def sample_indices(num_frames: int, k: int, strategy: str = "uniform",
                   rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Pick ``k`` sorted frame indices out of ``num_frames``.

    "uniform": the centres of ``k`` equal segments (the same every time); "random": ``k``
    distinct frames at random (with repeats only when ``k > num_frames``); "segment": TSN's
    sampling, one random frame inside each of ``k`` equal segments. Returns (k,) int64.
    """
    _check_choice("strategy", strategy, SAMPLING_STRATEGIES)
    if not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive int; got {num_frames!r}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int; got {k!r}")
    edges = np.arange(k + 1) * num_frames / k  # (k+1,) segment boundaries
    if strategy == "uniform":
        return np.floor((edges[:-1] + edges[1:]) / 2).astype(np.int64)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if strategy == "random":
        return np.sort(rng.choice(num_frames, size=k, replace=k > num_frames)).astype(np.int64)
    return np.floor(edges[:-1] + rng.random(k) * (edges[1:] - edges[:-1])).astype(np.int64)


def to_video_tensor(clips_or_frames) -> "torch.Tensor":
    """Stack clips, or frames (T, H, W, 3) / (B, T, H, W, 3) uint8, into a float tensor
    (B, T, 3, H, W) in [0, 1]."""
    import torch

    items = clips_or_frames
    if isinstance(items, VideoClip):
        items = [items]
    if isinstance(items, (list, tuple)):
        items = np.stack([c.frames if isinstance(c, VideoClip) else np.asarray(c) for c in items])
    arr = np.asarray(items)
    if arr.ndim == 4:
        arr = arr[None]
    if arr.ndim != 5 or arr.shape[-1] != 3:
        raise ValueError(f"expected clips or frames of shape (T, H, W, 3) or (B, T, H, W, 3), got {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 1, 4, 2, 3).float().div_(255.0)
