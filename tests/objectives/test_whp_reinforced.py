"""WHP's reinforced model moves under bf16-stored weights (it trains an fp32 copy)."""

import torch
from support.steps import tiny_data

from lm_unlearn.objectives.outputs import Outputs
from lm_unlearn.objectives.terms.whp import train_reinforced


def forget_logits(model, batch):
    with torch.no_grad():
        return model.float()(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits


def test_reinforced_logits_move_from_bf16_stored_weights(tiny_model_dir):
    # The default LoRA + bf16 set-up stores the frozen base in bf16; at lr 1e-5 an AdamW step
    # (about lr per entry) is below half a bf16 ulp of most weights, so bf16 weights barely move.
    model, data = tiny_data(tiny_model_dir)
    model = model.to(torch.bfloat16)
    base = {n: p.detach().float().clone() for n, p in model.named_parameters()}
    reinforced = train_reinforced(model, data.batch, steps=20, lr=1e-5)
    assert all(p.dtype == torch.float32 for p in reinforced.parameters())
    moved = [(p.detach().float() - base[n]).abs() for n, p in reinforced.named_parameters()]
    mean_step = torch.cat([m.flatten() for m in moved]).mean().item()
    assert mean_step > 1e-4  # 20 steps of about lr each: 2e-4 in fp32, 3.7e-5 when trained in bf16

    batch = data.batch("forget", 0)
    base_logits = forget_logits(model, batch)  # the bf16 weights, exactly, in fp32
    reinforced_logits = forget_logits(reinforced, batch)
    assert (reinforced_logits - base_logits).abs().mean().item() > 1e-3
    # And it learnt the forget text: its NLL there is lower than the base's.
    base_nll = Outputs(base_logits, batch).mean_nll.mean().item()
    reinforced_nll = Outputs(reinforced_logits, batch).mean_nll.mean().item()
    assert reinforced_nll < base_nll - 1e-3
