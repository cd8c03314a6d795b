"""`python -m lm_unlearn.cli ...` (e.g. under `accelerate launch -m`)."""

from lm_unlearn.cli import main

main()
