"""The browser half of the forward-vs-reverse-KL view: HTML, CSS and JS (no external script).

The JS draws the teacher ``p`` once per teacher and, from precomputed frames, the student ``q``,
its mean, the numbers and the sentence of the frame under the β slider. It redraws them on every
``input`` event (while dragging or on arrow keys) and on ``change`` (release) sends the frame's
β to Python with ``setStateValue``. Every number it shows was formatted in Python, and the curve
and the numbers come from the same frame, so they cannot disagree.

Hooks for browser tests: the root has ``data-testid="klview"`` and ``data-frame`` (the index
shown); β is in ``.kl-beta``; the numbers in ``.kl-mu``, ``.kl-sigma``, ``.kl-fwd``,
``.kl-rev``, ``.kl-gap``; the sentence in ``.kl-say``; the student's curve is ``path.kl-q``.
"""

HTML = """
<div class="kl" data-testid="klview">
  <div class="ctl">
    <label for="kl-range">Divergence</label>
    <div class="track">
      <input id="kl-range" type="range" min="0" max="1" step="1" value="0"
             aria-describedby="kl-hint">
      <div class="ticks" aria-hidden="true">
        <span class="tick" data-at="0">forward KL</span>
        <span class="tick" data-at="0.5">JSD</span>
        <span class="tick" data-at="1">reverse KL</span>
      </div>
    </div>
    <output class="kl-beta" for="kl-range"></output>
  </div>
  <p id="kl-hint" class="hint">Drag β (or focus the slider and use the arrow keys): the student
    below is the best single Gaussian under that divergence, and the page keeps the β where you
    let go.</p>
  <div class="panels">
    <figure class="panel">
      <svg class="plot" viewBox="0 0 560 260" role="img"></svg>
      <div class="legend">
        <span><i class="sw-p"></i>teacher p (two modes)</span>
        <span><i class="sw-q"></i>student q (one Gaussian)</span>
        <span><i class="sw-gap"></i>the gap between the modes</span>
      </div>
    </figure>
    <div class="metrics" aria-live="polite">
      <div class="m"><span class="ml">student mean μ</span><span class="mv kl-mu"></span></div>
      <div class="m"><span class="ml">student spread σ</span>
        <span class="mv kl-sigma"></span></div>
      <div class="m"><span class="ml">forward KL(p‖q)</span><span class="mv kl-fwd"></span></div>
      <div class="m"><span class="ml">reverse KL(q‖p)</span><span class="mv kl-rev"></span></div>
      <div class="m"><span class="ml">student mass in the gap</span>
        <span class="mv kl-gap"></span><span class="mh kl-pgap"></span></div>
    </div>
  </div>
  <p class="kl-say"></p>
</div>
"""

CSS = """
.kl { font-family: var(--st-font, "Source Sans Pro", sans-serif);
  color: var(--st-text-color, #1f2430); container-type: inline-size; }
.ctl { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 0.3rem 1rem; }
.ctl label { font-weight: 600; padding-top: 0.2rem; }
.track { display: flex; flex-direction: column; flex: 1 1 16rem; min-width: 12rem; }
.track input { width: 100%; margin: 0; accent-color: var(--kl-q, #e8590c); height: 1.6rem;
  cursor: pointer; }
.ticks { position: relative; height: 1.1rem; margin: 0 8px; font-size: 0.8rem; color: #495057; }
.tick { position: absolute; transform: translateX(-50%); white-space: nowrap; }
.tick[data-at="0"] { transform: none; margin-left: -8px; }
.tick[data-at="1"] { transform: translateX(-100%); margin-left: 8px; }
.kl-beta { font-size: 1.15rem; font-weight: 600; min-width: 9rem; white-space: nowrap; }
.hint { font-size: 0.85rem; color: #495057; margin: 0.3rem 0 0.6rem; }
.panels { display: grid; gap: 0.8rem 1.2rem; align-items: start;
  grid-template-columns: minmax(18rem, 3fr) minmax(10rem, 1fr); }
@container (max-width: 40rem) { .panels { grid-template-columns: 1fr; }
  .metrics { display: flex; flex-wrap: wrap; gap: 0.4rem 1.4rem; } }
figure { margin: 0; min-width: 0; }
svg { width: 100%; height: auto; display: block; overflow: visible; }
svg text { font-size: 13px; fill: #495057; }
.legend { display: flex; flex-wrap: wrap; gap: 0.2rem 0.9rem; font-size: 0.8rem; }
.legend i { display: inline-block; width: 0.9rem; height: 0.6rem; margin-right: 0.3rem;
  vertical-align: middle; border-radius: 2px; }
.sw-p { background: var(--kl-p, #3b5bdb); opacity: 0.55; }
.sw-q { background: var(--kl-q, #e8590c); }
.sw-gap { background: rgba(134, 142, 150, 0.18); border: 1px dashed #adb5bd; }
.metrics { min-width: 0; }
.m { display: flex; flex-direction: column; margin-bottom: 0.55rem; }
.ml { font-size: 0.85rem; color: #495057; }
.mv { font-size: 1.45rem; line-height: 1.2; font-variant-numeric: tabular-nums;
  white-space: nowrap; }
.mh { font-size: 0.75rem; color: #868e96; }
.kl-say { margin: 0.6rem 0 0; line-height: 1.5; }
"""

