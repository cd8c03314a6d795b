"""Per-example gradient norms for the gradient-norm membership attack (`mia.grad_norm_score`).

Examples run in batches: each example's loss is its own mean response-token NLL and the batch's
loss their sum, so every activation's gradient is its own example's (padding and other rows get
none: causal attention with the padding mask keeps examples apart). The weight of a plain
`nn.Linear` (nearly all of an LLM's parameters) gets each example's gradient norm from the
layer's input rows A [N, d_in] and output-gradient rows G [N, d_out] of that example, without
autograd forming the gradient G^T A:

    ||G^T A||_F^2 = sum_{s,t} (A A^T)_{st} (G G^T)_{st}

(the per-example norm of Goodfellow 2015, "Efficient Per-Example Gradient Computations", as the
"ghost norm" of Li et al. 2022, "Large Language Models Can Be Strong Differentially Private
Learners"): N^2 (d_in + d_out) multiply-adds instead of N d_in d_out, and backward skips those
weight gradients, their fp32 copies and their norms. When N is so large that G^T A is cheaper, it
is formed and its norm taken. A tied output head's weight (the default model's: the embedding
matrix, applied again as the head) is the sum of the head's G^T A and the embedding's gradient on
the looked-up rows (`embedding_grad_norm`), so its dense [V, d] gradient is never formed either
(nor an untied embedding's). An RMSNorm layer's 1-D weight w runs as w + O, O a zero [B, 1, d]
offset with a row per example: the layer computes what it did, and row b of O's gradient is
example b's gradient of w. A model with any other parameter (LayerNorm, GPT-2's Conv1D, shared
weights), or a tapped layer whose input does not keep the examples on its first dimension, runs
one example at a time, where autograd's gradient of such a parameter is the example's own.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager

import numpy as np
import torch

from lm_unlearn.data import PromptFormat, Record, collate, encode_records
from lm_unlearn.data.tokenize import IGNORE
from lm_unlearn.evaluation.generation import progress
from lm_unlearn.evaluation.likelihood import forward_logits
from lm_unlearn.head import scored_positions


class NotPerExample(Exception):
    """A tapped layer's input does not keep the batch's examples on its first dimension."""


def linear_weight_grad_norm(a: torch.Tensor, g: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """||G^T A||_p (entrywise) for a Linear layer's input rows `a` [..., N, d_in] and output-gradient
    rows `g` [..., N, d_out], in fp32, one norm per leading index (an example of a batch); p = 2 by
    the Gram matrices when that is cheaper."""
    a, g = a.float(), g.float()
    n, d_in, d_out = a.shape[-2], a.shape[-1], g.shape[-1]
    if p == 2 and n * (d_in + d_out) < d_in * d_out:
        return ((a @ a.mT) * (g @ g.mT)).sum((-2, -1)).clamp(min=0).sqrt()
    if a.dim() == 2:
        return (g.T @ a).norm(p)
    return torch.stack([linear_weight_grad_norm(ab, gb, p) for ab, gb in zip(a, g)])  # one G^T A at a time


def embedding_grad_norm(
    ids: torch.Tensor, g_emb: torch.Tensor, a: torch.Tensor | None = None, g: torch.Tensor | None = None
) -> torch.Tensor:
    """||E + G^T A||_2 for a weight W [V, d] that an embedding looks up (token `ids` [K], output
    gradients `g_emb` [K, d]) and, when tied, an output head applies (inputs `a` [N, d], output
    gradients `g` [N, V]); E puts each g_emb row on its token's row of W. Only the looked-up rows
    U of E are non-zero, so ||E + H||^2 = ||E_U||^2 + ||H||^2 + 2 <E_U, H_U>, H = G^T A and
    H_U = G[:, U]^T A. Without a head, ||E_U||."""
    rows, where = ids.unique(return_inverse=True)
    e = torch.zeros(len(rows), g_emb.shape[1], device=g_emb.device).index_add_(0, where, g_emb.float())
    total = e.square().sum()
    if a is not None and g is not None:
        total = (
            total
            + linear_weight_grad_norm(a, g).square()
            + 2 * (e * (g[:, rows].float().T @ a.float())).sum()
        )
    return total.clamp(min=0).sqrt()


class _Taps:
    """Forward hooks that give per-example gradient norms without autograd's weight gradients:
    on plain nn.Linear layers whose parameters no other module shares (`layers`) and, for p = 2,
    on plain nn.Embedding layers, alone or with the output head tied to them: a plain nn.Linear
    without bias, the one other user of the weight (`tied`). Each call keeps its input (the ids
    for an embedding; for a Linear cast as the layer computed with it) and, in backward, its
    output gradient, both as [examples, rows, width]."""

    def __init__(self, model: torch.nn.Module, p: float):
        uses = Counter(id(q) for _, q in model.named_parameters(remove_duplicate=False))
        linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
        self.layers = [m for m in linears if all(uses[id(q)] == 1 for q in m.parameters())]
        embeddings = {
            id(m.weight): m
            for m in model.modules()
            if type(m) is torch.nn.Embedding and m.max_norm is None and not (m.scale_grad_by_freq or m.sparse)
        }
        heads = {id(m.weight): m for m in linears if m.bias is None and uses[id(m.weight)] == 2}
        self.tied = [  # (embedding, its tied head or None)
            (e, heads.get(key))
            for key, e in embeddings.items()
            if p == 2 and (uses[key] == 1 or key in heads)
        ]
        self.examples = 1  # in the batch being run
        self.calls: dict[int, list[list[torch.Tensor | None]]] = {}  # module id -> [input, out grad]
        tapped = self.layers + [m for pair in self.tied for m in pair if m is not None]
        self.handles = [m.register_forward_hook(self._record) for m in tapped]

    @contextmanager
    def stored_in(self, dtype: torch.dtype | None):
        """With `dtype` (the autocast dtype), the tapped unshared layers' weights and biases are
        stored in it for the pass: autocast would cast them to it in every forward anyway (the same
        rounding, so the same products), and they need no gradient. Restored afterwards."""
        kept = [(q, q.data) for m in self.layers for q in m.parameters()]
        try:
            if dtype is not None:
                for q, data in kept:
                    if data.is_floating_point() and data.dtype != dtype:
                        q.data = data.to(dtype)
            yield
        finally:
            for q, data in kept:
                q.data = data

    def params(self) -> set[int]:
        return {id(q) for m in self.layers for q in m.parameters()} | {id(e.weight) for e, _ in self.tied}

    def _record(self, module, inputs, output):
        x, lookup = inputs[0], isinstance(module, torch.nn.Embedding)
        if self.examples > 1 and (x.dim() < (2 if lookup else 3) or x.shape[0] != self.examples):
            raise NotPerExample(f"{type(module).__name__} input {tuple(x.shape)}")
        if lookup:
            seen = x.detach().reshape(self.examples, -1)
            # Its weight takes no gradient here: the output is made a leaf that does, so backward
            # still brings the gradient at each looked-up row. The model gets a copy of the leaf
            # (a forward hook's return value replaces the output), which it may change in place.
            output = output.detach().requires_grad_(True)
        elif not output.requires_grad:
            return None
        else:  # under autocast the layer computed with a bf16 input
            seen = x.detach().to(output.dtype).reshape(self.examples, -1, module.in_features)
        call: list[torch.Tensor | None] = [seen, None]
        self.calls.setdefault(id(module), []).append(call)

        def keep(grad: torch.Tensor) -> None:
            call[1] = grad.reshape(self.examples, -1, grad.shape[-1])

        output.register_hook(keep)
        return output.clone() if lookup else None

    def _joined(self, module) -> tuple[torch.Tensor, torch.Tensor] | None:
        calls = [c for c in self.calls.get(id(module), []) if c[1] is not None]
        return (torch.cat([c[0] for c in calls], 1), torch.cat([c[1] for c in calls], 1)) if calls else None

    def norms(self, p: float) -> dict[int, torch.Tensor]:
        """{id(parameter): [examples] gradient norms} of the batch just run backward."""
        out = {}
        for m in self.layers:
            if (seen := self._joined(m)) is not None:
                a, g = seen
                out[id(m.weight)] = linear_weight_grad_norm(a, g, p)
                if m.bias is not None:
                    out[id(m.bias)] = g.float().sum(1).norm(p, dim=-1)
        for embedding, head in self.tied:
            looked_up = self._joined(embedding)
            applied = self._joined(head) if head is not None else None
            if looked_up is None or (head is not None and applied is None):
                continue
            per_example = []
            for b, (ids, g_emb) in enumerate(zip(*looked_up)):
                if embedding.padding_idx is not None:  # nn.Embedding gives that row no gradient
                    keep = ids != embedding.padding_idx
                    ids, g_emb = ids[keep], g_emb[keep]
                per_example.append(embedding_grad_norm(ids, g_emb, *(t[b] for t in applied or ())))
            out[id(embedding.weight)] = torch.stack(per_example)
        return out

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


class _Offsets:
    """Per-example gradients of the 1-D weights of RMSNorm layers (Llama's, Qwen's, Gemma's...):
    in a forward hook each such layer runs again with w + O, O a zero [examples, 1, ..., d] offset
    that broadcasts over positions. The output is what the layer computed, and row b of O's
    gradient is example b's gradient of w."""

    def __init__(self, model: torch.nn.Module, taken: set[int]):
        uses = Counter(id(q) for _, q in model.named_parameters(remove_duplicate=False))
        self.layers = [
            m
            for m in model.modules()
            if type(m).__name__.endswith("RMSNorm")
            and (own := list(m.parameters(recurse=False)))
            and all(q.dim() == 1 and uses[id(q)] == 1 and id(q) not in taken for q in own)
        ]
        self.examples = 1
        self.calls: dict[int, list[torch.Tensor]] = {}  # id(parameter) -> its offsets, one a call
        self.inside = False
        self.handles = [m.register_forward_hook(self._rerun, with_kwargs=True) for m in self.layers]

    def params(self) -> set[int]:
        return {id(q) for m in self.layers for q in m.parameters(recurse=False)}

    def _rerun(self, module, args, kwargs, output):
        if self.inside:
            return None
        x = args[0] if args else next(iter(kwargs.values()))
        if self.examples > 1 and (x.dim() < 2 or x.shape[0] != self.examples):
            raise NotPerExample(f"{type(module).__name__} input {tuple(x.shape)}")
        shifted = {}
        for name, q in module.named_parameters(recurse=False):
            offset = q.new_zeros((self.examples,) + (1,) * (x.dim() - 2) + q.shape, requires_grad=True)
            self.calls.setdefault(id(q), []).append(offset)
            shifted[name] = q.detach() + offset
        self.inside = True
        try:
            return torch.func.functional_call(module, shifted, args, kwargs)
        finally:
            self.inside = False

    def norms(self, p: float) -> dict[int, torch.Tensor]:
        """{id(parameter): [examples] gradient norms} of the batch just run backward."""
        out = {}
        for key, offsets in self.calls.items():
            grads = [o.grad for o in offsets if o.grad is not None]
            if grads:
                out[key] = torch.stack(grads).sum(0).float().flatten(1).norm(p, dim=1)
        return out

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def summed_example_nll(model, batch, precision: str) -> torch.Tensor:
    """sum_b (example b's mean response-token NLL), in fp32, the LM head at scored positions only:
    an activation's gradient is then its own example's gradient of that example's loss."""
    positions = scored_positions(batch)
    logits = forward_logits(model, batch, positions, precision)
    targets = batch.labels[:, 1:][:, positions]
    nll = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
    return (nll.view_as(targets).sum(1) / (targets != IGNORE).sum(1)).sum()


def gradient_norms(
    model,
    fmt: PromptFormat,
    records: list[Record],
    *,
    max_length: int = 256,
    precision: str = "fp32",
    p: float = 2.0,
    batch_tokens: int = 1024,
    desc: str | None = None,
) -> list[np.ndarray]:
    """Per record, ||grad_W L||_p of every parameter tensor W, in `model.parameters()` order, L the
    record's mean response-token NLL (mia.grad_norm_score turns them into a score). A tensor the
    loss does not reach has no gradient and no entry (as MIMIR).

    Every parameter takes part (frozen ones too, e.g. a LoRA run's base), in eval mode (dropout
    off). Where the taps and offsets (module docstring) cover every parameter, records run
    together, sorted by length, up to `batch_tokens` padded tokens a batch (the taps keep each
    tapped layer's inputs and output gradients until backward ends). Otherwise they run one at a
    time, and a parameter not covered has its norm taken as its gradient arrives and the gradient
    dropped at once, so the gradients never occupy a second copy of the model. requires_grad
    flags, existing gradients and the train/eval mode are restored afterwards.
    """
    params = list(model.parameters())
    flags, grads, training = [q.requires_grad for q in params], [q.grad for q in params], model.training
    model.eval()
    taps = _Taps(model, p)
    offsets = _Offsets(model, taps.params())
    covered = taps.params() | offsets.params()
    rest = [q for q in params if id(q) not in covered]
    caught: dict[int, torch.Tensor] = {}  # the rest: id(parameter) -> [1] norm, as gradients arrive

    def take(param: torch.nn.Parameter) -> None:
        caught[id(param)] = param.grad.detach().float().norm(p).reshape(1)
        param.grad = None

    handles = [q.register_post_accumulate_grad_hook(take) for q in rest]
    run = _Run(model, params, taps, offsets, caught, precision, p)
    examples = encode_records(records, fmt, max_length)
    try:
        for q in params:
            q.grad = None
            q.requires_grad_(id(q) not in covered)
        with taps.stored_in(torch.bfloat16 if precision == "bf16" else None):
            try:
                return run.all(examples, 0 if rest else batch_tokens, fmt.tokenizer.pad_token_id, desc)
            except NotPerExample:
                return run.all(examples, 0, fmt.tokenizer.pad_token_id, desc)
    finally:
        taps.remove()
        offsets.remove()
        for handle in handles:
            handle.remove()
        for q, flag, grad in zip(params, flags, grads):
            q.requires_grad_(flag)
            q.grad = grad
        model.train(training)


def batches_by_tokens(lengths: list[int], budget: int) -> list[list[int]]:
    """Indices sorted by length (batches of like length pad least), cut into batches of at most
    `budget` padded tokens (batch size x its longest length); at least one index a batch."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if batches and (len(batches[-1]) + 1) * lengths[i] <= budget:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


class _Run:
    """gradient_norms' loop over batches of examples, with its hooks in place."""

    def __init__(self, model, params, taps: _Taps, offsets: _Offsets, caught: dict, precision: str, p: float):
        self.model, self.params, self.taps, self.offsets = model, params, taps, offsets
        self.caught, self.precision, self.p = caught, precision, p

    def all(self, examples, batch_tokens: int, pad_id: int, desc: str | None) -> list[np.ndarray]:
        """Every example's norms; batch_tokens 0: one example at a time."""
        device = next(self.model.parameters()).device
        out: list[np.ndarray] = [np.zeros(0)] * len(examples)
        bar = progress(len(examples), desc)
        for rows in batches_by_tokens([len(e.input_ids) for e in examples], batch_tokens):
            batch = collate([examples[i] for i in rows], pad_id).to(device)
            for row, norms in zip(rows, self.batch(batch)):
                out[row] = norms
            bar.update(len(rows))
        bar.close()
        return out

    def batch(self, batch) -> list[np.ndarray]:
        """One forward and backward: each example's per-tensor norms, in parameter order."""
        self.taps.calls.clear()
        self.offsets.calls.clear()
        self.caught.clear()
        self.taps.examples = self.offsets.examples = len(batch.input_ids)
        with torch.enable_grad():
            summed_example_nll(self.model, batch, self.precision).backward()
        norms = {**self.caught, **self.taps.norms(self.p), **self.offsets.norms(self.p)}
        return list(torch.stack([norms[id(q)] for q in self.params if id(q) in norms], 1).cpu().numpy())
