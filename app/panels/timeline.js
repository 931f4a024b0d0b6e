// The timeline's mouse (attached to the plotly div after each redraw; events reach Python via `trigger`).
// On a speaker lane: drag a segment's edge to resize it, its body to move it (up or down to another
// speaker's lane to reassign it), an empty stretch to draw a new segment; Alt turns snapping off.
// A click selects a segment or sets the cursor. Elsewhere plotly's own drag zooms, a double-click
// shows the whole meeting. The server checks and applies every gesture (app/gestures.py).
setInterval(() => {
  const d = document.querySelector('#timeline .js-plotly-plot');
  if (!d || !d.on || !d._fullLayout) return;
  if (d._ev && !d._ev.listeners('plotly_relayout').some((f) => f.__pixit)) plotlyEvents(d);
  if (!d.__pixitMouse) { d.__pixitMouse = true; mouse(d); }
}, 300);

const EDGE_PX = 6, DRAG_PX = 4, SNAP_PX = 8;
let handledAt = 0;  // a press the gesture code handled: no second cursor click for it
let clicked = 0;  // a plotly click (on a trace): the plain click listener leaves it alone

function plotlyEvents(d) {
  d.on('plotly_click', (ev) => {
    const p = ev && ev.points && ev.points[0];
    if (!p || Date.now() - handledAt < 300) return;
    clicked = Date.now();
    if (p.data && p.data.type === 'bar' && p.customdata !== undefined && p.customdata !== null) {
      trigger('segclick', {id: Number(p.customdata)});
    } else if (typeof p.x === 'number') {
      trigger('cursorclick', {t: p.x});
    }
  });
  const relayout = (ev) => {
    if (!ev) return;
    if (ev['xaxis.range[0]'] !== undefined) trigger('zoomed', {t0: ev['xaxis.range[0]'], t1: ev['xaxis.range[1]']});
    else if (ev['xaxis.range'] !== undefined) trigger('zoomed', {t0: ev['xaxis.range'][0], t1: ev['xaxis.range'][1]});
    else if (ev['xaxis.autorange']) trigger('zoomed', {whole: true});
  };
  relayout.__pixit = true;
  d.on('plotly_relayout', relayout);
}

// pointer position in data terms: time t, lane (fractional), and whether it is on a speaker lane
function where(d, ev) {
  const L = d._fullLayout, svg = d.querySelector('.main-svg');
  if (!L || !L.xaxis || !L.yaxis2 || !svg) return null;
  const r = svg.getBoundingClientRect(), xa = L.xaxis, ya = L.yaxis2;
  const px = ev.clientX - r.left - xa._offset, py = ev.clientY - r.top - ya._offset;
  const inside = px >= 0 && px <= xa._length;
  const meta = (d.layout && d.layout.meta) || {};
  const lane = Math.round(ya.p2d(py));
  const onLane = inside && py >= 0 && py <= ya._length && lane >= 0 && lane < (meta.speakers || []).length;
  return {t: xa.p2d(px), px, lane, onLane, inside, xa, ya, r, meta};
}

// the segment under the pointer on its lane, and which part: its start or end edge, or its body
function hit(g) {
  let best = null;
  for (const [id, a, b, lane] of g.meta.segs || []) {
    if (lane !== g.lane) continue;
    const pa = g.xa.d2p(a), pb = g.xa.d2p(b);
    const ea = Math.abs(g.px - pa), eb = Math.abs(g.px - pb);
    let part = null, score = 0;
    if (Math.min(ea, eb) <= EDGE_PX && pb - pa > 2) { part = eb <= ea ? 'end' : 'start'; score = Math.min(ea, eb); }
    else if (g.px > pa && g.px < pb) { part = 'move'; score = EDGE_PX + (pb - pa); }  // the shortest body wins
    if (part && (!best || score < best.score)) best = {id, a, b, part, score};
  }
  return best;
}

function hoverLayer(d, display) {
  const h = d.querySelector('.hoverlayer');
  if (h) h.style.display = display;
}

