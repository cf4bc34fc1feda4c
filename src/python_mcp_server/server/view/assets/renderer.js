const cells = document.getElementById('cells');
function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
function joined(v) { return Array.isArray(v) ? v.join('') : (v || ''); }
function renderOutput(o) {
  if (o.output_type === 'stream') return el('pre', 'out ' + o.name, joined(o.text));
  if (o.output_type === 'error') {
    return el('pre', 'out error', o.ename + ': ' + o.evalue + '\n' + joined(o.traceback.join('\n')));
  }
  const data = o.data || {};
  for (const mime of ['image/png', 'image/jpeg', 'image/gif']) {
    if (data[mime]) { const img = el('img', 'out'); img.src = 'data:' + mime + ';base64,' + joined(data[mime]).replace(/\s/g, ''); img.alt = 'output image'; return img; }
  }
  if (data['image/svg+xml']) {
    const img = el('img', 'out'); img.alt = 'output image';
    img.src = 'data:image/svg+xml;base64,' + btoa(unescape(encodeURIComponent(joined(data['image/svg+xml']))));
    return img;
  }
  if (data['text/plain'] !== undefined) return el('pre', 'out result', joined(data['text/plain']));
  const mime = Object.keys(data)[0];
  const box = el('details', 'out'); box.appendChild(el('summary', '', mime + ' (shown as source)'));
  box.appendChild(el('pre', '', joined(data[mime]))); return box;
}
let pending = null;
function addCell(cell) {
  if (cell.kind === 'note') { if (pending) { pending.remove(); pending = null; } cells.appendChild(el('div', 'note', cell.source)); return; }
  const box = pending || el('div', 'cell');
  box.className = 'cell'; box.replaceChildren();
  box.appendChild(el('div', 'count', cell.execution_count ? '[' + cell.execution_count + ']' : ''));
  box.appendChild(el('pre', 'src', cell.source));
  for (const o of cell.outputs || []) box.appendChild(renderOutput(o));
  if (!pending) cells.appendChild(box);
  pending = null;
}
function running(source) {
  pending = el('div', 'cell running');
  pending.appendChild(el('div', 'count', '[*]'));
  pending.appendChild(el('pre', 'src', source));
  cells.appendChild(pending);
}
function streaming(tail) {
  if (!pending) return;
  let live = pending.querySelector('.live');
  if (!live) { live = el('pre', 'out live'); pending.appendChild(live); }
  live.textContent = tail;
}
function showState(state) {
  document.getElementById('status').textContent = state.status + (state.restarts ? ' | restarts: ' + state.restarts : '') + ' | executions: ' + state.execution_count;
  if (!state.variables) return;
  const table = document.getElementById('variables'); table.replaceChildren();
  for (const v of state.variables) { const row = el('tr'); row.appendChild(el('td', '', v.name)); row.appendChild(el('td', '', v.type)); row.appendChild(el('td', '', v.repr)); table.appendChild(row); }
}
function ended(reason) {
  const banner = document.getElementById('ended'); banner.textContent = reason; banner.style.display = 'block';
  document.getElementById('status').textContent = 'ended';
}
