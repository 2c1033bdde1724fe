"""The benchmark runner (benchmarks/run.py) in its tiny mode: every measurement yields a record
with the keys the results table needs and a finite ratio to its peer. Structure only, never speed."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("sklearn")

RUNNER = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
MEASURED = {"train_step", "extract", "loader", "kmeans"}
COMMON = {"what", "name", "label", "shapes", "dtype", "timing", "throughput", "memory", "peer", "ratio", "peers",
          "machine", "versions", "date", "mode"}


def _run(tmp_path: Path, *args: str) -> tuple[list[dict], Path]:
    """The runner's main() in this process (its imports are the suite's anyway)."""
    spec = importlib.util.spec_from_file_location("jooci_bench_run", RUNNER)
    run = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = run  # dataclasses look their module up there
    try:
        spec.loader.exec_module(run)
    finally:
        sys.modules.pop(spec.name, None)
    out = tmp_path / "bench.jsonl"
    assert run.main(["--tiny", "--out", str(out), *args]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()], out


def _check(records: list[dict], expect: set[str]) -> dict[str, dict]:
    errors = [r for r in records if r["what"] == "error"]
    assert not errors, errors[0]["error"]
    assert records[0]["what"] == "env" and records[-1]["what"] == "summary"
    measured = {r["name"]: r for r in records if r["what"] in MEASURED}
    assert expect <= set(measured), sorted(measured)
    for name, r in measured.items():
        assert COMMON <= set(r), (name, COMMON - set(r))
        assert {"hostname", "cpu_model", "cores", "gpu"} <= set(r["machine"])
        assert {"torch", "transformers"} <= set(r["versions"])
        t = r["timing"]
        assert t["repeats"] >= 1 and 0 < t["min_s"] <= t["median_s"]
        assert r["throughput"]["value"] > 0
        if r["what"] in ("train_step", "extract"):
            assert r["flops"] > 0
        if r["what"] == "train_step":
            assert {"forward", "backward", "optimizer"} <= set(r["phases_median_s"])
            assert r["nonfinite_steps"] == 0
        for p in r["peers"]:  # every peer was measured in this run, and the ratio is a number
            assert p["peer"] in measured and math.isfinite(p["ratio"]) and p["ratio"] > 0, (name, p)
        if r["peer"] is not None:
            assert r["ratio"] == r["peers"][0]["ratio"]
    return measured


def test_cpu_mode_tiny(tmp_path):
    records, out = _run(tmp_path, "--mode", "cpu")
    m = _check(records, {"hf_step.tiny", "content_step.tiny", "teacher_step.tiny", "phase1_step.tiny",
                         "phase2_step.tiny", "loader.tiny", "extract.hf.tiny", "extract.baseline.tiny",
                         "extract.jooci.tiny", "kmeans.jooci", "kmeans.sklearn"})
    for name in ("content_step.tiny", "extract.baseline.tiny", "extract.jooci.tiny", "loader.tiny", "kmeans.jooci"):
        assert m[name]["peer"] is not None, name
    assert m["content_step.tiny"]["same_weights_as_peer"] is True
    assert m["extract.baseline.tiny"]["max_abs_diff_vs_peer_last_content_state"] < 1e-3  # fp32, HF's own weights
    assert [p["peer"] for p in m["loader.tiny"]["peers"]] == ["content_step.tiny", "phase2_step.tiny"]
    assert 0.99 <= m["kmeans.jooci"]["label_agreement_with_peer"] <= 1.0
    assert "rss_peak_mb_process" in m["hf_step.tiny"]["memory"]
    table = out.with_suffix(".md").read_text()
    assert table.count("\n| ") >= len(m) + 1 and "hf_step.tiny" in table


def test_gpu_branch_on_the_cpu(tmp_path):
    """--mode gpu's own logic (bf16 autocast, fused AdamW, a measured matmul peak, MFU)."""
    records, _ = _run(tmp_path, "--mode", "gpu", "--device", "cpu", "--only", "steps")
    assert any(r["what"] == "matmul_peak" for r in records)
    m = _check(records, {"hf_step.tiny", "content_step.tiny", "teacher_step.tiny", "phase2_step.tiny", "loader.tiny"})
    for step in (m["content_step.tiny"], m["phase2_step.tiny"]):
        assert step["dtype"] == "bf16 autocast" and step["fused_adamw"] is True and math.isfinite(step["mfu"])


def test_profiles(tmp_path):
    """--profile: a summary per measurement beside the records (top ops by self time)."""
    records, out = _run(tmp_path, "--mode", "gpu", "--device", "cpu", "--only", "extract", "--profile")
    m = _check(records, {"extract.hf.tiny", "extract.baseline.tiny", "extract.jooci.tiny"})
    profiles = [json.loads(line) for line in Path(f"{out.with_suffix('')}.profile.jsonl").read_text().splitlines()]
    assert {p["name"] for p in profiles} == set(m)
    assert all(0 < len(p["top15"]) <= 15 and p["wall_ms_per_run"] > 0 for p in profiles)
    assert Path(f"{out.with_suffix('')}.profile.txt").read_text().count("== ") == len(m)


def _module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("preset", ["tiny", "small", "base"])
def test_rehearsal_hf_peer_has_the_presets_content_shape(preset):
    """The rehearsal's random HF HubertModel has the preset's Content Transformer (width, depth,
    heads, FFN, positional convolution), so the two evaluations compare models of one shape."""
    from transformers import HubertConfig

    from jooci.models.jooci import jooci_config

    rehearsal = _module("jooci_rehearsal", RUNNER.with_name("rehearsal.py"))
    hf = HubertConfig(**rehearsal.HF_SHAPES[preset])
    t = jooci_config(preset).content.transformer
    assert (hf.hidden_size, hf.num_hidden_layers, hf.num_attention_heads, hf.intermediate_size) == (
        t.dim, t.num_layers, t.num_heads, t.ffn_dim)
    assert (hf.num_conv_pos_embeddings, hf.num_conv_pos_embedding_groups) == (t.pos_conv_kernel, t.pos_conv_groups)


def test_rehearsal_counts_the_audio_in_an_evaluation_cache(tmp_path):
    rehearsal = _module("jooci_rehearsal", RUNNER.with_name("rehearsal.py"))
    for k, rows in enumerate(([["a.wav", 16000 * 1800]], [["b.wav", 16000 * 900], ["c.wav", 16000 * 900]])):
        chunk = tmp_path / "cache" / "fp" / f"chunk_000{k}"
        chunk.mkdir(parents=True)
        (chunk / "paths.json").write_text(json.dumps(rows))
    assert rehearsal._evaluated_audio_h(tmp_path) == 1.0
    assert rehearsal._evaluated_audio_h(tmp_path / "none") is None
    assert rehearsal._du(tmp_path / "cache") == sum(len((p / "paths.json").read_bytes())
                                                    for p in (tmp_path / "cache" / "fp").iterdir())
