function follow(url) {
  const events = new EventSource(url);
  events.addEventListener('snapshot', e => { const d = JSON.parse(e.data); cells.replaceChildren(); pending = null; d.cells.forEach(addCell); showState(d.state); document.body.dataset.ready = '1'; });
  events.addEventListener('running', e => running(JSON.parse(e.data).source));
  events.addEventListener('output', e => streaming(JSON.parse(e.data).tail));
  events.addEventListener('cell', e => addCell(JSON.parse(e.data).cell));
  events.addEventListener('state', e => showState(JSON.parse(e.data)));
  events.addEventListener('ended', e => { ended(JSON.parse(e.data).reason); events.close(); });
  return events;
}
