// Córtex's chat page. Vanilla JS, no dependencies, no build step: served as is.
//
// It talks to POST /api/chat with stream: true and reads the NDJSON body as it arrives,
// so every token shows the moment Córtex relays it. Model text only ever reaches the
// page through escapeHtml (see renderMarkdown) or textContent.
//
// When Córtex requires API keys, a 401 makes the page ask for one. The key is kept in
// sessionStorage (it leaves with the tab) and sent as "Authorization: Bearer <key>" on
// every request; it is never shown, logged or put in a URL.

const MODEL_KEY = "cortex.model";
const API_KEY = "cortex.apiKey";
// What a header value may hold, so fetch never throws on a pasted key.
const KEY_CHARS = /^[\x21-\x7e]+$/;

// ---------------------------------------------------------------------------------------
// Markdown: a small renderer of our own. Every fragment of model text is escaped before
// any markup is added, and the only markup added is the fixed set of tags below, so the
// output is safe to assign to innerHTML whatever the model wrote.

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

// A URL in already-escaped text: &amp; may appear inside, any other entity ends it.
const URL_CHARS = String.raw`https?:\/\/(?:[^\s&()]|&amp;)+`;
const LINK = new RegExp(String.raw`\[([^\]\n]+)\]\((${URL_CHARS})\)`, "g");
const BARE_URL = new RegExp(String.raw`(^|[^\w/.:-])(${URL_CHARS})`, "g");

function anchor(url, html) {
  return `<a href="${url}" target="_blank" rel="noopener noreferrer">${html}</a>`;
}

function emphasis(s) {
  return s
    .replace(/\*\*(?=\S)(.+?)(?<=\S)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|\W)__(?=\S)(.+?)(?<=\S)__(?!\w)/g, "$1<strong>$2</strong>")
    .replace(/~~(?=\S)(.+?)(?<=\S)~~/g, "<del>$1</del>")
    .replace(/(^|[^\w*])\*(?=[^\s*])([^*]*?)(?<=[^\s*])\*(?![\w*])/g, "$1<em>$2</em>")
    .replace(/(^|[^\w])_(?=[^\s_])([^_]*?)(?<=[^\s_])_(?!\w)/g, "$1<em>$2</em>");
}