function mouse(d) {
  let press = null, ghost = null;
  const cursorFor = (g) => { const h = g && g.onLane ? hit(g) : null;
    return !g || !g.onLane ? '' : !h ? 'crosshair' : h.part === 'move' ? 'grab' : 'ew-resize'; };
  d.addEventListener('mousemove', (ev) => {
    if (press || !ev.target.classList || !ev.target.classList.contains('nsewdrag')) return;
    ev.target.style.cursor = cursorFor(where(d, ev));
  });
  d.addEventListener('mousedown', (ev) => {
    if (ev.button !== 0) return;
    const g = where(d, ev);
    if (!g || !g.onLane) return;  // the waveform and activation rows: plotly zooms
    ev.stopPropagation(); ev.preventDefault();
    press = {x: ev.clientX, y: ev.clientY, g, h: hit(g), dragged: false};
    window.addEventListener('mousemove', move, true);
    window.addEventListener('mouseup', up, true);
  }, true);
  d.addEventListener('click', (ev) => {  // a click on empty plot space (no trace under it) sets the cursor
    const g = where(d, ev);
    if (!g || !g.inside || Date.now() - handledAt < 300) return;
    setTimeout(() => { if (Date.now() - clicked > 150 && Date.now() - handledAt > 300) trigger('cursorclick', {t: g.t}); }, 120);
  });
  d.addEventListener('dblclick', (ev) => {
    const g = where(d, ev);
    if (g && g.onLane && !hit(g)) trigger('zoomed', {whole: true});
  });

  function proposal(ev, press) {
    const g = where(d, ev), p = press.g, h = press.h, dur = p.meta.duration || Infinity;
    const clamp = (t) => Math.min(Math.max(t, 0), dur);
    const t = clamp(g.t), dt = g.t - p.t;
    const lane = g.onLane ? g.lane : p.lane;
    if (!h) return {mode: 'draw', start: Math.min(p.t, t), end: Math.max(p.t, t), lane: p.lane};
    if (h.part === 'start') return {mode: 'start', id: h.id, start: Math.min(t, h.b), end: h.b, lane: p.lane};
    if (h.part === 'end') return {mode: 'end', id: h.id, start: h.a, end: Math.max(t, h.a), lane: p.lane};
    const shift = Math.min(Math.max(dt, -h.a), dur - h.b);
    return {mode: 'move', id: h.id, start: h.a + shift, end: h.b + shift, lane};
  }

  function move(ev) {
    if (!press.dragged && Math.hypot(ev.clientX - press.x, ev.clientY - press.y) < DRAG_PX) return;
    press.dragged = true;
    const q = proposal(ev, press), g = press.g;
    if (!ghost) {
      ghost = document.createElement('div');
      ghost.id = 'drag_ghost';
      ghost.style.cssText = 'position:fixed;pointer-events:none;z-index:1000;border:2px dashed #000;' +
        'background:rgba(0,0,0,0.12);';
      ghost.innerHTML = '<span style="position:absolute;bottom:100%;left:0;font:12px sans-serif;white-space:nowrap;' +
        'background:#fff;border:1px solid #000;padding:0 3px;"></span>';
      document.body.appendChild(ghost);
      hoverLayer(d, 'none');  // plotly's hover label would cover the ghost
    }
    const x0 = g.xa.d2p(q.start), x1 = g.xa.d2p(q.end);
    const y0 = g.ya.d2p(q.lane - 0.4), y1 = g.ya.d2p(q.lane + 0.4);
    ghost.style.left = `${g.r.left + g.xa._offset + Math.min(x0, x1)}px`;
    ghost.style.width = `${Math.max(2, Math.abs(x1 - x0))}px`;
    ghost.style.top = `${g.r.top + g.ya._offset + Math.min(y0, y1)}px`;
    ghost.style.height = `${Math.abs(y1 - y0)}px`;
    ghost.firstChild.textContent = `${q.start.toFixed(2)}-${q.end.toFixed(2)} s → ${g.meta.speakers[q.lane]}`;
  }

  function up(ev) {
    window.removeEventListener('mousemove', move, true);
    window.removeEventListener('mouseup', up, true);
    if (ghost) { ghost.remove(); ghost = null; hoverLayer(d, ''); }
    const p = press; press = null;
    handledAt = Date.now();
    if (!p.dragged) {  // a click
      if (p.h) trigger('segclick', {id: p.h.id}); else trigger('cursorclick', {t: p.g.t});
      return;
    }
    const q = proposal(ev, p);
    q.tol = Math.abs(p.g.xa.p2d(SNAP_PX) - p.g.xa.p2d(0));
    q.snap = !ev.altKey;
    window.__pixitGestureAt = performance.now();  // for the browser benchmark
    trigger('segdrag', q);
  }
}
