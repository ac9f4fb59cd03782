"""Video: deterministic clips whose pixels do what the label says, MP4 round trips, frame sampling."""
import av
import numpy as np
import pytest
import torch

from mmcourse.data import video
from mmcourse.data.shapes import COLORS, SHAPES
from mmcourse.data.video import (ACTIONS, BACKGROUND, MovingShapes, read_video, sample_indices, to_video_tensor,
                                 write_mp4)

WORLD = MovingShapes(seed=0)


def _mask(frames: np.ndarray) -> np.ndarray:
    """(T, H, W) bool: pixels that are not background."""
    return np.any(frames != np.array(BACKGROUND, dtype=np.uint8), axis=-1)


def _centroids(frames: np.ndarray) -> np.ndarray:
    """(T, 2) centroid (x, y) of the foreground in each frame."""
    out = []
    for m in _mask(frames):
        ys, xs = np.nonzero(m)
        out.append((xs.mean(), ys.mean()))
    return np.array(out)


def test_same_seed_and_index_give_identical_clips():
    for kwargs in ({}, {"distractors": 2, "noise": 0.05, "partial": True}):
        a, b = MovingShapes(seed=3, **kwargs).clip(17, "val"), MovingShapes(seed=3, **kwargs).clip(17, "val")
        assert np.array_equal(a.frames, b.frames) and np.array_equal(a.boxes, b.boxes)
        assert (a.action, a.caption, a.start, a.end) == (b.action, b.caption, b.start, b.end)
    assert not np.array_equal(MovingShapes(seed=1).clip(0).frames, MovingShapes(seed=2).clip(0).frames)


def test_splits_never_share_a_clip():
    seen = {}
    for split in video.SPLITS:
        for i in range(200):
            key = WORLD.clip(i, split).frames.tobytes()
            assert seen.setdefault(key, split) == split, f"{split}[{i}] also occurs in {seen[key]}"


def test_formats_labels_and_captions():
    counts = dict.fromkeys(ACTIONS, 0)
    for c in WORLD.clips(200):
        assert c.frames.shape == (16, 32, 32, 3) and c.frames.dtype == np.uint8
        assert c.action in ACTIONS and c.label == ACTIONS.index(c.action)
        assert c.shape in SHAPES and c.color in COLORS and (c.start, c.end) == (0, 16)
        assert c.caption.split()[1:3] == [c.color, c.shape] and c.caption.endswith(video.ACTION_TEXT[c.action])
        assert c.boxes.shape == (16, 4) and c.boxes.min() >= 0 and c.boxes[:, 2:].max() <= 32
        counts[c.action] += 1
    assert min(counts.values()) >= 10  # every action occurs
    other = MovingShapes(seed=0, image_size=48, num_frames=8).clip(0)
    assert other.frames.shape == (8, 48, 48, 3)


def test_boxes_hold_the_moving_objects_pixels():
    for c in WORLD.clips(60):
        for f, (x0, y0, x1, y1) in zip(_mask(c.frames), c.boxes):
            ys, xs = np.nonzero(f)
            assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1


def test_pixels_move_in_the_labelled_direction():
    checked = dict.fromkeys(ACTIONS, 0)
    for c in WORLD.clips(160):
        xy = _centroids(c.frames)
        (dx, dy), area = xy[-1] - xy[0], _mask(c.frames).sum(axis=(1, 2))
        if c.action.startswith("moving"):
            along, across = {"left": (-dx, dy), "right": (dx, dy), "up": (-dy, dx), "down": (dy, dx)}[c.action[7:]]
            assert along >= 10 and abs(across) < 0.5, (c.index, c.action, dx, dy)
            assert np.all(np.diff(xy, axis=0) @ np.sign([dx, dy]) > 0)  # it moves on in every frame
        elif c.action in ("growing", "shrinking"):
            sign = 1 if c.action == "growing" else -1
            assert (area[-1] / area[0]) ** sign > 3 and sign * np.corrcoef(np.arange(16), area)[0, 1] > 0.95
            assert np.all(sign * np.diff(c.boxes[:, 2] - c.boxes[:, 0]) >= 0)  # the box never turns back
        else:  # rotation: same size, same place
            assert area.max() / area.min() < 1.3 and np.abs(xy - xy.mean(0)).max() < 4
            if c.shape == "triangle":  # its centroid orbits the centre: clockwise on screen, positive area
                p = xy - xy.mean(0)
                orbit = 0.5 * np.sum(p[:-1, 0] * p[1:, 1] - p[1:, 0] * p[:-1, 1])
                assert orbit * (1 if c.action == "rotating clockwise" else -1) > 0.5, (c.index, orbit)
        checked[c.action] += 1
    assert min(checked.values()) >= 10