function inline(raw) {
  const stash = [];
  const keep = (html) => `\u0000${stash.push(html) - 1}\u0000`;
  let s = escapeHtml(String(raw).replace(/\u0000/g, ""));
  s = s.replace(/(`+)([^`]|[^`].*?[^`])\1(?!`)/g, (_, __, code) => keep(`<code>${code}</code>`));
  s = s.replace(LINK, (_, text, url) => keep(anchor(url, emphasis(text))));
  s = s.replace(BARE_URL, (_, lead, url) => {
    const tail = url.match(/[.,;:!?]+$/)?.[0] ?? "";
    const href = url.slice(0, url.length - tail.length);
    return lead + keep(anchor(href, href)) + tail;
  });
  s = emphasis(s);
  for (let n = 0; n < 3 && s.includes("\u0000"); n++) {
    s = s.replace(/\u0000(\d+)\u0000/g, (_, i) => stash[Number(i)]);
  }
  return s;
}

const FENCE = /^\s*(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*)$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>\s?/;
const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_RULE = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

function isTable(lines, i) {
  return lines[i].includes("|") && i + 1 < lines.length &&
    lines[i + 1].includes("-") && lines[i + 1].includes("|") && TABLE_RULE.test(lines[i + 1]);
}

function startsBlock(lines, i) {
  const line = lines[i];
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) ||
    ITEM.test(line) || isTable(lines, i);
}

function cells(line) {
  let s = line.trim();
  if (s.startsWith("|")) s = s.slice(1);
  if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
  return s.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, "|"));
}

function table(lines, i, out) {
  const head = cells(lines[i]);
  const align = cells(lines[i + 1]).map((c) =>
    c.startsWith(":") && c.endsWith(":") ? "center" : c.endsWith(":") ? "right" : "");
  const cell = (tag, text, k) =>
    `<${tag}${align[k] ? ` class="align-${align[k]}"` : ""}>${inline(text ?? "")}</${tag}>`;
  let html = "<thead><tr>" + head.map((c, k) => cell("th", c, k)).join("") + "</tr></thead><tbody>";
  i += 2;
  while (i < lines.length && lines[i].includes("|") && lines[i].trim()) {
    const row = cells(lines[i++]);
    html += "<tr>" + head.map((_, k) => cell("td", row[k], k)).join("") + "</tr>";
  }
  out.push(`<div class="table"><table>${html}</tbody></table></div>`);
  return i;
}

function list(lines, i, out) {
  const stack = []; // open lists: {indent, tag}
  let html = "";
  while (i < lines.length) {
    const line = lines[i];
    const m = line.match(ITEM);
    if (!m) {
      if (!line.trim()) {
        const next = lines[i + 1];
        if (next !== undefined && (ITEM.test(next) || /^\s{2,}\S/.test(next))) {
          i++;
          continue;
        }
        break;
      }
      if (/^\s+\S/.test(line) && !FENCE.test(line)) {
        html += "<br>" + inline(line.trim()); // a continuation of the item
        i++;
        continue;
      }
      break;
    }
    if (RULE.test(line)) break;
    const indent = m[1].replace(/\t/g, "    ").length;
    const tag = /\d/.test(m[2]) ? "ol" : "ul";
    while (stack.length > 1 && indent < stack[stack.length - 1].indent) {
      html += `</li></${stack.pop().tag}>`;
    }
    const top = stack[stack.length - 1];
    if (!top || indent > top.indent + 1) {
      const number = parseInt(m[2], 10);
      const start = tag === "ol" && number !== 1 ? ` start="${number}"` : "";
      html += `<${tag}${start}>`;
      stack.push({ indent, tag });
    } else if (top.tag !== tag) {
      html += `</li></${top.tag}><${tag}>`;
      top.tag = tag;
    } else {
      html += "</li>";
    }
    html += "<li>" + inline(m[3]);
    i++;
  }
  while (stack.length) html += `</li></${stack.pop().tag}>`;
  out.push(html);
  return i;
}

export function renderMarkdown(source) {
  const lines = String(source).replace(/\r\n?/g, "\n").split("\n");
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if ((m = line.match(FENCE))) {
      const [fence, lang] = [m[1], m[2]];
      const close = new RegExp(`^\\s*${fence[0] === "`" ? "`" : "~"}{${fence.length},}\\s*$`);
      const body = [];
      for (i++; i < lines.length && !close.test(lines[i]); i++) body.push(lines[i]);
      i++;
      const label = lang ? `<div class="code-lang">${escapeHtml(lang)}</div>` : "";
      out.push(`<div class="code">${label}<pre><code>${escapeHtml(body.join("\n"))}</code></pre></div>`);
    } else if (!line.trim()) {
      i++;
    } else if ((m = line.match(HEADING))) {
      const level = m[1].length;
      out.push(`<h${level}>${inline(m[2].replace(/\s+#+\s*$/, ""))}</h${level}>`);
      i++;
    } else if (RULE.test(line)) {
      out.push("<hr>");
      i++;
    } else if (QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && QUOTE.test(lines[i])) inner.push(lines[i++].replace(QUOTE, ""));
      out.push(`<blockquote>${renderMarkdown(inner.join("\n"))}</blockquote>`);
    } else if (isTable(lines, i)) {
      i = table(lines, i, out);
    } else if (ITEM.test(line)) {
      i = list(lines, i, out);
    } else {
      const para = [line.trim()];
      for (i++; i < lines.length && lines[i].trim() && !startsBlock(lines, i); i++) {
        para.push(lines[i].trim());
      }
      out.push(`<p>${para.map(inline).join("<br>")}</p>`);
    }
  }
  return out.join("");
}

// ---------------------------------------------------------------------------------------
// The stream: NDJSON read chunk by chunk. A line (or a UTF-8 character) can be cut across
// reads, so bytes go through one streaming TextDecoder and text waits in a line buffer.

class ChatError extends Error {}

function parseLine(line) {
  try {
    return JSON.parse(line);
  } catch {
    throw new ChatError(`Córtex sent a line that is not JSON: ${line.slice(0, 200)}`);
  }
}

export async function* ndjson(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let start = 0;
      let nl;
      while ((nl = buffer.indexOf("\n", start)) !== -1) {
        const line = buffer.slice(start, nl);
        start = nl + 1;
        if (line.trim()) yield parseLine(line);
      }
      buffer = buffer.slice(start);
    }
    buffer += decoder.decode();
    if (buffer.trim()) yield parseLine(buffer);
  } finally {
    reader.cancel().catch(() => {});
  }
}

