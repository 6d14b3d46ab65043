"""SimKD (Chen et al. 2022) on MNIST: the 30-30 student of the relation presets' 300-300 teacher
on hard labels, with KD, and with SimKD at the three bottleneck factors of the official table
(``student_simkd`` at f = 2, ``student_simkd_f4``, ``student_simkd_f8``), from the same seed for
the same epochs (:func:`kdcore.presets_relation._run`, the teacher shared and cached with them).

A SimKD student answers through a projector and the teacher's classifier, so it deploys more
parameters than the 30-30 net: the paper's own caveat ("at the modest cost of compression ratio
due to the added projector"). The run therefore also trains a plain student of about the deployed
size at f = 2 (``students``: a 110-110 MLP, 99,670 parameters against 101,000) on hard labels and
with KD (``student_hard_wide``, ``student_kd_wide``), to ask whether the same parameters would
have served as well in the student itself.

After every epoch each student's agreement with the teacher on the whole test set is recorded
(``reuse["agreement"]``: how often it names the teacher's class), and for the SimKD students how
far their projected feature lies from the teacher's on it (``reuse["gap"]``: the SimKD loss).

Registered after every other preset: a shipped run's id is minus its preset's place in the list,
so a preset added later comes last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .data import Dataset
from .losses.simkd import PROJECTED, align, simkd_loss
from .models import KDModel
from .presets_relation import KD, RelationConfig, _run
from .runner import LONG_NOTE, LONG_PROFILE, Preset, RunContext, register

PRESET = "simkd-mnist"
MORE = (("f4", {"factor": 4}), ("f8", {"factor": 8}))


@dataclass(frozen=True)
class SimKDConfig(RelationConfig):
    # Plain students of about the deployed SimKD student's size (f = 2), on hard labels and KD
    students: tuple[str, ...] = ("mlp-110",)


def run_simkd(cfg: SimKDConfig, ctx: RunContext) -> dict:
    """The preset, with ``reuse`` = {"agreement": {student: [share of test images on which it
    names the teacher's class, per epoch]}, "gap": {SimKD student: [SimKD loss to the teacher's
    feature on the test set, per epoch]}}."""
    reuse: dict[str, Any] = {"agreement": {}, "gap": {}}
    ctx.extra.update(reuse=reuse)  # kept by a cancelled run too
    seen: dict[str, torch.Tensor] = {}

    def before(teacher: KDModel, data: Dataset) -> None:
        seen["x"] = data.x_test
        with torch.no_grad():
            out = teacher.eval().forward_features(data.x_test)
        seen["choice"], seen["feat"] = out.logits.argmax(1), out.features["embedding"]

    def watch(name: str) -> Callable[[KDModel], dict]:
        def record(model: KDModel) -> dict:
            out = model.forward_features(seen["x"])
            agree = round(float((out.logits.argmax(1) == seen["choice"]).float().mean()), 5)
            reuse["agreement"].setdefault(name, []).append(agree)
            found = {"teacher_agreement": agree}
            if PROJECTED in out.features:  # the deployed student's feature, through the projector
                gap = round(float(simkd_loss(*align(out.features[PROJECTED], seen["feat"]))), 5)
                reuse["gap"].setdefault(name, []).append(gap)
                found["feature_gap"] = gap
            return found

        return record

    others = tuple(
        (f"student_{m}_wide", arch, m, p)
        for arch in cfg.students
        for m, p in (("hard", {}), ("kd", KD))
    )
    if len(cfg.students) > 1:  # more than one size: each named by its architecture
        others = tuple((f"{n}_{a}", a, m, p) for (n, a, m, p) in others)
    return _run(PRESET, "simkd", cfg, ctx, watch, before, more=MORE, others=others)


# The official repository's CIFAR-100 table (DefangChen/SimKD, README, "Some results on
# CIFAR-100"), resnet32x4 -> resnet8x4 column, top-1 %: the student, KD and SimKD at f = 2, 4, 8
CIFAR = {
    "teacher": 79.42, "student_hard": 73.09, "student_kd": 74.42,
    "student_simkd": 78.08, "student_simkd_f4": 77.88, "student_simkd_f8": 76.73,
}  # fmt: skip
# Not the CRD table's setting string (kdcore.presets_relation.SETTING): the authors ran every
# method again, their student and KD above that table's 72.50 and 73.33, so SimKD's figures stay
# out of the benchmark that plots that table's
SETTING = (
    "resnet32x4 -> resnet8x4 on CIFAR-100, top-1 accuracy %, 240 epochs, every method run again "
    "by SimKD's authors"
)
CLAIM = (
    "Reusing the teacher's classifier for the student's inference and training only the "
    "student's encoder, through a projector, to match the teacher's last feature with a single "
    "L2 loss narrows the teacher-student gap further than other methods: in the official "
    "CIFAR-100 table a resnet8x4 taught by a resnet32x4 reaches 78.08% at f = 2 (77.88% at 4, "
    "76.73% at 8), against 73.09% on hard labels, 74.42% by KD and the teacher's 79.42% (Chen "
    "et al. 2022, the official README)."
)

SIMKD_PRESET = register(
    Preset(
        name=PRESET,
        title="SimKD: the student answers with the teacher's classifier",
        summary="The 30-30 student on hard labels, with KD (T = 4, α = 0.9) and with SimKD: its "
        "last hidden layer through a bottleneck projector (linear, BatchNorm, ReLU, three "
        "times) onto the teacher's 300 units by one squared error and nothing else, then read "
        "by the teacher's frozen classifier; at the bottleneck factors 2, 4 and 8; and a plain "
        "110-110 student, about the deployed size at f = 2, on hard labels and with KD.",
        source="Chen, Mei, Zhang, Wang, Feng & Chen 2022 (CVPR); the official code and README",
        paper={"test_errors": {}, "setting": SETTING, "claims": [CLAIM], "cifar100_top1": CIFAR},
        config=SimKDConfig(),
        runner=run_simkd,
        differences="The official runs distil a resnet32x4 into a resnet8x4 on CIFAR-100 for 240 "
        "epochs, the projector on the last feature map; this is a 300-300 MLP into a 30-30 MLP "
        "on MNIST, the projector's 1 × 1, 3 × 3 and 1 × 1 convolutions linear maps on the last "
        "hidden layer, so only the ordering can be compared. The loss (one squared error, no "
        "cross-entropy, no KD) and the factors are the official code's, not tuned here, every "
        "student's gradient clipped as in the other presets. In the shipped run (seed 0, the "
        "long profile, made on an Intel Xeon) the teacher makes 137 test errors, the 30-30 "
        "student 309 on hard labels, 226 by KD and 246 with SimKD at f = 2 (101,000 parameters "
        "deployed), 264 at f = 4 (59,075) and 327 at f = 8 (42,127); the 110-110 student "
        "(99,670) 172 on hard labels and 156 by KD. Over five seeds (the table under the run) "
        "SimKD makes 257.6 at f = 2, 278.4 at 4 and 315.6 at 8, against hard labels' 285.0 and "
        "KD's 232.0, ahead of KD at 0, 0 and 0 seeds of 5; the 110-110 student makes 177.2 on "
        "hard labels and 151.0 by KD. The factors fall in the paper's order (f = 2 ahead of 4 "
        "at 5 seeds of 5, 4 ahead of 8 at 4), and at f = 2 SimKD beats hard labels at every "
        "seed, but not KD: by the last epoch it names the teacher's class on 98.3% of the test "
        "images, KD's 30-30 student on 98.3%, so the teacher's classifier did not make it more "
        "the teacher's than KD did; and the parameters its projector adds serve far better as "
        "width in the student itself.",
        seed_pairs={
            "student_kd": "student_hard",
            "student_simkd": "student_kd",
            "student_simkd_f4": "student_kd",
            "student_simkd_f8": "student_kd",
            "student_kd_wide": "student_hard_wide",
        },
        profiles={"long": LONG_PROFILE},
        profile_notes=LONG_NOTE,
    )
)
