"""The training-modes page's views of a stored run: one function per mode, from the run's
result dict to the page's metrics, figures and tables (``SHOW``)."""

from __future__ import annotations

import streamlit as st
import torch

from app import mode_figures as mf
from app import ui
from kdcore.losses import modes, uskd
from kdcore.losses.kd import softmax_t


def show_mutual(res: dict) -> None:
    cols = st.columns(len(res["peers"]))
    for col, (i, (name, peer)) in zip(cols, enumerate(res["peers"].items()), strict=True):
        alone = res["independent"][f"alone_{i + 1}"]["test_accuracy"]
        delta = f"{100 * (peer['test_accuracy'] - alone):+.2f} points vs alone"
        col.metric(f"{name} ({peer['arch']})", f"{100 * peer['test_accuracy']:.2f}%", delta)
    ui.plot(mf.mutual_curves(res["history"], list(res["peers"])), key="mutual")


def show_born_again(res: dict) -> None:
    gens, probe = res["generations"], res["probe"]
    alone = (res.get("independent") or {}).get("alone_long")
    ui.plot(mf.generations_figure(gens, res.get("ensemble"), alone), key="gens")
    img = ui.url_int("Stored test image", "img", 0, len(probe["labels"]) - 1, 0)
    fig = mf.soft_targets_figure(gens, img, probe["labels"][img], probe["T"])
    ui.plot(fig, key="soft")
    st.dataframe([{"generation": g["name"], "accuracy %": round(100 * g["test_accuracy"], 2),
                   f"entropy at T={probe['T']:g}": g["entropy"],
                   "mass off the top class": g["dark_mass"]} for g in gens],
                 hide_index=True)  # fmt: skip


def show_online_features(res: dict) -> None:
    """Each network's test errors in the four settings, then how AFD's discriminators scored
    the two networks' features as they trained."""
    settings, peers = res["settings"], len(res["independent"])
    afd = settings["afd"]["peers"]
    cols = st.columns(peers)
    for i, col in enumerate(cols, start=1):
        own, alone = res["models"][f"afd_{i}"], res["models"][f"alone_{i}"]
        mutual = res["models"][f"dml_{i}"]["test_errors"]
        delta = f"{own['test_errors'] - alone['test_errors']:+d} vs alone, "
        col.metric(f"network {i} with AFD ({own['arch']})", f"{own['test_errors']} errors",
                   delta + f"{own['test_errors'] - mutual:+d} vs mutual learning",
                   delta_color="inverse")  # fmt: skip
    ui.plot(mf.online_errors_figure(res["models"], peers), key="online_errors")
    st.subheader("Can the discriminators still tell the features apart?")
    first = next(iter(afd.values()))["history"]
    ui.plot(mf.discriminator_figure(first, list(afd)), key="online_disc")
    last = first[-1]["extra"] if first else {}
    gaps = [last.get(f"{n}_peer", 0) - last.get(f"{n}_own", 0) for n in afd]
    st.caption(
        "Each discriminator is trained to score its peer's features 1 and its own network's 0, "
        "and each network to make its own score 1. After the last epoch the gap between the "
        "two mean scores is "
        + ", ".join(f"{g:.2f} ({n})" for n, g in zip(afd, gaps, strict=True))
        + ": at 1 they are told apart every time, at 0 not at all."
    )


def show_class_wise(res: dict) -> None:
    """Both students' test errors, then per epoch what CS-KD is meant to change."""
    models, names = res["models"], {"student_hard": "hard labels", "student_cskd": "CS-KD"}
    hard, cskd = models["student_hard"]["test_errors"], models["student_cskd"]["test_errors"]
    cols = st.columns(2)
    cols[0].metric(f"hard labels ({models['student_hard']['arch']})", f"{hard} errors")
    cols[1].metric("CS-KD, the same net from the same start", f"{cskd} errors",
                   f"{cskd - hard:+d} vs hard labels", delta_color="inverse")  # fmt: skip
    ui.plot(mf.class_wise_figure(res["history"], names), key="class_wise")
    last = {n: res["history"][n][-1]["extra"] for n in names if res["history"].get(n)}
    if len(last) == 2:
        h, c = last["student_hard"], last["student_cskd"]
        st.caption(
            "After the last epoch: two test images of one class differ by "
            f"{h['intra_class_kl']:.4f} nats (KL at T = {res['config']['T']:g}, "
            f"{res['config']['pairs']:,} fixed pairs) "
            f"under hard labels and {c['intra_class_kl']:.4f} with CS-KD; calibration error "
            f"{h['ece']:.4f} and {c['ece']:.4f}; mean confidence {h['confidence']:.4f} and "
            f"{c['confidence']:.4f}."
        )


def show_mutual_contrastive(res: dict) -> None:
    """Each network's test errors alone, with mutual learning and with MCL, then how alike the
    two networks of each pair relate the same test images as they train."""
    models, peers = res["models"], len(res["independent"])
    cols = st.columns(peers)
    for i, col in enumerate(cols, start=1):
        own, alone = models[f"mcl_{i}"]["test_errors"], models[f"alone_{i}"]["test_errors"]
        mutual = models[f"dml_{i}"]["test_errors"]
        col.metric(f"network {i} with MCL ({models[f'mcl_{i}']['arch']})", f"{own} errors",
                   f"{own - alone:+d} vs alone, {own - mutual:+d} vs mutual learning",
                   delta_color="inverse")  # fmt: skip
    ui.plot(mf.online_errors_figure(models, peers, mf.CONTRASTIVE_SETTINGS), key="mcl_errors")
    st.subheader("Do the two networks relate the images alike?")
    history = {k: s["peers"][f"{k}_1"]["history"] for k, s in res["settings"].items()}
    alone_gap = res.get("alone_relation_gap")
    ui.plot(mf.relation_gap_figure(history, alone_gap), key="mcl_gap")
    last = {mf.CONTRASTIVE_SETTINGS[k]: h[-1]["extra"]["relation_gap"]
            for k, h in history.items() if h}  # fmt: skip
    said = ", ".join(f"{v:.4f} with {k}" for k, v in last.items())
    st.caption(
        f"The mean |difference| between the two networks' cosine similarities of the same "
        f"{res['config']['probe']} test images, over their last hidden layers, after the last "
        f"epoch: {said}" + (f", {alone_gap:.4f} for the pair trained alone." if alone_gap else ".")
    )


