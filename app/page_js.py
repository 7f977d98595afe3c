"""The page's browser code (``js_on_load`` of the result, 对比 and full-text panes, and the URL sync): opening a
provision, copying citations, votes, folding the 目录 on a phone.  Runs under the server's CSP (app/guard.py)."""

# Clicks inside the result and 对比 HTML: 查看全文 and the 要点's [n] open the provision in the full text (a `click`
# event carrying the ids); 复制… put the citation on the clipboard; 👍/👎 become a `submit` event.
RESULTS_JS = """
const copy = async (text) => {
  try { await navigator.clipboard.writeText(text); return true; } catch (e) {}
  const t = document.createElement('textarea'); t.value = text; t.setAttribute('readonly', '');
  t.style.position = 'fixed'; t.style.opacity = '0'; document.body.appendChild(t); t.select();
  let ok = false; try { ok = document.execCommand('copy'); } catch (e) {}
  t.remove(); return ok;
};
element.addEventListener('click', async (e) => {
  const open = e.target.closest('button.pq-open, a.pq-ref');
  if (open) { e.preventDefault(); trigger('click', {doc: open.dataset.doc, pid: open.dataset.pid}); return; }
  const c = e.target.closest('button.pq-copy');
  if (c) {
    window.__pqCopied = c.dataset.copy;
    const ok = await copy(c.dataset.copy);
    const label = c.textContent; c.textContent = ok ? '已复制' : '请手动复制'; c.classList.add('pq-copied');
    setTimeout(() => { c.textContent = label; c.classList.remove('pq-copied'); }, 1500);
    return;
  }
  const v = e.target.closest('button.pq-vote');
  if (v) {
    const box = v.closest('.pq-fb');
    box.querySelectorAll('button').forEach(b => b.classList.remove('pq-voted')); v.classList.add('pq-voted');
    trigger('submit', {about: box.dataset.target, rank: box.dataset.rank, vote: v.dataset.vote});  // not 'target': EventData.target is the component
  }
});
"""
# The document pane scrolls to the highlighted provision whenever it is (re)rendered; outline links scroll too; on a
# narrow screen the 目录 starts folded (it would otherwise push the text a screen down).
DOCUMENT_JS = """
const go = () => {
  const nav = element.querySelector('details.pq-outline');
  if (nav && window.innerWidth < 700) nav.open = false;
  const t = element.querySelector('.pq-target'); if (t) t.scrollIntoView({block: 'center'});
  const h = element.querySelectorAll('.pq-outline .pq-here');
  if (h.length && (!nav || nav.open)) h[h.length - 1].scrollIntoView({block: 'nearest'});
};
setTimeout(go, 100);
watch('value', () => setTimeout(go, 100));
element.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-anchor]');
  if (a) { e.preventDefault(); const t = element.querySelector('#' + a.dataset.anchor);
           if (t) t.scrollIntoView({block: 'start'}); return; }
  const d = e.target.closest('button.pq-dl');
  if (d) trigger('click', {doc: d.dataset.doc});
});
"""
# After each search: the question, k and the filters go into the address (?q=…), so a reload or a shared link
# asks the same question again (app/ui.py reads them back on load).
URL_JS = """
(q, mode, k, doc, region, issuer, year) => {
  const p = new URLSearchParams();
  if (q && q.trim()) p.set('q', q.slice(0, 4000));
  if (q && q.trim()) {
    if (k && Number(k) !== 10) p.set('k', String(k));
    if (mode && mode !== 'hybrid') p.set('mode', mode);
    for (const [n, v] of [['doc', doc], ['region', region], ['issuer', issuer], ['year', year]]) if (v) p.set(n, v);
  }
  const s = p.toString();
  history.replaceState(null, '', location.pathname + (s ? '?' + s : '') + location.hash);
}
"""
