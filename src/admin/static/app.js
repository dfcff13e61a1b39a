// The admin console: polls this node's JSON APIs every 2 s and redraws four tables and a
// cluster map. Data from the APIs only ever reaches the page as text (no innerHTML), since
// stream names come from publishers. The cluster API key, when the node needs one, lives in
// `apiKey` only: not in a cookie, storage or the URL, so a reload asks for it again.
"use strict";

(() => {
  const POLL_MS = 2000;
  const MAX_PEER_FETCHES = 16;
  /** @type {string | null} */
  let apiKey = null;
  let timer = 0;
  let polling = false;
  let selfId = "";
  /** @type {any} */
  let player = null;
  let previewPath = "";

  const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

  /** Builds an element; string children become text nodes. */
  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = String(v);
      else e.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  const td = (text, cls) => el("td", cls ? { class: cls } : {}, text ?? "–");

  function ago(ms) {
    if (!ms) return "–";
    const s = Math.max(0, (Date.now() - ms) / 1000);
    if (s < 60) return `${s.toFixed(1)} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    return `${(s / 3600).toFixed(1)} h ago`;
  }

  function bytes(n) {
    if (!Number.isFinite(n)) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
  }

  const num = (n, digits = 0) => (typeof n === "number" && Number.isFinite(n) ? n.toFixed(digits) : "–");

  /** GET a JSON endpoint; `{status, data}` with the envelope's data (or the raw body). */
  async function getJson(url, withKey) {
    const headers = {};
    if (withKey && apiKey !== null) headers["X-Cluster-Api-Key"] = apiKey;
    const res = await fetch(url, { headers, cache: "no-store" });
    let body = null;
    try {
      body = await res.json();
    } catch {
      // not JSON: treated as no data
    }
    const data = body && typeof body === "object" && "data" in body ? body.data : body;
    return { status: res.status, data };
  }

  const clusterApi = (path) => getJson(`/cluster/api/${path}`, true);

  // ---- polling ----

  function schedule(ms = POLL_MS) {
    clearTimeout(timer);
    if (!$("paused").checked && $("key-form").hidden) timer = setTimeout(poll, ms);
  }

  async function poll() {
    if (polling) return;
    polling = true;
    try {
      const [status, servers, sessions, relays, local] = await Promise.all([
        clusterApi("status/local"),
        clusterApi("servers"),
        clusterApi("sessions"),
        clusterApi("relay/sessions"),
        getJson("/api/streams", false),
      ]);
      if ([status, servers, sessions, relays].some((r) => r.status === 401)) {
        askForKey(apiKey === null ? "" : "That key was refused.");
        return;
      }
      const clusterOn = status.status === 200;
      const notice = $("notice");
      notice.hidden = clusterOn;
      notice.textContent = clusterOn
        ? ""
        : `Cluster API unavailable (HTTP ${status.status}): showing this node's streams only.`;
      selfId = clusterOn ? status.data.server_id : "";
      $("self").textContent = clusterOn
        ? `node ${status.data.server_id} · ${status.data.address} · ${status.data.node_count} node(s) · ${status.data.session_count} session(s)`
        : "standalone node";

      const nodes = servers.status === 200 ? servers.data.summaries : [];
      const records = sessions.status === 200 ? sessions.data.sessions.filter((s) => s.active) : [];
      const relayRows = relays.status === 200 ? relays.data.sessions : [];
      const localStreams = local.status === 200 ? local.data.streams : [];
      const streamsByNode = await fetchCarrierStreams(records, localStreams);

      renderNodes(nodes);
      renderStreams(records, localStreams, streamsByNode);
      renderRelays(relayRows);
      renderGraph(records, nodes, relayRows);
      setRefresh(true, `updated ${new Date().toLocaleTimeString()}`);
    } catch (err) {
      setRefresh(false, `refresh failed: ${err instanceof Error ? err.message : err}`);
    } finally {
      polling = false;
      schedule();
    }
  }

  /** `/api/streams` of every node carrying a session (this one's is already there), by server_id. */
  async function fetchCarrierStreams(records, localStreams) {
    const byNode = new Map([[selfId, localStreams]]);
    const wanted = new Set();
    for (const r of records) {
      for (const id of [r.origin_id, ...r.subscribe_nodes]) if (id !== selfId) wanted.add(id);
    }
    const ids = [...wanted].slice(0, MAX_PEER_FETCHES);
    const answers = await Promise.all(
      ids.map((id) => getJson(`/admin/api/nodes/${encodeURIComponent(id)}/streams`, true).catch(() => null)),
    );
    ids.forEach((id, i) => {
      const a = answers[i];
      if (a && a.status === 200 && a.data && Array.isArray(a.data.streams)) byNode.set(id, a.data.streams);
    });
    return byNode;
  }

  function setRefresh(ok, text) {
    const pill = $("refresh");
    pill.textContent = text;
    pill.className = ok ? "pill ok" : "pill bad";
  }

  // ---- the key ----

  function askForKey(error) {
    apiKey = null;
    clearTimeout(timer);
    $("key-form").hidden = false;
    $("key-error").textContent = error;
    $("key-input").focus();
    setRefresh(false, "API key needed");
  }

  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = /** @type {HTMLInputElement} */ ($("key-input"));
    apiKey = input.value;
    input.value = "";
    $("key-form").hidden = true;
    $("key-error").textContent = "";
    void poll();
  });

  $("paused").addEventListener("change", () => {
    if ($("paused").checked) clearTimeout(timer);
    else void poll();
  });

  // ---- tables ----

  function renderNodes(nodes) {
    const rows = nodes.map((n) => {
      const self = n.server_id === selfId;
      return el(
        "tr",
        { "data-server-id": n.server_id, "data-state": n.state, class: self ? "self" : "" },
        td(self ? `${n.server_id} (this node)` : n.server_id),
        td(n.address),
        el("td", {}, el("span", { class: `state state-${n.state}` }, n.state)),
        td(n.role.join(", ")),
        td(num(n.load.cpu_percent, 1), "num"),
        td(num(n.load.egress_mbps, 2), "num"),
        td(num(n.load.subscriber_count), "num"),
        td(num(n.load.stream_count), "num"),
        td(num(n.load.relay_count), "num"),
        td(self ? "–" : ago(n.last_heartbeat)),
        td(n.version),
      );
    });
    replaceRows("nodes-table", rows, 11, "No cluster data.");
    $("count-nodes").textContent = nodes.length ? String(nodes.length) : "";
  }

  function playersOf(stream) {
    if (!stream) return 0;
    const p = stream.players || {};
    return (p["http-flv"] || 0) + (p["ws-flv"] || 0) + (p.rtmp || 0);
  }

  function renderStreams(records, localStreams, streamsByNode) {
    const find = (nodeId, path) => (streamsByNode.get(nodeId) || []).find((s) => s.stream_path === path);
    const local = new Map(localStreams.map((s) => [s.stream_path, s]));
    const rows = records.map((r) => {
      const atOrigin = find(r.origin_id, r.stream_path);
      const info = atOrigin || local.get(r.stream_path);
      let players = 0;
      for (const id of new Set([r.origin_id, ...r.subscribe_nodes])) {
        players += playersOf(find(id, r.stream_path));
      }
      return streamRow(r.stream_path, r.origin_id, {
        video: r.video_codec,
        audio: r.audio_codec,
        width: r.width,
        height: r.height,
        bitrate: info ? info.bitrate_kbps : null,
        players,
        subscribeNodes: r.subscribe_nodes,
      });
    });
    // Streams live here but not (yet) in the registry: a standalone node, or sync still running.
    const known = new Set(records.map((r) => r.stream_path));
    for (const s of localStreams) {
      if (known.has(s.stream_path)) continue;
      rows.push(streamRow(s.stream_path, selfId || "this node", {
        video: s.video.codec,
        audio: s.audio.codec,
        width: s.video.width,
        height: s.video.height,
        bitrate: s.bitrate_kbps,
        players: playersOf(s),
        subscribeNodes: [],
      }));
    }
    replaceRows("streams-table", rows, 9, "No live streams.");
    $("count-streams").textContent = rows.length ? String(rows.length) : "";
  }

  function streamRow(path, origin, s) {
    return el(
      "tr",
      { "data-stream": path, class: path === previewPath ? "previewing" : "" },
      td(path, "mono"),
      td(origin),
      td(s.video),
      td(s.audio),
      td(s.width && s.height ? `${s.width}×${s.height}` : null),
      td(num(s.bitrate), "num"),
      td(num(s.players), "num"),
      td(s.subscribeNodes.length ? s.subscribeNodes.join(", ") : "–"),
      el("td", {}, el("button", { type: "button", class: "preview-btn", "data-preview": path }, "Preview")),
    );
  }

  function renderRelays(relays) {
    const rows = relays.map((r) => {
      const pull = r.direction === "pull";
      const peerId = pull ? r.source_node_id : r.target_node_id;
      const peerAddr = pull ? r.source_quic_addr : r.target_addr;
      return el(
        "tr",
        { "data-stream": r.stream_path, "data-direction": r.direction, "data-state": r.state },
        td(pull ? "pull ←" : "serve →"),
        td(r.stream_path, "mono"),
        el("td", {}, el("span", { class: `relay relay-${r.state}` }, r.state)),
        td(peerId ? `${peerId}${peerAddr ? ` (${peerAddr})` : ""}` : "–"),
        td(num(r.subscriber_count), "num"),
        td(num(r.frame_count), "num"),
        td(bytes(r.bytes), "num"),
        td(pull ? num(r.reconnects) : "–", "num"),
        td(ago(r.started_at)),
        td(ago(r.last_frame_at)),
      );
    });
    replaceRows("relay-table", rows, 10, "This node has no relay sessions.");
    $("count-relay").textContent = rows.length ? String(rows.length) : "";
  }

  function replaceRows(tableId, rows, cols, empty) {
    const body = /** @type {HTMLTableElement} */ ($(tableId)).tBodies[0];
    body.replaceChildren(
      ...(rows.length ? rows : [el("tr", { class: "empty" }, el("td", { colspan: cols }, empty))]),
    );
  }

  // ---- cluster map ----

  function renderGraph(records, nodes, relays) {
    const stateOf = new Map(nodes.map((n) => [n.server_id, n.state]));
    const chip = (id, extra) =>
      el(
        "span",
        {
          class: `node state-${stateOf.get(id) || "unknown"}${id === selfId ? " self" : ""}`,
          title: stateOf.get(id),
        },
        id,
        extra ? el("small", {}, ` ${extra}`) : null,
      );
    const items = records.map((r) => {
      const edges = r.subscribe_nodes.map((id) => {
        let mark = "";
        if (id === selfId) {
          const pull = relays.find((x) => x.direction === "pull" && x.stream_path === r.stream_path);
          mark = pull ? pull.state : "no relay";
        } else if (r.origin_id === selfId) {
          const served = relays.some((x) =>
            x.direction === "serve" && x.stream_path === r.stream_path && x.target_node_id === id
          );
          mark = served ? "served" : "";
        }
        return chip(id, mark);
      });
      return el(
        "li",
        { "data-stream": r.stream_path },
        el("code", {}, r.stream_path),
        el(
          "div",
          { class: "flow" },
          chip(r.origin_id, "origin"),
          el("span", { class: "arrow" }, edges.length ? "→" : ""),
          edges.length ? edges : el("span", { class: "muted" }, "no edge pulls it"),
        ),
      );
    });
    const idle = nodes.filter((n) =>
      !records.some((r) => r.origin_id === n.server_id || r.subscribe_nodes.includes(n.server_id))
    );
    if (idle.length) {
      items.push(
        el(
          "li",
          {},
          el("span", { class: "muted" }, "idle nodes"),
          el("div", { class: "flow" }, idle.map((n) => chip(n.server_id))),
        ),
      );
    }
    $("cluster-graph").replaceChildren(
      ...(items.length ? items : [el("li", { class: "muted" }, "No streams in the cluster.")]),
    );
  }

  // ---- tabs ----

  function selectTab(name) {
    for (const b of document.querySelectorAll("nav [role=tab]")) {
      const on = b.getAttribute("data-tab") === name;
      b.setAttribute("aria-selected", String(on));
      $(`tab-${b.getAttribute("data-tab")}`).hidden = !on;
    }
  }

  for (const b of document.querySelectorAll("nav [role=tab]")) {
    b.addEventListener("click", () => {
      const name = b.getAttribute("data-tab");
      selectTab(name);
      history.replaceState(null, "", `#${name}`);
    });
  }

  // ---- preview ----

  function streamUrl(path) {
    return `/${path.split("/").map(encodeURIComponent).join("/")}.flv`;
  }

  function stopPreview() {
    if (player) {
      try {
        player.pause();
        player.unload();
        player.detachMediaElement();
        player.destroy();
      } catch {
        // already torn down
      }
    }
    player = null;
    previewPath = "";
    $("preview").hidden = true;
  }

  function startPreview(path) {
    stopPreview();
    const status = $("preview-status");
    $("preview").hidden = false;
    $("preview-path").textContent = path;
    const mpegts = /** @type {any} */ (window).mpegts;
    if (!mpegts || !mpegts.isSupported()) {
      status.textContent = "this browser cannot play FLV through Media Source Extensions";
      return;
    }
    previewPath = path;
    status.textContent = "connecting…";
    const video = /** @type {HTMLVideoElement} */ ($("preview-video"));
    player = mpegts.createPlayer(
      { type: "flv", isLive: true, url: new URL(streamUrl(path), location.href).href },
      { enableWorker: false, liveBufferLatencyChasing: true, autoCleanupSourceBuffer: true },
    );
    player.on(mpegts.Events.ERROR, (type, detail) => {
      status.textContent = `error: ${type} ${detail}`;
    });
    player.attachMediaElement(video);
    player.load();
    const p = player.play();
    if (p && typeof p.catch === "function") p.catch(() => {});
  }

  $("preview-video").addEventListener("timeupdate", (ev) => {
    if (!previewPath) return;
    const t = /** @type {HTMLVideoElement} */ (ev.target).currentTime;
    $("preview-status").textContent = `playing · ${t.toFixed(1)} s`;
  });
  $("preview-stop").addEventListener("click", stopPreview);
  $("streams-table").addEventListener("click", (ev) => {
    const target = /** @type {HTMLElement} */ (ev.target);
    const path = target.getAttribute && target.getAttribute("data-preview");
    if (path) startPreview(path);
  });

  // ---- start ----

  const initial = location.hash.slice(1);
  selectTab(["nodes", "streams", "relay", "cluster"].includes(initial) ? initial : "nodes");
  void poll();
})();
