// Pan and zoom of a server-drawn moral graph (graph/layout.py), by changing the SVG's viewBox:
// the wheel zooms around the pointer, a drag pans, the +/−/Reset buttons do the same from the
// keyboard. In the explorer a click on a value asks the server for its detail with htmx; without
// JavaScript the value's link opens the same page with the detail. Listeners are delegated to
// the document, so a graph swapped in by htmx works without setting anything up again.
"use strict";
(function () {
  const GRAPH = ".graph-view svg.moral-graph";
  const STEP = 1.25;

  function graphOf(target) {
    return target instanceof Element ? target.closest(GRAPH) : null;
  }

  function box(svg) {
    return svg.getAttribute("viewBox").trim().split(/[\s,]+/).map(Number);
  }

  function setBox(svg, [x, y, w, h]) {
    svg.setAttribute("viewBox", [x, y, w, h].map((n) => n.toFixed(1)).join(" "));
  }

  // User units per screen pixel: with preserveAspectRatio "meet" the larger ratio applies.
  function unitsPerPixel(svg) {
    const [, , w, h] = box(svg);
    const rect = svg.getBoundingClientRect();
    return Math.max(w / (rect.width || 1), h / (rect.height || 1));
  }

  function userPoint(svg, clientX, clientY) {
    const matrix = svg.getScreenCTM();
    if (!matrix) {
      const [x, y, w, h] = box(svg);
      return { x: x + w / 2, y: y + h / 2 };
    }
    return new DOMPoint(clientX, clientY).matrixTransform(matrix.inverse());
  }

  // Scale the view by `factor` (> 1 zooms out) keeping the point `at` where it is.
  function zoom(svg, factor, at) {
    const [x, y, w, h] = box(svg);
    const c = at || { x: x + w / 2, y: y + h / 2 };
    setBox(svg, [c.x - (c.x - x) * factor, c.y - (c.y - y) * factor, w * factor, h * factor]);
  }

  document.addEventListener(
    "wheel",
    (event) => {
      const svg = graphOf(event.target);
      if (!svg) return;
      event.preventDefault();
      zoom(svg, event.deltaY > 0 ? STEP : 1 / STEP, userPoint(svg, event.clientX, event.clientY));
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
    drag = { svg, x: event.clientX, y: event.clientY, start: box(svg), scale: unitsPerPixel(svg), moved: false };
  });

  document.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const dx = event.clientX - drag.x;
    const dy = event.clientY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) < 4) return;
    drag.moved = true;
    drag.svg.classList.add("dragging");
    const [x, y, w, h] = drag.start;
    setBox(drag.svg, [x - dx * drag.scale, y - dy * drag.scale, w, h]);
  });

  function endDrag() {
    if (!drag) return;
    justDragged = drag.moved;
    drag.svg.classList.remove("dragging");
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
      const action = button.dataset.zoom;
      if (action === "reset") svg.setAttribute("viewBox", svg.dataset.home);
      else zoom(svg, action === "in" ? 1 / STEP : STEP);
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
    svg.querySelectorAll(".node.selected").forEach((n) => n.classList.remove("selected"));
    node.classList.add("selected");
    window.htmx.ajax("GET", node.getAttribute("href"), { target, swap: "outerHTML" });
  });
})();
