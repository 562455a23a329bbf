"""BERT uncased WordPiece tokenisation (for Grounding DINO's text encoder) in plain Python, so the
runtime needs neither transformers nor tokenizers. Same algorithm as BERT's reference tokenizer:
clean + lowercase + strip accents, split on whitespace and punctuation (CJK characters alone),
then greedy longest-match-first word pieces with ``##`` continuations; ``[UNK]`` for words that
cannot be split or are longer than 100 characters. Tested token-for-token against transformers'
``BertTokenizer`` on the same vocabulary file (tests/test_onnx_backends.py)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from dream2flow.errors import InvalidInput


def _is_punct(ch: str) -> bool:
    cp = ord(ch)
    if (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126):
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return any(a <= cp <= b for a, b in ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
                                         (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


class WordPieceTokenizer:
    """``encode(text) -> [CLS] ids [SEP]`` from a ``vocab.txt`` (one token per line, id = line number)."""

    def __init__(self, vocab_path: str | Path, *, max_chars_per_word: int = 100) -> None:
        p = Path(vocab_path)
        if not p.is_file():
            raise InvalidInput(f"tokenizer vocabulary not found: {p}")
        tokens = p.read_text(encoding="utf-8").split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        self.vocab = {t: i for i, t in enumerate(tokens)}
        for special in ("[CLS]", "[SEP]", "[UNK]"):
            if special not in self.vocab:
                raise InvalidInput(f"tokenizer vocabulary {p} lacks {special}")
        self.max_chars = max_chars_per_word

    def _basic(self, text: str) -> list[str]:
        out: list[str] = []
        cleaned = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
                continue
            if _is_cjk(cp):
                cleaned.append(f" {ch} ")
            elif ch in " \t\n\r" or unicodedata.category(ch) == "Zs":
                cleaned.append(" ")
            else:
                cleaned.append(ch)
        for word in "".join(cleaned).strip().split():
            word = unicodedata.normalize("NFD", word.lower())
            word = "".join(c for c in word if unicodedata.category(c) != "Mn")
            cur = ""
            for ch in word:
                if _is_punct(ch):
                    if cur:
                        out.append(cur)
                        cur = ""
                    out.append(ch)
                else:
                    cur += ch
            if cur:
                out.append(cur)
        return out

    def _wordpiece(self, word: str) -> list[str]:
        if len(word) > self.max_chars:
            return ["[UNK]"]
        pieces: list[str] = []
        start = 0
        while start < len(word):
            end = len(word)
            cur = None
            while start < end:
                sub = word[start:end] if start == 0 else "##" + word[start:end]
                if sub in self.vocab:
                    cur = sub
                    break
                end -= 1
            if cur is None:
                return ["[UNK]"]
            pieces.append(cur)
            start = end
        return pieces

    def tokenize(self, text: str) -> list[str]:
        return [p for w in self._basic(text) for p in self._wordpiece(w)]

    def encode(self, text: str) -> list[int]:
        return [self.vocab["[CLS]"]] + [self.vocab[t] for t in self.tokenize(text)] + [self.vocab["[SEP]"]]


def grounding_prompt(text: str) -> str:
    """Grounding DINO's prompt convention: lower case, phrases separated by and ending with ' .'."""
    t = " ".join(str(text).strip().lower().split())
    if not t:
        raise InvalidInput("detector prompt is empty")
    return t if t.endswith(".") else t + "."
