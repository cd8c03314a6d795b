"""The training loop end to end on the tiny model: outputs, KL, resume, kill, NaN guard."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from support.tiny import tiny_run_config, train_until_checkpoint
from transformers import AutoModelForCausalLM

from lm_unlearn import checkpoint as ckpt
from lm_unlearn.engine import read_history, train
from lm_unlearn.files import sha256_file, sha256_tree
from lm_unlearn.objectives.registry import term


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "model" / "model.safetensors"))


def test_full_run_writes_loadable_model_manifest_and_metrics(tmp_path, tiny_model_dir):
    before = sha256_tree(tiny_model_dir)
    cfg = tiny_run_config(tmp_path, tiny_model_dir, **{"train.max_steps": 3})
    run_dir = Path(cfg.output_dir) / "tiny"
    result = train(cfg, run_dir)
    assert result.steps == 3 and result.stop_reason == "max_steps"
    assert sha256_tree(tiny_model_dir) == before  # the source model is never touched

    model = AutoModelForCausalLM.from_pretrained(run_dir / "model")  # plain transformers
    source = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    changed = [n for n, p in model.state_dict().items() if not torch.equal(p, source.state_dict()[n])]
    assert changed

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["steps"] == 3
    forget_file = cfg.data.forget.path
    assert manifest["data"]["forget"]["file_sha256"] == sha256_file(forget_file)
    assert manifest["data"]["retain"]["records"] == 5
    assert manifest["source_model"]["sha256"] == before
    assert manifest["outputs"]["model"]["sha256"]["model.safetensors"] == sha256_file(
        run_dir / "model" / "model.safetensors"
    )
    assert {"torch", "transformers", "peft", "accelerate"} <= set(manifest["versions"])
    assert manifest["started"] <= manifest["finished"]
    # The run's own peak memory: at least the fp32 weights it held.
    weights_bytes = sum(p.numel() * 4 for p in source.parameters())
    assert manifest["cost"]["peak_rss_bytes"] > weights_bytes
    from lm_unlearn.evaluation.cost import run_cost

    assert run_cost(run_dir)["train_peak_rss_bytes"] == manifest["cost"]["peak_rss_bytes"]
    rows = read_history(run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert {"loss", "ga", "mismatch", "kl", "forget_nll", "lr", "grad_norm", "tokens"} <= set(rows[0])
    assert not list(run_dir.rglob(".tmp-*")) and not list(run_dir.rglob("*.tmp"))


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_kl_is_zero_at_the_first_step_and_positive_after_an_update(tmp_path, tiny_model_dir, mode):
    cfg = tiny_run_config(
        tmp_path, tiny_model_dir, **{"train.mode": mode, "train.max_steps": 3, "train.lr": 0.05}
    )
    rows = train(cfg, Path(cfg.output_dir) / "tiny").history
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6)
    assert rows[-1]["kl"] > 1e-4


def test_gradient_ascent_raises_forget_nll(tmp_path, tiny_model_dir):
    cfg = tiny_run_config(
        tmp_path,
        tiny_model_dir,
        **{"method": "ga", "train.max_steps": 6, "train.batch_size": 4, "train.schedule": "constant"},
    )
    rows = train(cfg, Path(cfg.output_dir) / "tiny").history
    assert rows[-1]["forget_nll"] > rows[0]["forget_nll"] + 0.5


def test_lora_run_saves_adapter_and_a_merged_model_plain_transformers_loads(tmp_path, tiny_model_dir):
    cfg = tiny_run_config(
        tmp_path, tiny_model_dir, **{"train.mode": "lora", "train.max_steps": 2, "train.lr": 0.05}
    )
    run_dir = Path(cfg.output_dir) / "tiny"
    train(cfg, run_dir)
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    merged = AutoModelForCausalLM.from_pretrained(run_dir / "model")
    assert not any("lora" in name for name in merged.state_dict())
    source = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert any(not torch.equal(p, source.state_dict()[n]) for n, p in merged.state_dict().items())


def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(tmp_path, tiny_model_dir, monkeypatch):
    settings = {"train.max_steps": 5, "train.checkpoint_every": 2, "train.mode": "full"}
    straight = tiny_run_config(tmp_path / "a", tiny_model_dir, **settings)
    train(straight, Path(straight.output_dir) / "tiny")

    interrupted = tiny_run_config(tmp_path / "b", tiny_model_dir, **settings)
    run_dir = Path(interrupted.output_dir) / "tiny"
    train_until_checkpoint(interrupted, run_dir, monkeypatch, at_step=4)
    assert not (run_dir / "model").exists()
    result = train(interrupted, run_dir, resume=True)

    assert result.steps == 5
    a, b = weights(Path(straight.output_dir) / "tiny"), weights(run_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)
    history = read_history(run_dir / "metrics.jsonl")
    assert [r["step"] for r in history] == [1, 2, 3, 4, 5]
    straight_history = read_history(Path(straight.output_dir) / "tiny" / "metrics.jsonl")
    assert [r["loss"] for r in history] == [r["loss"] for r in straight_history]


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import safetensors.torch
    from lm_unlearn import checkpoint
    from lm_unlearn.cli import main

    calls = {"n": 0}
    real = checkpoint.save_file

    def save_file_then_die(tensors, path, *args, **kwargs):
        calls["n"] += 1
        real(tensors, path, *args, **kwargs)
        if calls["n"] == 3:  # first file of the second checkpoint written: die mid-save
            os.kill(os.getpid(), signal.SIGKILL)

    checkpoint.save_file = save_file_then_die
    main(["run", sys.argv[1]])
""")


