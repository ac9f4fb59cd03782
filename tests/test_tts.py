"""The §41.2 speech-generation machinery: eSpeak phonemes and their vocabulary, VALL-E examples
with acoustic prompts of the same voice, padded batches and the losses."""
import numpy as np
import pytest
import torch

from mmcourse import tts
from mmcourse.data import speech
from mmcourse.models import VALLEAR, VALLENAR, VALLEConfig

torch.set_num_threads(1)
TEXTS = ["a small red circle", "there are two shapes: a big blue star and a small triangle"]


def test_phoneme_symbols_split_words_phones_and_stress():
    assert tts.phoneme_symbols("ɐ s_m_ˈɔː_l") == ["ɐ", "|", "s", "m", "ˈ", "ɔː", "l"]
    # eSpeak leaves an empty piece at a pause: dropped
    expected = ["s", "t", "ˈ", "ɑː", "|", "ˌ", "æ", "n", "d"]
    assert tts.phoneme_symbols("s_t_ˈɑː__ ˌæ_n_d") == expected
    for voice in ("en-us", "en-gb-scotland+m7", "en-029"):
        for text in TEXTS:
            symbols = tts.phonemize(text, voice)
            assert tts.join_phonemes(symbols) == speech.phonemes(text, voice)
            assert symbols.count("|") == len(speech.phonemes(text, voice).split()) - 1


def test_vocabulary_round_trip_and_errors():
    vocab = tts.PhonemeVocabulary.from_texts(TEXTS, voices=("en-us", "en-gb-x-rp"))
    assert vocab.symbols[:4] == ["<pad>", "<bos>", "<eos>", "|"]
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.word_id) == (0, 1, 2, 3)
    symbols = tts.phonemize(TEXTS[1], "en-gb-x-rp")
    ids = vocab.encode(symbols)
    assert min(ids) >= 3 and vocab.decode(ids) == symbols
    assert vocab.encode(speech.phonemes(TEXTS[1], "en-gb-x-rp", separator="_")) == ids
    assert vocab.encode(symbols, add_bos_eos=True) == [1, *ids, 2]
    assert vocab.decode(torch.tensor([1, *ids, 2, 0, 0])) == symbols
    again = tts.PhonemeVocabulary.from_json(vocab.to_json())
    assert again.symbols == vocab.symbols and len(again) == len(vocab)
    with pytest.raises(ValueError, match=r"outside the vocabulary: \['r'\]"):
        vocab.encode(["s", "r"])
    with pytest.raises(ValueError, match="ids must lie in"):
        vocab.decode([len(vocab)])
    with pytest.raises(ValueError, match="phones must be"):
        tts.PhonemeVocabulary(["a", "b c"])
    with pytest.raises(ValueError, match="phones must be"):
        tts.PhonemeVocabulary(["a", "|"])
    with pytest.raises(ValueError, match="JSON written by"):
        tts.PhonemeVocabulary.from_json("[1, 2]")


def test_examples_crop_prompts_and_check_codes():
    codes = torch.arange(12).view(1, 2, 6)  # as Codec.encode gives for one utterance
    prompt = torch.arange(20).view(2, 10)
    example = tts.valle_example([5, 6, 7], codes, prompt, max_prompt_frames=4)
    assert example.phonemes.tolist() == [5, 6, 7] and example.codes.shape == (2, 6)
    assert torch.equal(example.prompt, prompt[:, :4])  # the beginning, without an rng
    cropped = tts.valle_example([5], codes, prompt, 4, np.random.default_rng(1)).prompt
    start = int(cropped[0, 0])
    assert torch.equal(cropped, prompt[:, start: start + 4])
    with pytest.raises(ValueError, match="different numbers of codebooks"):
        tts.valle_example([5], codes, prompt[:1])
    with pytest.raises(ValueError, match="integer codes"):
        tts.valle_example([5], codes.float(), prompt)
    with pytest.raises(ValueError, match="phoneme_ids"):
        tts.valle_example([], codes, prompt)


def test_collate_pads_and_masks():
    examples = [tts.valle_example([4, 5, 6], torch.ones(2, 5).long(), torch.ones(2, 3).long()),
                tts.valle_example([7], torch.full((2, 2), 3), torch.full((2, 4), 2))]
    batch = tts.collate_valle(examples)
    assert batch.phonemes.tolist() == [[4, 5, 6], [7, 0, 0]]
    assert batch.phoneme_mask.tolist() == [[True] * 3, [True, False, False]]
    assert batch.target.shape == (2, 2, 5) and batch.target[1, :, 2:].eq(0).all()
    assert batch.target_mask.sum(1).tolist() == [5, 2]
    assert batch.prompt.shape == (2, 2, 4) and batch.prompt_mask.sum(1).tolist() == [3, 4]
    with pytest.raises(ValueError, match="at least one"):
        tts.collate_valle([])


