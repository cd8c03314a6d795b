from collections.abc import Callable

import torch

from lm_unlearn.errors import ConfigError
from lm_unlearn.objectives.context import StepContext
from lm_unlearn.objectives.hidden import num_layers
from lm_unlearn.objectives.registry import term


def rmu_layer(model: torch.nn.Module, layer: int | None) -> int:
    # WMDP steers layer 7 of Zephyr-7B's 32; None keeps that relative depth, round(7n/32)
    # (7 of 32, 7 of SmolLM2's 30). n // 4 gave 8 on 32 layers.
    n = num_layers(model)
    if layer is None:
        return round(7 * n / 32)
    if not -n <= layer < n:
        raise ConfigError(f"objective.rmu.layer={layer}: the model has {n} decoder layers (0..{n - 1})")
    return layer % n  # a negative index counts from the last layer


def control_vector(hidden_size: int, steering_coef: float, seed: int) -> torch.Tensor:
    """c * u, with u a fixed random unit vector: uniform [0, 1) entries, normalised (as in WMDP)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(hidden_size, generator=g)
    return steering_coef * u / u.norm()


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(1/B) sum_i (1/|m_i|) sum_{t: m_i,t} (1/H) ||a_i,t - b_i,t||^2, in fp32."""
    per_position = (a.float() - b.float()).pow(2).mean(dim=-1)
    mask = mask.to(per_position.dtype)
    return ((per_position * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)).mean()


def shared_prefix_length(*batches) -> int:
    """How many leading tokens every example of the batches shares (right padding): a chat
    template's opening and its system prompt, the same for forget and retain prompts."""
    rows = [ids[: int(mask.sum())] for b in batches for ids, mask in zip(b.input_ids, b.attention_mask)]
    shortest = min(len(r) for r in rows)
    stacked = torch.stack([r[:shortest] for r in rows])
    same = (stacked == stacked[0]).all(dim=0)
    return shortest if bool(same.all()) else int(same.to(torch.int8).argmin())


def distinct_positions(mask: torch.Tensor, shared: int) -> torch.Tensor:
    """The attention mask with the first `shared` positions left out."""
    mask = mask.clone()
    mask[:, :shared] = 0
    return mask


def _layers(model, layer=None, **_) -> tuple[int, ...]:
    return (rmu_layer(model, layer),)


def _trainable(model, layer=None, update_params="mlp.down_proj", **_) -> Callable[[str], bool]:
    top = rmu_layer(model, layer)
    chosen = {f".layers.{i}." for i in range(max(0, top - 2), top + 1)}
    return lambda name: update_params in name and any(c in name for c in chosen)


@term(
    "rmu",
    "||h_l(forget) - c*u||^2 + alpha*||h_l(retain) - h_l^orig(retain)||^2 (Li et al. 2024, WMDP)",
    splits=("forget", "retain"),
    needs_reference=True,
    layers=_layers,
    trainable=_trainable,
    hidden_only=True,  # reads layer outputs only: forwards stop after the steered layer
)
def rmu(
    ctx: StepContext,
    layer: int | None = None,
    steering_coef: float = 6.5,
    alpha: float = 1200.0,
    seed: int = 0,
    update_params: str = "mlp.down_proj",
    positions: str = "distinct",
) -> torch.Tensor:
    """Representation Misdirection for Unlearning (Li et al., "The WMDP Benchmark", ICML 2024).

    L = mean_{forget tokens} (1/H)||h_l(x) - c*u||^2
        + alpha * mean_{retain tokens} (1/H)||h_l(x) - h_l^orig(x)||^2,
    where h_l is the output of decoder layer `layer` (0-based; None: WMDP's 7 of 32, scaled),
    u a fixed random unit vector (from `seed`), and h^orig the original model's activations.
    Means run over real (non-padding) tokens, prompt included, as in the paper's code, except
    that with positions="distinct" (the default) the forget mean leaves out the leading tokens
    every forget and retain example shares: on chat-formatted QA data these are the template and
    its system prompt, which the retain term holds in place, so steering them too only pits the
    two terms against each other (on raw text that is just BOS; positions="all" is the paper's
    form). Only
    parameters whose names contain `update_params` in layers layer-2..layer train (the paper's
    choice); the `train.mask` option can narrow that further. The paper's c=6.5 and alpha=1200
    were tuned for Zephyr-7B: activation norms differ between models, so c usually needs tuning.
    """
    index = rmu_layer(ctx.model, layer)
    forget, retain = ctx.outputs("forget"), ctx.outputs("retain")
    h_forget = forget.layer(index)
    target = control_vector(h_forget.shape[-1], steering_coef, seed).to(h_forget.device)
    forget_mask = forget.batch.attention_mask
    if positions == "distinct":
        forget_mask = distinct_positions(forget_mask, shared_prefix_length(forget.batch, retain.batch))
    elif positions != "all":
        raise ConfigError(f"objective.rmu.positions={positions!r}: 'distinct' or 'all'")
    forget_loss = masked_mse(h_forget, target.expand_as(h_forget), forget_mask)
    original = ctx.reference("retain").layer(index)
    retain_loss = masked_mse(retain.layer(index), original, retain.batch.attention_mask)
    return forget_loss + alpha * retain_loss
