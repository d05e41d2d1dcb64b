"""Loaders for the real datasets the paper uses: Seahorse (pointwise, summarization), OpenAssistant
(pairwise, dialog) and the summarization SFT corpora (XL-Sum, MLSum, WikiLingua, XSum). Each returns
records in the schemas of `common` plus a `SkipCounter` that says what was left out and why."""

from xlra.data.sources.common import LANGUAGE_NAMES, SUMMARIZE_INSTRUCTION, load_hub, normalize_lang, summarize_prompt
from xlra.data.sources.oasst import load_oasst
from xlra.data.sources.seahorse import (articles_from_dir, articles_from_rows, decode_escapes, join_articles,
                                        load_seahorse, pointwise_to_pairs, read_ratings)
from xlra.data.sources.summarization import load_summarization

__all__ = ["LANGUAGE_NAMES", "SUMMARIZE_INSTRUCTION", "articles_from_dir", "articles_from_rows", "decode_escapes",
           "join_articles", "load_hub", "load_oasst", "load_seahorse", "load_summarization", "normalize_lang",
           "pointwise_to_pairs", "read_ratings", "summarize_prompt"]
