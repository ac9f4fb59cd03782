"""mmcourse core: utils, hub, train, viz, exercises."""
import time

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from mmcourse import hub, train, utils, viz  # noqa: E402
from mmcourse.exercises import check  # noqa: E402


def test_seed_everything_repeats_random_streams():
    utils.seed_everything(7)
    a = (torch.rand(3), np.random.rand(3))
    utils.seed_everything(7)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        utils.seed_everything(-1)


def test_device_choice(monkeypatch):
    assert utils.device("cpu") == torch.device("cpu")
    monkeypatch.setenv("MMCOURSE_DEVICE", "cpu")
    assert utils.device() == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'; allowed values: cpu, cuda, mps"):
        utils.device("tpu")


def test_setup_sets_threads(monkeypatch):
    monkeypatch.setenv("MMCOURSE_THREADS", "1")
    before = torch.get_num_threads()
    try:
        utils.setup(0)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_count_parameters():
    model = torch.nn.Linear(4, 3)
    assert utils.count_parameters(model) == 15
    model.bias.requires_grad_(False)
    assert utils.count_parameters(model, trainable_only=True) == 12


def test_hub_offline_is_immediate(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    assert hub.online() is False
    assert time.perf_counter() - start < 0.1
    with pytest.raises(RuntimeError, match="not reachable"):
        hub.from_pretrained(object, "openai/clip-vit-base-patch32")


def test_hub_online_answers_within_a_second(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("MMCOURSE_OFFLINE", raising=False)
    hub._reachable.cache_clear()
    start = time.perf_counter()
    hub.online(timeout=0.5, host="10.255.255.1")  # an address that never answers
    assert time.perf_counter() - start < 1.0


def test_hub_skip_prints_one_line(capsys):
    hub.skip("load CLIP")
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "load CLIP" in out


def test_fit_learns_a_linear_map_and_records_history():
    utils.seed_everything(0)
    w = torch.tensor([[2.0, -1.0]])
    x = torch.randn(256, 2)
    y = x @ w.T
    model = torch.nn.Linear(2, 1)
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)]
    hist = train.fit(model, batches, lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]), steps=300,
                     lr=0.05, eval_fn=lambda m: {"mse": torch.nn.functional.mse_loss(m(x), y)}, eval_every=100,
                     progress=False)
    assert len(hist.loss) == 300 and hist.loss[-1] < 1e-3 < hist.loss[0]
    steps, mse = hist.eval_curve("mse")
    assert steps == [100, 200, 300] and mse[-1] < 1e-3
    assert not model.training
    with pytest.raises(ValueError, match="unknown metric 'acc'; recorded: mse"):
        hist.eval_curve("acc")


def test_fit_accepts_a_batch_function_and_rejects_bad_settings():
    model = torch.nn.Linear(1, 1)
    hist = train.fit(model, lambda step: torch.ones(4, 1) * step, lambda m, b: m(b).pow(2).mean(), steps=3,
                     progress=False)
    assert len(hist.loss) == 3
    with pytest.raises(ValueError, match="steps must be a positive int"):
        train.fit(model, [], lambda m, b: 0, steps=0)
    frozen = torch.nn.Linear(1, 1).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train.fit(frozen, [None], lambda m, b: 0, steps=1)


def test_viz_functions_draw(tmp_path):
    imgs = [np.zeros((8, 8, 3), np.uint8), torch.rand(3, 8, 8)]
    fig = viz.show_images(imgs, ["a red circle", "a blue square"])
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "a red circle"
    ax = viz.attention_overlay(imgs[0], np.random.rand(2, 2), title="attn")
    assert len(ax.images) == 2
    ax = viz.spectrogram(np.random.rand(20, 50), sample_rate=16000, hop_length=160)
    assert ax.get_xlim()[1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="got 2 images but 1 captions"):
        viz.show_images(imgs, ["one"])
    with pytest.raises(ValueError, match=r"expected attention of shape \(h, w\)"):
        viz.attention_overlay(imgs[0], np.random.rand(4))


def test_figures_fit_the_book_column():
    import matplotlib.pyplot as plt

    utils.setup(seed=0)
    assert plt.rcParams["font.size"] == viz.BOOK_STYLE["font.size"]
    images = [np.zeros((8, 8, 3), np.uint8)] * 8
    fig = viz.show_images(images, ["a small red circle above a large blue square"] * 8, ncols=8)
    width = fig.get_size_inches()[0]
    assert width <= viz.MAX_WIDTH + 1e-9
    longest = max(len(line) for ax in fig.axes for line in ax.get_title().split("\n"))
    assert longest * 0.55 * 9 / 72 <= width / 8 + 0.05  # each caption line fits under its image
    plt.close("all")


def test_check_reports_pass_fail_and_learner_errors(capsys):
    from mmcourse.exercises.ch39 import bpe_step_reference

    assert check("39.1.bpe_step", bpe_step_reference) is True
    assert "✅" in capsys.readouterr().out

    def wrong(words):  # forgets the frequencies
        return {k: 1 for k in bpe_step_reference(words)}

    assert check("39.1.bpe_step", wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("❌ 39.1.bpe_step, case 1 of 5") and "Hint:" in out

    def crashes(words):
        raise KeyError("oops")

    assert check("39.1.bpe_step", crashes) is False
    out = capsys.readouterr().out
    assert "your function raised KeyError" in out and "Traceback" not in out

    def todo(words):
        raise NotImplementedError

    assert check("39.1.bpe_step", todo) is False
    assert "not implemented yet" in capsys.readouterr().out
    assert check("no.such.exercise", todo) is False
    assert "available:" in capsys.readouterr().out


def test_check_compares_shapes_before_values(capsys):
    from mmcourse.nn import patchify

    def transposed(x, p):
        return patchify(x, p).transpose(1, 2)

    assert check("39.1.patchify", patchify) is True
    assert check("39.1.patchify", transposed) is False
    assert "expected shape (1, 4, 48), got (1, 48, 4)" in capsys.readouterr().out


def test_script_command_names_what_a_reader_runs_from_the_root():
    from mmcourse.utils import script_command

    default = "data/vlm-llava.safetensors"
    assert script_command("/x/scripts/make_vlm.py", ["--models", "frozen", "--out",
                          "/tmp/probe/vlmF.safetensors"], default) == (
        "python scripts/make_vlm.py --models frozen --out vlmF.safetensors")
    assert script_command("scripts/make_vlm.py", ["--out=/root/o/vlm-llava.safetensors",
                          "--stage2", "5"], default) == "python scripts/make_vlm.py --stage2 5"
    assert script_command("make_tiny_lm.py", [], default) == "python scripts/make_tiny_lm.py"