@pytest.mark.parametrize("partial", [False, True])
def test_each_pair_is_the_time_reversal_of_the_other(partial):
    world = MovingShapes(seed=0, partial=partial, distractors=1)
    for i in range(12):
        for k in range(0, len(ACTIONS), 2):
            a, b = world.clip(i, action=ACTIONS[k]), world.clip(i, action=ACTIONS[k + 1])
            assert np.array_equal(a.frames[::-1], b.frames) and np.array_equal(a.boxes[::-1], b.boxes)
            assert (a.start, a.end) == (16 - b.end, 16 - b.start)
    # forcing the action a clip already has changes nothing
    for i in range(12):
        c = world.clip(i)
        assert np.array_equal(world.clip(i, action=c.action).frames, c.frames)
    # reversed "moving left" moves right
    left = WORLD.clip(0, action="moving left")
    assert _centroids(left.frames[::-1])[-1, 0] - _centroids(left.frames[::-1])[0, 0] >= 10


def test_frame_averages_cannot_tell_a_pair_apart_but_frame_order_can():
    """Nearest-class-mean classifiers: on the time-averaged frame near chance, on last minus first high."""
    def features(split, n):
        clips = [WORLD.clip(i, split, action=ACTIONS[i % 2]) for i in range(n)]  # left / right
        frames = np.stack([c.frames for c in clips]).astype(np.float32)
        return frames, np.arange(n) % 2

    train, y = features("train", 200)
    test, y_test = features("val", 200)
    mean, order = (lambda f: f.mean(1)), (lambda f: f[:, -1] - f[:, 0])
    for name, fn, lo, hi in (("mean", mean, 0.0, 0.65), ("order", order, 0.9, 1.0)):
        x, x_test = fn(train).reshape(len(y), -1), fn(test).reshape(len(y_test), -1)
        means = np.stack([x[y == k].mean(0) for k in (0, 1)])
        pred = ((x_test[:, None] - means[None]) ** 2).sum(-1).argmin(1)
        assert lo <= (pred == y_test).mean() <= hi, name


def test_partial_clips_stand_still_outside_the_action():
    world = MovingShapes(seed=0, partial=True)
    for c in world.clips(80):
        T = len(c.frames)
        assert 1 <= c.start < c.end <= T - 1 and c.end - c.start >= 2
        for t in range(1, T):
            still = np.array_equal(c.frames[t], c.frames[t - 1])
            if t <= c.start or t >= c.end:
                assert still, (c.index, t, c.start, c.end)
            elif c.action.startswith("moving"):
                assert not still, (c.index, t, c.start, c.end)  # translation changes every frame
        assert not np.array_equal(c.frames[c.start], c.frames[c.end - 1])


def test_noise_and_distractors():
    clean = MovingShapes(seed=0, distractors=3).clip(4)
    noisy = MovingShapes(seed=0, distractors=3, noise=0.1).clip(4)
    assert 15 < np.abs(noisy.frames.astype(int) - clean.frames).mean() < 30  # E|N(0, 25.5)| = 20
    still = np.all(clean.frames == clean.frames[0], axis=0).all(-1)  # pixels that never change
    assert (_mask(clean.frames[:1])[0] & still).sum() > 0  # the distractors are drawn and static
    assert not np.any(np.all(clean.frames == np.array(COLORS[clean.color], np.uint8), -1) & still[None])


@pytest.mark.parametrize("backend", ["decord", "pyav"])
@pytest.mark.parametrize("size", [32, 33])
def test_mp4_round_trip(tmp_path, backend, size):
    frames = MovingShapes(seed=1, image_size=size).clip(2).frames
    path = write_mp4(frames, tmp_path / "clip.mp4", fps=8)
    back = read_video(path, backend=backend)
    even = size + size % 2  # odd sides are padded to even ones
    assert back.shape == (16, even, even, 3) and back.dtype == np.uint8
    assert np.abs(back[:, :size, :size].astype(int) - frames).mean() < 3
    part = read_video(path, indices=[0, 5, 15], backend=backend)
    assert np.array_equal(part, back[[0, 5, 15]])