def test_sigkill_during_a_checkpoint_leaves_no_half_written_file_and_resumes(tmp_path, tiny_model_dir):
    import yaml

    settings = {"train.max_steps": 5, "train.checkpoint_every": 2}
    reference = tiny_run_config(tmp_path / "ref", tiny_model_dir, **settings)
    train(reference, Path(reference.output_dir) / "tiny")

    cfg = tiny_run_config(tmp_path / "k", tiny_model_dir, **settings)
    config_file = tmp_path / "k" / "run.yaml"
    config_file.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(config_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]

    run_dir = Path(cfg.output_dir) / "tiny"
    assert [p.name for p in ckpt.list_checkpoints(run_dir)] == ["step-000002"]
    assert not (run_dir / "model").exists()
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"

    from lm_unlearn.cli import main

    with pytest.raises(SystemExit) as done:
        main(["run", "--resume", str(run_dir)])
    assert done.value.code == 0
    assert not list(run_dir.rglob(".tmp-*"))
    a, b = weights(Path(reference.output_dir) / "tiny"), weights(run_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "finished"


@term("test_nan_after_two", "test only: forget NLL, then NaN from the third call")
def _nan_after_two(ctx):
    _nan_after_two.calls = getattr(_nan_after_two, "calls", 0) + 1
    value = ctx.outputs("forget").mean_nll.mean()
    return value * float("nan") if _nan_after_two.calls > 2 else value


def test_nan_guard_stops_cleanly_and_keeps_the_last_good_state(tmp_path, tiny_model_dir):
    _nan_after_two.calls = 0
    cfg = tiny_run_config(
        tmp_path, tiny_model_dir, **{"objective": "{test_nan_after_two: 1.0}", "train.max_steps": 6}
    )
    run_dir = Path(cfg.output_dir) / "tiny"
    result = train(cfg, run_dir)
    assert result.steps == 2 and "non-finite loss at step 3" in result.stop_reason
    saved = weights(run_dir)
    assert all(torch.isfinite(v).all() for v in saved.values())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stop_reason"] == result.stop_reason and manifest["steps"] == 2


def test_stop_rule_on_forget_nll(tmp_path, tiny_model_dir):
    cfg = tiny_run_config(
        tmp_path,
        tiny_model_dir,
        **{
            "method": "ga",
            "train.max_steps": 50,
            "train.stop.forget_nll_above": 7.0,
            "train.schedule": "constant",
        },
    )
    result = train(cfg, Path(cfg.output_dir) / "tiny")
    assert result.steps < 50 and "forget NLL" in result.stop_reason
    assert result.history[-1]["forget_nll"] > 7.0


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_frozen_weights_in_bf16_give_the_same_run_as_fp32_under_bf16_autocast(tmp_path, tiny_model_dir, mode):
    """bf16 autocast casts every frozen Linear weight to bf16 anyway, so storing them in bf16
    must change nothing: same losses, and (LoRA) the same merged fp32 model."""
    runs = {}
    for dtype in ("fp32", "bf16"):
        overrides = {
            "method": "yao",
            "train.mode": mode,
            "train.max_steps": 3,
            "train.lr": 0.05 if mode == "lora" else 1e-3,
            "train.precision": "bf16",
            "train.frozen_dtype": dtype,
            "output_dir": str(tmp_path / dtype),
        }
        cfg = tiny_run_config(tmp_path, tiny_model_dir, **overrides)
        runs[dtype] = train(cfg, Path(cfg.output_dir) / "tiny").run_dir
    manifest = json.loads((runs["bf16"] / "manifest.json").read_text())
    assert manifest["frozen_dtype"]["dtype"] == "bf16" and manifest["frozen_dtype"]["parameters"] > 0
    losses = {d: [(r["loss"], r["kl"]) for r in read_history(runs[d] / "metrics.jsonl")] for d in runs}
    assert len(losses["bf16"]) == len(losses["fp32"]) == 3
    for got, want in zip(losses["bf16"], losses["fp32"]):  # approx compares flat sequences only
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
    a, b = weights(runs["fp32"]), weights(runs["bf16"])
    assert all(b[n].dtype == torch.float32 for n in b)
    assert all(torch.allclose(a[n], b[n], rtol=1e-5, atol=1e-6) for n in a)


def test_lora_input_casts_skipped_under_autocast_change_nothing(tiny_model_dir):
    """skip_lora_input_casts removes peft's fp32 round trip of bf16 inputs; under bf16
    autocast the loss and every adapter gradient stay bit for bit the same."""
    from lm_unlearn.models import frozen_linears_to, skip_lora_input_casts, wrap_lora

    model = wrap_lora(AutoModelForCausalLM.from_pretrained(tiny_model_dir), 4, 8, 0.0, "all-linear")
    frozen_linears_to(model, torch.bfloat16)
    for p in model.parameters():  # nonzero B, so every adapter has a gradient
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.1)
    ids = torch.tensor([[1, 5, 9, 4, 2, 7], [3, 3, 8, 1, 6, 2]])

    def loss_and_grads():
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    before = loss_and_grads()
    assert skip_lora_input_casts(model) > 0
    after = loss_and_grads()
    assert after[0] == before[0]
    assert all(torch.equal(a, b) for a, b in zip(after[1], before[1]))


