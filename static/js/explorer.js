// Pan and zoom of a server-drawn moral graph (graph/layout.py): the wheel zooms around the
// pointer, a drag pans, the +/−/Reset buttons do the same from the keyboard. In the explorer a
// click on a value asks the server for its detail with htmx and puts the value's address in
// the history (Back steps back through the selections); without JavaScript the value's link
// opens the same page with the detail. Listeners are delegated to the document, so a graph
// swapped in by htmx works without setting anything up again.
//
// Why two steps: redrawing an SVG of thousands of values at every wheel event or mouse move
// takes a browser without a GPU hundreds of milliseconds (bench/explorer.py measures it). So
// while the pointer moves, the picture already drawn is moved and scaled with a CSS transform
// (cheap: nothing is redrawn), and the new viewBox is set once the gesture pauses or ends,
// which redraws it sharp.
"use strict";
(function () {
  const GRAPH = ".graph-view svg.moral-graph";
  const STEP = 1.25;
  const SETTLE_MS = 150;
  const gestures = new WeakMap(); // svg -> {from, to, rect, timer}: a gesture not yet settled

  function graphOf(target) {
    return target instanceof Element ? target.closest(GRAPH) : null;
  }

  function box(svg) {
    return svg.getAttribute("viewBox").trim().split(/[\s,]+/).map(Number);
  }

  function setBox(svg, [x, y, w, h]) {
    svg.setAttribute("viewBox", [x, y, w, h].map((n) => n.toFixed(1)).join(" "));
  }

  // The box the user is looking at: the one being previewed, or the one drawn.
  function shown(svg) {
    const gesture = gestures.get(svg);
    return gesture ? gesture.to : box(svg);
  }

  // The untransformed screen rectangle of the SVG (while a preview runs, the transformed one
  // would mislead).
  function rectOf(svg) {
    const gesture = gestures.get(svg);
    return gesture ? gesture.rect : svg.getBoundingClientRect();
  }

  // Pixels per user unit and the letterbox offset, for a box shown with "xMidYMid meet".
  function fit(rect, [, , w, h]) {
    const a = Math.min(rect.width / w, rect.height / h) || 1;
    return { a, padX: (rect.width - w * a) / 2, padY: (rect.height - h * a) / 2 };
  }

  function userPoint(svg, clientX, clientY) {
    const rect = rectOf(svg);
    const b = shown(svg);
    const { a, padX, padY } = fit(rect, b);
    return { x: b[0] + (clientX - rect.left - padX) / a, y: b[1] + (clientY - rect.top - padY) / a };
  }

  // Show box `to` at once by transforming what is drawn for box `from`; commit it later.
  function preview(svg, to) {
    let gesture = gestures.get(svg);
    if (!gesture) {
      gesture = { from: box(svg), rect: svg.getBoundingClientRect() };
      gestures.set(svg, gesture);
    }
    gesture.to = to;
    const [x0, y0, w0] = gesture.from;
    const [x1, y1, w1] = to;
    const k = w1 / w0; // > 1 zooms out
    const { a, padX, padY } = fit(gesture.rect, gesture.from);
    const tx = padX * (1 - 1 / k) - (a / k) * (x1 - x0);
    const ty = padY * (1 - 1 / k) - (a / k) * (y1 - y0);
    svg.style.transformOrigin = "0 0";
    svg.style.transform = `translate(${tx}px, ${ty}px) scale(${1 / k})`;
    clearTimeout(gesture.timer);
    gesture.timer = setTimeout(() => commit(svg), SETTLE_MS);
  }

  function commit(svg) {
    const gesture = gestures.get(svg);
    if (!gesture) return;
    clearTimeout(gesture.timer);
    gestures.delete(svg);
    setBox(svg, gesture.to);
    svg.style.transform = "";
  }

  // Scale the view by `factor` (> 1 zooms out) keeping the point `at` where it is.
  function zoomed(svg, factor, at) {
    const [x, y, w, h] = shown(svg);
    const c = at || { x: x + w / 2, y: y + h / 2 };
    return [c.x - (c.x - x) * factor, c.y - (c.y - y) * factor, w * factor, h * factor];
  }

  document.addEventListener(
    "wheel",
    (event) => {
      const svg = graphOf(event.target);
      if (!svg) return;
      event.preventDefault();
      const at = userPoint(svg, event.clientX, event.clientY);
      preview(svg, zoomed(svg, event.deltaY > 0 ? STEP : 1 / STEP, at));
    },
    { passive: false },
  );

  // Dragging. A press that moves less than a few pixels stays a click.
  let drag = null;
  let justDragged = false;

  document.addEventListener("pointerdown", (event) => {
    justDragged = false;
    const svg = graphOf(event.target);
    if (!svg || event.button !== 0) return;
    const start = shown(svg);
    const { a } = fit(rectOf(svg), start);
    drag = { svg, x: event.clientX, y: event.clientY, start, unitsPerPixel: 1 / a, moved: false };
  });

  document.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const dx = event.clientX - drag.x;
    const dy = event.clientY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) < 4) return;
    drag.moved = true;
    drag.svg.classList.add("dragging");
    const [x, y, w, h] = drag.start;
    preview(drag.svg, [x - dx * drag.unitsPerPixel, y - dy * drag.unitsPerPixel, w, h]);
  });

  function endDrag() {
    if (!drag) return;
    justDragged = drag.moved;
    drag.svg.classList.remove("dragging");
    if (drag.moved) commit(drag.svg);
    drag = null;
  }
  document.addEventListener("pointerup", endDrag);
  document.addEventListener("pointercancel", endDrag);

  document.addEventListener("click", (event) => {
    if (!(event.target instanceof Element)) return;
    const button = event.target.closest(".graph-view [data-zoom]");
    if (button) {
      const svg = button.closest(".graph-view").querySelector("svg.moral-graph");
      if (!svg) return;
      commit(svg);
      const action = button.dataset.zoom;
      if (action === "reset") svg.setAttribute("viewBox", svg.dataset.home);
      else setBox(svg, zoomed(svg, action === "in" ? 1 / STEP : STEP));
      return;
    }
    const svg = graphOf(event.target);
    if (!svg) return;
    if (justDragged) {
      // The click that ends a drag is not a click on the value under the pointer.
      justDragged = false;
      event.preventDefault();
      return;
    }
    const node = event.target.closest("a.node");
    const view = svg.closest(".graph-view");
    const target = view && view.dataset.detailTarget;
    if (!node || !target || !window.htmx) return;
    event.preventDefault();
    // The value's own address goes into the history (htmx keeps a snapshot of the page it
    // leaves), so Back steps back through the selections and a reload or a shared link opens
    // the same value. The node is marked once its detail is in (below), not before: the
    // snapshot taken while the request runs shows the previous selection with its detail.
    const href = node.getAttribute("href");
    window.htmx.ajax("GET", href, { target, swap: "outerHTML", push: href });
  });

  // The value whose detail is shown is the one marked in the graph: after a click on a node,
  // a link in the detail, or a step through the history.
  function markSelected() {
    const detail = document.getElementById("explorer-detail");
    const svg = document.querySelector(GRAPH);
    if (!detail || !svg) return;
    const value = detail.dataset.value || "";
    svg.querySelectorAll(".node.selected").forEach((n) => {
      if (n.dataset.value !== value) n.classList.remove("selected");
    });
    if (value) {
      const node = svg.querySelector(`a.node[data-value="${CSS.escape(value)}"]`);
      if (node) node.classList.add("selected");
    }
  }
  document.addEventListener("htmx:afterSettle", markSelected);
  document.addEventListener("htmx:historyRestore", markSelected);
})();
