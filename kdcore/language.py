"""A small synthetic language whose true distribution is known exactly, and its two tokenizers.

Why synthetic: distilling a language model is judged by how close the student's distribution
comes to the teacher's and to the truth. On real text the truth is unknown and only perplexity
can be measured. Here every document is drawn from a word-bigram chain over a small lexicon,
written out in lower-case letters, so the exact probability of any text under the language, and
the exact next-character distribution after any prefix, are computable. That gives the
quantities the papers can only estimate:
- the entropy floor (the best any model can score), so a model's loss splits into that floor plus
  its exact KL from the truth;
- whether a generated text is grammatical at all, and how probable it is under the truth.
The texts still read like English ("the old cat sees a dog . my bird sings ."), so samples can be
judged by eye, and a character-level teacher and a word-level student really do tokenize the
same text differently.

A document is ``". "`` (the start of a sentence, read by every model as its prompt) followed by
``n_words`` words, each followed by one space. Characters: index 0 is padding (after the end of
a shorter document; never predicted), then the space, the full stop and the letters in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

# Word classes with each word's probability within its class, and which class follows which.
# The numbers are this project's choice (rounded, Zipf-like), not taken from any corpus.
WORDS: dict[str, dict[str, float]] = {
    "det": {"the": 0.5, "a": 0.3, "my": 0.2},
    "adj": {"old": 0.3, "small": 0.25, "red": 0.2, "happy": 0.15, "quiet": 0.1},
    "noun": {
        "cat": 0.2,
        "dog": 0.2,
        "bird": 0.15,
        "man": 0.12,
        "girl": 0.12,
        "boat": 0.08,
        "tree": 0.08,
        "house": 0.05,
    },
    "tverb": {"sees": 0.35, "likes": 0.3, "finds": 0.2, "chases": 0.15},
    "iverb": {"sleeps": 0.4, "runs": 0.35, "sings": 0.25},
    "prep": {"near": 0.4, "under": 0.35, "in": 0.25},
    "end": {".": 1.0},
}
NEXT_CLASS: dict[str, dict[str, float]] = {
    "end": {"det": 1.0},
    "det": {"adj": 0.35, "noun": 0.65},
    "adj": {"noun": 0.85, "adj": 0.15},
    "noun": {"tverb": 0.45, "iverb": 0.25, "prep": 0.1, "end": 0.2},
    "tverb": {"det": 1.0},
    "iverb": {"end": 0.6, "prep": 0.4},
    "prep": {"det": 1.0},
}
PAD = 0
PROMPT = ". "  # every document starts a sentence; models read it, nobody predicts it


class CharTokenizer:
    """One token per character: padding, space, full stop, then the letters of the lexicon."""

    name = "char"

    def __init__(self, words: list[str]):
        letters = sorted({c for w in words for c in w} - {"."})
        self.chars = ["<pad>", " ", ".", *letters]
        self.index = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    @property
    def lengths(self) -> list[int]:
        """Characters of text each token stands for (padding: none)."""
        return [0] + [1] * (len(self.chars) - 1)

    def encode(self, text: str) -> list[int]:
        return [self.index[c] for c in text]

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids if i != PAD)


class WordTokenizer:
    """One token per word (its trailing space implied): a different vocabulary and a different
    number of positions for the same text, as between two real tokenizers."""

    name = "word"

    def __init__(self, words: list[str]):
        self.words = ["<pad>", *words]
        self.index = {w: i for i, w in enumerate(self.words)}

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    @property
    def lengths(self) -> list[int]:
        """Characters of text each token stands for: the word and its space (padding: none)."""
        return [0] + [len(w) + 1 for w in self.words[1:]]

    def encode(self, text: str) -> list[int]:
        return [self.index[w] for w in text.split()]

    def decode(self, ids) -> str:
        return "".join(self.words[i] + " " for i in ids if i != PAD)


@dataclass(frozen=True)
class Corpus:
    """Documents as padded id tensors for one tokenizer. ``ids`` (N, L) long, starting with the
    prompt's tokens; a model reads ``ids[:, :-1]`` and predicts ``ids[:, 1:]`` where ``mask``
    (N, L-1) is True (not padding, not the prompt)."""

    ids: torch.Tensor
    mask: torch.Tensor
    chars: torch.Tensor  # (N,) characters each document adds after the prompt (for bits/char)

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device) -> Corpus:
        return Corpus(self.ids.to(device), self.mask.to(device), self.chars.to(device))


class Language:
    """The word-bigram language: exact sampling, probabilities and next-character tables."""

    def __init__(self):
        self.words = [w for cls in WORDS.values() for w in cls]
        self.word_class = {w: c for c, ws in WORDS.items() for w in ws}
        n = len(self.words)
        P = torch.zeros(n, n, dtype=torch.float64)  # P[prev, next] = p(next word | prev word)
        for i, prev in enumerate(self.words):
            for cls, pc in NEXT_CLASS[self.word_class[prev]].items():
                for w, pw in WORDS[cls].items():
                    P[i, self.words.index(w)] += pc * pw
        self.P = P
        self.end = self.words.index(".")
        self.chars = CharTokenizer(self.words)
        self.wordtok = WordTokenizer(self.words)

    def tokenizer(self, name: str) -> CharTokenizer | WordTokenizer:
        if name not in ("char", "word"):
            raise ValueError(f"unknown tokenizer {name!r}; choose char or word")
        return self.chars if name == "char" else self.wordtok

    # ------------------------------------------------------------------------- documents

    def sample_words(self, n_docs: int, n_words: int, seed: int) -> torch.Tensor:
        """(n_docs, n_words) word indices, each document starting a sentence."""
        g = torch.Generator().manual_seed(seed)
        out = torch.empty(n_docs, n_words, dtype=torch.long)
        prev = torch.full((n_docs,), self.end)
        for t in range(n_words):
            prev = torch.multinomial(self.P[prev], 1, generator=g).squeeze(1)
            out[:, t] = prev
        return out

    def text(self, word_ids) -> str:
        """A document's text after the prompt: each word followed by a space."""
        return "".join(self.words[int(i)] + " " for i in word_ids)

    def max_chars(self, n_words: int) -> int:
        return len(PROMPT) + n_words * (1 + max(len(w) for w in self.words))

    def corpus(self, texts: list[str], tokenizer: str = "char", length: int | None = None):
        """Texts (after the prompt) as a padded :class:`Corpus` for ``tokenizer``."""
        tok = self.tokenizer(tokenizer)
        rows = [tok.encode(PROMPT + t) if tok is self.chars else tok.encode(". " + t)
                for t in texts]  # fmt: skip
        length = length or max(len(r) for r in rows)
        ids = torch.full((len(rows), length), PAD, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : min(len(r), length)] = torch.tensor(r[:length])
        skip = len(tok.encode(PROMPT)) - 1  # target positions that are the prompt itself
        mask = ids[:, 1:] != PAD
        mask[:, :skip] = False
        chars = torch.tensor([len(t) for t in texts])
        return Corpus(ids, mask, chars)

    # ------------------------------------------------------------------------- exact probabilities

    @cached_property
    def _char_table(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Next-character distributions of every state and the state after each character.

        A state is (previous complete word, letters typed of the current word). ``dist`` (S, V):
        the exact next-character probabilities; ``step`` (S, V) long: the state after reading a
        character, or the dead state (all-zero distribution) when the text leaves the language.
        """
        prefixes = sorted({w[:k] for w in self.words for k in range(len(w) + 1)})
        states = [(p, s) for p in range(len(self.words)) for s in prefixes]
        sid = {st: i for i, st in enumerate(states)}
        dead = len(states)
        V = self.chars.vocab_size
        dist = torch.zeros(dead + 1, V, dtype=torch.float64)
        step = torch.full((dead + 1, V), dead, dtype=torch.long)
        for (prev, s), i in sid.items():
            for j, w in enumerate(self.words):
                if not w.startswith(s):
                    continue
                c = " " if w == s else w[len(s)]
                dist[i, self.chars.index[c]] += self.P[prev, j]
            total = dist[i].sum()
            if total > 0:
                dist[i] /= total
            for c, v in self.chars.index.items():
                if c == " " and s in self.words:
                    step[i, v] = sid[(self.words.index(s), "")]
                elif c not in (" ", "<pad>") and (prev, s + c) in sid:
                    step[i, v] = sid[(prev, s + c)]
        return dist, step, sid[(self.end, "")]

    def true_next(self, ids: torch.Tensor) -> torch.Tensor:
        """The exact next-character distribution after every prefix of character documents.

        ids: (N, L) character ids starting with the prompt. Returns (N, L-1, V) float64: row t is
        p(character t+1 | characters ≤ t); all zeros once a text has left the language. The
        positions of the prompt itself get the prompt's own next character with probability 1.
        """
        dist, step, start = self._char_table
        ids = ids.cpu()
        n, length = ids.shape
        out = torch.zeros(n, length - 1, dist.shape[1], dtype=torch.float64)
        out[:, 0, self.chars.index[" "]] = 1.0  # after "." comes the prompt's space
        state = torch.full((n,), start, dtype=torch.long)
        for t in range(1, length - 1):  # the state after reading ids[:, : t + 1]
            if t >= 2:
                state = step[state, ids[:, t]]
            out[:, t] = dist[state]
        return out

    def true_log_prob(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(N,) exact log-probability of each character document's counted characters under the
        language (-inf for a text the language cannot produce)."""
        p = self.true_next(ids).gather(2, ids[:, 1:].cpu().unsqueeze(2)).squeeze(2)  # (N, L-1)
        logp = p.log().masked_fill(~mask.cpu(), 0.0)
        return logp.sum(1)

    def is_valid(self, text: str) -> bool:
        """Whether ``text`` (after the prompt) is a sequence of lexicon words, each followed by a
        space, that the chain can produce."""
        prev = self.end
        for w in text.split(" ")[:-1] if text.endswith(" ") else text.split(" "):
            if w not in self.words or self.P[prev, self.words.index(w)] == 0:
                return False
            prev = self.words.index(w)
        return True


LANGUAGE = Language()
