"""Per-example gradient norms for the gradient-norm membership attack (`mia.grad_norm_score`).

One forward and one backward per example. The weight of a plain `nn.Linear` (nearly all of an
LLM's parameters) gets its per-example gradient norm from the layer's input A [N, d_in] and output
gradient G [N, d_out], N the tokens it ran on, without autograd forming the gradient G^T A:

    ||G^T A||_F^2 = sum_{s,t} (A A^T)_{st} (G G^T)_{st}

(the per-example norm of Goodfellow 2015, "Efficient Per-Example Gradient Computations", as the
"ghost norm" of Li et al. 2022, "Large Language Models Can Be Strong Differentially Private
Learners"): N^2 (d_in + d_out) multiply-adds instead of N d_in d_out, and backward skips those
weight gradients, their fp32 copies and their norms. When N is so large that G^T A is cheaper, it
is formed and its norm taken. A tied output head's weight (the default model's: the embedding
matrix, applied again as the head) is the sum of the head's G^T A and the embedding's gradient on
the looked-up rows (`embedding_grad_norm`), so its dense [V, d] gradient is never formed either
(nor an untied embedding's). Every other parameter (norms, any other shared weight) takes
autograd's gradient.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager

import numpy as np
import torch

from lm_unlearn.data import PromptFormat, Record, collate, encode_records
from lm_unlearn.evaluation.generation import progress
from lm_unlearn.evaluation.likelihood import forward_logits
from lm_unlearn.head import scored_positions


def linear_weight_grad_norm(a: torch.Tensor, g: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """||G^T A||_p (entrywise) for a Linear layer's input rows `a` [N, d_in] and output-gradient
    rows `g` [N, d_out], in fp32; p = 2 by the Gram matrices when that is cheaper."""
    a, g = a.float(), g.float()
    n, d_in, d_out = a.shape[0], a.shape[1], g.shape[1]
    if p == 2 and n * (d_in + d_out) < d_in * d_out:
        return ((a @ a.T) * (g @ g.T)).sum().clamp(min=0).sqrt()
    return (g.T @ a).norm(p)


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
    output gradient."""

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
        if isinstance(module, torch.nn.Embedding):
            seen = inputs[0].detach().reshape(-1)
            # Its weight takes no gradient here: the output is made a leaf that does, so backward
            # still brings the gradient at each looked-up row. The model gets a copy of the leaf
            # (a forward hook's return value replaces the output), which it may change in place.
            output = output.detach().requires_grad_(True)
        elif not output.requires_grad:
            return None
        else:  # under autocast the layer computed with a bf16 input
            seen = inputs[0].detach().to(output.dtype).reshape(-1, module.in_features)
        call: list[torch.Tensor | None] = [seen, None]
        self.calls.setdefault(id(module), []).append(call)

        def keep(grad: torch.Tensor) -> None:
            call[1] = grad.reshape(-1, grad.shape[-1])

        output.register_hook(keep)
        return output.clone() if isinstance(module, torch.nn.Embedding) else None

    def _joined(self, module) -> tuple[torch.Tensor, torch.Tensor] | None:
        calls = [c for c in self.calls.get(id(module), []) if c[1] is not None]
        return (torch.cat([c[0] for c in calls]), torch.cat([c[1] for c in calls])) if calls else None

    def norms(self, p: float) -> dict[int, torch.Tensor]:
        """{id(parameter): gradient norm} of the example just run backward; clears the record."""
        out = {}
        for m in self.layers:
            if (seen := self._joined(m)) is not None:
                a, g = seen
                out[id(m.weight)] = linear_weight_grad_norm(a, g, p)
                if m.bias is not None:
                    out[id(m.bias)] = g.float().sum(0).norm(p)
        for embedding, head in self.tied:
            looked_up = self._joined(embedding)
            applied = self._joined(head) if head is not None else None
            if looked_up is None or (head is not None and applied is None):
                continue
            ids, g_emb = looked_up
            if embedding.padding_idx is not None:  # nn.Embedding gives that row no gradient
                keep = ids != embedding.padding_idx
                ids, g_emb = ids[keep], g_emb[keep]
            out[id(embedding.weight)] = embedding_grad_norm(ids, g_emb, *(applied or ()))
        self.calls.clear()
        return out

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def response_nll(model, batch, precision: str) -> torch.Tensor:
    """The batch's mean response-token NLL (fp32), the LM head at scored positions only."""
    positions = scored_positions(batch)
    logits = forward_logits(model, batch, positions, precision)
    targets = batch.labels[:, 1:][:, positions]
    mask = targets != -100
    return torch.nn.functional.cross_entropy(logits[mask].float(), targets[mask])


def gradient_norms(
    model,
    fmt: PromptFormat,
    records: list[Record],
    *,
    max_length: int = 256,
    precision: str = "fp32",
    p: float = 2.0,
    desc: str | None = None,
) -> list[np.ndarray]:
    """Per record, ||grad_W L||_p of every parameter tensor W, in `model.parameters()` order, L the
    record's mean response-token NLL: one forward and one backward each (mia.grad_norm_score turns
    them into a score). A tensor the loss does not reach has no gradient and no entry (as MIMIR).

    Every parameter takes part (frozen ones too, e.g. a LoRA run's base), in eval mode (dropout
    off). Linear weights by their inputs and output gradients (module docstring); for the others
    each tensor's norm is taken as its gradient arrives and the gradient dropped at once, so the
    gradients never occupy a second copy of the model. requires_grad flags, existing gradients
    and the train/eval mode are restored afterwards.
    """
    params = list(model.parameters())
    flags, grads, training = [q.requires_grad for q in params], [q.grad for q in params], model.training
    norms: dict[int, torch.Tensor] = {}  # id(parameter) -> norm, filled as gradients arrive

    def take(param: torch.nn.Parameter) -> None:
        norms[id(param)] = param.grad.detach().float().norm(p)
        param.grad = None

    device = next(model.parameters()).device
    out: list[np.ndarray] = []
    model.eval()
    taps, handles = _Taps(model, p), []
    try:
        tapped = taps.params()
        for q in params:
            q.grad = None
            q.requires_grad_(id(q) not in tapped)
            if id(q) not in tapped:
                handles.append(q.register_post_accumulate_grad_hook(take))
        bar = progress(len(records), desc)
        with taps.stored_in(torch.bfloat16 if precision == "bf16" else None):
            for example in encode_records(records, fmt, max_length):
                batch = collate([example], fmt.tokenizer.pad_token_id).to(device)
                norms.clear()
                with torch.enable_grad():
                    response_nll(model, batch, precision).backward()
                norms.update(taps.norms(p))
                out.append(torch.stack([norms[id(q)] for q in params if id(q) in norms]).cpu().numpy())
                bar.update(1)
        bar.close()
    finally:
        taps.remove()
        for handle in handles:
            handle.remove()
        for q, flag, grad in zip(params, flags, grads):
            q.requires_grad_(flag)
            q.grad = grad
        model.train(training)
    return out
