// The transport bar above the timeline: play / pause, speed, loop and A/B for both players (the main
// player and the compare player), the playhead's time, and the view following the playhead. All in the
// browser except the follow, which asks the server for the next window (`trigger('follow', ...)`).
const players = () => ['#player audio', '#compare_player audio'].map((s) => document.querySelector(s)).filter(Boolean);
const loaded = (a) => a && a.getAttribute('src');
const at = (a) => parseFloat(a.dataset.start || '0') + a.currentTime;  // the playhead, in meeting time
const q = (sel) => element.querySelector(sel);
let active = null;  // the player last played (the main one until then)
const current = () => (loaded(active) ? active : players().find(loaded)) || null;

function settings(a) {  // a new clip resets playbackRate and keeps nothing: apply the bar's choices again
  const rate = parseFloat(q('#tp_speed').value);
  a.defaultPlaybackRate = rate; a.playbackRate = rate;
  a.loop = q('#tp_loop').checked;
}

function show() {
  const a = current();
  q('#tp_play').textContent = a && !a.paused ? '❚❚ pause' : '▶ play';
  const src = a && a.dataset.source && a.dataset.source !== 'mixture' ? `${a.dataset.source} (separated)` : 'mixture';
  q('#tp_time').textContent = a ? `${at(a).toFixed(2)} s · ${src}` : 'nothing loaded';
  q('#tp_ab').disabled = players().filter(loaded).length < 2;
}

if (!window.__pixitTransport) {
  window.__pixitTransport = true;
  let asked = 0;
  document.addEventListener('play', (e) => {
    if (!players().includes(e.target)) return;
    active = e.target;
    settings(e.target);
    players().forEach((o) => { if (o !== e.target) o.pause(); });  // one voice at a time
    show();
  }, true);
  document.addEventListener('pause', (e) => { if (players().includes(e.target)) show(); }, true);
  document.addEventListener('timeupdate', (e) => {
    const a = e.target;
    if (!players().includes(a)) return;
    show();
    const d = document.querySelector('#timeline .js-plotly-plot'), xa = d && d._fullLayout && d._fullLayout.xaxis;
    if (!xa || a.paused || !q('#tp_follow').checked) return;
    const t = at(a), [t0, t1] = xa.range;
    if ((t > t1 || t < t0) && Date.now() - asked > 1000) { asked = Date.now(); trigger('follow', {t}); }
  }, true);
}
window.__pixitActivePlayer = current;  // Space (app/panels/keys.py) plays and pauses the same player

q('#tp_play').addEventListener('click', () => {
  const a = current();
  if (!a) return;
  if (a.paused) a.play().catch(() => {}); else a.pause();
});
q('#tp_speed').addEventListener('change', () => players().forEach(settings));
q('#tp_loop').addEventListener('change', () => players().forEach(settings));
q('#tp_ab').addEventListener('click', () => {  // the same moment on the other player
  const a = current(), b = players().find((o) => o !== a && loaded(o));
  if (!a || !b) return;
  const t = at(a) - parseFloat(b.dataset.start || '0');
  a.pause();
  b.currentTime = Math.min(Math.max(t, 0), b.duration || t);
  active = b;
  b.play().catch(() => {});
  show();
});
show();
