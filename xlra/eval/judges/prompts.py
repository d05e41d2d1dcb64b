"""Pairwise judge prompts: a summarization prompt (coherence, accuracy, coverage, overall quality) and an
AlpacaEval-style dialog prompt. The answer is a single "1" or "2".

The prompt text is part of the judge's identity: change a template, bump TEMPLATE_VERSION, so cached
judgements made with the old wording are not reused.
"""

from __future__ import annotations

import re

TEMPLATE_VERSION = "pairwise-v1"

LANGUAGE_NAMES = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
    "ru": "Russian", "ja": "Japanese", "zh": "Chinese", "ko": "Korean", "vi": "Vietnamese", "tr": "Turkish",
    "ar": "Arabic", "hi": "Hindi", "id": "Indonesian", "nl": "Dutch", "pl": "Polish", "sv": "Swedish",
}

SYSTEM = "You are a careful, impartial evaluator. You compare two candidate answers and reply with one character."

_SUMMARIZATION = """Compare two summaries of the same text. The text and the summaries are in {language}.

Text:
{prompt}

Summary 1:
{first}

Summary 2:
{second}

Judge the summaries on coherence (is it well organised and easy to read?), accuracy (does it only state \
what the text supports?), coverage (does it keep the important points?) and overall quality.
Which summary is better? Reply with a single character: "1" or "2"."""

_DIALOG = """Compare two AI assistants' responses to the same user instruction. The conversation is in {language}.

Instruction:
{prompt}

Output 1:
{first}

Output 2:
{second}

Which output is more helpful, accurate and harmless as a response to the instruction, as a human would \
judge it? Reply with a single character: "1" or "2"."""

_TEMPLATES = {"summarization": _SUMMARIZATION, "dialog": _DIALOG}

# Plain (no chat template) prompts end with this cue; the answer follows it.
PLAIN_CUE = "\nAnswer:"


def language_name(lang: str) -> str:
  return LANGUAGE_NAMES.get(lang, lang)


def user_message(task: str, prompt: str, first: str, second: str, lang: str) -> str:
  """The instruction with the two outputs in presentation order (`first` is "1")."""
  if task not in _TEMPLATES:
    raise ValueError(f"judge task {task!r}: choose one of {sorted(_TEMPLATES)}")
  return _TEMPLATES[task].format(language=language_name(lang), prompt=prompt.strip(), first=first.strip(),
                                 second=second.strip())


def chat_messages(task: str, prompt: str, first: str, second: str, lang: str) -> list[dict[str, str]]:
  """OpenAI-style messages for chat models and servers."""
  return [{"role": "system", "content": SYSTEM},
          {"role": "user", "content": user_message(task, prompt, first, second, lang)}]


def plain_text(task: str, prompt: str, first: str, second: str, lang: str) -> str:
  """The same prompt for a model without a chat template; the next token after it is the answer."""
  return SYSTEM + "\n\n" + user_message(task, prompt, first, second, lang) + PLAIN_CUE


# A reply counts when, after optional quotes/brackets/"Output"/"Summary", it starts with 1 or 2 that is
# not part of a longer number ("1." and "2)" count; "12" and "1.5" are garbage).
_ANSWER = re.compile(r"^[\s\"'`*(\[]*(?:(?:output|summary|answer)\s*:?\s*)?([12])(?![0-9]|[.,][0-9])", re.IGNORECASE)


def parse_answer(text: str) -> str | None:
  """"1", "2", or None when the reply is not a recognisable choice."""
  m = _ANSWER.match(text or "")
  return m.group(1) if m else None
