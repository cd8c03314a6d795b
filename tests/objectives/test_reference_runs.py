"""Through train(): live and precomputed references give the same run, and resuming works."""

import pytest
import torch
from support.tiny import tiny_run_config, train_until_checkpoint

from lm_unlearn.engine import train
from lm_unlearn.models import load_model


def weights(run_dir):
    return load_model(str(run_dir / "model")).model.state_dict()


@pytest.mark.parametrize("method,mode", [("npo+kl", "full"), ("rmu", "full"), ("dpo", "lora")])
def test_live_and_precompute_train_identically(tmp_path, tiny_model_dir, method, mode):
    runs = {}
    for reference in ("live", "precompute"):
        settings = {"method": method, "train.mode": mode, "train.reference": reference}
        cfg = tiny_run_config(tmp_path / reference, tiny_model_dir, **settings)
        runs[reference] = train(cfg, tmp_path / reference / "run")
    for a, b in zip(runs["live"].history, runs["precompute"].history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6, abs=1e-7)
    a, b = weights(runs["live"].run_dir), weights(runs["precompute"].run_dir)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)


def test_precompute_on_resume_uses_the_original_not_the_checkpoint(tmp_path, tiny_model_dir, monkeypatch):
    settings = {"method": "npo", "train.mode": "full", "train.reference": "precompute"}
    settings |= {"train.max_steps": 4, "train.checkpoint_every": 2}
    straight = train(tiny_run_config(tmp_path / "a", tiny_model_dir, **settings), tmp_path / "a" / "run")
    cfg = tiny_run_config(tmp_path / "b", tiny_model_dir, **settings)
    train_until_checkpoint(cfg, tmp_path / "b" / "run", monkeypatch)
    resumed = train(cfg, tmp_path / "b" / "run", resume=True)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]