JS = r"""
const NS = "http://www.w3.org/2000/svg";
const P = { l: 40, r: 12, t: 16, b: 36, w: 560, h: 260 };

function el(tag, attrs, parent, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function scales(d) {
  const x0 = d.x[0], x1 = d.x[d.x.length - 1];
  const X = (v) => P.l + (P.w - P.l - P.r) * (v - x0) / (x1 - x0);
  const Y = (v) => P.t + (P.h - P.t - P.b) * (1 - v / d.ymax);
  return { X, Y, x0, x1 };
}

// A probability vector over the grid as a closed area down to the axis.
function area(d, s, ys) {
  let out = `M${s.X(d.x[0]).toFixed(1)},${s.Y(0).toFixed(1)}`;
  for (let i = 0; i < ys.length; i++) out += `L${s.X(d.x[i]).toFixed(1)},${s.Y(ys[i]).toFixed(1)}`;
  return out + `L${s.X(d.x[d.x.length - 1]).toFixed(1)},${s.Y(0).toFixed(1)}Z`;
}

function drawAxes(svg, d) {
  svg.replaceChildren();
  svg.setAttribute("aria-label", d.aria);
  const s = scales(d), yB = s.Y(0);
  if (d.gap) {
    const g0 = s.X(d.gap[0]), g1 = s.X(d.gap[1]);
    el("rect", { x: g0, y: P.t, width: g1 - g0, height: yB - P.t, class: "gap",
                 fill: "rgba(134, 142, 150, 0.12)" }, svg);
    el("text", { x: (g0 + g1) / 2, y: P.t + 18, "text-anchor": "middle" }, svg, "gap");
  }
  el("line", { x1: P.l, x2: P.w - P.r, y1: yB, y2: yB, stroke: "#ced4da" }, svg);
  for (const [t, label] of d.xticks) {
    el("line", { x1: s.X(t), x2: s.X(t), y1: yB, y2: yB + 4, stroke: "#adb5bd" }, svg);
    el("text", { x: s.X(t), y: yB + 17, "text-anchor": "middle" }, svg, label);
  }
  el("text", { x: (P.l + P.w - P.r) / 2, y: P.h - 4, "text-anchor": "middle" }, svg, "x");
  el("text", { x: 12, y: (P.t + yB) / 2, "text-anchor": "middle",
               transform: `rotate(-90 12 ${(P.t + yB) / 2})` }, svg, "probability");
  for (const m of d.modes) {
    el("line", { x1: s.X(m), x2: s.X(m), y1: P.t, y2: yB, stroke: d.colors.p,
                 "stroke-dasharray": "2 4", "stroke-opacity": 0.6 }, svg);
  }
  el("path", { d: area(d, s, d.p), fill: d.colors.p, "fill-opacity": 0.22, stroke: d.colors.p,
               "stroke-width": 2, class: "kl-p" }, svg);
  const q = el("path", { fill: d.colors.q, "fill-opacity": 0.12, stroke: d.colors.q,
                         "stroke-width": 2.5, class: "kl-q" }, svg);
  const mu = el("line", { y1: P.t, y2: yB, stroke: d.colors.q, "stroke-width": 1.5,
                          class: "kl-mu-line" }, svg);
  const muText = el("text", { y: P.t - 3, "text-anchor": "middle", fill: d.colors.q,
                              style: `fill: ${d.colors.q}` }, svg, "μ");
  return { q, mu, muText, s };
}

function show(root, st, i) {
  const d = st.data, f = d.frames[i], g = st.graph;
  g.q.setAttribute("d", area(d, g.s, f.q));
  const xm = g.s.X(f.mu);
  g.mu.setAttribute("x1", xm);
  g.mu.setAttribute("x2", xm);
  g.muText.setAttribute("x", xm);
  root.querySelector(".kl-beta").textContent = f.label;
  root.querySelector("input").setAttribute("aria-valuetext", f.label);
  for (const k of ["mu", "sigma", "fwd", "rev", "gap"]) {
    root.querySelector(".kl-" + k).textContent = f.text[k];
  }
  root.querySelector(".kl-pgap").textContent = d.p_gap_text;
  root.querySelector(".kl-say").innerHTML = f.say;
  root.dataset.frame = String(i);
  root.dataset.picks = f.picks;
}

export default function (component) {
  const { data, setStateValue, parentElement } = component;
  const root = parentElement.querySelector(".kl");
  if (!root || !data) return;
  const st = root.__kl || (root.__kl = {});
  const input = root.querySelector("input");
  st.send = setStateValue;
  if (st.key !== data.key) {  // another teacher or other frames: redraw the axes and ticks
    st.key = data.key;
    st.graph = drawAxes(root.querySelector("svg.plot"), data);
    root.style.setProperty("--kl-p", data.colors.p);
    root.style.setProperty("--kl-q", data.colors.q);
    input.max = String(data.frames.length - 1);
    for (const tick of root.querySelectorAll(".tick")) {
      const at = data.ticks[tick.dataset.at];
      tick.style.left = (100 * at / Math.max(data.frames.length - 1, 1)) + "%";
    }
  }
  st.data = data;
  if (!st.bound) {
    st.bound = true;
    input.addEventListener("input", () => show(root, st, Number(input.value)));
    input.addEventListener("change", () => {
      st.send("beta", st.data.frames[Number(input.value)].beta);
    });
  }
  input.value = String(data.active);
  show(root, st, data.active);
}
"""