function errorText(error) {
  if (typeof error === "string") return error;
  if (error && typeof error.message === "string") return error.message;
  return JSON.stringify(error);
}

// The message of an error body: Córtex's {"error": ...}, else the text as it came.
function errorMessage(body) {
  try {
    const parsed = JSON.parse(body);
    if (parsed && parsed.error !== undefined) return errorText(parsed.error);
  } catch {
    // not JSON
  }
  return body.trim().slice(0, 500);
}

async function httpError(response) {
  const detail = errorMessage(await response.text().catch(() => ""));
  const status = `${response.status}${response.statusText ? ` ${response.statusText}` : ""}`;
  return `HTTP ${status}${detail ? ` — ${detail}` : ""}`;
}

// ---------------------------------------------------------------------------------------
// The page.

const $ = (id) => document.getElementById(id);
const els = {
  log: $("log"),
  welcome: $("welcome"),
  model: $("model"),
  newChat: $("new-chat"),
  notice: $("notice"),
  form: $("composer"),
  prompt: $("prompt"),
  send: $("send"),
  stop: $("stop"),
  key: $("key"),
  keyDialog: $("key-dialog"),
  keyForm: $("key-form"),
  keyReason: $("key-reason"),
  keyInput: $("key-input"),
  keyForget: $("key-forget"),
  keyCancel: $("key-cancel"),
};

const state = {
  history: [], // {role, content} of the conversation, sent with every request
  controller: null, // the AbortController of the answer streaming now
  apiKey: null, // the API key of this tab, or null
  keyAsked: false, // Córtex answered 401 at least once: it wants a key
};

function storage(action, value) {
  try {
    if (action === "get") return localStorage.getItem(MODEL_KEY);
    localStorage.setItem(MODEL_KEY, value);
  } catch {
    // private mode or storage disabled: the choice just is not remembered
  }
  return null;
}

