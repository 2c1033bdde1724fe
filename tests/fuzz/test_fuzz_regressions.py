"""The inputs the fuzz tests found escaping as Python errors, kept as explicit cases.

Each was a traceback (UnicodeDecodeError, TypeError, RecursionError, AttributeError, ValueError,
OverflowError) before its parser was fixed; each is now one of jooci's errors naming the file.
"""

import json

import numpy as np
import pytest
import soundfile as sf

from jooci.configio import ConfigError, load_yaml, parse_overrides
from jooci.data.corpora import read_trials
from jooci.data.manifest import ManifestError, Utterance, read_fairseq_tsv, read_label_file, read_manifest
from jooci.targets.labels import read_labels
from jooci.train.config import PretrainConfig, load_config


def _manifest_error(fn, path, *needles, **kw) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        fn(path, **kw)
    text = str(info.value)
    assert text.startswith(str(path)), text
    for needle in needles:
        assert needle in text, text
    return info.value


def _config_error(fn, *args, needles=()) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        fn(*args)
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    return info.value


@pytest.mark.parametrize("reader", [read_manifest, read_fairseq_tsv, read_label_file, read_trials])
def test_text_file_not_utf8(tmp_path, reader):
    """Was UnicodeDecodeError. Now: the first line that is not UTF-8 is named."""
    path = tmp_path / "latin1.txt"
    path.write_bytes("1 a b\n".encode() + "1 caf\xe9 b\n".encode("latin-1"))
    _manifest_error(reader, path, "line 2: not UTF-8 text")


def test_manifest_path_of_another_type(tmp_path):
    """Was TypeError (a path and a num_samples swapped: ``"path": 1600``)."""
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"id": "u0", "path": 1600, "num_samples": 16000}) + "\n")
    _manifest_error(read_manifest, path, "line 1: path must be a non-empty string, got 1600")


@pytest.mark.parametrize("rate", ["audio/u0.wav", 0, -16000, None, True, 16000.5])
def test_manifest_sample_rate_not_a_positive_integer(tmp_path, rate):
    """Was accepted (then a ZeroDivisionError or a wrong comparison downstream)."""
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"id": "u0", "path": "a.wav", "num_samples": 16, "sample_rate": rate}) + "\n")
    _manifest_error(read_manifest, path, "sample_rate must be a positive integer", check_files=False,
                    check_durations=False)


def test_manifest_nested_too_deeply(tmp_path):
    """Was RecursionError from json."""
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "u0", "path": "a.wav", "num_samples": 16}\n' + "[" * 100_000 + "\n")
    _manifest_error(read_manifest, path, "line 2:", check_files=False)


def test_tsv_non_ascii_digit(tmp_path):
    """Was ValueError: ``"²".isdigit()`` is true, ``int("²")`` fails."""
    path = tmp_path / "m.tsv"
    path.write_text(f"{tmp_path}\na.wav\t\u00b2\n", encoding="utf-8")
    _manifest_error(read_fairseq_tsv, path, "line 2: expected 'relpath<TAB>num_samples'", check_files=False)


def test_label_beyond_int64(tmp_path):
    """Was OverflowError in read_labels (a label file row read as int64)."""
    path = tmp_path / "k.km"
    path.write_text("0 1 99999999999999999999999\n")
    _manifest_error(read_label_file, path, "line 1: label beyond the int64 range")
    utt = Utterance(id="u0", path="a.wav", num_samples=1040)  # 3 frames at 50 Hz
    _manifest_error(read_labels, path, "int64", manifest_utts=[utt])


@pytest.mark.parametrize("loader", [load_config, lambda p: load_yaml(PretrainConfig, p)])
def test_config_not_utf8(tmp_path, loader):
    """Was UnicodeDecodeError."""
    path = tmp_path / "c.yaml"
    path.write_bytes(b"preset: tiny\nrun: {name: caf\xe9}\n")
    _config_error(loader, path, needles=(str(path), "not UTF-8 text"))


