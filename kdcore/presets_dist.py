"""DIST (Huang et al. 2022) on MNIST: the 30-30 student of the relation presets' 300-300 teacher
on hard labels, with KD and with DIST's inter- and intra-class relations, from the same seed for
the same epochs (:func:`kdcore.presets_relation._run`, the teacher shared and cached with them).

Registered after every other preset: a shipped run's id is minus its preset's place in the list,
so a preset added later comes last.
"""

from __future__ import annotations

from .presets_relation import RelationConfig, _run
from .runner import LONG_NOTE, LONG_PROFILE, Preset, register

# Huang et al. 2022, the official README's "stronger teachers" table: ImageNet top-1 % of a
# ResNet-18 student (69.76 trained alone) distilled by KD (T = 4) and by DIST from ResNet-34 /
# 50 / 101 / 152 teachers (73.31 / 76.13 / 77.37 / 78.31)
DIST_IMAGENET = {
    "teachers": ["ResNet-34", "ResNet-50", "ResNet-101", "ResNet-152"],
    "teacher": [73.31, 76.13, 77.37, 78.31],
    "student_hard": 69.76,
    "student_kd": [71.21, 71.35, 71.09, 71.12],
    "student_dist": [72.07, 72.12, 72.08, 72.24],
}

DIST_SOURCE = (
    "Huang, You, Wang, Qian & Xu 2022 (arXiv:2205.10536); ImageNet figures: the official "
    "README's stronger-teachers table"
)
DIST_PAPER = {
    "test_errors": {},
    "setting": "ResNet-18 students of ResNet-34 to ResNet-152 teachers on ImageNet, top-1 "
    "accuracy %",
    "imagenet_top1": DIST_IMAGENET,
    "claims": [
        "A stronger teacher's predictions can be far from what a student can reach, and KL's "
        "exact match then stops helping: a ResNet-18 gains 1.45 points by KD from a ResNet-34 "
        "and 1.36 from a ResNet-152, against 2.31 and 2.48 by DIST (Huang et al. 2022, official "
        "README).",
    ],
}

DIST_PRESET = register(
    Preset(
        name="dist-mnist",
        title="DIST: the teacher's predictions matched up to scale and shift",
        summary="The 30-30 student on hard labels, with KD (T = 4, α = 0.9) and with DIST "
        "(β = γ = 1, τ = 1): the Pearson correlation of its class probabilities with the "
        "300-300 teacher's, per image and per class over the batch.",
        source=DIST_SOURCE,
        paper=DIST_PAPER,
        config=RelationConfig(),
        runner=lambda cfg, ctx: _run("dist-mnist", "dist", cfg, ctx),
        differences="DIST is shown on ImageNet ResNets trained for 100 epochs or more; this is "
        "a 300-300 MLP teacher and a 30-30 MLP student on MNIST for a few epochs, so only the "
        "ordering of hard labels, KD and DIST can be compared. The weights are the official "
        "code's ImageNet settings (β = γ = 1, τ = 1); the student's cross-entropy has weight 1 "
        "in both. The intra-class relation is taken over each batch of 128 images. In the "
        "shipped run (seed 0, the long profile) DIST makes 263 test errors against 308 on hard "
        "labels and 244 by KD; over five seeds (the table under the run) 261.6 against 285.6 "
        "and 238.4, ahead of hard labels at 4 seeds of 5 and of KD at none. The paper's case is "
        "a teacher far stronger than its student, whose exact probabilities the student cannot "
        "reach; this 300-300 teacher is 1.5 points ahead of a 30-30 student on easy digits, "
        "where matching its probabilities exactly, as KD does, still pays.",
        profiles={"long": LONG_PROFILE},
        profile_notes=LONG_NOTE,
    )
)