// The API key lives in sessionStorage: kept across reloads, gone with the tab.
function keyStorage(action, value) {
  try {
    if (action === "get") return sessionStorage.getItem(API_KEY);
    if (action === "set") sessionStorage.setItem(API_KEY, value);
    else sessionStorage.removeItem(API_KEY);
  } catch {
    // storage disabled: the key lasts as long as the page
  }
  return null;
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function notice(text) {
  els.notice.textContent = text;
  els.notice.hidden = !text;
}

// ---------------------------------------------------------------------------------------
// Requests to Córtex, with the API key, and the form that asks for it.

// fetch with the tab's key. A 401 asks for a key (dropping the one that was refused) and is
// returned as is for the caller to report.
async function api(path, init = {}) {
  const key = state.apiKey;
  const headers = { ...init.headers };
  if (key) headers.Authorization = `Bearer ${key}`;
  const response = await fetch(path, { ...init, headers });
  if (response.status === 401) {
    const reason = errorMessage(await response.clone().text().catch(() => ""));
    if (key === state.apiKey) {
      // A key saved meanwhile is left alone: this answer was to the one before it.
      if (key) setKey(null);
      askForKey(reason || "Córtex needs an API key.");
    }
  }
  return response;
}

function setKey(key) {
  state.apiKey = key;
  keyStorage(key ? "set" : "remove", key);
  showKeyButton();
}

function showKeyButton() {
  els.key.hidden = !(state.apiKey || state.keyAsked);
}

function openKeyForm(reason) {
  els.keyReason.textContent = reason;
  els.keyReason.hidden = !reason;
  els.keyForget.hidden = !state.apiKey;
  els.keyInput.setCustomValidity("");
  if (!els.keyDialog.open) {
    els.keyInput.value = "";
    els.keyDialog.showModal();
  }
  els.keyInput.focus();
}

function closeKeyForm() {
  els.keyInput.value = ""; // the key is not left in the form
  if (els.keyDialog.open) els.keyDialog.close();
}

function askForKey(reason) {
  state.keyAsked = true;
  showKeyButton();
  openKeyForm(reason);
}

function saveKey() {
  const key = els.keyInput.value.trim();
  if (!KEY_CHARS.test(key)) {
    els.keyInput.setCustomValidity("An API key is letters, digits and punctuation, without spaces.");
    els.keyInput.reportValidity();
    return;
  }
  setKey(key);
  closeKeyForm();
  loadModels();
  els.prompt.focus();
}

function forgetKey() {
  setKey(null);
  closeKeyForm();
  loadModels();
}

async function loadModels() {
  const select = els.model;
  let models = [];
  try {
    const response = await api("/api/tags", { headers: { Accept: "application/json" } });
    if (response.status === 401) throw new ChatError("Córtex needs an API key.");
    if (!response.ok) throw new ChatError(await httpError(response));
    models = (await response.json()).models ?? [];
    notice("");
  } catch (error) {
    notice(`Could not list the models: ${error.message}`);
  }
  select.replaceChildren();
  if (!models.length) select.append(new Option("Server's default model", ""));
  for (const entry of models) {
    const name = entry.name ?? entry.model;
    const size = entry.details?.parameter_size;
    select.append(new Option(size ? `${name} · ${size}` : name, name));
  }
  const saved = storage("get");
  if (saved && models.some((m) => (m.name ?? m.model) === saved)) select.value = saved;
  select.disabled = false;
}

const nearBottom = () => els.log.scrollHeight - els.log.scrollTop - els.log.clientHeight < 80;

function scrollDown(force = false) {
  if (force || nearBottom()) els.log.scrollTop = els.log.scrollHeight;
}

function addUser(text) {
  const article = element("article", "msg user");
  const bubble = element("div", "bubble", text);
  article.append(bubble);
  els.log.append(article);
  scrollDown(true);
  return bubble;
}

function formatMs(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

// One assistant answer in the log: its text (rendered at most once per frame), its stats
// and its error.
class Reply {
  constructor(model) {
    this.article = element("article", "msg assistant waiting");
    this.article.setAttribute("aria-busy", "true");
    const head = element("div", "who");
    head.append(element("span", "avatar", "C"), element("span", "model", model || "default model"));
    this.thinking = element("details", "thinking");
    this.thinking.open = true;
    this.thinking.hidden = true;
    this.thoughts = element("div", "thoughts");
    this.thinking.append(element("summary", "", "Thinking"), this.thoughts);
    this.body = element("div", "md");
    this.stats = element("div", "stats");
    this.error = element("div", "error");
    this.error.setAttribute("role", "alert");
    this.error.hidden = true;
    this.article.append(head, this.thinking, this.body, this.error, this.stats);
    this.text = "";
    this.frame = 0;
    els.log.append(this.article);
    scrollDown(true);
  }

  think(piece) {
    this.thinking.hidden = false;
    this.thoughts.append(piece); // a text node: shown as is
    if (nearBottom()) scrollDown(true);
  }

  update(text) {
    this.text = text;
    this.article.classList.remove("waiting");
    this.frame ||= requestAnimationFrame(() => this.paint());
  }

  paint() {
    this.frame = 0;
    const follow = nearBottom();
    this.body.innerHTML = renderMarkdown(this.text); // escaped by construction, see above
    if (follow) scrollDown(true);
  }

  live(t) {
    if (t.first === null) return;
    this.stats.replaceChildren(this.stat("TTFT", formatMs(t.first - t.sent)),
      this.stat("", `${t.pieces} token${t.pieces === 1 ? "" : "s"}…`));
  }

  finish(t, outcome) {
    cancelAnimationFrame(this.frame);
    this.paint();
    if (this.text) this.thinking.open = false;
    this.article.classList.remove("waiting");
    this.article.removeAttribute("aria-busy");
    const items = [];
    if (t.first !== null) {
      const span = t.end - t.first;
      const rate = t.pieces > 1 && span > 0 ? (t.pieces / (span / 1000)).toFixed(1) : "—";
      items.push(
        this.stat("TTFT", formatMs(t.first - t.sent)),
        this.stat("tok/s", rate, "rate"),
        this.stat("total", formatMs(t.end - t.sent)),
        this.stat("tokens", String(t.pieces)),
      );
      if (t.done?.eval_count !== undefined) items.push(this.stat("eval_count", String(t.done.eval_count)));
    } else {
      items.push(this.stat("total", formatMs(t.end - t.sent)));
    }
    if (outcome.stopped) items.unshift(this.stat("", "Stopped", "flag"));
    if (t.done?.done_reason === "length") items.unshift(this.stat("", "Cut at the length limit", "flag"));
    this.stats.replaceChildren(...items);
    this.stats.classList.add("final");
    if (outcome.error) {
      this.error.textContent = outcome.error;
      this.error.hidden = false;
      this.article.classList.add("failed");
    }
    if (!this.text) this.body.hidden = true;
    scrollDown();
  }

  stat(label, value, kind) {
    const span = element("span", `stat${kind ? ` ${kind}` : ""}`);
    if (label) span.append(element("b", "", label), " ");
    span.append(value);
    return span;
  }
}

function setBusy(controller) {
  state.controller = controller;
  els.send.hidden = Boolean(controller);
  els.stop.hidden = !controller;
  document.body.classList.toggle("busy", Boolean(controller));
}

async function send(text) {
  if (state.controller || !text.trim()) return;
  els.welcome.hidden = true;
  const model = els.model.value;
  const turn = { role: "user", content: text };
  state.history.push(turn);
  const bubble = addUser(text);
  const reply = new Reply(model);
  const controller = new AbortController();
  setBusy(controller);

  const t = { sent: performance.now(), first: null, end: 0, pieces: 0, done: null };
  const outcome = { stopped: false, error: "" };
  let content = "";
  try {
    const response = await api("/api/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/x-ndjson" },
      body: JSON.stringify({ ...(model ? { model } : {}), messages: state.history, stream: true }),
      signal: controller.signal,
    });
    if (!response.ok) throw new ChatError(await httpError(response));
    for await (const line of ndjson(response.body)) {
      if (line.error !== undefined) throw new ChatError(errorText(line.error));
      const thought = line.message?.thinking ?? line.thinking;
      if (thought) reply.think(thought);
      const piece = line.message?.content ?? line.response ?? "";
      if (piece) {
        t.first ??= performance.now();
        t.pieces += 1;
        content += piece;
        reply.update(content);
        reply.live(t);
      }
      if (line.done) t.done = line;
    }
    if (!t.done) throw new ChatError("The stream ended before the answer was complete.");
  } catch (error) {
    if (error.name === "AbortError") outcome.stopped = true;
    else if (error instanceof ChatError) outcome.error = error.message;
    else outcome.error = `Could not reach Córtex: ${error.message}`;
  }
  t.end = performance.now();
  reply.text = content;
  reply.finish(t, outcome);
  if (content) {
    state.history.push({ role: "assistant", content });
  } else if (state.history.at(-1) === turn) {
    state.history.pop(); // nothing came back: the next message should not follow this one
    bubble.classList.add("unanswered");
    bubble.title = "Not part of the conversation: no answer came back";
  }
  setBusy(null);
}

