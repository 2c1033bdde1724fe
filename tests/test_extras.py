"""Optional packages: a missing one is a one-line error naming its extra, or a documented fallback."""

import logging

import numpy as np
import pytest

from jooci import extras


def _hide(monkeypatch, module):
    real = extras.available
    monkeypatch.setattr(extras, "available", lambda m: m.split(".")[0] != module and real(m))


def test_a_missing_extra_names_what_to_install(monkeypatch):
    with pytest.raises(extras.MissingExtraError, match=r"pip install 'jooci\[synth\]'"):
        _hide(monkeypatch, "espeakng_loader")
        extras.check("espeakng_loader")
    assert issubclass(extras.MissingExtraError, ImportError)
    for module, (extra, package, _) in extras.EXTRAS.items():
        message = extras.missing_message(module)
        assert f"pip install 'jooci[{extra}]'" in message and package in message and "\n" not in message


def test_the_cli_reports_a_missing_extra_in_one_line(monkeypatch, tmp_path, capsys):
    from jooci.cli import main

    _hide(monkeypatch, "espeakng_loader")
    assert main(["synth", "--out", str(tmp_path / "c"), "--minutes", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err == ("jooci synth: error: JOOCI-synth needs espeakng-loader, which is not installed: "
                   "pip install 'jooci[synth]'\n")
    assert not (tmp_path / "c").exists()


def test_kmeans_falls_back_to_sklearn_without_faiss(monkeypatch, caplog):
    from jooci.targets import kmeans

    monkeypatch.setattr(kmeans, "available", lambda m: m != "faiss")
    x = np.random.default_rng(0).normal(size=(400, 4)).astype(np.float32)
    with caplog.at_level(logging.WARNING):
        result = kmeans.fit_kmeans(x, 4, seed=0, backend="faiss", niter=5)
    assert result.backend == "sklearn" and result.centroids.shape == (4, 4)
    assert "pip install 'jooci[faiss]'" in caplog.text
