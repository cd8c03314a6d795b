"""Named recipes: weighted combinations of terms, with the settings their papers used."""

from lm_unlearn.objectives.registry import recipe

recipe(
    "yao",
    "Yao et al. 2024: 0.5*ga + 1*mismatch + 1*kl (GA + random mismatch + KL on normal data)",
    {"ga": 0.5, "mismatch": 1.0, "kl": 1.0},
)
recipe("ga", "Jang et al. 2023: gradient ascent on the forget set alone", {"ga": 1.0})
recipe("graddiff", "Liu et al. 2022: ga + retain NLL (gradient difference)", {"ga": 1.0, "retain_nll": 1.0})