def show_exits(res: dict) -> None:
    ui.plot(mf.exits_figure(res["exits"]), key="exits")
    ui.plot(mf.accuracy_bars(res["models"], ["student_hard", "student_self"]), key="exit_acc")


def show_ensemble(res: dict) -> None:
    comp = res["comparison"]
    st.dataframe([{"model": n, "parameters": c["params"], "accuracy %":
                   round(100 * c["test_accuracy"], 2), "µs per prediction":
                   c["us_per_prediction"]} for n, c in comp.items()], hide_index=True,
                 column_config={"parameters": ui.PARAMS_COLUMN})  # fmt: skip
    ui.plot(mf.comparison_figure(comp), key="comparison")
    st.subheader("How often they agree")
    ui.plot(mf.agreement_figure(res["agreement"]["models"], res["agreement"]["matrix"]),
            key="agree")  # fmt: skip


def show_teacher_free(res: dict) -> None:
    names = ["student_hard", "student_ls", "student_tf", "student_kd", "teacher"]
    ui.plot(mf.accuracy_bars(res["models"], names), key="tf_acc")
    c = res["config"]
    y = torch.tensor([3])
    rows = {"uniform teacher (LS)": modes.uniform_teacher(y, 10, c["eps"])[0],
            f"virtual teacher at T={c['T']:g}":
                softmax_t(modes.virtual_teacher(y, 10, c["a"]).log(), c["T"])[0]}  # fmt: skip
    st.dataframe([{"target for a 3": k, **{str(d): round(float(v[d]), 4) for d in range(10)}}
                  for k, v in rows.items()], hide_index=True)  # fmt: skip


USKD_NAMES = {"student_hard": "hard labels", "student_kd": "KD, from a teacher",
              "student_uskd": "USKD, CIFAR weights",
              "student_uskd_imagenet": "USKD, ImageNet weights"}  # fmt: skip


def show_uskd(res: dict) -> None:
    """The students' test errors against hard labels, then how each spreads its probability
    over the wrong digits, beside the Zipf labels USKD teaches, and what USKD recorded."""
    models, history = res["models"], res["history"]
    names = {n: label for n, label in USKD_NAMES.items() if n in models}
    hard = models["student_hard"]["test_errors"]
    for col, (name, label) in zip(st.columns(len(names)), names.items(), strict=True):
        errors = models[name]["test_errors"]
        delta = None if name == "student_hard" else f"{errors - hard:+d} vs hard labels"
        col.metric(label, f"{errors} errors", delta, delta_color="inverse")
    last = {label: history[n][-1]["extra"]["rank_profile"] for n, label in names.items()
            if history.get(n) and "rank_profile" in history[n][-1].get("extra", {})}  # fmt: skip
    teacher = res.get("teacher_rank_profile")
    if not last:
        return
    zipf = uskd.zipf_profile(len(next(iter(last.values()))) + 1).tolist()
    ui.plot(mf.rank_profile_figure(history, names, teacher, zipf), key="uskd_profile")
    said = ", ".join(f"{v[0]:.3f} ({k})" for k, v in last.items())
    line = (f"On the test set, the share of the wrong digits' probability on the likeliest "
            f"wrong digit after the last epoch: {said}; Zipf's labels give it {zipf[0]:.3f}"
            + (f", the teacher {teacher[0]:.3f}." if teacher else "."))  # fmt: skip
    own = (history.get("student_uskd") or [{}])[-1].get("extra", {})
    if "weak_accuracy" in own:
        line += (
            f" In USKD's last epoch (CIFAR weights) its weak classifier got "
            f"{100 * own['weak_accuracy']:.1f}% of the training images right, the label ranked "
            f"first for {100 * own['label_first']:.1f}% of them, and the target labels ran from "
            f"{own['target_label_min']:.2f} to {own['target_label_max']:.2f}, 1 on average."
        )
    st.caption(line)
    ui.page_link("dkd", "The same paper with a teacher: NKD, on the decoupled-KD page")


def show_capacity(res: dict) -> None:
    hard = res["models"].get("student_hard", {}).get("test_accuracy")
    ui.plot(mf.capacity_figure(res["capacity"], res.get("chain"), hard), key="capacity")
    ch = res["chain"]
    cols = st.columns(3)
    cols[0].metric(f"student from {ch['teacher']}", f"{100 * ch['student_direct_accuracy']:.2f}%")
    cols[1].metric(f"assistant {ch['assistant']}", f"{100 * ch['assistant_accuracy']:.2f}%")
    cols[2].metric("student via the assistant", f"{100 * ch['student_accuracy']:.2f}%")


SHOW = {"mutual-learning": show_mutual, "online-features": show_online_features,
        "mutual-contrastive": show_mutual_contrastive,
        "born-again": show_born_again, "class-wise": show_class_wise,
        "deep-supervision": show_exits, "ensemble": show_ensemble,
        "teacher-free": show_teacher_free, "teacher-assistant": show_capacity,
        "uskd": show_uskd}  # fmt: skip
