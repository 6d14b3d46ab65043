"""Inside a transformer: TinyBERT's hidden states, taught layer by layer through a learnt
projector, and students taught them under the paper's three layer mappings (Jiao et al. 2020)."""

import streamlit as st
import torch

from app import lab_ui, lm_runs, ui
from app.attention_figures import kl_figure
from app.hidden_figures import layer_map_figure, layer_name, projector_figure, readout_figure
from app.lm_figures import LABEL
from kdcore.gpt import LM_MODELS
from kdcore.lm_distill import lm_step
from kdcore.lm_methods import get_lm_method
from kdcore.losses.tinybert import MAPPINGS, hidden_losses, hidden_mse, layer_map
from kdcore.presets_tinybert import TINYBERT, TINYBERT_PRESET
from kdcore.projectors import collapsed

PRESET = TINYBERT_PRESET.name
COST = (  # measured: the shipped run, 134 s (README)
    "Six 62k-parameter students of ten epochs each, the hidden-state students reading the "
    "teacher's cached activations: a little over two minutes on a quiet 2-core CPU."
)
WIDTH, BLOCKS, _ = LM_MODELS["lm-teacher"]
S_WIDTH, S_BLOCKS, _ = LM_MODELS["lm-student"]
METHOD = get_lm_method(TINYBERT["hidden_uniform"][0])  # the entry the three students share
# each mapping's hidden-states-only student in the preset, as the registry's parameters name it
STUDENT = {params["mapping"]: name for name, (_, params) in TINYBERT.items()
           if "mapping" in params and not params.get("alpha")}  # fmt: skip
MAPPING_HELP = (
    "uniform g(m) = mN/M: evenly from the teacher's bottom to its top; top g(m) = m + N − M: "
    "its last blocks; bottom g(m) = m: its first blocks. The embeddings learn the teacher's."
)


st.title("Inside a transformer: TinyBERT")
ui.prose(
    "MiniLM matches relations between positions, dot products that need no projector. "
    "**TinyBERT** (Jiao et al. 2020) matches the hidden states themselves: the residual stream "
    "after the student's embeddings and after each of its blocks is mapped by a learnt linear "
    "**projector** W_h into the teacher's wider space and made equal to the teacher's stream at "
    "the layer it is paired with. The student has fewer blocks than the teacher, so which "
    "teacher layers it learns is a choice, the *layer mapping* g; the paper compares three."
)

st.header("Which layer learns which")
mapping = ui.url_choice("Layer mapping g(m)", list(MAPPINGS), "map", "uniform", help=MAPPING_HELP)
pairs = METHOD.hidden(METHOD.make_params({"mapping": mapping}), S_BLOCKS, BLOCKS)
ui.plot(layer_map_figure(pairs, S_BLOCKS, BLOCKS), key="layer_map")
st.caption(
    f"The student's {S_BLOCKS} blocks of width {S_WIDTH} against the teacher's {BLOCKS} of "
    f"width {WIDTH}, each drawn at its relative depth; the {mapping} mapping pairs "
    + ", ".join(f"student {layer_name(m)} → teacher {layer_name(n)}" for m, n in pairs)
    + f". One projector W_h ({S_WIDTH} → {WIDTH}) serves every pair, as in the paper's official "
    "code, and is trained with the student."
)

st.subheader("The loss, as the code runs it")
# KaTeX does not wrap: each line fits a phone
st.latex(r"\begin{gathered}\mathcal L_{hidn}(m) = \mathrm{MSE}\big(H^S_m W_h + b,\; "
         r"H^T_{g(m)}\big)\\ \mathcal L = \mathrm{CE}(y, q) + \lambda \sum_{m=0}^{M}"
         r"\mathcal L_{hidn}(m)\end{gathered}")  # fmt: skip
st.caption(
    "H_m is the residual stream after block m (m = 0: the embeddings) at every position; the "
    "MSE averages over positions and the teacher's width. TinyBERT also distils the attention "
    "maps head by head (which needs equal head counts; the MiniLM page distils attention "
    "without) and the predictions, in two stages; here the hidden-state terms are added to the "
    "real text's cross-entropy (this app's choice), λ = 1 as the paper's layer weights."
)

st.header("Students taught the teacher's hidden states")
run = lab_ui.stored_or_offer(lab_ui.optional_queue(), PRESET, COST, "ep_tinybert", "run_tinybert")
if run is not None:
    res, models, floor = lm_runs.run_head(run)
    ui.plot(kl_figure(models), key="results")
    st.caption(f"KL from the truth: bits per character above the language's entropy "
               f"({floor:.4f}), exactly; KL to the teacher on the same text. The seed study "
               "below says which differences hold.")  # fmt: skip
    who = STUDENT[mapping]
    hard, own = models.get("hard", {}), models.get(who, {})
    if hard.get("readout_r2") and own.get("readout_r2"):
        panels = {LABEL["hard"]: hard["readout_r2"], LABEL.get(who, who): own["readout_r2"]}
        ui.plot(readout_figure(panels, pairs), key="readout")
        st.caption(
            "R²: how much of each teacher layer (across) a least-squares linear map reads from "
            "each of the model's layers (down) on the held-out documents; outlined, the pairs "
            f"the {mapping} mapping teaches. The teacher's last hidden state: R² "
            f"{hard['r2_last']:.3f} from the last block of the student on real text alone, "
            f"{own['r2_last']:.3f} from the {mapping}-mapped student's."
        )

    def spectra_of(name: str) -> list[list[float]]:
        return [r["extra"]["projector_sv"] for r in res.get("history", {}).get(name, [])
                if "projector_sv" in r.get("extra", {})]  # fmt: skip

    spectra = spectra_of(who)
    if spectra:
        # the other mappings' projectors after their last epoch, dashed beside this one's
        others = {k: spectra_of(n)[-1] for k, n in STUDENT.items() if n != who and spectra_of(n)}
        ui.plot(projector_figure(spectra, {f"{k}, last epoch": v for k, v in others.items()}),
                key="projector")  # fmt: skip
        last = spectra[-1]
        lost = collapsed(torch.tensor(last))
        st.caption(
            f"The {mapping}-mapped student's projector W_h after each of its {len(spectra)} "
            f"epochs: its {len(last)} singular values, from {last[0]:.2f} down to {last[-1]:.3f} "
            f"after the last: {f'{lost} of them' if lost else 'none'} below 1% of the largest. "
            + (
                "Dashed, the other mappings' after their last epoch (smallest: "
                + ", ".join(f"{k} {v[-1]:.3f}" for k, v in others.items())
                + "). "
                if others
                else ""
            )
            + "A collapsed direction would be one of the student's along which its states "
            "are never compared with the teacher's (the projector page shows how an "
            "unnormalised projector loses them)."
        )
    rows = [lm_runs.row(n, m, {
        "mapping": (m.get("method_params") or {}).get("mapping"),
        "α (teacher's predictions)": (m.get("method_params") or {}).get("alpha"),
    }, {"R² of the teacher's last state": m.get("r2_last")})
        for n, m in models.items() if n in TINYBERT or n == "teacher"]  # fmt: skip
    lm_runs.run_table(res, rows, {"α (teacher's predictions)": "{:g}"}, PRESET, cited="Paper")

ui.see_also(
    ("attention-relations", "relations between positions, with no projector"),
    ("projector", "how a projector's singular values collapse, and what stops it"),
)
ui.show_code(hidden_mse, hidden_losses, layer_map, lm_step)
