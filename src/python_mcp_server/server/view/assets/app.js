// MCP App: the host renders this page in its sandbox and relays JSON-RPC over postMessage.
// The tool result of show_session_view names the session; the app then asks the server,
// through the host, for the cells (session_view_cells, a tool only apps see) and keeps
// asking for new ones, so the chat shows the session as it runs.
let nextId = 1;
const waiting = new Map();
function rpc(method, params) {
  const id = nextId++;
  window.parent.postMessage({jsonrpc: '2.0', id, method, params}, '*');
  return new Promise(resolve => waiting.set(id, resolve));
}
let shown = 0;
async function poll(sessionId) {
  for (;;) {
    const reply = await rpc('tools/call', {name: 'session_view_cells', arguments: {session_id: sessionId, after: shown}});
    const data = (reply && reply.structuredContent) || {};
    (data.cells || []).forEach(addCell);
    shown = data.total === undefined ? shown : data.total;
    if (data.state) showState(data.state);
    document.body.dataset.ready = '1';
    if (data.state && data.state.status === 'ended') { ended('this session has ended'); return; }
    await new Promise(r => setTimeout(r, 1000));
  }
}
window.addEventListener('message', event => {
  const msg = event.data || {};
  if (msg.id !== undefined && waiting.has(msg.id)) { waiting.get(msg.id)(msg.result); waiting.delete(msg.id); return; }
  if (msg.method !== 'ui/notifications/tool-result') return;
  const data = (msg.params || {}).structuredContent || {};
  if (data.session_id) poll(data.session_id);
});
rpc('ui/initialize', {appInfo: {name: 'python-mcp-server session view', version: '1'}, appCapabilities: {}});
