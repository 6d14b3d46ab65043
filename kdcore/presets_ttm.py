"""Transformed teacher matching (Zheng & Yang 2024) on MNIST: the 30-30 student of the relation
presets' 300-300 teacher on hard labels, with KD, with TTM and with weighted TTM at the official
command's settings (T = 10, β = 45 beside the cross-entropy), from the same seed for the same
epochs (:func:`kdcore.presets_relation._run`, the teacher shared and cached with them).

After every epoch each student's mean entropy over the test images is kept, Shannon's and the
Rényi entropy of order 1/T that TTM rewards (``entropy``): the paper's explanation, measured.

Registered after every other preset: a shipped run's id is minus its preset's place in the list,
so a preset added later comes last.
"""

from __future__ import annotations

from collections.abc import Callable

from .data import Dataset
from .losses.ttm import TTM_T, renyi_entropy
from .models import KDModel
from .presets_relation import _run, method_preset
from .runner import RunContext
from .train import predict_logits

PRESET = "ttm-mnist"
MORE = (("weighted", {"weighted": True}), ("t4", {"T": 4.0}))

# Zheng & Yang 2024, the official README's table: resnet32x4 -> resnet8x4 on CIFAR-100, KD 73.33,
# TTM 76.17 and WTTM 76.06 top-1 % (teacher and hard labels: the same table, the mdistiller
# figures the other presets quote, kdcore.presets_relation._CIFAR)
CLAIM = (
    "Dropping the temperature on the student's side leaves KD with an inherent Rényi-entropy "
    "regulariser, and the student generalises better: a resnet8x4 taught by a resnet32x4 on "
    "CIFAR-100 reaches 73.33% by KD, 76.17% by TTM and 76.06% by weighted TTM (Zheng & Yang "
    "2024, official README)."
)
WTTM_TOP1 = 76.06
# Not the CRD table's setting string (kdcore.presets_relation.SETTING): TTM is not one of that
# benchmark's methods, and this run, made on another machine, is not one of its recipe's seeds
SETTING = (
    "resnet32x4 -> resnet8x4 on CIFAR-100, top-1 accuracy %, 240 epochs, TTM's official README "
    "(its teacher, hard labels and KD the CRD table's)"
)


def run_ttm(cfg, ctx: RunContext) -> dict:
    """The preset, with ``entropy`` = {"order": 1/T, "teacher": {"renyi", "shannon", "target"},
    "renyi": {model: [per epoch]}, "shannon": {model: [per epoch]}}: means over the test images,
    nats; the teacher's ``target`` is the Shannon entropy of its softmax at T, TTM's target."""
    order = 1.0 / float(cfg.params.get("T", TTM_T))
    ent: dict = {"order": order, "teacher": {}, "renyi": {}, "shannon": {}}
    ctx.extra["entropy"] = ent  # kept by a cancelled run too
    probe: dict = {}

    def means(logits) -> tuple[float, float]:
        return (round(float(renyi_entropy(logits, order).mean()), 5),
                round(float(renyi_entropy(logits, 1.0).mean()), 5))  # fmt: skip

    def before(teacher: KDModel, data: Dataset) -> None:
        probe["x"] = data.x_test
        logits = predict_logits(teacher, data.x_test)
        ent["teacher"]["renyi"], ent["teacher"]["shannon"] = means(logits)
        # TTM's target, the teacher's softmax at T: the entropy a TTM student is pulled towards
        ent["teacher"]["target"] = round(float(renyi_entropy(logits * order, 1.0).mean()), 5)

    def watch(name: str) -> Callable[[KDModel], dict]:
        ent["renyi"][name], ent["shannon"][name] = [], []

        def record(model: KDModel) -> dict:
            r, h = means(predict_logits(model, probe["x"]))
            ent["renyi"][name].append(r)
            ent["shannon"][name].append(h)
            return {"renyi_entropy": r, "entropy": h}

        return record

    return _run(PRESET, "ttm", cfg, ctx, watch, before, more=MORE)


TTM_PRESET = method_preset(
    PRESET,
    "ttm",
    title="TTM: the temperature on the teacher alone",
    summary="The 30-30 student on hard labels, with KD (T = 4, α = 0.9), with TTM (its plain "
    "softmax matched to the teacher's at T = 10, CE + 45·KL, the official command's) and with "
    "weighted TTM (each image's term times the teacher's power sum), from the 300-300 teacher; "
    "each student's entropy on the test set every epoch.",
    source="Zheng & Yang 2024 (ICLR, arXiv:2402.11148); CIFAR-100 figures: the official "
    "README's table",
    top1=76.17,
    claim=CLAIM,
    differences="The paper distils a resnet32x4 into a resnet8x4 on CIFAR-100 for 240 epochs; "
    "this is a 300-300 MLP teacher and a 30-30 MLP student on MNIST for 16 epochs, so only the "
    "ordering of hard labels, KD and TTM can be compared. T = 10 and β = 45 beside the "
    "cross-entropy are the official README's command (vgg13 → vgg8), not tuned here; the "
    "paper lists its values for each pair in an appendix not quoted here. Weighted TTM keeps "
    "them, and T = 4, KD's, is ours; plain KD keeps T = 4, α = 0.9. In the shipped run (seed "
    "0, the long profile, made on an Intel Xeon) the teacher makes 137 test errors, the "
    "student 309 on hard labels, 226 by KD, 283 by TTM, 268 by weighted TTM and 274 by TTM at "
    "T = 4; over five seeds (the table under the run) TTM makes 287.6 against hard labels' "
    "285.0 and KD's 232.0, weighted TTM 285.8 and TTM at T = 4 262.0: TTM ahead of hard "
    "labels at 2 seeds of 5 and of KD at 0. The paper's direction does not hold here, and the "
    "run's records show what TTM asked: the student's plain softmax is pulled onto the "
    "teacher's at T = 10, which for this teacher is almost flat (a mean entropy of 2.085 nats "
    "on the test images, where ten equal classes give 2.303), and the TTM student gets there: "
    "its own mean entropy ends at 2.07 nats against KD's 0.062. Its Rényi reward is the "
    "paper's regulariser taken far; at T = 4 it is milder, and the student better.",
    seed_pairs={
        "student_kd": "student_hard",
        "student_ttm": "student_kd",
        "student_ttm_weighted": "student_kd",
        "student_ttm_t4": "student_kd",
    },
    runner=run_ttm,
    setting=SETTING,
)
TTM_PRESET.paper["cifar100_top1"]["student_ttm_weighted"] = WTTM_TOP1
