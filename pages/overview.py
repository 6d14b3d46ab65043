"""Overview: the teacher-student framework in one picture, and a map of the field to explore."""

import streamlit as st

from app import ui
from app.catalog import KNOWLEDGE, MAP, MODES

# A map cell's links wrap onto a second line in a narrow column rather than end in "…".
WRAP = """<style>.st-key-field_map [data-testid="stPageLink"] span,
.st-key-field_map [data-testid="stPageLink"] p { white-space: normal; overflow: visible; }
</style>"""

# The framework as a diagram: an inline SVG scales with the page and needs no plotting round trip.
DIAGRAM = """
<svg viewBox="0 0 760 250" xmlns="http://www.w3.org/2000/svg" role="img"
     aria-label="Teacher-student distillation" style="width:100%;max-width:760px;
     font-family:'Source Sans Pro',Helvetica,Arial,sans-serif">
  <defs><marker id="a" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"
    orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#495057"/></marker></defs>
  <rect x="10" y="95" width="90" height="60" rx="8" fill="#f3f5fa" stroke="#adb5bd"/>
  <text x="55" y="122" text-anchor="middle" font-size="15">image x</text>
  <text x="55" y="141" text-anchor="middle" font-size="12" fill="#495057">label y</text>
  <rect x="160" y="20" width="170" height="80" rx="10" fill="#3b5bdb"/>
  <text x="245" y="55" text-anchor="middle" font-size="17" fill="#fff">Teacher</text>
  <text x="245" y="77" text-anchor="middle" font-size="12" fill="#dbe4ff">
    big, trained, frozen</text>
  <rect x="180" y="160" width="130" height="64" rx="10" fill="#e8590c"/>
  <text x="245" y="190" text-anchor="middle" font-size="17" fill="#fff">Student</text>
  <text x="245" y="210" text-anchor="middle" font-size="12" fill="#ffe8cc">small, learning</text>
  <path d="M100,115 L158,65" stroke="#495057" stroke-width="2" marker-end="url(#a)"/>
  <path d="M100,135 L178,185" stroke="#495057" stroke-width="2" marker-end="url(#a)"/>
  <path d="M330,60 L420,60" stroke="#495057" stroke-width="2" marker-end="url(#a)"/>
  <path d="M310,192 L420,192" stroke="#495057" stroke-width="2" marker-end="url(#a)"/>
  <text x="375" y="50" text-anchor="middle" font-size="12" fill="#495057">softmax(v / T)</text>
  <text x="365" y="182" text-anchor="middle" font-size="12" fill="#495057">softmax(z / T)</text>
  <g font-size="11" fill="#3b5bdb"><rect x="425" y="64" width="10" height="6"/>
    <rect x="440" y="58" width="10" height="12"/><rect x="455" y="22" width="10" height="48"/>
    <rect x="470" y="52" width="10" height="18"/><rect x="485" y="62" width="10" height="8"/>
    <text x="505" y="64">soft targets pᵀ</text></g>
  <g fill="#e8590c"><rect x="425" y="190" width="10" height="10"/>
    <rect x="440" y="182" width="10" height="18"/><rect x="455" y="166" width="10" height="34"/>
    <rect x="470" y="176" width="10" height="24"/><rect x="485" y="186" width="10" height="14"/>
    <text x="505" y="196" font-size="11">prediction qᵀ</text></g>
  <rect x="582" y="95" width="174" height="60" rx="10" fill="#fff" stroke="#3b5bdb"
    stroke-width="2"/>
  <text x="669" y="120" text-anchor="middle" font-size="13">(1-α) CE(y, softmax(z))</text>
  <text x="669" y="140" text-anchor="middle" font-size="13">+ α T² KL(pᵀ ‖ qᵀ)</text>
  <path d="M592,68 L640,92" stroke="#3b5bdb" stroke-width="2" marker-end="url(#a)"/>
  <path d="M592,188 L640,158" stroke="#e8590c" stroke-width="2" marker-end="url(#a)"/>
  <path id="label-to-ce" d="M55,95 L55,8 L712,8 L712,93" fill="none" stroke="#495057"
    stroke-width="2" marker-end="url(#a)"/>
  <text x="706" y="30" text-anchor="end" font-size="12" fill="#495057">true label y</text>
  <path d="M640,160 C640,240 330,240 312,205" fill="none" stroke="#e8590c" stroke-width="2"
    stroke-dasharray="6 4" marker-end="url(#a)"/>
  <text x="520" y="240" text-anchor="middle" font-size="12" fill="#e8590c">
    gradients update the student only</text>
</svg>
"""

st.title("Knowledge distillation, explained")
ui.prose(
    "A large network trained on a task (the **teacher**) knows more than its answers: the "
    "probabilities it gives the *wrong* classes say which mistakes are reasonable. "
    "**Knowledge distillation** trains a smaller **student** to match those soft outputs as well "
    "as the labels, and the student ends up better than the same network trained on labels "
    "alone (Buciluǎ, Caruana & Niculescu-Mizil 2006; Hinton, Vinyals & Dean 2015). A temperature "
    "T softens both distributions so that the small probabilities count in the loss."
)
st.image(DIAGRAM, width=760)
st.markdown(
    "Everything in this app runs for real: a teacher trained on MNIST, its logits on real test "
    "images, and the same `kdcore` loss functions that train students in the lab. Each page "
    "shows its equations and the code behind them."
)

st.header("A map of the field")
st.markdown(
    "Methods differ in **what** the student copies (the teacher's outputs, its intermediate "
    "features, or the relations between examples) and **how** teacher and student train "
    "(a fixed teacher, peers learning together, or a network teaching itself; Gou et al. 2021, "
    "arXiv:2006.05525). Open a cell to explore it."
)
cells = {(c.knowledge, c.mode): c for c in MAP}
st.html(WRAP)
with st.container(key="field_map"):
    header = st.columns([1, 3, 3, 3])
    for col, mode in zip(header[1:], MODES, strict=True):
        col.markdown(f"**{mode}**")
    for knowledge in KNOWLEDGE:
        row = st.columns([1, 3, 3, 3])
        row[0].markdown(f"**{knowledge}**")
        for col, mode in zip(row[1:], MODES, strict=True):
            cell = cells[(knowledge, mode)]
            with col.container(border=True, height="stretch"):
                st.markdown(f"{cell.what.capitalize()}.")
                st.caption(cell.methods)
                if not cell.links:
                    ui.page_link(None)  # no page shows this cell yet: "coming"
                for link in cell.links:
                    ui.page_link(link.slug, link.label, dict(link.query))
st.caption(
    "Offline: a pre-trained teacher stays fixed. Online: several networks learn at once and "
    "teach each other. Self: a network distils into itself (later generations, or deep layers "
    "teaching shallow ones)."
)
st.markdown(
    "Every result these pages show was run again at other seeds, so you can see how far one "
    "run can be trusted: which hold at every seed, and which turn with the seed."
)
ui.page_link("reproductions")
