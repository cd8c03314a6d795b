"""`unlearn perf` counts the FLOPs a step does: checked against a count by hand on the tiny model.

The hand count is the issue's rule (#19): a forward is 2 * weights * positions for each matmul
at the positions where it runs (the LM head only where logits are asked for; the embedding is a
lookup); backward is 2 * weights * positions for each input gradient that is needed plus 2 *
weights * positions for each trained weight; a reference forward is a forward. Attention
adds its two [T, T] products (QK^T and PV) forward, and five backward (a flash kernel recomputes
the scores). Nothing of it is read from FlopCounterMode, which `count_step_flops` uses.
"""

import pytest
from support.tiny import tiny_run_config

from lm_unlearn.data.tokenize import IGNORE
from lm_unlearn.engine import setup
from lm_unlearn.head import head_positions
from lm_unlearn.perf import count_step_flops

LAYERS, HIDDEN, HEADS, HEAD_DIM, LORA_R = 2, 32, 4, 8, 16  # tests/support/tiny.py; LoRA r is the default
# (in, out) of each decoder layer's Linear, and whether it reads the embedding in layer 0 (q, k
# and v read the normed embedding output; o, gate, up and down read values computed after the
# first adapters, which need gradients in LoRA mode).
LINEARS = [(32, 32, True), (32, 16, True), (32, 16, True), (32, 32, False)]
LINEARS += [(32, 64, False), (32, 64, False), (64, 32, False)]


def forward_flops(rows: int, width: int, head: int, vocab: int, lora_r: int = 0) -> int:
    """One forward over [rows, width]; the LM head on `head` (row, position) pairs."""
    per_position = sum(i * o + lora_r * (i + o) for i, o, _ in LINEARS)  # base weight + A + B
    attention = 2 * 2 * rows * HEADS * width * width * HEAD_DIM
    return LAYERS * (2 * rows * width * per_position + attention) + 2 * head * HIDDEN * vocab


def backward_flops(rows: int, width: int, head: int, vocab: int, lora_r: int | None) -> int:
    """Full (lora_r None): every weight trains and every input needs a gradient (the embedding
    trains). LoRA: only the adapters A (in x r) and B (r x out) train; B's input gradient is
    always needed (for A's weight gradient), the base's and A's only where the input has one."""
    positions, total = rows * width, 0
    for layer in range(LAYERS):
        for i, o, reads_embedding in LINEARS:
            if lora_r is None:
                total += 2 * positions * i * o * 2  # input and weight gradient
            else:
                total += 2 * positions * (lora_r * o + i * lora_r + lora_r * o)
                if layer > 0 or not reads_embedding:
                    total += 2 * positions * (i * o + i * lora_r)
        total += 5 * 2 * rows * HEADS * width * width * HEAD_DIM
    head_weight = 2 if lora_r is None else 1  # the head's input gradient; its weight trains in full mode
    return total + 2 * head * HIDDEN * vocab * head_weight


@pytest.mark.parametrize(
    "method, mode, splits, reference",
    [
        ("graddiff", "lora", ("forget", "retain"), False),
        ("graddiff", "full", ("forget", "retain"), False),
        ("npo", "lora", ("forget",), True),  # the reference: the base with adapters off
        ("npo", "full", ("forget",), True),  # the reference: a frozen copy
        ("npo", "lora", ("forget",), False),  # train.reference auto: precomputed, no forward in a step
    ],
)
def test_step_flops_match_a_count_by_hand(tmp_path, tiny_model_dir, method, mode, splits, reference):
    live = {"train.reference": "live"} if reference else {}
    cfg = tiny_run_config(tmp_path, tiny_model_dir, **{"method": method, "train.mode": mode, **live})
    state = setup(cfg, tmp_path / "shapes")  # only to read the batches of step 1 and the vocabulary
    vocab = state.unwrapped.get_output_embeddings().weight.shape[0]
    lora_r = LORA_R if mode == "lora" else None
    batches = [state.data.batch(split, 1) for split in splits]
    for batch in batches:  # the head really runs on fewer pairs than logits_to_keep's positions
        rows, width = batch.input_ids.shape
        assert (batch.labels[:, 1:] != IGNORE).sum() < len(head_positions(state.unwrapped, batch)) * rows
    # The splits run as one forward, right-padded to the widest; the reference runs per split.
    rows, width = sum(len(b.input_ids) for b in batches), max(b.input_ids.shape[1] for b in batches)
    head = sum(int((b.labels[:, 1:] != IGNORE).sum()) for b in batches)  # the response tokens
    expected = forward_flops(rows, width, head, vocab, lora_r or 0) + backward_flops(
        rows, width, head, vocab, lora_r
    )
    for batch in batches if reference else []:
        expected += forward_flops(*batch.input_ids.shape, int((batch.labels[:, 1:] != IGNORE).sum()), vocab)
    (counted,) = count_step_flops(cfg, tmp_path / "count", range(1, 2))
    # The issue asks for 10 %; with torch 2.13 the two agree exactly, so 1 % is asked here (the
    # reference forward, the base's weight gradients or a head over all positions would each be
    # 10-40 % of the step).
    assert counted == pytest.approx(expected, rel=0.01)