@pytest.mark.parametrize("loader", [load_config, lambda p: load_yaml(PretrainConfig, p)])
def test_config_nested_too_deeply(tmp_path, loader):
    """Was RecursionError from yaml."""
    path = tmp_path / "c.yaml"
    path.write_text("[" * 10_000 + "\n")
    _config_error(loader, path, needles=(str(path),))


def test_config_keys_of_mixed_types(tmp_path):
    """Was TypeError (sorting unknown keys ``1`` and ``"x"``)."""
    path = tmp_path / "c.yaml"
    path.write_text("preset: tiny\n1: 2\nx: 3\n")
    _config_error(load_config, path, needles=(str(path), "unknown key"))


def test_override_with_a_control_character():
    """Was AttributeError (yaml's ReaderError has no ``.problem``)."""
    _config_error(parse_overrides, ["run.name=a\x01b"], needles=("'run.name=a\\x01b'", "not valid YAML"))
    _config_error(load_config, None, ["run.name=a\x01b"], needles=("<defaults>", "not valid YAML"))


def test_valid_files_still_read(tmp_path):
    """The fixes leave valid input alone: 16 kHz records, ASCII digits, UTF-8 text, int labels."""
    sf.write(tmp_path / "a.wav", np.zeros(1040, np.float32), 16000)
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "é", "path": "a.wav", "num_samples": 1040}) + "\n",
                                      encoding="utf-8")
    (u,) = read_manifest(tmp_path / "m.jsonl")
    assert u.id == "é" and u.sample_rate == 16000
    (tmp_path / "m.tsv").write_text(f"{tmp_path}\na.wav\t1040\n")
    assert read_fairseq_tsv(tmp_path / "m.tsv")[0].num_samples == 1040
    (tmp_path / "k.km").write_text("0 1 2\n")
    assert read_labels(tmp_path / "k.km", [u])[0].tolist() == [0, 1, 2]


def test_tsv_entry_without_a_file_name(tmp_path):
    """Was ValueError from pathlib (``Path("").with_suffix("")``: a line ``<TAB>0``)."""
    path = tmp_path / "m.tsv"
    path.write_text(f"{tmp_path}\n\t0\n/\t5\n")
    err = _manifest_error(read_fairseq_tsv, path, "line 2: '' is not the path of a file", check_files=False)
    assert "line 3: '/' is not the path of a file" in str(err)


@pytest.mark.parametrize("rate", [0x7FFFFFFF, 1, 999, 768001])
def test_wav_header_with_an_absurd_sample_rate(tmp_path, rate):
    """Was numpy's MemoryError (a 320 GiB resampling filter for a header rate of 2^31 - 1 Hz)."""
    from jooci.audio import AudioError, audio_info, load_audio

    path = tmp_path / "rate.wav"
    sf.write(path, np.zeros(800, np.float32), 16000, subtype="PCM_16")
    blob = bytearray(path.read_bytes())
    blob[24:28] = rate.to_bytes(4, "little")  # the fmt chunk's sample rate
    path.write_bytes(bytes(blob))
    for fn in (audio_info, load_audio):
        with pytest.raises(AudioError) as info:
            fn(path)
        assert str(path) in str(info.value) and f"sample rate {rate} Hz" in info.value.reason


def test_trial_with_an_extension_and_no_name(tmp_path):
    """Was accepted as a trial with an empty utterance id (``.wav`` stripped to ``""``)."""
    path = tmp_path / "trials.txt"
    path.write_text("1 a b\n0 a .wav\n")
    _manifest_error(read_trials, path, "line 2: an utterance without a name")


def test_config_whose_validation_divides_by_zero():
    """Was ZeroDivisionError (``EcapaConfig.__post_init__``: ``channels % scale`` with scale 0)."""
    _config_error(load_config, None, ["teacher.encoder.ecapa.scale=0"], needles=("<defaults>", "teacher.encoder"))


def test_tsv_count_with_a_control_character(tmp_path):
    """Was ValueError: ``str.strip`` removes ``\\x1f`` (a separator to Python), ``int`` does not."""
    path = tmp_path / "m.tsv"
    path.write_text(f"{tmp_path}\na.wav\t\x1f1600\n")
    (u,) = read_fairseq_tsv(path, check_files=False)
    assert u.num_samples == 1600
