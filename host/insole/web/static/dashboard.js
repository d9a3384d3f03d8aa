// The insole dashboard: draws the frames the host pushes over one WebSocket, and sends
// the cue-settings form and the record buttons back. No external resources: the page
// works offline (uPlot is vendored under /static/vendor/).
(function () {
  'use strict';

  const COLOURS = { left: '#2563eb', right: '#ea580c' };
  const token = new URLSearchParams(location.search).get('token');
  const wsUrl = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws' +
    (token ? '?token=' + encodeURIComponent(token) : '');
  const state = { geometry: {}, cards: {}, plot: null, formFilled: false, nextId: 1, cuesPlayed: {} };
  // Read by the tests and by tools that time the first live frame.
  const stats = window.insoleDashboard = { frames: 0, firstFrameMs: null, lastFrame: null };
  let ws = null;

  const $ = (selector, root) => (root || document).querySelector(selector);
  const fmt = (value, digits, unit) => (value === null || value === undefined) ? '–' :
    Number(value).toFixed(digits) + (unit ? ' ' + unit : '');
  const signed = (value, digits) => (value === null || value === undefined) ? '–' :
    (value > 0 ? '+' : '') + Number(value).toFixed(digits);

  function connect() {
    ws = new WebSocket(wsUrl);
    ws.onopen = () => setLinkState('live', 'ok');
    ws.onmessage = (event) => handle(JSON.parse(event.data));
    ws.onclose = () => { setLinkState('disconnected: retrying', 'bad'); setTimeout(connect, 1000); };
  }

  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(message)); return true; }
    return false;
  }

  function setLinkState(text, kind) {
    const pill = $('#link-state');
    pill.textContent = text;
    pill.className = 'pill ' + (kind || '');
  }

  function handle(message) {
    if (message.type === 'hello') setUp(message);
    else if (message.type === 'frame') showFrame(message);
    else if (message.type === 'reply') showReply(message);
  }

  // -- set-up: one card per foot ------------------------------------------------------

  function setUp(hello) {
    const feet = $('#feet');
    feet.querySelectorAll('article.foot').forEach((el) => el.remove());
    state.cards = {};
    for (const geometry of hello.feet) {
      state.geometry[geometry.side] = geometry;
      const card = $('#foot-template').content.firstElementChild.cloneNode(true);
      card.id = 'foot-' + geometry.side;
      $('.side', card).textContent = geometry.side;
      $('.side', card).style.color = COLOURS[geometry.side] || '#333';
      feet.appendChild(card);
      state.cards[geometry.side] = card;
      drawFoot(card, geometry, null);
    }
  }

  // -- the heat map ---------------------------------------------------------------------

  // Blue (no load) through green and yellow to red (the most this foot has carried).
  function heatColour(v) {
    const stops = [[0, [49, 54, 149]], [0.25, [69, 117, 180]], [0.5, [116, 196, 118]], [0.75, [254, 224, 62]],
      [1, [215, 48, 39]]];
    v = Math.max(0, Math.min(1, v));
    for (let i = 1; i < stops.length; i++) {
      if (v <= stops[i][0]) {
        const [a, ca] = stops[i - 1], [b, cb] = stops[i];
        const t = (v - a) / (b - a);
        return ca.map((c, k) => Math.round(c + t * (cb[k] - c)));
      }
    }
    return stops[stops.length - 1][1];
  }

  function footTransform(canvas, geometry) {
    const margin = 12;
    const scale = Math.min((canvas.width - 2 * margin) / geometry.width_mm,
      (canvas.height - 2 * margin) / geometry.length_mm);
    // Seen from above, toes up: x (toward the toes) up the screen, y (to the left) to the screen's left.
    return {
      scale,
      point: (x, y) => [canvas.width / 2 - y * scale, canvas.height - margin - x * scale],
    };
  }

  function outlinePath(ctx, geometry, t) {
    ctx.beginPath();
    geometry.outline_mm.forEach(([x, y], i) => {
      const [px, py] = t.point(x, y);
      if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    });
    ctx.closePath();
  }

  function drawFoot(card, geometry, foot) {
    const canvas = $('canvas.heatmap', card);
    const ctx = canvas.getContext('2d');
    const t = footTransform(canvas, geometry);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    outlinePath(ctx, geometry, t);
    ctx.fillStyle = '#e8ebf0';
    ctx.fill();
    const pressure = foot ? foot.pressure : [];
    if (pressure.length === geometry.cells_mm.length) {
      // Each cell spreads its load as a Gaussian blob, drawn at a quarter of the
      // resolution and scaled up, clipped to the outline.
      const w = canvas.width / 4, h = canvas.height / 4;
      const image = ctx.createImageData(w, h);
      const sigma = 0.14 * geometry.width_mm * t.scale / 4;
      const cells = geometry.cells_mm.map(([x, y]) => t.point(x, y).map((v) => v / 4));
      for (let j = 0; j < h; j++) {
        for (let i = 0; i < w; i++) {
          let v = 0;
          for (let k = 0; k < cells.length; k++) {
            const p = pressure[k];
            if (p === null) continue;
            const dx = i - cells[k][0], dy = j - cells[k][1];
            v = Math.max(v, p * Math.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma)));
          }
          const o = 4 * (j * w + i);
          if (v > 0.03) {
            const [r, g, b] = heatColour(v);
            image.data[o] = r; image.data[o + 1] = g; image.data[o + 2] = b; image.data[o + 3] = 235;
          }
        }
      }
      const small = document.createElement('canvas');
      small.width = w; small.height = h;
      small.getContext('2d').putImageData(image, 0, 0);
      ctx.save();
      outlinePath(ctx, geometry, t);
      ctx.clip();
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
      ctx.restore();
    }
    outlinePath(ctx, geometry, t);
    ctx.strokeStyle = '#8b93a1';
    ctx.lineWidth = 1.5;
    ctx.stroke();
    ctx.fillStyle = '#1d2330';
    for (const [x, y] of geometry.cells_mm) {
      const [px, py] = t.point(x, y);
      ctx.fillRect(px - 1, py - 1, 2, 2);
    }
    const trail = foot ? foot.cop_mm : [];
    if (trail.length > 1) {
      ctx.beginPath();
      trail.forEach(([x, y], i) => {
        const [px, py] = t.point(x, y);
        if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
      });
      ctx.strokeStyle = '#111';
      ctx.lineWidth = 2;
      ctx.stroke();
      const [lx, ly] = t.point(...trail[trail.length - 1]);
      ctx.beginPath();
      ctx.arc(lx, ly, 4, 0, 2 * Math.PI);
      ctx.fillStyle = '#fff';
      ctx.fill();
      ctx.stroke();
    }
  }

  // -- one frame ------------------------------------------------------------------------

  function showFrame(frame) {
    stats.frames += 1;
    if (stats.firstFrameMs === null) stats.firstFrameMs = performance.timeOrigin + performance.now();
    stats.lastFrame = frame;
    $('#elapsed').textContent = fmt(frame.elapsed_s, 0, 's');
    $('#recording-state').textContent = frame.recording ? 'recording to ' + frame.recording : 'not recording';
    $('#record-start').disabled = !!frame.recording;
    $('#record-stop').disabled = !frame.recording;
    for (const foot of frame.feet) showFoot(foot);
    showSymmetry(frame.symmetry);
    showTrend(frame);
    if (!state.formFilled && frame.feet.length && frame.feet[0].settings) fillForm(frame.feet[0].settings);
  }

  function set(card, key, text, className) {
    const cell = card.querySelector('[data-k="' + key + '"]');
    cell.textContent = text;
    cell.className = className || '';
  }

  function showFoot(foot) {
    const card = state.cards[foot.side];
    if (!card) return;
    const connection = $('.connection', card);
    connection.textContent = foot.connection;
    connection.className = 'connection pill ' + (foot.connection === 'connected' ? 'ok' : 'bad');
    $('.battery', card).textContent = foot.battery_pct === null ? '' : 'battery ' + foot.battery_pct + ' %';
    drawFoot(card, state.geometry[foot.side], foot);
    const step = foot.last_step;
    set(card, 'steps', String(foot.steps));
    if (step && step.fpa_deg !== null) {
      const band = step.in_band === null || !foot.cueing ? '' : (step.in_band ? ' in band' : ' out of band');
      set(card, 'fpa', signed(step.fpa_deg, 1) + '°' + band,
        step.in_band === null || !foot.cueing ? '' : (step.in_band ? 'in-band' : 'out-band'));
    } else {
      set(card, 'fpa', '–');
    }
    set(card, 'band', foot.band_deg ? signed(foot.band_deg[0], 1) + '° … ' + signed(foot.band_deg[1], 1) + '° (' +
      foot.cue_mode + ')' : '–');
    set(card, 'cadence', fmt(foot.cadence_spm, 0, 'steps/min'));
    // A stance the foot came to rest in has no stance time yet: the wearer is standing.
    const stance = step && step.standing ? 'standing' : fmt(step && step.stance_s, 2, 's');
    set(card, 'stance', stance + ' (typical ' + fmt(foot.typical_stance_s, 2, 's') + ')');
    set(card, 'stride', fmt(step && step.stride_m, 2, 'm'));
    set(card, 'speed', fmt(step && step.speed_ms, 2, 'm/s'));
    set(card, 'direction', step ? step.direction : '–');
    const raises = foot.heel_raises;
    set(card, 'raises', raises.count + (raises.last_hold_s === null ? '' :
      ', last held ' + fmt(raises.last_hold_s, 1, 's') + ' (set ' + raises.set + ', rep ' + raises.rep + ')'));
    set(card, 'cues', foot.cues.played + ' of ' + foot.cues.decisions + ' decisions');
    set(card, 'samples', foot.samples + ' (' + foot.lost_samples + ' lost, ' + foot.backfilled_samples +
      ' backfilled' + (foot.dropped_samples ? ', ' + foot.dropped_samples + ' dropped on the insole' : '') + ')');
    showProgram(card, foot.program);
    const log = $('.cue-log', card);
    log.replaceChildren(...foot.cues.recent.map((cue) => {
      const li = document.createElement('li');
      li.textContent = fmt(cue.t_s, 1, 's') + ': ' + cue.reason + ', ' + cue.outcome +
        (cue.fpa_deg === null ? '' : ' (' + signed(cue.fpa_deg, 1) + '°)');
      return li;
    }));
    const previous = state.cuesPlayed[foot.side];
    state.cuesPlayed[foot.side] = foot.cues.played;
    if (previous !== undefined && foot.cues.played > previous && foot.cues.recent.length) {
      const flash = $('.cue-flash', card);
      flash.textContent = 'cue: ' + foot.cues.recent[0].reason;
      flash.style.opacity = 1;
      clearTimeout(flash.timer);
      flash.timer = setTimeout(() => { flash.style.opacity = 0; }, 1500);
    }
  }

  // The program block the insole runs: its kind, progress towards the goal, the band.
  function showProgram(card, program) {
    const box = $('.program', card);
    box.hidden = !program;
    if (!program) return;
    const block = program.block;
    const of = program.blocks ? ' of ' + program.blocks : '';
    const session = 'session ' + program.session + (program.resumed ? ' (resumed)' : '');
    if (!block) {
      $('.program-title', box).textContent = 'program ' + session;
      $('.program-detail', box).textContent = program.session_done ? 'session done' : '';
      return;
    }
    const kind = block.kind.replace(/_/g, ' ');
    $('.program-title', box).textContent = 'program ' + session + ': block ' + block.number + of + ', ' + kind;
    const progress = $('.program-progress', box);
    progress.max = block.goal || 1;
    progress.value = Math.min(block.done, progress.max);
    const parts = [block.done + ' / ' + (block.goal === null ? '–' : block.goal) + ' ' + block.unit];
    if (block.band_deg) parts.push('band ' + signed(block.band_deg[0], 1) + '° … ' + signed(block.band_deg[1], 1) + '°');
    if (block.ended) parts.push('ended: ' + block.ended.replace(/_/g, ' '));
    if (program.session_done) parts.push('session done');
    else if (block.last_signal) parts.push('signal: ' + block.last_signal.replace(/_/g, ' '));
    $('.program-detail', box).textContent = parts.join(' · ');
  }

  function showSymmetry(rows) {
    $('#symmetry tbody').replaceChildren(...rows.map((row) => {
      const tr = document.createElement('tr');
      for (const text of [row.measure, fmt(row.left, 2, row.unit), fmt(row.right, 2, row.unit),
        fmt(row.lsi_pct, 0, '%')]) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.appendChild(td);
      }
      return tr;
    }));
  }

  // -- the foot-angle trend (uPlot) ---------------------------------------------------

  function showTrend(frame) {
    const sides = Object.keys(frame.trend);
    const times = [...new Set(sides.flatMap((side) => frame.trend[side].map((p) => p[0])))].sort((a, b) => a - b);
    const columns = sides.map((side) => {
      const at = new Map(frame.trend[side]);
      return times.map((t) => (at.has(t) ? at.get(t) : null));
    });
    const withBand = frame.feet.find((f) => f.band_deg);
    const band = withBand ? withBand.band_deg : null;
    const data = [times, ...columns, times.map(() => (band ? band[0] : null)), times.map(() => (band ? band[1] : null))];
    const el = $('#trend');
    if (!state.plot || state.plotSides !== sides.join()) {
      if (state.plot) state.plot.destroy();
      state.plotSides = sides.join();
      const series = [{ label: 'session time (s)' },
        ...sides.map((side) => ({ label: side, stroke: COLOURS[side], width: 2, spanGaps: true,
          points: { show: true, size: 4 } })),
        { label: 'band low', stroke: '#9ca3af', dash: [6, 4], width: 1, points: { show: false } },
        { label: 'band high', stroke: '#9ca3af', dash: [6, 4], width: 1, points: { show: false } }];
      state.plot = new uPlot({
        width: Math.max(300, el.clientWidth - 8), height: 220, series, legend: { show: true },
        scales: { x: { time: false } },
        axes: [{ label: 'session time (s)' }, { label: 'foot angle (°)' }],
      }, data, el);
    } else {
      state.plot.setData(data);
    }
  }

  // -- the settings form --------------------------------------------------------------

  const form = $('#settings-form');

  function fillForm(settings) {
    for (const [name, value] of Object.entries(settings)) {
      const field = form.elements.namedItem(name);
      if (field) field.value = value;
    }
    state.formFilled = true;
  }

  function clearErrors() {
    form.querySelectorAll('.error').forEach((el) => { el.textContent = ''; });
    form.querySelectorAll('.invalid').forEach((el) => el.classList.remove('invalid'));
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearErrors();
    const values = {};
    for (const field of form.elements) {
      if (field.name && field.name !== 'side') values[field.name] = field.value;
    }
    const sent = send({ type: 'settings', id: state.nextId++, side: form.elements.namedItem('side').value, values });
    $('#settings-message').textContent = sent ? 'writing…' : 'not connected';
  });

  function showReply(reply) {
    if (reply.request === 'record') {
      $('#record-message').textContent = reply.message || '';
      return;
    }
    clearErrors();
    const errors = reply.errors || {};
    for (const [name, text] of Object.entries(errors)) {
      const slot = form.querySelector('.error[data-for="' + name + '"]');
      if (slot) slot.textContent = text;
      const field = form.elements.namedItem(name);
      if (field) field.classList.add('invalid');
    }
    $('#settings-message').textContent = reply.ok ? reply.message : (reply.message || 'not written: see the fields marked');
    if (reply.ok) state.formFilled = false;  // show what the insoles now hold
  }

  $('#record-start').addEventListener('click', () => send({ type: 'record', action: 'start', id: state.nextId++ }));
  $('#record-stop').addEventListener('click', () => send({ type: 'record', action: 'stop', id: state.nextId++ }));

  connect();
})();
