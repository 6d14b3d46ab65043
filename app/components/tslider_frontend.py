"""The browser half of the temperature slider: HTML, CSS and JS (no external script).

The JS draws the soft-target bars, the three "as T grows" curves, the metrics, the regime and the
runners-up sentence from precomputed frames, redraws them on every ``input`` event of the range
slider (while dragging or on arrow keys), and on ``change`` (release) sends the frame's T to
Python with ``setStateValue``. Every number it shows was formatted in Python.
"""

HTML = """
<div class="kd-t">
  <div class="ctl">
    <label for="kd-t-range">Temperature T</label>
    <div class="track">
      <span class="end" aria-hidden="true">0.1</span>
      <input id="kd-t-range" type="range" min="0" max="1" step="1" value="0"
             aria-describedby="kd-t-hint">
      <span class="end" aria-hidden="true">50</span>
    </div>
    <output class="tv" for="kd-t-range"></output>
  </div>
  <p id="kd-t-hint" class="hint">Drag the slider (log scale) or focus it and use the arrow keys;
    everything below follows, and the page keeps the T where you let go.</p>
  <div class="panels">
    <figure class="panel">
      <figcaption>p<sub>i</sub>(T): the soft targets</figcaption>
      <svg class="bars" viewBox="0 0 400 250" role="img"></svg>
    </figure>
    <div class="metrics" aria-live="polite">
      <div class="m"><span class="ml">Entropy (nats)</span><span class="mv" data-k="H"></span>
        <span class="mh" data-k="Hmax"></span></div>
      <div class="m"><span class="ml">Top-class probability</span>
        <span class="mv" data-k="top"></span></div>
      <div class="m"><span class="ml">Dark knowledge</span><span class="mv" data-k="dark"></span>
        <span class="mh">1 − top-class probability</span></div>
      <p class="regime" data-k="regime"></p>
    </div>
    <figure class="panel">
      <figcaption>as T grows</figcaption>
      <svg class="curves" viewBox="0 0 380 250" role="img"
           aria-label="entropy, top-class probability and dark knowledge against T"></svg>
      <div class="legend">
        <span><i style="background:#868e96"></i>entropy / log N</span>
        <span><i style="background:#3b5bdb"></i>top-class probability</span>
        <span><i style="background:#e8590c"></i>dark knowledge</span>
      </div>
    </figure>
  </div>
  <p class="para" data-k="para"></p>
</div>
"""

CSS = """
.kd-t { font-family: var(--st-font, "Source Sans Pro", sans-serif); color: var(--st-text-color,
  #1f2430); }
.ctl { display: flex; flex-wrap: wrap; align-items: center; gap: 0.3rem 1rem; }
.ctl label { font-weight: 600; }
.track { display: flex; align-items: center; gap: 0.4rem; flex: 1 1 16rem; min-width: 12rem; }
.track input { flex: 1; accent-color: #3b5bdb; height: 1.6rem; cursor: pointer; }
.end { font-size: 0.8rem; color: #495057; }
.tv { font-size: 1.15rem; font-weight: 600; min-width: 7.5rem; white-space: nowrap; }
.hint { font-size: 0.85rem; color: #495057; margin: 0.2rem 0 0.6rem; }
.panels { display: grid; gap: 0.8rem 1.2rem; align-items: start;
  grid-template-columns: minmax(15rem, 5fr) minmax(10rem, 2.4fr) minmax(15rem, 4.2fr); }
@container (max-width: 52rem) { .panels { grid-template-columns: 1fr 1fr; }
  .metrics { grid-column: 1 / -1; order: -1; display: flex; flex-wrap: wrap; gap: 0.4rem 1.6rem; }
  .metrics .regime { flex-basis: 100%; } }
@container (max-width: 30rem) { .panels { grid-template-columns: 1fr; } }
.kd-t { container-type: inline-size; }
figure { margin: 0; min-width: 0; }
figcaption { font-size: 0.9rem; font-weight: 600; margin-bottom: 0.2rem; }
svg { width: 100%; height: auto; display: block; overflow: visible; }
svg text { font-size: 14px; fill: #495057; }
.metrics { min-width: 0; }
.m { display: flex; flex-direction: column; margin-bottom: 0.7rem; }
.ml { font-size: 0.85rem; color: #495057; }
.mv { font-size: 1.6rem; line-height: 1.2; font-variant-numeric: tabular-nums;
  white-space: nowrap; }
.mh { font-size: 0.75rem; color: #868e96; }
.regime { font-size: 0.9rem; margin: 0.2rem 0 0; }
.legend { display: flex; flex-wrap: wrap; gap: 0.2rem 0.9rem; font-size: 0.8rem; }
.legend i { display: inline-block; width: 0.9rem; height: 3px; margin-right: 0.3rem;
  vertical-align: middle; }
.para { margin: 0.8rem 0 0; line-height: 1.5; }
"""

