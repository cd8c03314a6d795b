"""Data: files -> records -> tokenised examples -> batches."""

from lm_unlearn.data.records import Record, read_records
from lm_unlearn.data.templates import PromptFormat
from lm_unlearn.data.tokenize import Batch, Example, collate, encode_records

__all__ = ["Batch", "Example", "PromptFormat", "Record", "collate", "encode_records", "read_records"]