def test_lora_reads_a_bf16_checkpoint_in_bf16_and_trains_as_from_its_fp32_copy(
    tmp_path, tiny_model_dir, monkeypatch
):
    """With bf16 frozen weights a LoRA run loads the checkpoint in its own dtype (no fp32 copy of
    a large model in host memory). The model equals an fp32 load of the same values (the same
    first loss, adapters' B being 0); later steps differ only because peft draws the adapters'
    A in the base layer's dtype."""
    from lm_unlearn import training_setup
    from lm_unlearn.models import load_model

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    tokenizer = load_model(str(tiny_model_dir)).tokenizer
    sources = {"bf16": tmp_path / "src-bf16", "fp32": tmp_path / "src-fp32"}
    for name, path in sources.items():
        (model if name == "bf16" else model.float()).save_pretrained(path)
        tokenizer.save_pretrained(path)
    loaded_dtypes = []

    def spy(*args, **kwargs):
        result = load_model(*args, **kwargs)
        loaded_dtypes.append(result.model.model.layers[0].mlp.up_proj.weight.dtype)
        return result

    monkeypatch.setattr(training_setup, "load_model", spy)
    losses = {}
    for name, path in sources.items():
        overrides = {"method": "npo", "train.mode": "lora", "train.max_steps": 2, "train.lr": 0.05}
        overrides["train.precision"] = "bf16"
        cfg = tiny_run_config(tmp_path, path, output_dir=str(tmp_path / name), **overrides)
        run = train(cfg, Path(cfg.output_dir) / "tiny")
        losses[name] = [r["loss"] for r in run.history]
    # the training loads, then the fp32 reload that merges the adapter
    assert loaded_dtypes == [torch.bfloat16, torch.float32, torch.float32, torch.float32]
    assert losses["bf16"][0] == pytest.approx(losses["fp32"][0], rel=1e-6, abs=1e-7)
    assert losses["bf16"][1] == pytest.approx(losses["fp32"][1], rel=0.05)