def test_decord_and_pyav_agree_and_the_mpeg4_fallback_works(tmp_path, monkeypatch):
    frames = WORLD.clip(7).frames
    path = write_mp4(frames, tmp_path / "a.mp4")
    assert np.abs(read_video(path, backend="decord").astype(int) - read_video(path, backend="pyav")).max() <= 2
    assert np.array_equal(read_video(path), read_video(path, backend="decord"))  # auto picks decord here
    monkeypatch.setattr(av, "codecs_available", av.codecs_available - {"libx264"})
    path = write_mp4(frames, tmp_path / "b.mp4")
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    assert np.abs(read_video(path, backend="pyav").astype(int) - frames).mean() < 6


def test_sampling_strategies():
    rng = np.random.default_rng(0)
    for n, k in ((16, 4), (16, 16), (30, 8), (5, 8)):
        for strategy in video.SAMPLING_STRATEGIES:
            idx = sample_indices(n, k, strategy, rng)
            assert idx.shape == (k,) and idx.dtype == np.int64
            assert np.all(np.diff(idx) >= 0) and idx.min() >= 0 and idx.max() < n
            if strategy == "segment":  # one inside each equal segment
                edges = np.arange(k + 1) * n / k
                assert np.all((idx >= np.floor(edges[:-1])) & (idx < edges[1:]))
            if strategy == "random" and k <= n:
                assert len(set(idx.tolist())) == k
    assert sample_indices(16, 4).tolist() == [2, 6, 10, 14]
    assert sample_indices(16, 4, "segment", rng=1).tolist() == sample_indices(16, 4, "segment", rng=1).tolist()
    draws = {tuple(sample_indices(16, 4, "segment", rng)) for _ in range(20)}
    assert len(draws) > 10  # random within segments


def test_to_video_tensor():
    clips = WORLD.clips(3)
    x = to_video_tensor(clips)
    assert x.shape == (3, 16, 3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x[1, 4].permute(1, 2, 0), torch.from_numpy(clips[1].frames[4]).float() / 255)
    assert to_video_tensor(clips[0]).shape == to_video_tensor(clips[0].frames).shape == (1, 16, 3, 32, 32)
    assert torch.equal(to_video_tensor(np.stack([c.frames for c in clips])), x)


def test_bad_arguments_name_the_argument_and_the_allowed_values(tmp_path):
    cases = [
        (lambda: WORLD.clip(0, "heldout"), "split", "'train'"),
        (lambda: WORLD.clip(0, action="jumping"), "action", "'moving left'"),
        (lambda: WORLD.clip(-1), "index", "[0, 50000)"),
        (lambda: MovingShapes(image_size=16), "image_size", ">= 24"),
        (lambda: MovingShapes(num_frames=5, partial=True), "num_frames", ">= 6"),
        (lambda: MovingShapes(distractors=5), "distractors", "between 0 and 4"),
        (lambda: MovingShapes(noise=2.0), "noise", "[0, 1]"),
        (lambda: sample_indices(16, 4, "dense"), "strategy", "'segment'"),
        (lambda: sample_indices(16, 0), "k", "positive"),
        (lambda: read_video(tmp_path / "x.mp4", backend="opencv"), "backend", "'pyav'"),
        (lambda: read_video(tmp_path / "missing.mp4"), "path", "does not exist"),
        (lambda: write_mp4(np.zeros((4, 8, 8), np.uint8), tmp_path / "x.mp4"), "frames", "(T, H, W, 3)"),
        (lambda: to_video_tensor(np.zeros((8, 8, 3))), "expected", "(B, T, H, W, 3)"),
    ]
    for fn, name, allowed in cases:
        with pytest.raises(ValueError) as err:
            fn()
        assert name in str(err.value) and allowed in str(err.value), str(err.value)
    path = write_mp4(WORLD.clip(0).frames, tmp_path / "ok.mp4")
    with pytest.raises(ValueError, match=r"indices must be in \[0, 16\)"):
        read_video(path, indices=[16])
