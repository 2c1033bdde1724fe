"""One contract for every upstream (JOOCI, the HuBERT baseline, the speaker teacher, fbank):
what ``extract_features(waveforms, lengths)`` promises to a downstream, whichever model it is.

- batch vs single: an utterance's features in a padded batch equal its features alone;
- padding: 50 Hz lengths and a padding mask that agree with the states; whatever lies past an
  item's length (here: loud noise) changes nothing; an empty item stays finite;
- the number of hidden states is the number the model reports;
- save/load: folder -> ``jooci.load`` -> the same outputs, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

import jooci
from jooci.features import frame_lengths

LENGTHS = (8000, 5300, 2400)
TOL = dict(atol=1e-4, rtol=1e-4)


@dataclass
class Case:
    model: torch.nn.Module
    reported_states: int  # what the model says extract_features returns
    has_folder: bool


def _jooci() -> Case:
    from jooci.models import JOOCI

    return Case(JOOCI.from_preset("tiny"), 0, True)


def _baseline() -> Case:
    from jooci.models import HuBERTBaseline

    return Case(HuBERTBaseline.from_preset("tiny"), 0, True)


def _teacher() -> Case:
    from jooci.models import SpeakerModel, speaker_config

    return Case(SpeakerModel(speaker_config("tiny")), 0, True)


def _fbank() -> Case:
    from jooci.superb.cache import FBANK, load_upstream

    model, info, _ = load_upstream(FBANK)
    return Case(model, len(info.layer_names), False)


BUILDERS: dict[str, Callable[[], Case]] = {"jooci": _jooci, "baseline": _baseline, "teacher": _teacher,
                                           "fbank": _fbank}


def _batch(noise_past_length: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    lens = torch.tensor(LENGTHS)
    wav = 0.1 * torch.randn(len(LENGTHS), max(LENGTHS), generator=g)
    past = torch.arange(wav.shape[1])[None] >= lens[:, None]
    wav[past] = noise_past_length * torch.randn(int(past.sum()), generator=g)
    return wav, lens


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models: on a small shared machine thread hand-offs cost more than they gain."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=list(BUILDERS))
def case(request, _one_thread) -> Case:
    torch.manual_seed(0)
    c = BUILDERS[request.param]()
    if c.has_folder:  # move BatchNorm running statistics away from their initial values
        c.model.train()
        with torch.no_grad():
            c.model(*_batch())
        c.reported_states = c.model.num_hidden_states
    c.model.eval()
    return c


def _features(model, wav, lens):
    with torch.no_grad():
        return model.extract_features(wav, lens)


def test_an_utterance_in_a_padded_batch_gets_its_features_alone(case):
    wav, lens = _batch(noise_past_length=5.0)  # padding that is not silence must change nothing
    batch = _features(case.model, wav, lens)
    for i, n in enumerate(LENGTHS):
        alone = _features(case.model, wav[i:i + 1, :n], torch.tensor([n]))
        frames = int(alone.lengths[0])
        assert int(batch.lengths[i]) == frames
        for b, a in zip(batch.hidden_states, alone.hidden_states, strict=True):
            torch.testing.assert_close(b[i, :frames], a[0, :frames], **TOL)
        if alone.embedding is not None:
            torch.testing.assert_close(batch.embedding[i], alone.embedding[0], **TOL)


def test_lengths_and_padding_mask_are_50_hz_and_agree_with_the_states(case):
    wav, lens = _batch()
    out = _features(case.model, wav, lens)
    assert out.lengths.tolist() == frame_lengths(lens, 50).tolist()
    t = out.padding_mask.shape[1]
    assert out.padding_mask.shape == (len(LENGTHS), t) and t >= int(out.lengths.max())
    assert torch.equal(out.padding_mask, torch.arange(t)[None] >= out.lengths[:, None])
    assert all(h.shape[:2] == (len(LENGTHS), t) for h in out.hidden_states)
    empty = _features(case.model, wav[:2], torch.tensor([LENGTHS[0], 0]))
    assert int(empty.lengths[1]) == 0 and bool(empty.padding_mask[1].all())
    assert all(torch.isfinite(h).all() for h in empty.hidden_states)
    assert empty.embedding is None or torch.isfinite(empty.embedding).all()


def test_the_hidden_states_are_as_many_as_the_model_reports(case):
    out = _features(case.model, *_batch())
    assert len(out.hidden_states) == case.reported_states
    assert out.hidden_states == out.content_states + out.other_states
    assert len({h.shape for h in out.hidden_states}) == 1  # one width: a weighted sum can take them all


def test_a_saved_folder_loads_back_to_the_same_outputs(case, tmp_path):
    if not case.has_folder:
        pytest.skip("fbank has no weights and no folder: it is built (load_upstream('fbank')), not loaded")
    case.model.save_pretrained(tmp_path / "m")
    loaded = jooci.load(tmp_path / "m")
    assert type(loaded) is type(case.model) and not loaded.training
    wav, lens = _batch()
    a, b = _features(case.model, wav, lens), _features(loaded, wav, lens)
    assert all(torch.equal(x, y) for x, y in zip(a.hidden_states, b.hidden_states, strict=True))
    assert torch.equal(a.lengths, b.lengths) and torch.equal(a.padding_mask, b.padding_mask)
    assert (a.embedding is None) == (b.embedding is None)
    assert a.embedding is None or torch.equal(a.embedding, b.embedding)