function stop() {
  state.controller?.abort();
}

function submit() {
  const text = els.prompt.value;
  if (state.controller || !text.trim()) return;
  els.prompt.value = "";
  grow();
  send(text);
}

function grow() {
  els.prompt.style.height = "auto";
  els.prompt.style.height = `${Math.min(els.prompt.scrollHeight, window.innerHeight * 0.4)}px`;
}

function newChat() {
  stop();
  state.history = [];
  for (const child of [...els.log.children]) if (child !== els.welcome) child.remove();
  els.welcome.hidden = false;
  els.prompt.focus();
}

els.form.addEventListener("submit", (event) => {
  event.preventDefault();
  submit();
});
els.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submit();
  }
});
els.prompt.addEventListener("input", grow);
els.stop.addEventListener("click", stop);
els.newChat.addEventListener("click", newChat);
els.model.addEventListener("change", () => storage("set", els.model.value));
els.key.addEventListener("click", () => openKeyForm(""));
els.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  saveKey();
});
els.keyInput.addEventListener("input", () => els.keyInput.setCustomValidity(""));
els.keyCancel.addEventListener("click", closeKeyForm);
els.keyForget.addEventListener("click", forgetKey);
els.keyDialog.addEventListener("close", () => {
  els.keyInput.value = "";
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && state.controller && !els.keyDialog.open) stop();
});
for (const chip of els.welcome.querySelectorAll(".chip")) {
  chip.addEventListener("click", () => send(chip.textContent));
}

state.apiKey = keyStorage("get") || null;
showKeyButton();
loadModels();