JS = r"""
const NS = "http://www.w3.org/2000/svg";
const BLUE = "#3b5bdb", LIGHT = "#91a7ff", GREY = "#868e96", ORANGE = "#e8590c";

function el(tag, attrs, parent, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

// Bars: 10 classes on a linear [0, 1] or log [1e-12, 1] probability axis.
const B = { l: 46, r: 6, t: 8, b: 40, w: 400, h: 250 };
function barY(p, logY) {
  const h = B.h - B.t - B.b;
  if (!logY) return B.t + h * (1 - Math.min(Math.max(p, 0), 1));
  const lp = Math.log10(Math.max(p, 1e-12));
  return B.t + h * (lp / -12);
}
function drawBarAxes(svg, d) {
  svg.replaceChildren();
  svg.setAttribute("aria-label", "soft targets p_i(T) of the ten classes");
  const ticks = d.log_y ? [0, -3, -6, -9, -12] : [0, 0.25, 0.5, 0.75, 1];
  for (const t of ticks) {
    const y = d.log_y ? barY(10 ** t, true) : barY(t, false);
    el("line", { x1: B.l, x2: B.w - B.r, y1: y, y2: y, stroke: "#e9ecef" }, svg);
    el("text", { x: B.l - 5, y: y + 4, "text-anchor": "end" }, svg,
       d.log_y ? (t === 0 ? "1" : "1e" + t) : String(t));
  }
  el("text", { x: 11, y: (B.t + B.h - B.b) / 2, "text-anchor": "middle",
               transform: `rotate(-90 11 ${(B.t + B.h - B.b) / 2})` }, svg, "probability");
  const n = d.frames[0].p.length, slot = (B.w - B.l - B.r) / n;
  const bars = [];
  for (let c = 0; c < n; c++) {
    const x = B.l + c * slot;
    const r = el("rect", { x: x + slot * 0.14, width: slot * 0.72, y: B.h - B.b, height: 0,
                           fill: c === d.top_class ? BLUE : LIGHT, class: "bar" }, svg);
    r.appendChild(document.createElementNS(NS, "title"));
    bars.push(r);
    el("text", { x: x + slot / 2, y: B.h - B.b + 15, "text-anchor": "middle" }, svg, String(c));
  }
  el("text", { x: (B.l + B.w - B.r) / 2, y: B.h - 6, "text-anchor": "middle" }, svg, "class");
  return bars;
}

// Curves: T on a log axis from the first to the last frame, the three quantities in [0, 1].
const C = { l: 34, r: 10, t: 22, b: 40, w: 380, h: 250 };
function curveX(T, d) {
  const lo = Math.log10(d.frames[0].T), hi = Math.log10(d.frames[d.frames.length - 1].T);
  return C.l + (C.w - C.l - C.r) * (Math.log10(T) - lo) / (hi - lo);
}
function curveY(v) { return C.t + (C.h - C.t - C.b) * (1 - v); }
function drawCurveAxes(svg, d) {
  svg.replaceChildren();
  const x1 = curveX(1, d), x0 = C.l, x9 = C.w - C.r, yT = curveY(1.0), yB = curveY(0);
  el("rect", { x: x0, y: C.t, width: x1 - x0, height: yB - C.t,
               fill: "rgba(59, 91, 219, 0.07)" }, svg);
  el("rect", { x: x1, y: C.t, width: x9 - x1, height: yB - C.t,
               fill: "rgba(232, 89, 12, 0.06)" }, svg);
  el("text", { x: (x0 + x1) / 2, y: C.t - 7, "text-anchor": "middle" }, svg, "sharper");
  el("text", { x: (x1 + x9) / 2, y: C.t - 7, "text-anchor": "middle" }, svg, "softer → uniform");
  for (const v of [0, 0.5, 1]) {
    el("line", { x1: x0, x2: x9, y1: curveY(v), y2: curveY(v), stroke: "#e9ecef" }, svg);
    el("text", { x: x0 - 5, y: curveY(v) + 4, "text-anchor": "end" }, svg, String(v));
  }
  for (const t of d.ticks) {
    const x = curveX(t, d);
    el("line", { x1: x, x2: x, y1: yB, y2: yB + 4, stroke: "#adb5bd" }, svg);
    el("text", { x: x, y: yB + 17, "text-anchor": "middle", class: "tick-t" }, svg, String(t));
  }
  el("line", { x1: x1, x2: x1, y1: C.t, y2: yB, stroke: "#adb5bd",
               "stroke-dasharray": "3 3" }, svg);
  el("text", { x: (x0 + x9) / 2, y: C.h - 6, "text-anchor": "middle" }, svg, "temperature T");
  const series = [["Hr", GREY], ["top_p", BLUE], ["dark_p", ORANGE]];
  const marks = [];
  for (const [k, color] of series) {
    const pts = d.frames.map((f) => `${curveX(f.T, d).toFixed(1)},${curveY(f[k]).toFixed(1)}`);
    el("polyline", { points: pts.join(" "), fill: "none", stroke: color, "stroke-width": 2 },
       svg);
  }
  for (const [k, color] of series) {
    marks.push([k, el("circle", { r: 5.5, fill: color, stroke: "white", "stroke-width": 2,
                                  class: "mark" }, svg)]);
  }
  return marks;
}

function show(root, st, i) {
  const d = st.data, f = d.frames[i];
  root.querySelector(".tv").textContent = "T = " + f.Ts;
  const input = root.querySelector("input");
  input.setAttribute("aria-valuetext", "T = " + f.Ts);
  for (const node of root.querySelectorAll("[data-k]")) {
    const k = node.dataset.k;
    if (k === "para") node.innerHTML = f.para;
    else if (k === "Hmax") node.textContent = d.Hmax;
    else node.textContent = f[k];
  }
  st.bars.forEach((r, c) => {
    const y = barY(f.p[c], d.log_y);
    r.setAttribute("y", y);
    r.setAttribute("height", Math.max(B.h - B.b - y, 0));
    r.firstChild.textContent = `class ${c}: ${f.ps[c]}`;
  });
  for (const [k, m] of st.marks) {
    m.setAttribute("cx", curveX(f.T, d));
    m.setAttribute("cy", curveY(f[k]));
  }
  root.dataset.frame = String(i);
}

export default function (component) {
  const { setStateValue, parentElement } = component;
  // Python sends the frames as one JSON text (serialised once per view, see tslider.py)
  const data = typeof component.data === "string" ? JSON.parse(component.data) : component.data;
  const root = parentElement.querySelector(".kd-t");
  if (!root || !data) return;
  const st = root.__kd || (root.__kd = {});
  const input = root.querySelector("input");
  st.send = setStateValue;
  if (st.key !== data.key) {  // new frames (another image, logits or axis): redraw the axes
    st.key = data.key;
    st.data = data;
    st.bars = drawBarAxes(root.querySelector("svg.bars"), data);
    st.marks = drawCurveAxes(root.querySelector("svg.curves"), data);
  }
  st.data = data;
  // the frames are the grid plus the page's T when it is off the grid, so their number can
  // change with T alone: a stale max left the last frame out of reach, and past it nothing
  input.max = String(data.frames.length - 1);
  if (!st.bound) {
    st.bound = true;
    input.addEventListener("input", () => show(root, st, Number(input.value)));
    input.addEventListener("change", () => {
      const f = st.data.frames[Number(input.value)];
      if (f) st.send("T", f.T);
    });
  }
  input.value = String(data.active);
  show(root, st, data.active);
}
"""
