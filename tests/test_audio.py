"""The from-scratch audio front end (mmcourse.audio) against librosa, step by step and end to end;
and the hidden cases of §39.2's exercises."""
from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.fft
import scipy.signal
import torch

from mmcourse import audio
from mmcourse.data.speech import synthesize
from mmcourse.exercises import check

SR = 16_000


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    waveform, _ = synthesize("a small red circle to the left of a big blue square", "en-us+f3")
    return waveform


@pytest.mark.parametrize("n_fft, hop, win, center, pad_mode", [
    (400, 160, None, True, "constant"),
    (512, 128, 400, True, "constant"),
    (256, 100, 201, True, "reflect"),
    (2048, 512, None, False, "constant"),
    (64, 64, None, True, "constant"),
])
def test_stft_matches_librosa(speech, n_fft, hop, win, center, pad_mode) -> None:
    expected = librosa.stft(speech, n_fft=n_fft, hop_length=hop, win_length=win, center=center,
                            pad_mode=pad_mode)
    got = audio.stft(speech, n_fft, hop, win, center, pad_mode).numpy()
    assert got.shape == expected.shape
    assert got.shape[-1] == audio.num_frames(len(speech), n_fft, hop, center)
    assert np.abs(got - expected).max() < 1e-5 * np.abs(expected).max()


def test_stft_keeps_batch_dimensions_and_float64(speech) -> None:
    batch = np.stack([speech[:8000], speech[8000:16000], speech[-8000:]]).reshape(3, 1, 8000)
    batch = batch.astype(np.float64)
    got = audio.stft(batch)
    assert got.shape == (3, 1, 201, audio.num_frames(8000)) and got.dtype == torch.complex128
    for k in range(3):
        expected = librosa.stft(batch[k, 0], n_fft=400, hop_length=160)
        np.testing.assert_allclose(got[k, 0].numpy(), expected, atol=1e-10)


def test_hann_and_frames() -> None:
    np.testing.assert_allclose(audio.hann_window(400, torch.float64).numpy(),
                               scipy.signal.get_window("hann", 400), atol=1e-15)
    frames = audio.frame(torch.arange(10.0), 4, 3)
    assert frames.tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert audio.num_frames(16_000, 400, 160) == 101
    assert audio.num_frames(16_000, 400, 160, center=False) == 98


@pytest.mark.parametrize("kwargs", [
    dict(sr=16000, n_fft=400, n_mels=80),
    dict(sr=16000, n_fft=512, n_mels=40, fmin=300.0, fmax=7000.0),
    dict(sr=22050, n_fft=2048, n_mels=128, htk=True),
    dict(sr=8000, n_fft=256, n_mels=23, htk=True, norm=None),
    dict(sr=16000, n_fft=400, n_mels=64, fmin=20.0, norm=None),
])
def test_mel_filterbank_matches_librosa(kwargs) -> None:
    expected = librosa.filters.mel(**kwargs)
    ours = dict(kwargs)
    got = audio.mel_filterbank(ours.pop("sr"), **ours).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-7 * expected.max())


def test_mel_scale_round_trip_and_librosa() -> None:
    hz = np.array([0.0, 100.0, 999.0, 1000.0, 1001.0, 4000.0, 8000.0])
    for htk in (False, True):
        mels = audio.hz_to_mel(hz, htk)
        np.testing.assert_allclose(mels.numpy(), librosa.hz_to_mel(hz, htk=htk), rtol=1e-12)
        np.testing.assert_allclose(audio.mel_to_hz(mels, htk).numpy(), hz, atol=1e-9)


def test_log_mel_and_mfcc_match_librosa(speech) -> None:
    mel = librosa.feature.melspectrogram(y=speech, sr=SR, n_fft=400, hop_length=160, n_mels=80)
    ours = audio.mel_spectrogram(speech, SR, 400, 160, 80).numpy()
    np.testing.assert_allclose(ours, mel, atol=1e-6 * mel.max())
    log_mel = librosa.power_to_db(mel)
    ours_db = audio.log_mel_spectrogram(speech, SR, 400, 160, 80).numpy()
    assert np.abs(ours_db - log_mel).max() < 2e-3  # dB; float32 rounding of the quietest bins
    expected = librosa.feature.mfcc(y=speech, sr=SR, n_mfcc=13, n_fft=400, hop_length=160,
                                    n_mels=80)
    got = audio.mfcc(audio.log_mel_spectrogram(speech, SR, 400, 160, 80), n_mfcc=13).numpy()
    assert got.shape == expected.shape == (13, audio.num_frames(len(speech)))
    assert np.abs(got - expected).max() < 1e-5 * np.abs(expected).max()


def test_power_to_db_and_dct_match_exactly_on_the_same_input() -> None:
    rng = np.random.default_rng(0)
    power = rng.exponential(size=(40, 30)) ** 6  # a wide dynamic range, so top_db bites
    for top_db in (80.0, 20.0, None):
        np.testing.assert_allclose(audio.power_to_db(power, top_db=top_db).numpy(),
                                   librosa.power_to_db(power, top_db=top_db), atol=1e-9)
    expected = scipy.fft.dct(power, axis=-2, type=2, norm="ortho")[:20]
    np.testing.assert_allclose(audio.mfcc(power, n_mfcc=20).numpy(), expected,
                               atol=1e-9 * power.max())
    basis = audio.dct_matrix(16, 16).double()
    np.testing.assert_allclose((basis @ basis.T).numpy(), np.eye(16), atol=1e-6)


