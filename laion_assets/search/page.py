"""The search page: one self-contained HTML document (no external script, font or image) over the
JSON API, so it works offline and never makes the reviewer's browser contact the web."""

PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>laion-assets search</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:14px system-ui,sans-serif;margin:0;background:#f6f6f4;color:#222}
 header{background:#20313b;color:#fff;padding:10px 16px}
 header h1{font-size:17px;margin:0 0 8px}
 form,.bar{display:flex;flex-wrap:wrap;gap:8px;align-items:center}
 input[type=text]{width:320px;padding:5px}
 fieldset{border:1px solid #587;padding:2px 8px;margin:0}
 #status{padding:6px 16px;color:#555}
 #grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:12px;padding:12px 16px}
 .card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;overflow-wrap:anywhere}
 .card img,.card .gone{width:100%;aspect-ratio:1;object-fit:cover;background:#ccc;display:block}
 .card .gone{display:flex;align-items:center;justify-content:center;color:#555}
 .cap{font-weight:600;margin:6px 0 2px}.meta{color:#555;font-size:12px}
 .flag{color:#a33;font-weight:600}.pdq{color:#063;font-weight:600}
 .rm{margin-top:6px}.rm form{display:none;flex-direction:column;align-items:stretch}
 .rm.open form{display:flex}.receipt{color:#063;font-weight:600}
 h2{font-size:15px;margin:10px 16px 0}
</style></head><body>
<header><h1>Release search (reviewer view)</h1>
<form id="q"><input type="text" id="text" name="q" placeholder="text query, e.g. a red square" autofocus>
 <button type="submit" id="go">Search</button>
 <label>release <select id="release"></select></label>
 <label>k <input type="number" id="k" value="20" min="1" max="500" style="width:55px"></label>
 <label>index <select id="index"><option value="image">image</option><option value="text">caption</option></select></label>
</form>
<div class="bar" style="margin-top:8px">
 <label>language <select id="lang"><option value="">any</option></select></label>
 <fieldset>NSFW <label><input type="checkbox" class="nsfw" value="UNLIKELY" checked>UNLIKELY</label>
  <label><input type="checkbox" class="nsfw" value="UNSURE" checked>UNSURE</label>
  <label><input type="checkbox" class="nsfw" value="NSFW" checked>NSFW</label></fieldset>
 <label>min similarity <input type="number" id="minsim" step="0.05" min="-1" max="1" style="width:65px"></label>
 <label><input type="checkbox" id="unblur"> show flagged images unblurred</label>
 <form id="up"><label>find my images <input type="file" id="file" accept="image/*"></label>
  <button type="submit" id="upgo">Upload</button></form>
</div></header>
<div id="status">Type a query or upload an image.</div>
<div id="pdqbox"></div>
<div id="grid"></div>
<script>
const $ = (s, e=document) => e.querySelector(s);
function params(){
  const p = new URLSearchParams();
  p.set('k', $('#k').value || '20');
  if ($('#release').value) p.set('release', $('#release').value);
  p.set('index', $('#index').value);
  if ($('#lang').value) p.set('lang', $('#lang').value);
  const tags = [...document.querySelectorAll('.nsfw')].filter(c => c.checked).map(c => c.value);
  if (tags.length < 3) p.set('nsfw', tags.join(',') || 'none');
  if ($('#minsim').value !== '') p.set('min_similarity', $('#minsim').value);
  return p;
}
function el(tag, attrs={}, text){
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function card(r){
  const c = el('div', {class: 'card', 'data-sample-id': r.id});
  const img = el('img', {alt: r.blur ? 'flagged image (blurred)' : r.TEXT, loading: 'lazy',
    src: r.thumbnail + ($('#unblur').checked ? '?unblur=1' : '')});
  img.onerror = () => img.replaceWith(el('div', {class: 'gone'}, 'not shown (removal list)'));
  c.append(img, el('div', {class: 'cap'}, r.TEXT));
  const sim = r.similarity === null ? '' : 'similarity ' + r.similarity.toFixed(3) + ' · ';
  c.append(el('div', {class: 'meta'}, sim + 'score ' + r.score.toFixed(3) + ' · ' + (r.LANGUAGE || '?')));
  if (r.pdq_distance !== undefined) c.append(el('div', {class: 'pdq'}, 'PDQ copy, distance ' + r.pdq_distance));
  const flag = el('div', {class: r.blur ? 'meta flag' : 'meta'},
    'NSFW ' + (r.NSFW || '?') + ' · punsafe ' + (r.punsafe === null ? '?' : r.punsafe.toFixed(2)) + (r.blur ? ' · blurred' : ''));
  c.append(flag);
  c.append(el('div', {class: 'meta'}, r.crawl + ' · ' + r.warc_path + ' @' + r.warc_offset));
  c.append(el('div', {class: 'meta'}, 'page: ' + r.page_url));
  c.append(el('div', {class: 'meta'}, 'image URL: ' + r.URL));
  c.append(el('div', {class: 'meta'}, r.release + ' ' + r.version + ' · id ' + r.id));
  const rm = el('div', {class: 'rm'});
  const open = el('button', {type: 'button', class: 'rm-open'}, 'Request removal');
  const f = el('form');
  const reason = el('textarea', {name: 'reason', rows: 2, placeholder: 'reason (required)', required: ''});
  const contact = el('input', {type: 'text', name: 'contact', placeholder: 'contact (required)', required: ''});
  const send = el('button', {type: 'submit', class: 'rm-send'}, 'File removal request');
  f.append(reason, contact, send);
  open.onclick = () => rm.classList.toggle('open');
  f.onsubmit = async ev => {
    ev.preventDefault();
    const res = await fetch('/api/removal', {method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({release: r.release, SAMPLE_ID: r.id, reason: reason.value, contact: contact.value})});
    const out = await res.json();
    if (!res.ok) { rm.append(el('div', {class: 'flag'}, out.error)); return; }
    f.remove(); open.remove();
    rm.append(el('div', {class: 'receipt'}, 'Removal request filed, receipt ' + out.request_id));
    const i = $('img', c); if (i) i.replaceWith(el('div', {class: 'gone'}, 'not shown (removal requested)'));
  };
  rm.append(open, f);
  c.append(rm);
  return c;
}
function show(rows, label){
  const g = $('#grid'); g.replaceChildren(...rows.map(card));
  $('#status').textContent = rows.length + ' result(s) ' + label;
}
async function load(){
  const rels = await (await fetch('/api/releases')).json();
  for (const r of rels) $('#release').append(el('option', {value: r.release}, r.release + ' (' + r.version + ', ' + r.rows + ' rows)'));
  const langs = new Set(rels.flatMap(r => r.languages));
  for (const l of [...langs].sort()) $('#lang').append(el('option', {value: l}, l));
}
$('#q').onsubmit = async ev => {
  ev.preventDefault();
  const p = params(); p.set('q', $('#text').value);
  const res = await fetch('/api/search?' + p); const out = await res.json();
  $('#pdqbox').replaceChildren();
  if (!res.ok) { $('#status').textContent = out.error; return; }
  show(out, 'for "' + $('#text').value + '"');
};
$('#up').onsubmit = async ev => {
  ev.preventDefault();
  const file = $('#file').files[0]; if (!file) { $('#status').textContent = 'choose an image first'; return; }
  const body = new FormData(); body.append('image', file);
  const res = await fetch('/api/search?' + params(), {method: 'POST', body}); const out = await res.json();
  if (!res.ok) { $('#status').textContent = out.error; return; }
  show(out.nearest, 'nearest to the upload');
  const box = $('#pdqbox');
  box.replaceChildren(el('h2', {}, out.pdq_matches.length + ' cop(ies) by PDQ (within the takedown threshold)'));
  const g = el('div', {id: 'pdqgrid', style: 'display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:12px;padding:12px 16px'});
  g.append(...out.pdq_matches.map(card)); box.append(g);
};
load();
</script></body></html>
"""
