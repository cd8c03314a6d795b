"""Named recipes: weighted combinations of terms, with the settings their papers used."""

from lm_unlearn.objectives.registry import recipe

recipe(
    "yao",
    "Yao et al. 2024: GA + random mismatch + KL on normal data, 0.5*ga + 0.05*mismatch + 4*kl (the "
    "paper's 0.5:1:1 damages the retain answers before the forget answers move on the default model: "
    "docs/tuning.md)",
    {"ga": 0.5, "mismatch": 0.05, "kl": 4.0},
    train={"max_steps": 100},  # the gentler weights take longer; a target stops the run sooner
)
recipe("ga", "Jang et al. 2023: gradient ascent on the forget set alone", {"ga": 1.0})
recipe("graddiff", "Liu et al. 2022: ga + retain NLL (gradient difference)", {"ga": 1.0, "retain_nll": 1.0})
recipe("npo", "Zhang et al. 2024: negative preference optimization on the forget set", {"npo": 1.0})
recipe("npo+kl", "Zhang et al. 2024: npo + KL to the original on retain data", {"npo": 1.0, "kl": 1.0})
recipe("npo+rt", "Zhang et al. 2024: npo + retain NLL", {"npo": 1.0, "retain_nll": 1.0})
recipe(
    "simnpo",
    "Fan et al. 2024: reference-free, length-normalised NPO with margin + retain NLL, 1:1 (their TOFU "
    "0.1375:1 does not move a model that knows its forget set well: docs/tuning.md)",
    {"simnpo": 1.0, "retain_nll": 1.0},
)
recipe(
    "wga",
    "Wang et al. 2025: gradient ascent weighted by sg(p)^beta per token + retain NLL (open-unlearning 1:1)",
    {"wga": 1.0, "retain_nll": 1.0},
)
recipe(
    "satimp",
    "Yang et al. 2025: GA weighted by sg(p)^b1 * sg(1-p)^b2 per token + retain NLL, 1000:1 "
    "(open-unlearning's 0.1:1 leaves a well-learned forget set, p near 1, with almost no gradient: "
    "docs/tuning.md)",
    {"satimp": 1000.0, "retain_nll": 1.0},
)
recipe(
    "ce_u",
    "Yang 2025: cross-entropy toward the model's own distribution without the true token (forget only)",
    {"ce_u": 1.0},
)
recipe(
    "pdu",
    "Entesari et al. 2025: logit-margin flattening on forget s.t. retain NLL <= eps; dual variable "
    "by dual ascent, kept in checkpoints",
    {"pdu": 1.0},
)
recipe(
    "gru",
    "Wang et al. 2025: npo with its gradient projected off the (averaged) retain gradient where they "
    "conflict (GRU on NPO)",
    {"npo": 1.0, "gru": 1.0},
)
recipe(
    "sam",
    "Fan et al. 2025: npo + retain NLL, the forget term's gradient taken at w + rho*g/|g| "
    "(sharpness-aware, against relearning); train.sam_rho=0.01, usable with any recipe",
    {"npo": 1.0, "retain_nll": 1.0},
    train={"sam_rho": 0.01},
)
recipe(
    "idk",
    "Maini et al. 2024 (TOFU): NLL of a refusal on forget prompts + retain NLL",
    {"idk": 1.0, "retain_nll": 1.0},
)
recipe(
    "dpo",
    "Rafailov et al. 2023 / TOFU: prefer a refusal over the forget answer + retain NLL",
    {"dpo": 1.0, "retain_nll": 1.0},
)
recipe(
    "altpo",
    "Mekala et al. 2024: DPO preferring the original model's k = 5 alternate answers (generated once, "
    "cached in the run) over the forget answer, scaled 2/beta, + retain NLL",
    {"altpo": 1.0, "retain_nll": 1.0},
)
recipe(
    "rmu",
    "Li et al. 2024 (WMDP): steer layer-l activations to c*u on forget, keep them on retain; full mode "
    "on mlp.down_proj of layers l-2..l, as the paper (train.mode=lora trains adapters there instead)",
    {"rmu": 1.0},
    train={"mode": "full"},
)
recipe(
    "undial",
    "Dong et al. 2024: self-distil toward original logits with the true token lowered",
    {"undial": 1.0},
)
recipe(
    "task_vector",
    "Ilharco et al. 2023: fine-tune on forget, then theta_0 - alpha*(theta_ft - theta_0)",
    {"task_vector": 1.0},
)
recipe("whp", "Eldan & Russinovich 2023: train toward v_base - a*ReLU(v_reinforced - v_base)", {"whp": 1.0})
recipe(
    "icu",
    "Pawelczyk et al. 2024: in-context unlearning, a prompt wrapper; NO weight change, no protection",
    {},
    procedure="icu",
)
recipe(
    "undo",
    "Lee et al. 2025 (UNDO): unlearn (undo.base, npo+rt), noise a copy (1-a)*theta + a*b*N(0, s^2), "
    "distil the unlearned model's logits into it on forget + retain text (settings: undo.*)",
    {},
    procedure="undo",
)