def test_frozen_bf16_needs_bf16_precision(tmp_path, tiny_model_dir):
    from lm_unlearn.errors import ConfigError

    settings = {"train.precision": "fp32", "train.frozen_dtype": "bf16"}
    cfg = tiny_run_config(tmp_path, tiny_model_dir, **settings)
    with pytest.raises(ConfigError, match="frozen_dtype=bf16 needs"):
        train(cfg, Path(cfg.output_dir) / "tiny")


def test_save_outputs_writes_a_given_full_state_dict(tmp_path, tiny_model_dir):
    """Under FSDP / ZeRO-3 the engine saves the state dict gathered from the shards, not the
    rank's own module: a given state dict is what lands in model/ (full) or adapter/ (LoRA)."""
    from lm_unlearn.models import load_model, wrap_lora
    from lm_unlearn.training_setup import save_outputs as _save_outputs

    loaded = load_model(str(tiny_model_dir))
    gathered = {k: v + 1.0 for k, v in loaded.model.state_dict().items()}
    cfg = tiny_run_config(tmp_path, tiny_model_dir, **{"train.mode": "full"})
    _save_outputs(cfg, tmp_path / "full", loaded.model, loaded.tokenizer, state_dict=gathered)
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "full" / "model").state_dict()
    name = "model.layers.0.mlp.up_proj.weight"
    assert torch.equal(saved[name], gathered[name])

    lora = wrap_lora(load_model(str(tiny_model_dir)).model, 4, 8, 0.0, None)
    gathered = {k: torch.full_like(v, 0.01) if "lora_" in k else v for k, v in lora.state_dict().items()}
    cfg = tiny_run_config(tmp_path, tiny_model_dir, **{"train.mode": "lora"})
    _save_outputs(cfg, tmp_path / "lora", lora, loaded.tokenizer, str(tiny_model_dir), gathered)
    adapter = load_file(tmp_path / "lora" / "adapter" / "adapter_model.safetensors")
    assert adapter and all(torch.all(v == 0.01) for v in adapter.values())
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "lora" / "model").state_dict()
    source = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    changed = [k for k in source if not torch.equal(source[k], merged[k])]
    assert changed  # the merge read the given adapter (LoRA B is 0 in the module itself)


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_a_run_steps_with_fused_adamw_and_it_matches_the_default_kernel(
    tmp_path, tiny_model_dir, mode, monkeypatch
):
    import lm_unlearn.engine as engine
    from lm_unlearn.training_setup import adamw

    made = []
    monkeypatch.setattr(engine, "adamw", lambda *a, **k: made.append(adamw(*a, **k)) or made[-1])
    cfg = tiny_run_config(tmp_path, tiny_model_dir, **{"train.max_steps": 2, "train.mode": mode})
    train(cfg, Path(cfg.output_dir) / "tiny")
    assert [o.defaults["fused"] for o in made] == [True]
    # FSDP/DeepSpeed shard the parameters: the default kernel there.
    assert adamw([torch.nn.Parameter(torch.ones(2))], cfg.train, sharded=True).defaults["fused"] is None
    # The fused kernel's update is the default one's up to rounding (3 steps, weight decay on).
    torch.manual_seed(0)
    start = [torch.randn(64, 32), torch.randn(32)]
    runs = []
    for fused in (True, None):
        params = [torch.nn.Parameter(x.clone()) for x in start]
        opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1, fused=fused)
        for step in range(3):
            for p in params:
                p.grad = torch.sin(p.detach() * (step + 1))
            opt.step()
        runs.append(params)
    for a, b, x in zip(*runs, start):
        assert torch.allclose(a, b, rtol=0, atol=1e-6) and (a - x).abs().max() > 1e-2  # moved alike
