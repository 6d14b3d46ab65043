"""One epoch of a MiniLM (or TinyBERT) student, side by side in one run: the teacher's stream
cached once (what kdcore does) against a teacher pass on every batch (the usual way).

The shipped character-level teacher (``assets/models/lm-teacher.safetensors``, 4 blocks of width
128) and an ``lm-student`` (2 blocks of width 48) on the minilm-relations preset's training set
(4,000 ten-word documents, batch 64, AdamW): next-character cross-entropy plus MiniLMv2's q-q,
k-k and v-v relation KLs over 4 relation heads from the teacher's last block.

- cached: ``kdcore.lm_distill.lm_step("minilm", ...)``: the teacher's residual stream entering
  its last block is computed once for the training set (timed on its own), and each step turns
  a batch of it into the block's queries, keys and values (a LayerNorm and a linear map).
- per batch: the same loss, the teacher run on every batch with ``forward(ids, keep=[])`` to
  hand back the block's queries, keys and values.

With ``--method tinybert``: TinyBERT's hidden-state loss under the uniform mapping instead, the
teacher's streams after its blocks 2 and 4 cached once (its embeddings are a lookup a batch)
against ``forward(ids, hidden=[])`` on every batch; both paths train the same projector from
the same start.

Both students start from the same weights and see the same batches; the last loss of each is
printed so the two paths can be seen to compute the same thing.

    python bench/bench_minilm.py [--method minilm|tinybert] [--threads N] [--epochs 1]

Measured 2026-12-05 on the 2-core AMD EPYC CPU, torch 2.14.1, --threads 2, --epochs 3: 3.54 s
an epoch cached against 6.62 s with a teacher pass per batch (1.87x), the cache 3.80 s once
(1.38x over three epochs with it, about 1.7x over the preset's ten); the same last loss, 2.3428,
both ways. Before the method said it reads no teacher logits, the cache also paid a pass for
them it never used (9.0 s once). With the cache's passes in chunks of 128 documents rather than
512 (2026-12-06, same machine): 3.80 s against 7.06 s (1.86x), the cache 3.39 s.

``--method tinybert``, 2026-12-06, same machine and flags: 2.11 s an epoch cached against 5.66 s
with a teacher pass per batch (2.68x), the cache 4.96 s once (1.50x over three epochs with it,
about 2.2x over the preset's ten); the same last loss, 1.3903, both ways. Caching the two
streams one pass each took 8.22 s; one pass for both, 5.42 s; in chunks of 128, 4.96 s.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kdcore.gpt import build_lm, load_lm  # noqa: E402
from kdcore.language import LANGUAGE  # noqa: E402
from kdcore.lm import cross_entropy, sample_texts  # noqa: E402
from kdcore.lm_distill import Transfer, lm_step  # noqa: E402
from kdcore.losses.minilm import PAIRS, minilm_losses  # noqa: E402
from kdcore.losses.tinybert import hidden_losses, layer_map  # noqa: E402
from kdcore.presets_lm import ASSET, N_WORDS  # noqa: E402

PARAMS = {
    "minilm": {"relations": "q-q k-k v-v", "heads": 4, "teacher_layer": 4, "lam": 1.0},
    "tinybert": {"mapping": "uniform", "lam": 1.0},
}


def per_batch_tinybert(teacher, train, projector):
    """The usual way for TinyBERT: the teacher's hidden states from a pass on every batch."""
    pairs = layer_map("uniform", 2, teacher.cfg.layers)

    def step(model, rows):
        ids, mask = train.char.ids[rows], train.char.mask[rows]
        hidden, t_hidden = [], []
        logits = model(ids[:, :-1], hidden=hidden)
        with torch.no_grad():
            teacher(ids[:, :-1], hidden=t_hidden)
        hidn = hidden_losses([hidden[m] for m, _ in pairs], [t_hidden[n] for _, n in pairs],
                             projector, mask)  # fmt: skip
        return {"ce": cross_entropy(logits, ids[:, 1:], mask), "hidden": hidn}

    return step


def per_batch_step(teacher, train):
    """The usual way: a teacher pass on every batch."""
    params = PARAMS["minilm"]

    def step(model, rows):
        ids, mask = train.char.ids[rows], train.char.mask[rows]
        keep, t_keep = [], []
        logits = model(ids[:, :-1], keep=keep)
        with torch.no_grad():
            teacher(ids[:, :-1], keep=t_keep)
        terms = minilm_losses(t_keep[-1], keep[-1], 4, PAIRS[params["relations"]], mask)
        return {"ce": cross_entropy(logits, ids[:, 1:], mask), **terms}

    return step


def epoch(model, step, n_docs: int, batch: int, seed: int, modules=()) -> tuple[float, float]:
    opt = torch.optim.AdamW([*model.parameters(), *(p for m in modules for p in m.parameters())],
                            lr=1e-2)  # fmt: skip
    order = torch.randperm(n_docs, generator=torch.Generator().manual_seed(seed))
    t0 = time.perf_counter()
    for i in range(0, n_docs, batch):
        loss = sum(step(model, order[i : i + batch]).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0, float(loss.detach())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", choices=tuple(PARAMS), default="minilm")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    teacher = load_lm(ASSET)[0].eval()
    train = sample_texts(4000, N_WORDS, 0)
    torch.manual_seed(1)
    start = build_lm("lm-student", LANGUAGE.chars.vocab_size, teacher.cfg.block).state_dict()

    transfer = Transfer(teacher, train, N_WORDS)
    s_cfg = build_lm("lm-student", LANGUAGE.chars.vocab_size, teacher.cfg.block).cfg
    t0 = time.perf_counter()
    cached = lm_step(args.method, PARAMS[args.method], "char", transfer, s_cfg)  # streams once
    cache_s = time.perf_counter() - t0
    if cached.modules:  # TinyBERT's projector: the other path trains a copy of its start
        twin = copy.deepcopy(cached.modules[0])
        slow = (per_batch_tinybert(teacher, train, twin), (twin,))
    else:
        slow = (per_batch_step(teacher, train), ())
    rows = []
    for name, (step, modules) in (("cached", (cached, cached.modules)), ("per batch", slow)):
        model = build_lm("lm-student", LANGUAGE.chars.vocab_size, teacher.cfg.block)
        model.load_state_dict(start)
        model.train()
        times = [epoch(model, step, len(train.char), 64, e, modules) for e in range(args.epochs)]
        rows.append((name, sum(t for t, _ in times) / len(times), times[-1][1]))
    (_, fast, loss_a), (_, slow, loss_b) = rows
    print(f"{args.method}: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          "4,000 documents")  # fmt: skip
    print(f"{'':12}{'s / epoch':>12}{'last loss':>12}")
    for name, seconds, loss in rows:
        print(f"{name:12}{seconds:12.2f}{loss:12.4f}")
    print(f"the stream cache, once: {cache_s:.2f} s; speed-up per epoch {slow / fast:.2f}x "
          f"({slow / (fast + cache_s / args.epochs):.2f}x with the cache's cost)")  # fmt: skip
    return 0 if abs(loss_a - loss_b) < 1e-3 * max(1.0, abs(loss_b)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
