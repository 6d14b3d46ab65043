"""The one table of distillation methods.

Each entry names its parameter dataclass and a ``build(params, probe) -> Distiller``; nothing
outside this table names a method. Adding one means a loss file (the pure function, its
parameters, a thin distiller), one entry here, one test file and one page section.
"""

from __future__ import annotations

from .losses import (
    ab,
    attention,
    cat,
    cc,
    crd,
    ctkd,
    deit,
    dist,
    dkd,
    fitnets,
    fsp,
    ft,
    ickd,
    kd,
    mgd,
    modes,
    nkd,
    nst,
    ofd,
    pkt,
    review,
    rkd,
    sdd,
    similarity,
    simkd,
    srrl,
    ttm,
    uskd,
    vid,
    wsld,
    zscore,
)
from .method import Method

METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} is registered twice")
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    """The entry for ``name``; ValueError (one line) naming the choices when there is none."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def baseline_method() -> Method:
    """The method every distilled student is compared with (training on hard labels)."""
    return next(m for m in METHODS.values() if m.baseline)


FAMILIES = ("baseline", "response", "feature", "relation")

register(
    Method(
        "hard", "Hard labels only", "baseline", "cross-entropy baseline", kd.HardParams,
        lambda p, probe: kd.HardLabels(p), uses_teacher=False,
        summary="No teacher: cross-entropy on the true labels.", baseline=True, graph_safe=True,
    )
)  # fmt: skip
register(
    Method(
        "kd", "Knowledge distillation", "response",
        "Hinton, Vinyals & Dean 2015, arXiv:1503.02531", kd.KDParams,
        lambda p, probe: kd.KD(p),
        summary="The teacher's class probabilities softened at a temperature T.", graph_safe=True,
    )
)  # fmt: skip
register(
    Method(
        "logits", "Logit matching", "response",
        "Buciluǎ, Caruana & Niculescu-Mizil 2006; Ba & Caruana 2014", kd.LogitsParams,
        lambda p, probe: kd.LogitMatching(p),
        summary="The teacher's logits themselves, by squared error.",
    )
)  # fmt: skip
register(
    Method(
        "fitnets", "FitNets hints through a projector", "feature",
        "Romero et al. 2015, arXiv:1412.6550; projectors: Miles & Mikolajczyk 2024, "
        "arXiv:2303.11098; VkD, Miles et al. 2024, arXiv:2403.06213",
        fitnets.FitNetsParams, fitnets.FitNets,
        summary="An intermediate layer of the teacher, reproduced by the student's layer "
        "through a trained projector.",
        abbreviation="FitNets",
    )
)  # fmt: skip
register(
    Method(
        "at", "Attention transfer", "feature",
        "Zagoruyko & Komodakis 2017, arXiv:1612.03928", attention.ATParams,
        attention.AttentionTransfer,
        summary="Where the teacher's convolutional layers look: their spatial attention maps.",
    )
)  # fmt: skip

register(
    Method(
        "vid", "Variational information distillation", "feature",
        "Ahn, Hu, Damianou, Lawrence & Dai 2019 (CVPR), arXiv:1904.05835", vid.VIDParams,
        vid.VID,
        summary="A hint with its own uncertainty: the teacher's layer predicted from the "
        "student's as a Gaussian whose variance, learned per channel, lets the student give up "
        "on what it cannot represent.",
    )
)  # fmt: skip

register(
    Method(
        "ab", "Activation boundaries", "feature",
        "Heo, Lee, Yun & Choi 2019 (AAAI), arXiv:1811.03233", ab.ABParams,
        ab.ActivationBoundaries,
        summary="Which side of zero each teacher unit falls on, not how far: a squared hinge "
        "that trains the student (through a connector) to fire where the teacher's units fire, "
        "as an initialisation before classification.",
    )
)  # fmt: skip

register(
    Method(
        "ofd", "Overhaul of feature distillation (OFD)", "feature",
        "Heo, Kim, Yun, Park, Kwak & Choi 2019 (ICCV), arXiv:1904.01866", ofd.OFDParams, ofd.OFD,
        summary="The teacher's layer before its ReLU, its negative values raised to each "
        "channel's expected negative response (a margin ReLU), matched through a connector by "
        "a partial L2 that skips a student already below a non-positive target.",
    )
)  # fmt: skip

register(
    Method(
        "ft", "Factor transfer", "feature",
        "Kim, Park & Kwak 2018 (NeurIPS), arXiv:1802.04977", ft.FTParams, ft.FactorTransfer,
        summary="The teacher's layer as a paraphraser rephrased it: an autoencoder trained "
        "first on the teacher's layer gives its narrower middle as the factor, which a "
        "translator on the student's layer learns to give too.",
        abbreviation="FT",
    )
)  # fmt: skip

register(
    Method(
        "fsp", "Flow of solution procedure", "feature",
        "Yim, Joo, Bae & Kim 2017 (CVPR)", fsp.FSPParams, fsp.FSP,
        summary="How the teacher's features change from one layer to the next: the Gram "
        "matrix between two layers' channels (the FSP matrix), matched pair by pair as an "
        "initialisation before classification, by a shallower student of the same widths.",
        abbreviation="FSP",
    )
)  # fmt: skip

register(
    Method(
        "review", "Knowledge review (ReviewKD)", "feature",
        "Chen, Liu, Zhao & Jia 2021 (CVPR), arXiv:2104.09044", review.ReviewParams,
        review.ReviewKD,
        summary="Every level of the teacher, taught by the student's same level and all its "
        "deeper ones: fused from the deepest up by attention, each fusion compared with the "
        "teacher's level at several scales (a pyramid of poolings).",
        abbreviation="ReviewKD",
    )
)  # fmt: skip

register(
    Method(
        "mgd", "Masked generative distillation (MGD)", "feature",
        "Yang, Li, Shao, Shi, Yuan & Yuan 2022 (ECCV), arXiv:2205.01529", mgd.MGDParams,
        mgd.MGD,
        summary="The teacher's whole map, regenerated by a small generator from the student's "
        "map with random channels (or pixels) masked: the student must carry what rebuilds it.",
        abbreviation="MGD",
    )
)  # fmt: skip

# ----------------------------------------------------------------------------- relation-based, DKD
register(
    Method(
        "rkd", "Relational KD (distances and angles)", "relation",
        "Park, Kim, Lu & Cho 2019, arXiv:1904.05068", rkd.RKDParams, rkd.RKD,
        summary="The shape of the batch in the teacher's embedding: the distances between pairs "
        "of examples and the angles in triplets, free of rotation, translation and scale.",
    )
)  # fmt: skip
register(
    Method(
        "similarity", "Similarity-preserving KD", "relation",
        "Tung & Mori 2019, arXiv:1907.09682", similarity.SimilarityParams,
        similarity.SimilarityPreserving,
        summary="Which examples of the batch the teacher finds alike: its B × B table of "
        "row-normalised similarities.",
        abbreviation="SP",
    )
)  # fmt: skip
register(
    Method(
        "pkt", "Probabilistic knowledge transfer", "relation",
        "Passalis & Tefas 2018 (ECCV), arXiv:1803.10837", pkt.PKTParams, pkt.PKT,
        summary="Who is whose neighbour in the teacher's embedding: each example's probability "
        "distribution over the others of the batch, from their cosine similarities.",
    )
)  # fmt: skip
register(
    Method(
        "cc", "Correlation congruence", "relation",
        "Peng et al. 2019 (ICCV), arXiv:1904.01802", cc.CCParams, cc.CC,
        summary="How alike the teacher finds each pair of examples of the batch: a Gaussian "
        "kernel between their features, as a Taylor series, matched entry by entry.",
        abbreviation="CC",
    )
)  # fmt: skip
register(
    Method(
        "nst", "Neuron selectivity transfer", "relation",
        "Huang & Wang 2017, arXiv:1707.01219", nst.NSTParams, nst.NST,
        summary="The distribution of the teacher's channel maps (where each neuron fires), "
        "matched by maximum mean discrepancy.",
    )
)  # fmt: skip
register(
    Method(
        "crd", "Contrastive representation distillation", "relation",
        "Tian, Krishnan & Isola 2020, arXiv:1910.10699", crd.CRDParams, crd.CRD,
        summary="Each example's embedding must pick out the teacher's embedding of the same "
        "example among k others kept in a memory bank.",
    )
)  # fmt: skip
register(
    Method(
        "dkd", "Decoupled KD", "response",
        "Zhao, Cui, Song, Qiu & Liang 2022, arXiv:2203.08679", dkd.DKDParams,
        lambda p, probe: dkd.DKD(p),
        summary="KD split into the target class's share (TCKD) and the distribution over the "
        "other classes (NCKD), each with its own weight.",
    )
)  # fmt: skip

register(
    Method(
        "dist", "DIST: relations between predictions", "response",
        "Huang, You, Wang, Qian & Xu 2022, arXiv:2205.10536", dist.DISTParams,
        lambda p, probe: dist.DIST(p),
        summary="The teacher's class probabilities matched only up to scale and shift: their "
        "Pearson correlation with the student's, per example (inter-class) and per class over "
        "the batch (intra-class).",
    )
)  # fmt: skip

register(
    Method(
        "nkd", "Normalized KD (NKD)", "response",
        "Yang, Zeng, Li, Zhang, Yuan & Li 2023 (ICCV), arXiv:2303.13005", nkd.NKDParams,
        lambda p, probe: nkd.NKD(p),
        summary="KD's target term kept, and its distribution over the wrong classes normalised "
        "to sum to one and given a constant weight, where KD weights it by the teacher's doubt.",
    )
)  # fmt: skip

register(
    Method(
        "zscore", "Logit standardisation (z-scored KD)", "response",
        "Sun, Ren, Li, Wang & Cao 2024 (CVPR), arXiv:2403.01427", zscore.ZScoreParams,
        lambda p, probe: zscore.ZScoreKD(p),
        summary="KD on each example's z-scored logits: the teacher's logits taught up to their "
        "mean and spread, so the student need not match their size.",
        abbreviation="z-score KD",
    )
)  # fmt: skip

register(
    Method(
        "ctkd", "Curriculum temperature (CTKD)", "response",
        "Li, Li, Yang, Zhao, Song, Luo, Li & Yang 2023 (AAAI), arXiv:2211.16231", ctkd.CTKDParams,
        lambda p, probe: ctkd.CTKD(p, probe.num_train),
        summary="KD at a temperature learned against the student: a gradient reversal makes it "
        "climb the loss the student descends, ever harder along a cosine curriculum.",
        abbreviation="CTKD",
    )
)  # fmt: skip

register(
    Method(
        "deit", "DeiT: a distillation token", "response",
        "Touvron et al. 2021, arXiv:2012.12877", deit.DeiTParams,
        lambda p, probe: deit.DeiT(p),
        summary="The teacher's decision (or softened distribution) taught to a transformer's own "
        "distillation token and head, the labels to its class token.",
    )
)  # fmt: skip

# ----------------------------------------------------------------------------- training modes
# Mutual learning and born-again generations are runners (kdcore.presets_modes), not methods:
# they train several students rather than one student against one teacher.
register(
    Method(
        "multi-teacher", "Ensemble of teachers", "response",
        "Hinton, Vinyals & Dean 2015, arXiv:1503.02531, §1, §5", modes.MultiTeacherParams,
        lambda p, probe: modes.MultiTeacher(p),
        summary="The mean of several teachers' softened class probabilities (one teacher: KD).",
    )
)  # fmt: skip
register(
    Method(
        "label-smoothing", "Label smoothing (a uniform teacher)", "response",
        "Szegedy et al. 2016, arXiv:1512.00567, §7; read as KD by Yuan et al. 2020",
        modes.LabelSmoothingParams, lambda p, probe: modes.LabelSmoothing(p), uses_teacher=False,
        summary="No teacher: the label mixed with a uniform distribution, as if taught by a "
        "teacher that knows nothing.",
    )
)  # fmt: skip
register(
    Method(
        "teacher-free", "Teacher-free KD (a virtual teacher)", "response",
        "Yuan, Tay, Li, Wang & Feng 2020, arXiv:1909.11723", modes.TeacherFreeParams,
        lambda p, probe: modes.TeacherFree(p), uses_teacher=False,
        summary="No teacher: a hand-made distribution, a on the true class and the rest spread "
        "evenly, softened like a teacher's.",
    )
)  # fmt: skip
register(
    Method(
        "self-distillation", "Be your own teacher (deep supervision)", "response",
        "Zhang et al. 2019, arXiv:1905.08094", modes.SelfDistillationParams,
        modes.SelfDistillation, uses_teacher=False,
        summary="No teacher: classifiers on the student's own shallow layers, taught by its "
        "deepest exit's predictions and features in the same run.",
    )
)  # fmt: skip
register(
    Method(
        "uskd", "USKD: soft labels it makes for itself", "response",
        "Yang, Zeng, Li, Zhang, Yuan & Li 2023 (ICCV), arXiv:2303.13005, §4", uskd.USKDParams,
        uskd.USKD, uses_teacher=False, abbreviation="USKD",
        summary="No teacher: the label's weight from the network's own squared confidence, and "
        "its wrong classes taught a Zipf distribution in the order a weak classifier on an "
        "inner layer and the network itself rank them.",
    )
)  # fmt: skip
register(
    Method(
        "srrl", "SRRL: the teacher's classifier reads the student", "feature",
        "Yang, Martinez, Bulat & Tzimiropoulos 2021 (ICLR)", srrl.SRRLParams, srrl.SRRL,
        abbreviation="SRRL",
        summary="The student's penultimate feature, projected, matched to the teacher's and "
        "passed through the teacher's frozen classifier to give the teacher's logits.",
    )
)  # fmt: skip
register(
    Method(
        "wsld", "Weighted soft labels (WSLD)", "response",
        "Zhou, Song, Chen, Zhou, Wang, Yuan & Zhang 2021 (ICLR), arXiv:2102.00650",
        wsld.WSLDParams, lambda p, probe: wsld.WSLD(p), abbreviation="WSLD",
        summary="KD's soft term weighted per image by 1 − exp(−L_s/L_t): full where the student "
        "trails the teacher on the label, less where it is already ahead.",
    )
)  # fmt: skip
register(
    Method(
        "ickd", "Inter-channel correlation (ICKD)", "relation",
        "Liu, Huang, Lin, Xie, Wang, Chang & Liang 2021 (ICCV), arXiv:2202.03680",
        ickd.ICKDParams, ickd.ICKD, abbreviation="ICKD",
        summary="Which of the teacher's channels fire together and which apart: each image's "
        "channel-by-channel correlation matrix, matched through a learned 1 × 1 map.",
    )
)  # fmt: skip
register(
    Method(
        "simkd", "SimKD: the student keeps the teacher's classifier", "feature",
        "Chen, Mei, Zhang, Wang, Feng & Chen 2022 (CVPR), arXiv:2203.14001", simkd.SimKDParams,
        simkd.SimKD, abbreviation="SimKD",
        summary="The student's last feature, through a projector, pulled onto the teacher's by "
        "one squared error, and read at test time by the teacher's own frozen classifier.",
    )
)  # fmt: skip
register(
    Method(
        "ttm", "Transformed teacher matching (TTM)", "response",
        "Zheng & Yang 2024 (ICLR), arXiv:2402.11148", ttm.TTMParams,
        lambda p, probe: ttm.TTM(p), abbreviation="TTM",
        summary="The temperature on the teacher alone: the student's plain softmax matched to "
        "the teacher's at T, which is KD plus a reward for the student's own Rényi entropy.",
    )
)  # fmt: skip
register(
    Method(
        "cat", "Class attention transfer (CAT-KD)", "feature",
        "Guo, Yan, Li & Lin 2023 (CVPR), arXiv:2304.12777", cat.CATParams, cat.CAT,
        abbreviation="CAT-KD",
        summary="Where the teacher sees each class: its class activation maps (the head's "
        "weights read at every position of the last map, each map's mean its logit less the "
        "bias), pooled to 2 × 2 and matched by squared error.",
    )
)  # fmt: skip
register(
    Method(
        "sdd", "Scale decoupled distillation (SD-KD)", "response",
        "Wei, Luo & Luo 2024 (CVPR), arXiv:2403.13512", sdd.SDDParams, sdd.SDD,
        abbreviation="SD-KD",
        summary="KD on every region's logits, not only the whole image's: the logit map pooled "
        "to 1 × 1 and 2 × 2 cells, each cell's softened logits matched, cells that disagree "
        "with the whole image weighed twice.",
    )
)  # fmt: skip
