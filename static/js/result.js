// Result page: polls the analysis' status while it is queued or running, then draws the verdict and its evidence:
// a timeline of each window's fake probability over the video (click to play that window), people, windows with
// their face thumbnails, and stage timings; for a photo, the photo with a box and a verdict per face. Everything is built with DOM calls and textContent (no HTML injection).
// The state is the API's description of the analysis (AnalysisSerializer): the server names the stage
// (stage_label) and gives each face thumbnail its URL, so nothing here knows the stages or the crop files.
(function () {
  "use strict";
  const root = document.getElementById("analysis");
  if (!root) return;
  const statusUrl = root.dataset.statusUrl;
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  let timer = null;

  const isRunning = (state) => state.status === "queued" || state.status === "running";
  // The verdict comes first; heat maps follow (state.heatmaps "pending", with their own progress): keep polling.
  const isDrawing = (state) => state.status === "done" && state.heatmaps === "pending";
  let drawing = false;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([key, value]) => node.setAttribute(key, value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    Object.entries(attrs || {}).forEach(([key, value]) => node.setAttribute(key, value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const percent = (p) => (100 * p).toFixed(1) + "%";
  // FAKE at or above thresholds.fake, REAL at or below thresholds.real, uncertain in between (decision.py's rule).
  const band = (p, t) => (p >= t.fake ? "fake" : p <= t.real ? "real" : "uncertain");
  // Probabilities and thresholds with three decimals everywhere (naming.probability_text on the server's side).
  const p3 = (p) => p.toFixed(3);
  const bounds = (t) => "REAL ≤ " + p3(t.real) + ", FAKE ≥ " + p3(t.fake);
  // People and faces are numbered from 1 in order of appearance (naming.person_label on the server's side).
  const personLabel = (result, id) => (isPhoto(result) ? "Face " : "Person ") + (id + 1);
  const VERDICT_ICONS = { FAKE: "✖", REAL: "✔", INCONCLUSIVE: "?" };
  const seconds = (s) => s.toFixed(2) + " s";

  // A control made of a non-button element: the mouse, Enter and Space all use it.
  function activate(node, action) {
    node.addEventListener("click", action);
    node.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); action(); }
    });
  }

  function seek(time) {
    const player = $("player");
    player.currentTime = time;
    player.play().catch(() => {});
    player.scrollIntoView({ behavior: "smooth", block: "center" });
  }

  function renderProgress(state) {
    const running = isRunning(state);
    $("progress-section").hidden = !running;
    $("job-fill").style.width = (state.progress || 0) + "%";
    const attempt = state.attempts > 1 ? " (attempt " + state.attempts + ")" : "";
    $("job-stage").textContent = state.stage_label + attempt + (running ? " · " + Math.round(state.progress) + "%" : "");
  }

  function renderFailure(state) {
    $("failure").hidden = state.status !== "failed";
    if (state.status === "failed" && state.error) $("failure-message").textContent = state.error.message;
  }

  function renderVerdict(state, result) {
    const box = $("verdict");
    box.className = "verdict " + result.verdict.toLowerCase();
    $("verdict-icon").textContent = VERDICT_ICONS[result.verdict] || "";
    $("verdict-label").textContent = result.verdict;
    const kind = result.calibration.calibrated ? "calibrated fake probability " : "raw score (uncalibrated) ";
    const probability = result.fake_probability === null ? "" :
      kind + result.fake_probability.toFixed(3) + " (" + bounds(result.thresholds) + ")";
    let detail;
    if (result.verdict === "INCONCLUSIVE") {
      detail = probability;  // why it is not decided is the summary's, right below
    } else {
      detail = "confidence " + percent(result.confidence) + " · " + probability;
    }
    $("verdict-detail").textContent = detail;
    const summary = result.summary;
    $("summary-headline").textContent = summary.headline;
    ["meaning", "why", "coverage"].forEach((part) => {
      $("summary-" + part).textContent = summary[part] || "";
      $("summary-" + part).hidden = !summary[part];
    });
    const inconclusive = result.verdict === "INCONCLUSIVE" ? result.calibration.inconclusive_means + ". " : "";
    const sources = { checkpoint: "the checkpoint's calibration", settings: "the site's settings",
      option: "the command line", uncalibrated: "defaults, as the checkpoint carries no calibration",
      "ensemble mean": "the mean of the ensemble's checkpoints' thresholds" };
    const meaning = result.calibration.meaning.replace(/^the /, "");
    $("probability-meaning").textContent = "The number is the " + meaning + ". " + inconclusive + "Thresholds from " +
      (sources[result.thresholds.source] || result.thresholds.source) + ".";
    const warnings = $("warnings");
    warnings.replaceChildren(...result.warnings.map((w) => el("li", {}, w)));
    const ck = state.checkpoint || result.checkpoint;
    const accuracy = ck.untrained ? "untrained" :
      ck.accuracy !== null && ck.accuracy !== undefined ? percent(ck.accuracy) + " reported accuracy" : "no reported accuracy";
    const what = result.ensemble ? "Ensemble " + result.ensemble.name + " of " + result.ensemble.members.length +
      " checkpoints, the first " : "Checkpoint ";
    const frames = ck.sequence_length === 1 ? "each face on its own" : ck.sequence_length + " frames per window";
    $("checkpoint-line").textContent = what + ck.name + " · " + frames + " · " +
      accuracy + (state.reused ? " · same video analysed before: result reused" : "");
  }

  function renderEnsemble(result) {
    const ensemble = result.ensemble;
    $("ensemble-section").hidden = !ensemble;
    if (!ensemble) return;
    $("ensemble-help").textContent = "The verdict is the " + ensemble.combine + " of these checkpoints' answers. " +
      "The timeline, people and windows below are " + ensemble.evidence_from + "'s.";
    const head = el("tr");
    ["checkpoint", "frames", "verdict", "fake probability", "windows scored"].forEach((name) => head.append(el("th", {}, name)));
    const rows = ensemble.members.map((member) => {
      const tr = el("tr");
      const p = member.fake_probability;
      tr.append(el("td", {}, member.name), el("td", {}, String(member.sequence_length)),
        el("td", { class: "score " + ({ FAKE: "fake", REAL: "real" }[member.verdict] || "uncertain") }, member.verdict),
        el("td", {}, p === null ? "–" : p.toFixed(3) + (member.calibrated ? "" : " (raw)")),
        el("td", {}, String(member.windows_scored)));
      return tr;
    });
    $("ensemble-members").replaceChildren(head, ...rows);
  }

  function renderTimeline(result) {
    // Drawn at the width it is shown at, so its labels keep their size on a phone.
    const width = Math.max(300, Math.min(800, $("timeline").clientWidth || 800));
    const height = 190, left = 40, right = 10, top = 10, bottom = 30;
    const duration = Math.max(result.video.duration, 0.001);
    const x = (t) => left + ((width - left - right) * t) / duration;
    const y = (p) => top + (height - top - bottom) * (1 - p);
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "group",
      "aria-label": "fake probability of each window over the video's time; choose a window to play it" });
    const t = result.thresholds;
    chart.append(svg("rect", { x: left, width: width - left - right, y: y(t.fake), height: Math.max(0, y(t.real) - y(t.fake)),
      fill: "#f6efd9", class: "uncertain-band" }, undefined));
    [0, 1].forEach((p) => {
      chart.append(svg("line", { x1: left, x2: width - right, y1: y(p), y2: y(p), stroke: "#e3e7ec" }));
      chart.append(svg("text", { x: left - 6, y: y(p) + 4, "text-anchor": "end", "font-size": 11, fill: "#5b6673" },
        p.toFixed(1)));
    });
    [["FAKE", t.fake, "#c62f2f"], ["REAL", t.real, "#19824a"]].forEach(([name, p, colour]) => {
      chart.append(svg("line", { x1: left, x2: width - right, y1: y(p), y2: y(p), stroke: colour,
        "stroke-dasharray": "4 4", class: "threshold" }));
      chart.append(svg("text", { x: width - right, y: y(p) + (name === "FAKE" ? -3 : 11), "text-anchor": "end",
        "font-size": 10, fill: colour }, name + " " + p3(p)));
    });
    const colours = { fake: "#c62f2f", real: "#19824a", uncertain: "#b7791f" };
    const ticks = Math.min(width < 500 ? 5 : 10, Math.ceil(duration));
    for (let i = 0; i <= ticks; i++) {
      const t = (duration * i) / ticks;
      chart.append(svg("text", { x: x(t), y: height - 10, "text-anchor": i === ticks ? "end" : "middle", "font-size": 11, fill: "#5b6673" },
        t.toFixed(1) + "s"));
    }
    result.windows.forEach((w) => {
      const group = svg("g", { class: "window", "data-window": w.index, tabindex: 0, role: "button" });
      const x0 = x(w.start_time), x1 = Math.max(x(w.end_time), x0 + 3);
      let title;
      if (w.status === "scored") {
        const p = w.fake_probability;
        group.append(svg("rect", { x: x0, y: y(p) - 4, width: x1 - x0, height: 8, rx: 2,
          fill: colours[band(p, t)] }));
        title = `window ${w.index}: ${seconds(w.start_time)}–${seconds(w.end_time)}, fake probability ${p.toFixed(3)}`;
      } else {
        group.append(svg("rect", { x: x0, y: y(0) - 3, width: x1 - x0, height: 6, rx: 2, fill: "#b8c0cb" }));
        title = `window ${w.index}: ${seconds(w.start_time)}–${seconds(w.end_time)}, ${w.status.replace("_", " ")}`;
      }
      group.append(svg("title", {}, title));
      group.setAttribute("aria-label", "Play " + title);
      activate(group, () => seek(w.start_time));
      chart.append(group);
    });
    const playhead = svg("line", { x1: left, x2: left, y1: top, y2: height - bottom, stroke: "#2557d6", "stroke-width": 1.5 });
    chart.append(playhead);
    $("player").addEventListener("timeupdate", (e) => {
      const position = x(Math.min(e.target.currentTime, duration));
      playhead.setAttribute("x1", position);
      playhead.setAttribute("x2", position);
    });
    $("timeline").replaceChildren(chart);
  }

  const isPhoto = (result) => result.video.kind === "image";

  // The photo with each face's box, coloured and labelled by that face's verdict. The boxes are in the pixels of the
  // upright photo (EXIF orientation applied), which is also how browsers show it.
  function renderPhoto(result) {
    const boxes = $("photo-boxes");
    boxes.setAttribute("viewBox", "0 0 " + result.video.width + " " + result.video.height);
    boxes.setAttribute("preserveAspectRatio", "none");
    const verdictOf = {};
    result.people.forEach((person) => { verdictOf[person.person_id] = person; });
    const stroke = Math.max(2, Math.round(Math.max(result.video.width, result.video.height) / 300));
    const shapes = [];
    (result.windows[0] ? result.windows[0].tracks : []).forEach((track) => {
      const [x0, y0, x1, y1] = track.boxes[0];
      const person = verdictOf[track.person_id];
      const kind = person ? ({ FAKE: "fake", REAL: "real" }[person.verdict] || "uncertain") : "uncertain";
      const label = personLabel(result, track.person_id) + ": " + (person ? person.verdict : "") + " " +
        p3(track.fake_probability);
      shapes.push(svg("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, class: "face-box " + kind,
        "stroke-width": stroke, "data-face": track.track_id }));
      // Above the box where there is room, else just inside its top edge (never over the photo's top edge).
      const size = stroke * 8;
      const labelY = y0 - stroke * 2 >= size ? y0 - stroke * 2 : y0 + size + stroke;
      shapes.push(svg("text", { x: x0 + (labelY > y0 ? stroke * 2 : 0), y: labelY, class: "face-label " + kind,
        "font-size": size }, label));
    });
    boxes.replaceChildren(...shapes);
  }

  function renderPeople(result) {
    const photo = isPhoto(result);
    const items = result.people.map((person) => {
      const card = el("div", { class: "person" });
      if (person.thumbnail_url) {
        card.append(el("img", { src: person.thumbnail_url, alt: personLabel(result, person.person_id) + "'s face",
          loading: "lazy" }));
      }
      const verdictClass = { FAKE: "fake", REAL: "real" }[person.verdict] || "uncertain";
      card.append(el("div", { class: "person-name" }, personLabel(result, person.person_id)));
      card.append(el("div", { class: "score " + verdictClass },
        (VERDICT_ICONS[person.verdict] || "") + " " + person.verdict + " · " + p3(person.fake_probability)));
      if (person.window_probabilities.length > 1) {
        const low = Math.min(...person.window_probabilities), high = Math.max(...person.window_probabilities);
        card.append(el("div", { class: person.reason === "windows_disagree" ? "disagree" : "muted" },
          "windows from " + low.toFixed(2) + " to " + high.toFixed(2) +
          (person.reason === "windows_disagree" ? ": they disagree, so no REAL verdict" : "")));
      }
      if (!photo) card.append(el("div", { class: "muted" }, "windows " + person.windows.map((w) => "#" + w).join(", ")));
      card.dataset.person = person.person_id + 1;
      return card;
    });
    const none = photo ? "No face was found in the photo." : "No face was scored.";
    $("people").replaceChildren(...(items.length ? items : [el("p", { class: "muted" }, none)]));
  }

  function renderWindows(result) {
    const rows = result.windows.map((w) => {
      const row = el("div", { class: "window-row", "data-window": w.index, title: "Play this window", tabindex: 0,
        role: "button", "aria-label": `Play window #${w.index}, ${seconds(w.start_time)} to ${seconds(w.end_time)}` });
      const faces = el("div", { class: "faces" });
      [...w.tracks].sort((a, b) => a.person_id - b.person_id).forEach((track) => {
        if (track.thumbnail_url) {
          const face = el("figure", { class: "face", "data-person": track.person_id + 1 });
          face.append(el("img", { src: track.thumbnail_url, loading: "lazy",
            alt: `${personLabel(result, track.person_id)} in window #${w.index}` }),
          el("figcaption", {}, `${personLabel(result, track.person_id)} · ${p3(track.fake_probability)}`));
          faces.append(face);
        }
      });
      const meta = el("div", { class: "meta" });
      meta.append(el("div", {}, `#${w.index} · ${seconds(w.start_time)}–${seconds(w.end_time)} · frames ` +
        `${w.start_frame}–${w.end_frame}`));
      if (w.status === "scored") {
        const p = w.fake_probability;
        const zone = band(p, result.thresholds);
        const words = { fake: "FAKE range", real: "REAL range", uncertain: "between the thresholds" }[zone];
        meta.append(el("span", { class: "score " + zone }, "fake probability " + p3(p) + " (" + words + ")"));
        meta.append(el("span", { class: "muted" }, " · " + w.tracks.length + " face(s)"));
      } else {
        const why = { no_face: "no face found", face_lost: "faces not visible in every frame",
          video_ended: "the video ended" }[w.status] || w.status;
        meta.append(el("span", { class: "muted" }, why));
      }
      if (w.frames_without_face.length) {
        meta.append(el("div", { class: "muted" }, w.frames_without_face.length + " frame(s) without a face"));
      }
      row.append(faces, meta);
      activate(row, () => seek(w.start_time));
      return row;
    });
    $("windows").replaceChildren(...rows);
  }

  function renderTimings(state, result) {
    const photo = isPhoto(result);
    const names = { probe: photo ? "checking the photo" : "reading the video",
      decode: photo ? "reading the photo" : "decoding frames", detect: "finding faces",
      crop: "cropping", network: "the network", heatmaps: "heat maps", total: "total",
      checkpoint_load: "loading the checkpoint" };
    const rows = Object.entries(names)
      .filter(([key]) => typeof result.timings[key] === "number")
      .map(([key, name]) => {
        const value = result.timings[key];
        const tr = el("tr");
        tr.append(el("th", {}, name), el("td", {}, seconds(value)));
        return tr;
      });
    $("timings").replaceChildren(...rows);
  }

  function render(state) {
    renderProgress(state);
    renderFailure(state);
    const done = state.status === "done" && state.result;
    $("result").hidden = !done;
    if (!done) return;
    const result = state.result;
    renderVerdict(state, result);
    renderEnsemble(result);
    if (isPhoto(result)) {
      renderPhoto(result);
    } else {
      renderTimeline(result);
      renderWindows(result);
    }
    renderPeople(result);
    renderTimings(state, result);
    renderDrawing(state);
    loadServerSections();
  }

  // While the heat maps are drawn: their own progress in their slot; when they arrive, the slot is fetched again.
  function renderDrawing(state) {
    const now = isDrawing(state);
    if (drawing && !now) root.dataset.serverSectionsPending = "true";
    drawing = now;
    if (!now) return;
    let line = $("heatmaps-progress");
    if (!line) {
      const section = el("section", { id: "heatmaps-pending", class: "heatmaps" });
      section.append(el("h2", {}, "Heat maps"));
      line = el("p", { id: "heatmaps-progress", role: "status" });
      section.append(line);
      $("heatmaps-slot").replaceChildren(section);
    }
    line.textContent = "Drawing heat maps · " + Math.round(state.heatmaps_progress || 0) + "% (the verdict above is complete)";
  }

  // The heat maps and the Content Credentials are drawn by the server (the API's state does not carry the maps, and
  // the credentials are the file's words, best escaped by the template). A page opened before its result fetches
  // itself once when the result arrives and takes over those sections: our own escaped HTML.
  const SERVER_SECTIONS = ["provenance-slot", "heatmaps-slot"];

  function loadServerSections() {
    if (root.dataset.serverSectionsPending !== "true") return;
    root.dataset.serverSectionsPending = "false";
    fetch(window.location.href, { cache: "no-store" })
      .then((response) => (response.ok ? response.text() : ""))
      .then((html) => {
        const page = new DOMParser().parseFromString(html, "text/html");
        for (const id of SERVER_SECTIONS) {
          const slot = page.getElementById(id);
          if (slot) $(id).replaceChildren(...Array.from(slot.childNodes, (n) => document.importNode(n, true)));
        }
      })
      .catch(() => {});
  }

  function poll() {
    fetch(statusUrl, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then((response) => {
        if (response.status === 404) throw new Error("gone");
        return response.json();
      })
      .then((state) => {
        render(state);
        if (isRunning(state) || isDrawing(state)) timer = setTimeout(poll, 1000);
      })
      .catch((error) => {
        if (error.message === "gone") {
          $("job-stage").textContent = "This analysis was deleted.";
          return;
        }
        timer = setTimeout(poll, 3000);  // a network hiccup: keep trying, more slowly
      });
  }

  // "Copy link": the page's own address (the only way back to it), or shared through the phone's share sheet.
  const copy = $("copy-link");
  if (copy) {
    copy.addEventListener("click", () => {
      const url = copy.dataset.url;
      const said = (text) => { $("copy-note").textContent = text; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(url).then(() => said("Link copied."), () => said(url));
      } else if (navigator.share) {
        navigator.share({ url }).catch(() => said(url));
      } else {
        said(url);
      }
    });
  }

  const initial = JSON.parse(document.getElementById("initial-state").textContent);
  render(initial);
  if (isRunning(initial) || isDrawing(initial)) timer = setTimeout(poll, 500);
})();
