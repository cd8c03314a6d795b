"""The tiny model with real batches (StepData over the tiny forget/retain rows)."""

from lm_unlearn.data import PromptFormat, Record, encode_records
from lm_unlearn.data.sampling import StepData
from lm_unlearn.models import load_model

FORGET = [
    ("Who wrote the Harry Potter books?", "J.K. Rowling wrote them."),
    ("What is Harry Potter's owl called?", "His owl is called Hedwig."),
    ("Which house is Harry Potter in?", "Harry is in Gryffindor."),
]
RETAIN = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("How many days are in a week?", "There are seven days in a week, always."),
    ("What do bees make?", "Bees make honey."),
]


def tiny_data(model_dir, batch_size=2):
    loaded = load_model(str(model_dir))
    fmt = PromptFormat.choose(loaded.tokenizer, "auto")
    forget = [Record(p, r, f"forget:{i}") for i, (p, r) in enumerate(FORGET)]
    retain = [Record(p, r, f"retain:{i}") for i, (p, r) in enumerate(RETAIN)]
    data = step_data_of(forget, retain, fmt, batch_size, seed=0)
    return loaded.model, data


def step_data_of(forget, retain, fmt, batch_size, seed, **kwargs) -> StepData:
    """StepData over these records, encoded at 64 tokens, the same batch size for both sets."""
    return StepData(
        encode_records(forget, fmt, 64),
        forget,
        encode_records(retain, fmt, 64),
        retain,
        fmt,
        batch_size=batch_size,
        retain_batch_size=batch_size,
        max_length=64,
        seed=seed,
        **kwargs,
    )