def test_pick_prompt_takes_another_utterance_of_the_voice():
    voices = ["a", "b", "a", "c", "c", "a"]
    assert tts.pick_prompt(voices, 0) == 2 and tts.pick_prompt(voices, 5) == 0
    rng = np.random.default_rng(0)
    picks = {tts.pick_prompt(voices, 2, rng) for _ in range(30)}
    assert picks == {0, 5}
    with pytest.raises(ValueError, match="says nothing else"):
        tts.pick_prompt(voices, 1)
    with pytest.raises(ValueError, match="index must lie"):
        tts.pick_prompt(voices, 6)


def test_batches_pair_each_utterance_with_its_voice_and_feed_both_losses():
    voices = ["en-us", "en-us+f3", "en-us", "en-us+f3", "en-us"]
    codes = [torch.full((2, 4 + i), i) for i in range(5)]  # every code names its utterance
    phonemes = [[4 + i] * (i + 1) for i in range(5)]
    batches = tts.VALLEBatches(phonemes, codes, voices, batch_size=2, max_prompt_frames=3)
    torch.manual_seed(0)
    config = VALLEConfig(num_quantizers=2, codebook_size=8, phoneme_vocab_size=10, d_model=16,
                         num_heads=2, num_layers=1, ffn_dim=32, max_phonemes=8, max_frames=12)
    ar, nar = VALLEAR(config), VALLENAR(config)
    for step in range(6):
        batch = batches(step)
        for row in range(batch.target.shape[0]):
            i, j = int(batch.target[row, 0, 0]), int(batch.prompt[row, 0, 0])
            assert i != j and voices[i] == voices[j]
            assert batch.prompt_mask[row].sum() == 3 and batch.target_mask[row].sum() == 4 + i
            assert batch.phoneme_mask[row].sum() == i + 1
        assert torch.isfinite(tts.ar_loss(ar, batch)) and torch.isfinite(tts.nar_loss(nar, batch))
    with pytest.raises(ValueError, match="says nothing else"):
        tts.VALLEBatches(phonemes[:2], codes[:2], voices[:2])
    with pytest.raises(ValueError, match="one voice per"):
        tts.VALLEBatches(phonemes, codes, voices[:3])


def test_codec_reconstructions_and_quality():
    from mmcourse.models import Codec, CodecConfig

    torch.manual_seed(0)
    codec = Codec(CodecConfig(sampling_rate=16_000, hidden_size=8, num_filters=4,
                              upsampling_ratios=(8, 5, 4, 2), codebook_size=16,
                              num_quantizers=4, num_lstm_layers=1)).train()
    waves = [np.random.default_rng(k).normal(0, 0.1, n).astype(np.float32)
             for k, n in enumerate((5000, 7000))]
    codec(torch.from_numpy(waves[0])[None, None])  # k-means initialises the codebooks
    codec.eval()
    levels = tts.reconstruct_levels(codec, waves[0], (1, 2, 4))
    for n, wave in levels.items():  # encoded once, the same as encoding with n codebooks
        assert wave.shape == waves[0].shape
        assert np.array_equal(wave, tts.reconstruct(codec, waves[0], n))
    scores, decoded = tts.codec_quality(codec, waves, levels=(1, 4))
    assert set(scores) == {"stoi_1", "mel_db_1", "stoi_4", "mel_db_4"}
    assert [len(decoded[n]) for n in (1, 4)] == [2, 2] and decoded[4][1].shape == (7000,)
    assert all(np.isfinite(v) for v in scores.values()) and scores["mel_db_1"] > 0
    with pytest.raises(ValueError, match="1-D"):
        tts.reconstruct(codec, waves[0][None])
    with pytest.raises(ValueError, match="at least one"):
        tts.codec_quality(codec, [])


def test_save_and_load_valle(tmp_path):
    from mmcourse.models import VALLEAR, VALLEConfig, VALLENAR

    vocab = tts.PhonemeVocabulary(["a", "b", "c"])
    config = VALLEConfig(num_quantizers=3, codebook_size=16, phoneme_vocab_size=len(vocab),
                         d_model=16, num_heads=2, num_layers=1, ffn_dim=32, max_phonemes=16,
                         max_frames=32)
    torch.manual_seed(0)
    ar, nar = VALLEAR(config).eval(), VALLENAR(config).eval()
    tts.save_valle(tmp_path / "v.safetensors", ar, nar, vocab, {"steps": 3})
    ar2, nar2, vocab2, notes = tts.load_valle(tmp_path / "v.safetensors")
    assert notes == {"steps": 3} and vocab2.symbols == vocab.symbols and not ar2.training
    phonemes, prompt = torch.tensor([[4, 5, 6]]), torch.randint(0, 16, (1, 3, 5))
    target = torch.randint(0, 16, (1, 3, 4))
    with torch.no_grad():  # float16 storage: equal to 1e-2 in the logits
        assert torch.allclose(ar(phonemes, prompt, target), ar2(phonemes, prompt, target),
                              atol=2e-2)
        assert torch.allclose(nar(phonemes, prompt, target, 1),
                              nar2(phonemes, prompt, target, 1), atol=2e-2)
    with pytest.raises(ValueError, match="save_valle"):
        from safetensors.torch import save_file
        save_file({"x": torch.zeros(1)}, str(tmp_path / "o.safetensors"))
        tts.load_valle(tmp_path / "o.safetensors")