def test_power_to_db_floors_each_item_of_a_batch() -> None:
    power = torch.stack([torch.full((4, 5), 1.0), torch.full((4, 5), 1e-4)])
    power[1, 0, 0] = 1e-12
    db = audio.power_to_db(power, top_db=30.0)
    assert db[0].eq(0.0).all()
    assert db[1, 0, 0] == pytest.approx(-70.0) and db[1, 1, 1] == pytest.approx(-40.0)


def test_errors_say_what_was_expected() -> None:
    with pytest.raises(ValueError, match="win_length must be at most"):
        audio.stft(np.zeros(1000), n_fft=256, win_length=400)
    with pytest.raises(ValueError, match="pad_mode"):
        audio.stft(np.zeros(1000), pad_mode="wrap")
    with pytest.raises(ValueError, match="fmin < fmax"):
        audio.mel_filterbank(16000, 400, 40, fmin=9000.0)
    with pytest.raises(ValueError, match="positive integer"):
        audio.mel_filterbank(16000, 400, 0)
    with pytest.raises(ValueError, match=r"\(\.\.\., n_mels, frames\)"):
        audio.mfcc(np.zeros(40))
    with pytest.raises(ValueError, match="at least n_fft"):
        audio.num_frames(100, 400, 160, center=False)


def test_exercise_cases_accept_a_correct_solution_and_reject_a_wrong_one() -> None:
    def conv_geometry(num_samples, kernels, strides):
        frames, field, hop = num_samples, 1, 1
        for k, s in zip(kernels, strides):
            frames = (frames - k) // s + 1 if frames >= k else 0
            field, hop = field + (k - 1) * hop, hop * s
        return frames, field, hop

    def mel_htk(sample_rate, n_fft, n_mels):
        top = 2595 * np.log10(1 + sample_rate / 2 / 700)
        edges = 700 * (10 ** (np.linspace(0, top, n_mels + 2) / 2595) - 1)
        bins = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
        lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
        return np.maximum(0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))

    def segment_sample(num_frames, k, offsets):
        edges = np.arange(k + 1) * num_frames / k
        return np.floor(edges[:-1] + offsets * (edges[1:] - edges[:-1])).astype(np.int64)

    assert check("39.2.conv_geometry", conv_geometry, verbose=False)
    assert check("39.2.mel_htk", mel_htk, verbose=False)
    assert check("39.2.segment_sample", segment_sample, verbose=False)
    def negative_frames(n, ks, ss):  # forgets that a too-short input gives 0 frames
        frames, field, hop = conv_geometry(n, ks, ss)
        return frames or -1, field, hop

    assert not check("39.2.conv_geometry", negative_frames, verbose=False)
    assert not check("39.2.mel_htk", lambda *a: 2 * mel_htk(*a), verbose=False)
    one_later = lambda n, k, o: segment_sample(n, k, o) + 1
    assert not check("39.2.segment_sample", one_later, verbose=False)


@pytest.mark.parametrize("seconds", [None, 2.0])
def test_whisper_log_mel_equals_the_feature_extractor(seconds):
    """Our Whisper front end against transformers' WhisperFeatureExtractor on synthesised speech:
    padded to 30 s as Whisper reads it, and at the utterance's own length."""
    from transformers import WhisperFeatureExtractor

    from mmcourse.audio import whisper_log_mel
    from mmcourse.data import speech

    wave, sr = speech.synthesize("the small red circle is left of the blue square", "en-us")
    assert sr == 16_000
    extractor = WhisperFeatureExtractor()  # the defaults: 80 mels, 30 s, hop 160
    if seconds is None:
        theirs = extractor(wave, sampling_rate=sr, return_tensors="np").input_features[0]
        ours = whisper_log_mel(wave)
    else:
        clip = wave[: int(seconds * sr)]
        theirs = extractor(clip, sampling_rate=sr, padding="do_not_pad",
                           return_tensors="np").input_features[0]
        ours = whisper_log_mel(clip, num_samples=None)
    assert tuple(ours.shape) == theirs.shape
    assert np.abs(ours.numpy() - theirs).max() < 1e-4


def test_whisper_log_mel_batches_and_checks_its_input():
    from mmcourse.audio import whisper_log_mel

    waves = torch.randn(3, 8000, generator=torch.Generator().manual_seed(0)) * 0.1
    batch = whisper_log_mel(waves)
    assert tuple(batch.shape) == (3, 80, 3000)
    assert torch.allclose(batch[1], whisper_log_mel(waves[1]), atol=1e-6)
    with pytest.raises(ValueError, match="num_samples"):
        whisper_log_mel(waves, num_samples=0)


def test_mel_distance():
    from mmcourse.audio import mel_distance

    rng = np.random.default_rng(0)
    wave = rng.normal(0, 0.1, 16_000).astype(np.float32)
    assert mel_distance(wave, wave) == 0.0
    assert mel_distance(wave, np.concatenate([wave, wave[:320]])) == 0.0  # whole frames cut
    assert mel_distance(wave, 0.5 * wave) == pytest.approx(20 * np.log10(2), rel=1e-4)  # 6 dB
    assert mel_distance(wave, wave + rng.normal(0, 0.1, 16_000)) > 1.0
    silence = np.concatenate([wave, np.zeros(8000)])  # hiss in silence costs at most top_db
    hiss = silence + np.r_[np.zeros(16_000), rng.normal(0, 1e-6, 8000)]
    assert 0 < mel_distance(silence, hiss) <= 80.0 / 3 + 1e-6
    with pytest.raises(ValueError, match="shorter"):
        mel_distance(wave, wave[:100])
    with pytest.raises(ValueError, match="1-D"):
        mel_distance(wave[None], wave[None])
