"""A tiny causal transformer language model (GPT-style), with a key/value cache for sampling.

The architecture of Radford et al. 2019 as minGPT/nanoGPT write it: token and learned position
embeddings, pre-norm blocks of causal multi-head self-attention and a 4x MLP, a final LayerNorm
and a linear head. ``forward(idx)`` returns next-token logits at every position, (B, T, V).
``forward(idx, cache)`` appends to a :class:`Cache` of each block's keys and values, so sampling
one token costs one position's compute instead of the whole prefix's. ``forward(idx, keep=[])``
also hands back every block's queries, keys and values (what :mod:`kdcore.losses.minilm` reads).

The named architectures (:data:`LM_MODELS`) are this project's sizes for the synthetic language
of :mod:`kdcore.language`; ``lm-teacher`` is about 30 times the compute of ``lm-student``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from .checkpoint import CheckpointError, save_state


@dataclass(frozen=True)
class GPTConfig:
    vocab: int
    block: int  # longest sequence, in tokens
    width: int
    layers: int
    heads: int


LM_MODELS: dict[str, tuple[int, int, int]] = {  # name -> (width, layers, heads)
    "lm-teacher": (128, 4, 4),
    "lm-student": (48, 2, 2),
    # DistilBERT's shape: the teacher's width and heads, half its blocks (its weights fit)
    "lm-half": (128, 2, 4),
    "lm-draft": (32, 1, 2),
}


class Cache:
    """Keys and values of every block for the positions read so far: lists of (B, H, t, D/H)."""

    def __init__(self, layers: int):
        self.k: list[torch.Tensor | None] = [None] * layers
        self.v: list[torch.Tensor | None] = [None] * layers

    @property
    def length(self) -> int:
        return 0 if self.k[0] is None else self.k[0].shape[2]


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.width)

    def forward(
        self, x: torch.Tensor, cache: Cache | None, i: int, keep: list | None = None
    ) -> torch.Tensor:
        b, t, d = x.shape  # (B, T, D)
        q, k, v = self.qkv(x).split(d, dim=2)
        if keep is not None:  # the heads side by side, (B, T, D) each, as MiniLMv2 reads them
            keep.append((q, k, v))
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        causal = True  # (B, H, T, D/H) each
        if cache is not None:
            if cache.k[i] is not None:
                k = torch.cat([cache.k[i], k], 2)
                v = torch.cat([cache.v[i], v], 2)
                # new queries see every cached position and the earlier new ones: a causal mask
                # offset by the cache's length (plain is_causal aligns to the top-left corner)
                causal = t > 1
            cache.k[i], cache.v[i] = k, v
        if causal and k.shape[2] != t:
            past = k.shape[2] - t
            mask = torch.ones(t, k.shape[2], dtype=torch.bool, device=x.device).tril(past)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=causal and t > 1)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.width)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.width)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.width, 4 * cfg.width), nn.GELU(), nn.Linear(4 * cfg.width, cfg.width)
        )

    def forward(
        self, x: torch.Tensor, cache: Cache | None, i: int, keep: list | None = None
    ) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, i, keep)
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    def __init__(self, cfg: GPTConfig, arch: str = ""):
        super().__init__()
        self.cfg, self.arch = cfg, arch
        self.tok = nn.Embedding(cfg.vocab, cfg.width)
        self.pos = nn.Embedding(cfg.block, cfg.width)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, cfg.vocab)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.layers))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(
        self, idx: torch.Tensor, cache: Cache | None = None, keep: list | None = None,
        hidden: list | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """idx (B, T) token ids after the ``cache.length`` already read. Returns (B, T, V).
        ``keep``: a list that receives each block's (queries, keys, values), (B, T, D) each;
        ``hidden``: one that receives the residual stream after the embeddings and after each
        block, (B, T, D) each (``hidden[m]`` is what :meth:`stream` returns for ``upto=m``)."""
        x = self._embed(idx, 0 if cache is None else cache.length)
        if hidden is not None:
            hidden.append(x)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i, keep)
            if hidden is not None:
                hidden.append(x)
        return self.head(self.ln(x))  # (B, T, V)

    def _embed(self, idx: torch.Tensor, start: int) -> torch.Tensor:
        if start + idx.shape[1] > self.cfg.block:
            raise ValueError(f"{start + idx.shape[1]} tokens exceed the block of {self.cfg.block}")
        pos = torch.arange(start, start + idx.shape[1], device=idx.device)
        return self.tok(idx) + self.pos(pos)  # (B, T, D)

    def stream(self, idx: torch.Tensor, upto: int) -> torch.Tensor:
        """The residual stream entering block ``upto`` (0-based) on idx (B, T): (B, T, D), what
        :meth:`block_qkv` turns into that block's queries, keys and values. Caching it costs a
        third of caching them."""
        return self.streams(idx, (upto,))[0]

    def streams(self, idx: torch.Tensor, uptos: Sequence[int]) -> list[torch.Tensor]:
        """:meth:`stream` for several blocks in one pass, in the order asked: a pass runs only
        as far as the deepest one."""
        x = self._embed(idx, 0)
        out = {0: x}
        for i, block in enumerate(self.blocks[: max(uptos, default=0)]):
            x = block(x, None, i)
            out[i + 1] = x
        return [out[u] for u in uptos]

    def block_qkv(self, x: torch.Tensor, i: int) -> tuple[torch.Tensor, ...]:
        """Block i's queries, keys and values, (B, T, D) each, from the stream entering it: what
        ``forward(idx, keep=[])`` hands back for that block."""
        block = self.blocks[i]
        return block.attn.qkv(block.ln1(x)).split(self.cfg.width, dim=2)

    def new_cache(self) -> Cache:
        return Cache(self.cfg.layers)


@torch.no_grad()
def init_from(student: TinyGPT, teacher: TinyGPT, blocks: Sequence[int]) -> TinyGPT:
    """Start ``student`` from ``teacher``'s weights (DistilBERT's initialisation): the token and
    position embeddings, the final LayerNorm and the head, and the student's i-th block from the
    teacher's block ``blocks[i]`` (1 = first). Raises ValueError (one line) when the shapes
    differ, so no weight is half copied."""
    s, t = student.cfg, teacher.cfg
    if (s.vocab, s.block, s.width, s.heads) != (t.vocab, t.block, t.width, t.heads):
        raise ValueError(
            f"a student of width {s.width} and {s.heads} heads cannot start from a "
            f"teacher of width {t.width} and {t.heads} heads: the weights do not fit"
        )
    if len(blocks) != s.layers or not all(1 <= b <= t.layers for b in blocks):
        raise ValueError(
            f"the student's {s.layers} blocks need as many of the teacher's 1 to "
            f"{t.layers}, not {list(blocks)}"
        )
    for name in ("tok", "pos", "ln", "head"):
        getattr(student, name).load_state_dict(getattr(teacher, name).state_dict())
    for i, b in enumerate(blocks):
        student.blocks[i].load_state_dict(teacher.blocks[b - 1].state_dict())
    return student


def build_lm(arch: str, vocab: int, block: int) -> TinyGPT:
    if arch not in LM_MODELS:
        raise ValueError(f"unknown language model {arch!r}; choose one of {', '.join(LM_MODELS)}")
    width, layers, heads = LM_MODELS[arch]
    return TinyGPT(GPTConfig(vocab, block, width, layers, heads), arch)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- sampling


@torch.no_grad()
def generate(
    model: TinyGPT,
    prompts: torch.Tensor,
    prompt_len: torch.Tensor,
    length: int,
    temperature: float = 1.0,
    greedy: bool = False,
    generator: torch.Generator | None = None,
    done=None,
) -> torch.Tensor:
    """Continue each row of ``prompts`` (B, L0) after its first ``prompt_len`` (B,) tokens, up
    to ``length`` tokens in all, with the key/value cache: one position per model call.

    Rows are read position by position: where a row's prompt still has a token it is copied,
    elsewhere the model's choice is written (argmax when ``greedy``, else a sample at
    ``temperature``). ``done(ids (B, t)) -> (B,) bool`` marks rows that have finished; their
    later tokens are padding (0). Returns (B, length) ids.
    """
    was = model.training
    model.eval()
    b = prompts.shape[0]
    out = torch.zeros(b, length, dtype=torch.long, device=prompts.device)
    out[:, : prompts.shape[1]] = prompts[:, :length]
    finished = torch.zeros(b, dtype=torch.bool, device=prompts.device)
    cache = model.new_cache()
    for t in range(length - 1):
        logits = model(out[:, t : t + 1], cache)[:, -1].float()  # (B, V)
        if greedy:
            nxt = logits.argmax(1)
        else:
            probs = torch.softmax(logits / temperature, 1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        keep = t + 1 < prompt_len  # still inside the prompt
        nxt = torch.where(keep, out[:, t + 1], nxt)
        out[:, t + 1] = torch.where(finished, torch.zeros_like(nxt), nxt)
        if done is not None:
            finished |= done(out[:, : t + 2]) & ~keep
        if bool(finished.all()):
            break
    model.train(was)
    return out


# ----------------------------------------------------------------------------- weights on disk

LM_FORMAT = "kdcore-lm-1"


def save_lm(model: TinyGPT, path: str | Path, meta: dict | None = None) -> Path:
    """Weights as safetensors with the architecture and config in the metadata."""
    return save_state(model, path, {"format": LM_FORMAT, "arch": model.arch,
                                    "config": asdict(model.cfg), **(meta or {})})  # fmt: skip


def load_lm(path: str | Path, device: str | torch.device = "cpu") -> tuple[TinyGPT, dict]:
    """A model saved by :func:`save_lm`, in eval mode, and its metadata. Nothing is unpickled;
    a file that is not such a checkpoint raises :class:`CheckpointError` with one line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no language model at {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = json.loads((f.metadata() or {}).get("meta", "{}"))
        if meta.get("format") != LM_FORMAT:
            raise CheckpointError(f"{path.name} is not a kdcore language model")
        cfg = GPTConfig(**meta["config"])
        model = TinyGPT(cfg, meta.get("arch", ""))
        model.load_state_dict(load_file(str(path)), strict=True)
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, TypeError, KeyError, RuntimeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise CheckpointError(f"{path.name} could not be loaded: {first}") from None
    return model.to(device).eval(), meta
